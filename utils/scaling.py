"""Scaling laws, the front door: the chapters write ``from utils import scaling`` and call ``scaling.fit_power_law``,
``scaling.fit_chinchilla`` and so on. Each idea lives in its own module, and this one re-exports them:

- :mod:`utils.fitting`: fitting a law to points (Chapter 5): :func:`fit_power_law` (least squares in log–log
  space), :func:`fit_saturating_power_law` and :func:`huber`, the Huber/L-BFGS estimator of Hoffmann et al.
  (2022), Approach 3, that it shares with the joint fit;
- :mod:`utils.chinchilla`: the joint law ``L(N, D) = E + A/N^alpha + B/D^beta`` (Chapter 7):
  :func:`chinchilla_loss`, :func:`fit_chinchilla` ("Approach 3"), :func:`compute_optimal`,
  :func:`optimal_size_exponent` (Chapter 6), and Kaplan et al.'s form :func:`kaplan_loss`;
- :mod:`utils.isoflop`: IsoFLOP profiles and their minima, :func:`isoflop_minima` ("Approach 2", Chapter 6);
- :mod:`utils.bootstrap`: resampling, percentile intervals and their Monte-Carlo error
  (:func:`percentile_interval`, :func:`cluster_resamples`), and refits in worker processes;
- :mod:`utils.published`: the published constants with their sources, :data:`KAPLAN_2020`,
  :data:`HOFFMANN_2022`, :data:`BESIROGLU_2024`, and Hoffmann et al.'s grid of starts :data:`HOFFMANN_GRID`;
- :mod:`utils.validate`: the input checks every fitter makes.

Conventions: ``N`` parameters, ``D`` training tokens, ``C`` training FLOPs (``C = 6 N D``), losses in nats
per token. Every fitter refuses non-positive or non-finite input, mismatched lengths, and too few points,
with a ``ValueError`` that says what to do. Intervals are two-sided at ``level`` (default 95 %).
Pure NumPy/SciPy (no torch), so it runs anywhere.
"""
from __future__ import annotations

from .bootstrap import cluster_resamples, percentile_interval
from .chinchilla import (ChinchillaFit, ComputeOptimal, chinchilla_loss, compute_optimal, fit_chinchilla,
                         kaplan_loss, optimal_size_exponent)
from .fitting import PowerLawFit, SaturatingFit, fit_power_law, fit_saturating_power_law, huber
from .isoflop import IsoFLOPMinima, isoflop_minima
from .published import BESIROGLU_2024, HOFFMANN_2022, HOFFMANN_GRID, KAPLAN_2020

__all__ = [
    "KAPLAN_2020", "HOFFMANN_2022", "BESIROGLU_2024", "HOFFMANN_GRID",
    "PowerLawFit", "SaturatingFit", "ChinchillaFit", "ComputeOptimal", "IsoFLOPMinima",
    "fit_power_law", "fit_saturating_power_law", "fit_chinchilla", "compute_optimal", "optimal_size_exponent",
    "percentile_interval", "cluster_resamples",
    "isoflop_minima", "chinchilla_loss", "kaplan_loss", "huber",
]

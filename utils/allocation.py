"""Compute-optimal allocation from a sweep: how big a model for a budget, and how sure we are (Chapter 6).

Chapter 6 asks one question of its sweep: at a compute budget ``C``, which model size ``N_opt`` gives
the lowest loss, and how does it grow, ``N_opt ∝ C^a``? Two estimators answer it from the same runs:

- **Approach 2** (Hoffmann et al. 2022): a parabola in ``ln N`` through each IsoFLOP profile, its minimum
  ``N_opt(C)``, and a straight line through the minima on log–log axes (:func:`utils.scaling.isoflop_minima`);
- **the joint fit** ``L(N, D) = E + A/N^α + B/D^β`` (:func:`utils.scaling.fit_chinchilla`), minimised along
  the sweep's real cost curve ``C = C_token(N) · D`` between its smallest and largest budgets.

:func:`analyse` runs both on the same **paired** resamples (the same resampled data feed both estimates), so
that their difference gets an interval of its own, and :meth:`AllocationResult.verdict` words the comparison from
that interval. Two resampling schemes are offered: ``"parametric"`` (the default) simulates new losses on exactly
the same runs from the fitted law and the noise measured in its residuals (:func:`split_noise`), and
``"trunks"`` draws whole trunks with replacement (:func:`utils.scaling.cluster_resamples`). On a grid where each
trunk is one model size, drawing trunks also redraws the design, and its intervals come out too wide; the
parametric scheme keeps the design fixed (``tests/test_allocation.py`` checks both against repeated draws).
:func:`sensitivity` repeats it with other choices (IsoFLOP window,
shortest run kept, parameter count). :func:`heldout_isoflop` scores a predicted optimum against a held-out
IsoFLOP profile, and :func:`synthetic_runs` / :func:`recovery` push losses from a known law through exactly
the same analysis, to tell a flaw of the design or the estimators from data that do not follow the law.

Runs are the sweep's result records (:func:`utils.sweep.run_sweep`): dicts with ``N`` (non-embedding
parameters), ``N_total``, ``D`` (tokens), ``budget`` (the nominal ``C`` of an IsoFLOP point, ``None`` for
a shared-step point), ``flops_per_token``, ``steps``, ``trunk`` and ``final_val_loss`` (nats).

Where each part lives (this module re-exports them, so ``from utils import allocation`` reaches all of it):

- :mod:`utils.allocation_core`: the runs as columns, :func:`cost_curve`, the two estimators, :func:`analyse` and
  :class:`AllocationResult`;
- :mod:`utils.noise`: :func:`split_noise`, the losses simulated from the law and the parametric refits;
- :mod:`utils.sensitivity`: :func:`sensitivity` and :class:`SensitivityTable`;
- :mod:`utils.heldout`: :func:`heldout_isoflop` and :class:`HeldoutIsoFLOP`;
- :mod:`utils.recovery`: :func:`synthetic_runs`, :func:`recovery` and :class:`Recovery`.
"""
from __future__ import annotations

from .allocation_core import (EQUIVALENCE_MARGIN, PARAM_COUNTS, RESAMPLING, AllocationResult, CostCurve, Resamples,
                              analyse, cost_curve)
from .heldout import HeldoutIsoFLOP, heldout_isoflop
from .noise import split_noise
from .recovery import Recovery, recovery, synthetic_runs
from .sensitivity import SensitivityTable, sensitivity

__all__ = ["AllocationResult", "CostCurve", "HeldoutIsoFLOP", "Recovery", "Resamples", "SensitivityTable", "analyse",
           "cost_curve", "heldout_isoflop", "recovery", "sensitivity", "split_noise", "synthetic_runs", "PARAM_COUNTS",
           "RESAMPLING", "EQUIVALENCE_MARGIN"]

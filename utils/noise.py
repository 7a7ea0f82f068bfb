"""The parametric resamples of Chapter 6's allocation analysis: the noise in a fitted law's residuals, losses
simulated with it, and the law refitted to each simulated set.

A sweep's runs branch off shared trunks, so their losses carry two kinds of noise: an offset shared by all runs
of one trunk (its seed and batch order) and each run's own noise. :func:`split_noise` measures the two from the
residuals of the joint law ``L(N, D) = E + A/N^α + B/D^β``; :func:`simulate` draws new loss sets from the law
with that noise, on exactly the same runs; :func:`refit_all` refits the law to every set (in worker processes).
:func:`utils.allocation_core.analyse` feeds these sets to both estimators of ``a`` (Chapter 6 explains why the
design is kept fixed). Moved here from :mod:`utils.allocation`, which still re-exports :func:`split_noise`.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np

from . import bootstrap, chinchilla

__all__ = ["LAW_KEYS", "check_sd", "law_jacobian", "refit_all", "refit_rows", "simulate", "split_noise"]

#: The joint law's constants in the order :func:`refit_rows` returns them (one column each).
LAW_KEYS = ("E", "A", "B", "alpha", "beta")


def law_jacobian(law: Mapping[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """For :func:`split_noise`: derivatives of ``E + A/N^alpha + B/D^beta`` by ``(E, A, B, alpha, beta)`` at
    every run; shape (runs, 5)."""
    n_term, d_term = N ** -law["alpha"], D ** -law["beta"]
    return np.column_stack([np.ones_like(N), n_term, d_term, -law["A"] * np.log(N) * n_term,
                            -law["B"] * np.log(D) * d_term])


def split_noise(residuals, trunk, jacobian, *, trunk_sd: float | None = None,
                noise_sd: float | None = None) -> tuple[float, float]:
    """``(trunk_sd, noise_sd)``: the residuals of a fitted law split into a shared offset per trunk and independent
    noise per run (Chapter 6), by the method of moments of a one-way random-effects analysis of variance.

    The residuals' sum of squares *within* trunks (about each trunk's mean) reflects the per-run noise; their
    sum of squares *between* trunks (each trunk's mean, counted once per run) reflects both. Setting each sum
    to its expected value and solving the two equations gives the two SDs. A fitted law absorbs part of the
    noise (its residuals are smaller than the noise), so the expected sums are those of residuals of the fit
    linearised at its optimum: ``jacobian`` (runs x parameters, e.g. :func:`law_jacobian`) spans what the fit
    can absorb. A given SD (e.g. ``noise_sd`` measured across seeds) is used as it is, and only the other one
    is solved for; an SD that would come out negative is set to 0 and the other one takes all the residuals."""
    r = np.asarray(residuals, dtype=float)
    labels, inverse = np.unique(np.asarray(trunk), return_inverse=True)
    Z = np.eye(len(labels))[inverse]                       # runs x trunks membership
    between = Z @ np.diag(1.0 / Z.sum(axis=0)) @ Z.T       # replaces each residual by its trunk's mean
    J = np.asarray(jacobian, dtype=float)
    U, s, _ = np.linalg.svd(J / np.linalg.norm(J, axis=0), full_matrices=False)
    U = U[:, s > 1e-9 * s[0]]
    M = np.eye(len(r)) - U @ U.T                           # what the linearised fit leaves as residuals
    sums, coefs = [], []
    for Q in (np.eye(len(r)) - between, between):          # within, between
        sums.append(float(r @ Q @ r))
        coefs.append((np.trace(Q @ M @ Z @ Z.T @ M), np.trace(Q @ M)))   # E[sum] = tau² c0 + sigma² c1
    (w0, w1), (b0, b1) = coefs
    if w1 <= 0 or b0 <= 0:
        raise ValueError("too few runs per trunk, or too few trunks, to tell a trunk's shared offset from the noise "
                         "of single runs; pass trunk_sd and noise_sd (measured, e.g. across seeds).")
    if trunk_sd is None and noise_sd is None:
        tau2, sigma2 = np.linalg.solve([[w0, w1], [b0, b1]], sums)
        if tau2 < 0:
            tau2, sigma2 = 0.0, sum(sums) / (w1 + b1)
        elif sigma2 < 0:
            tau2, sigma2 = sum(sums) / (w0 + b0), 0.0
    elif noise_sd is not None and trunk_sd is None:
        sigma2 = noise_sd ** 2
        tau2 = max(0.0, (sums[1] - sigma2 * b1) / b0)
    elif trunk_sd is not None and noise_sd is None:
        tau2 = trunk_sd ** 2
        sigma2 = max(0.0, (sums[0] - tau2 * w0) / w1)
    else:
        tau2, sigma2 = trunk_sd ** 2, noise_sd ** 2
    return float(math.sqrt(tau2)), float(math.sqrt(sigma2))


def check_sd(name: str, value) -> None:
    """Refuse an SD that is not ``None``, finite and 0 or more, with a sentence."""
    if value is not None and not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a standard deviation in nats (0 or more), or None to measure it from the "
                         f"fit's residuals; got {value!r}.")


def simulate(law: Mapping[str, float], r, trunk_sd: float, noise_sd: float, n: int, seed) -> np.ndarray:
    """``n`` simulated loss vectors (rows) on the runs of ``r`` (:class:`utils.allocation_core.Runs`): the law,
    plus a normal offset per trunk (SD ``trunk_sd``, shared by the trunk's runs), plus independent normal noise
    per run (SD ``noise_sd``)."""
    labels, inverse = np.unique(r.trunk, return_inverse=True)
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, trunk_sd, (n, len(labels)))[:, inverse]
    losses = chinchilla.chinchilla_loss(r.N, r.D, law) + offsets + rng.normal(0.0, noise_sd, (n, len(r.L)))
    if not np.all(losses > 0):
        raise ValueError("a simulated loss came out non-positive: the measured noise is as large as the losses. "
                         "Check the runs, or pass smaller trunk_sd and noise_sd.")
    return losses


def refit_rows(N: np.ndarray, D: np.ndarray, losses: np.ndarray, n_starts) -> np.ndarray:
    """The joint law refitted to each row of ``losses`` (rows E, A, B, alpha, beta; nan where a fit raised)."""
    out = np.full((len(losses), 5), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # a refit at a bound shows up as a failed slope
        for k, L in enumerate(losses):
            try:
                fit = chinchilla.fit_chinchilla(N, D, L, n_bootstrap=0, n_starts=n_starts)
            except ValueError:
                continue
            out[k] = [fit[key] for key in LAW_KEYS]
    return out


def refit_all(r, losses: np.ndarray, n_starts, workers) -> np.ndarray:
    """:func:`refit_rows` over all simulated sets, split across ``workers`` processes (default: one per core)."""
    n_workers = bootstrap.worker_count(len(losses), workers)
    chunks = np.array_split(losses, min(len(losses), 4 * n_workers)) if n_workers > 1 else [losses]
    parts = bootstrap.in_processes(refit_rows, [(r.N, r.D, c, n_starts) for c in chunks], n_workers,
                                   "the parametric refits")
    return np.vstack(parts)

"""The bootstrap machinery behind every interval of the fitters: resampling, percentile intervals, their
Monte-Carlo error, and running refits in worker processes.

Chapter 5 explains the percentile bootstrap (refit on resampled points, read the interval off the refits'
percentiles); Chapter 6 resamples whole groups (a *cluster* bootstrap: points that share a training run are
not independent) and pairs two estimators by feeding them the same resamples. Nothing here fits a law:
:mod:`utils.fitting` refits the Huber estimator on these resamples, and :mod:`utils.allocation` reuses the
intervals and the worker processes. Pure NumPy.
"""
from __future__ import annotations

import warnings

import numpy as np

from .validate import check_level

__all__ = ["percentile_ci", "mc_error", "percentile_interval", "resample_weights", "cluster_resamples",
           "check_resamples", "check_groups", "why_refused", "worker_count", "in_processes"]


def percentile_ci(samples: np.ndarray, level: float) -> np.ndarray:
    """The percentile interval at ``level`` of each column of ``samples`` (rows = refits): shape (P, 2)."""
    lo, hi = 50 * (1 - level), 50 * (1 + level)
    return np.percentile(samples, [lo, hi], axis=0).T   # (P, 2)


def mc_error(samples: np.ndarray, level: float, seed: int | None, reps: int = 200) -> np.ndarray:
    """Monte-Carlo standard error of each percentile endpoint, shape (P, 2): the spread of the endpoints
    over resamples of the bootstrap refits themselves (no refitting). It says how much the interval
    would move with another ``n_bootstrap`` refits, not how uncertain the fit is."""
    rng = np.random.default_rng(None if seed is None else seed + 1)
    B = len(samples)
    ends = np.stack([percentile_ci(samples[rng.integers(0, B, B)], level) for _ in range(reps)])
    return ends.std(axis=0, ddof=1)


def percentile_interval(values, level: float = 0.95, seed: int | None = 0):
    """``((lo, hi), (mc_lo, mc_hi))``: the percentile interval of bootstrap ``values`` (non-finite ones left
    out) at ``level`` and the Monte-Carlo standard error of its two ends (Chapter 6: for quantities derived
    from refits, such as an exponent, computed the way the fitters compute their own intervals)."""
    level = check_level(level)
    v = np.asarray(values, dtype=float).reshape(-1)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        raise ValueError(f"need at least 2 finite bootstrap values for an interval, got {len(v)}.")
    ends = percentile_ci(v[:, None], level)[0]
    mc = mc_error(v[:, None], level, seed)[0]
    return (float(ends[0]), float(ends[1])), (float(mc[0]), float(mc[1]))


def resample_weights(rng, n: int, groups: np.ndarray | None) -> np.ndarray:
    """Weights (how often each point is drawn) of one bootstrap resample: of points, or of whole groups."""
    if groups is None:
        return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
    labels, inverse = np.unique(groups, return_inverse=True)
    drawn = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels)).astype(float)
    return drawn[inverse]


def cluster_resamples(groups, n_bootstrap: int, seed: int | None = 0) -> np.ndarray:
    """How often each point is drawn in each of ``n_bootstrap`` cluster-bootstrap resamples: an integer array of
    shape ``(n_bootstrap, len(groups))`` (Chapter 6).

    Each resample draws as many groups as there are, with replacement, and every point counts as often as its
    group was drawn. These are the draws :func:`~utils.chinchilla.fit_chinchilla` makes itself with ``groups``
    and ``seed``; drawing them once and passing them to two estimators (``resamples=``) makes a *paired*
    bootstrap."""
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}.")
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) == 0:
        raise ValueError(f"groups must be a non-empty 1-D sequence of labels (one per point), got shape {g.shape}.")
    rng = np.random.default_rng(seed)
    return np.stack([resample_weights(rng, len(g), g) for _ in range(n_bootstrap)]).astype(int)


def check_resamples(resamples, n: int) -> np.ndarray:
    """Validated resample weights (B, n): non-negative whole numbers, at least one point drawn per resample."""
    w = np.asarray(resamples, dtype=float)
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"resamples must have one row per resample and one column per point ({n}); got shape "
                         f"{w.shape}. Build them with cluster_resamples(groups, n_bootstrap, seed).")
    if not np.all(np.isfinite(w) & (w >= 0) & (w == np.round(w))) or np.any(w.sum(axis=1) == 0):
        raise ValueError("resamples must hold non-negative whole counts (how often each point is drawn), with at "
                         "least one point drawn in every resample.")
    return w


def check_groups(groups, n: int) -> np.ndarray | None:
    """``groups`` as an array of one label per point (``n``), or ``None`` when none are given."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must give one label per point ({n}), got shape {g.shape}.")
    return g


def why_refused(points: np.ndarray, n_params: int, groups: np.ndarray | None, what: str) -> str | None:
    """Why a bootstrap would degenerate (a sentence), or ``None`` when it is fine.

    Refused when the data have fewer than twice as many distinct points as the law has parameters
    (most resamples would then hold about as many distinct points as parameters, and every refit would
    interpolate them), or, when resampling groups, fewer than 5 groups (a resample of 4 groups
    repeats some in most draws)."""
    distinct = len(np.unique(np.round(points, 12), axis=0))
    if distinct < 2 * n_params:
        return (f"{what} has {n_params} parameters but the data have only {distinct} distinct points; a bootstrap "
                f"needs at least {2 * n_params} (twice the parameters), or its refits just interpolate the "
                "resampled points. No interval is given: add points, or fit fewer parameters.")
    if groups is not None and len(np.unique(groups)) < 5:
        return (f"only {len(np.unique(groups))} groups to resample (e.g. model sizes whose points share one "
                "training run); a group bootstrap needs at least 5. No interval is given.")
    return None


def worker_count(n_bootstrap: int, workers: int | None) -> int:
    """How many processes ``n_bootstrap`` refits run in: ``workers`` when given (a positive integer), else one
    for fewer than 64 refits (not worth starting processes) and otherwise one per usable core, at most 8."""
    if workers is not None:
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be a positive integer or None, got {workers!r}.")
        return int(workers)
    if n_bootstrap < 64:
        return 1  # not worth starting processes
    from .runtime import usable_cores  # torch-free: the fitters stay pure NumPy/SciPy
    return min(8, usable_cores())


def in_processes(func, jobs: list, workers: int, what: str, instead: str = "running it", stacklevel: int = 4) -> list:
    """``[func(*job) for job in jobs]``, in ``workers`` spawned processes when more than one (``func`` must be a
    module-level function). Spawned workers import the calling script again, so a script without
    ``if __name__ == "__main__":`` cannot start them: then a warning names ``what`` and says what happens
    ``instead``, and the jobs run in this process (the same jobs, the same results, only slower)."""
    if workers <= 1 or len(jobs) <= 1:
        return [func(*job) for job in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            return list(pool.map(func, *zip(*jobs)))
    except BrokenProcessPool:
        warnings.warn(f"could not start worker processes for {what} (call it under `if __name__ == '__main__':` in "
                      f"a script, or pass workers=1); {instead} in this process.", RuntimeWarning, stacklevel=stacklevel)
        return [func(*job) for job in jobs]

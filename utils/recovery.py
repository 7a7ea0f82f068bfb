"""Synthetic recovery for Chapter 6: losses from a known law pushed through exactly the same allocation analysis, to
tell a flaw of the design or the estimators from data that do not follow the law.

:func:`synthetic_runs` makes the copies of a sweep's records, :func:`recovery` analyses many of them and says how
often each estimator's interval held the law's ``a`` (a :class:`Recovery`); :mod:`utils.allocation` re-exports
all three.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from . import bootstrap, chinchilla
from .allocation_core import AllocationResult, analyse, check_runs, column, joint_slope, param_field, positive, prepare

__all__ = ["Recovery", "recovery", "synthetic_runs"]


def synthetic_runs(runs, law: Mapping[str, float], *, noise_sd: float, trunk_sd: float = 0.0,
                   seed: int | None = 0, param_count: str = "total") -> list[dict]:
    """Copies of the sweep's records whose losses come from a known law (Chapter 6); returns a list of dicts.

    ``final_val_loss`` becomes ``E + A/N^alpha + B/D^beta`` (``law``, a dict with those keys; ``N`` counted as
    ``param_count`` says) at each run's own ``N`` and ``D``, plus a shared offset per trunk (normal, SD
    ``trunk_sd``: what one trunk's seed and batch order give all its branches) and independent noise per run
    (normal, SD ``noise_sd``). ``final_val_bpc`` follows; every other field is kept, and ``synthetic`` is set,
    so the copies go through exactly
    :func:`utils.allocation_core.analyse`."""
    runs = check_runs(runs)
    for name, sd in (("noise_sd", noise_sd), ("trunk_sd", trunk_sd)):
        if not (np.isfinite(sd) and sd >= 0):
            raise ValueError(f"{name} must be a standard deviation in nats (0 or more), got {sd!r}.")
    N = positive(param_field(param_count), column(runs, param_field(param_count)), runs)
    D = positive("D", column(runs, "D"), runs)
    trunk = [str(t) for t in column(runs, "trunk")]
    clean = chinchilla.chinchilla_loss(N, D, law)
    rng = np.random.default_rng(seed)
    names = sorted(set(trunk))
    shift = dict(zip(names, rng.normal(0.0, trunk_sd, len(names))))
    loss = clean + np.array([shift[t] for t in trunk]) + rng.normal(0.0, noise_sd, len(runs))
    if not np.all(loss > 0):
        raise ValueError("the law and noise gave a non-positive loss; lower noise_sd or trunk_sd, or raise E.")
    return [{**r, "final_val_loss": float(l_), "final_val_bpc": float(l_) / math.log(2), "synthetic": True}
            for r, l_ in zip(runs, loss)]


@dataclass(frozen=True)
class Recovery:
    """What :func:`recovery` found over ``n_draws`` synthetic sweeps (Chapter 6).

    ``true_a`` is the law's exponent along the runs' cost curve between their smallest and largest budget;
    ``a2``/``a_joint`` the estimates of every draw, ``a2_ci``/``a_joint_ci`` their intervals (rows lo, hi),
    ``coverage2``/``coverage_joint`` the fraction of draws whose interval holds ``true_a``, ``coverage_se`` the
    binomial SD of such a fraction at the nominal ``level``; ``diff_coverage`` the fraction whose paired interval
    of ``a2 - a_joint`` holds 0 (both estimate the same ``a``). ``failed2``/``failed_joint`` sum the failed
    resamples over all draws; ``results`` holds each draw's :class:`AllocationResult`, ``resampling`` their scheme."""
    true_a: float
    a2: np.ndarray
    a_joint: np.ndarray
    a2_ci: np.ndarray
    a_joint_ci: np.ndarray
    coverage2: float
    coverage_joint: float
    diff_coverage: float
    coverage_se: float
    failed2: int
    failed_joint: int
    level: float
    results: list = field(repr=False)
    resampling: str = "parametric"

    def __str__(self) -> str:
        pct, n = round(100 * self.level), len(self.a2)
        return (f"true a = {self.true_a:.3f}; over {n} synthetic sweeps: Approach 2 {np.mean(self.a2):.3f} on average "
                f"(SD {np.std(self.a2, ddof=1):.3f}), joint fit {np.mean(self.a_joint):.3f} (SD "
                f"{np.std(self.a_joint, ddof=1):.3f}); the {pct} % intervals ({self.resampling} resamples) held the "
                "true a in "
                f"{self.coverage2:.0%} (Approach 2) and {self.coverage_joint:.0%} (joint fit) of the draws "
                f"(binomial SD of such a rate: {self.coverage_se:.0%}); the paired interval of the difference held 0 "
                f"in {self.diff_coverage:.0%}; failed resamples: {self.failed2} (Approach 2), {self.failed_joint} "
                "(joint fit).")


def _recovery_draw(runs, law, noise_sd, trunk_sd, data_seed, boot_seed, n_bootstrap, options) -> AllocationResult:
    """One synthetic sweep through :func:`utils.allocation_core.analyse` (a function of its own, so that worker
    processes can run it)."""
    fake = synthetic_runs(runs, law, noise_sd=noise_sd, trunk_sd=trunk_sd, seed=data_seed,
                          param_count=options.get("param_count", "total"))   # options may pass the SDs on (known_noise)
    return analyse(fake, n_bootstrap=n_bootstrap, seed=boot_seed, **options)


def recovery(runs, law: Mapping[str, float], *, noise_sd: float, trunk_sd: float = 0.0, n_draws: int = 20,
             n_bootstrap: int = 100, seed: int | None = 0, workers: int | None = None, known_noise: bool = False,
             **options) -> Recovery:
    """Run :func:`utils.allocation_core.analyse` on ``n_draws`` synthetic copies of ``runs`` (:func:`synthetic_runs`
    with ``law``, ``noise_sd`` and ``trunk_sd``) and report how well each estimator recovers the law's ``a``
    (Chapter 6); returns a :class:`Recovery`. ``options`` go to :func:`utils.allocation_core.analyse` (``window``,
    ``min_steps``, ``param_count``, ``level``, ``n_starts``, ``resampling``, ...), so the analysis is exactly the
    one the real runs get; with ``known_noise`` a parametric analysis is given the true ``trunk_sd`` and
    ``noise_sd`` instead of measuring them (as a chapter that measured its noise separately would pass it). The
    draws run in ``workers`` processes (default: one per core), each analysis in one; the result does not depend on
    their number."""
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 2:
        raise ValueError(f"n_draws must be an integer of at least 2, got {n_draws!r}.")
    if "workers" in options:
        raise TypeError("pass workers to recovery itself: each draw's analysis runs in one process.")
    if known_noise:
        options = {**options, "trunk_sd": float(trunk_sd), "noise_sd": float(noise_sd)}
    param_count = options.get("param_count", "total")
    clean = synthetic_runs(runs, law, noise_sd=0.0, param_count=param_count)    # the runs need not hold losses
    r = prepare(clean, param_count, options.get("min_steps"), options.get("cost"))
    budgets = r.budget[np.isfinite(r.budget)]
    true_a = joint_slope(law, float(budgets.min()), float(budgets.max()), r.cost)
    seeds = np.random.SeedSequence(seed).generate_state(2 * n_draws)
    jobs = [(runs, dict(law), noise_sd, trunk_sd, int(seeds[2 * k]), int(seeds[2 * k + 1]), n_bootstrap,
             {**options, "workers": 1}) for k in range(n_draws)]
    results = bootstrap.in_processes(_recovery_draw, jobs, min(n_draws, bootstrap.worker_count(64, workers)),
                                     "the recovery draws")
    level = results[0].level

    def covered(cis, value):
        cis = np.asarray(cis)
        return float(np.mean((cis[:, 0] <= value) & (value <= cis[:, 1])))

    return Recovery(
        true_a=true_a, a2=np.array([x.a2 for x in results]), a_joint=np.array([x.a_joint for x in results]),
        a2_ci=np.array([x.a2_ci for x in results]), a_joint_ci=np.array([x.a_joint_ci for x in results]),
        coverage2=covered([x.a2_ci for x in results], true_a),
        coverage_joint=covered([x.a_joint_ci for x in results], true_a),
        diff_coverage=covered([x.diff_ci for x in results], 0.0),
        coverage_se=math.sqrt(level * (1 - level) / n_draws), failed2=sum(x.a2_failed for x in results),
        failed_joint=sum(x.a_joint_failed for x in results), level=level, results=results,
        resampling=results[0].resampling)

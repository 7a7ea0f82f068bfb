"""Chapter 6's allocation analysis itself: the runs as columns, the sweep's cost curve, and :func:`analyse`, which
estimates ``a`` in ``N_opt ∝ C^a`` twice (Approach 2 and the joint fit) on the same paired resamples.

:mod:`utils.allocation` is the front door that re-exports these (and describes the whole analysis); the
parametric resamples' pieces live in :mod:`utils.noise`, the sensitivity table in :mod:`utils.sensitivity`,
the held-out IsoFLOP check in :mod:`utils.heldout`, and synthetic recovery in :mod:`utils.recovery`.
It runs a little over 500 lines: the two estimators, the resamples they share and the result that pairs them
are one procedure (Chapter 6 reads them as one), and the runs' columns are what all of them read.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from . import bootstrap, chinchilla, isoflop, validate
from .noise import LAW_KEYS, check_sd, law_jacobian, refit_all, simulate, split_noise

__all__ = ["AllocationResult", "CostCurve", "Resamples", "Runs", "analyse", "analyse_reusing", "check_options",
           "check_runs", "column", "cost_curve", "describe_choice", "joint_slope", "param_field", "positive",
           "prepare", "EQUIVALENCE_MARGIN", "PARAM_COUNTS", "RESAMPLING"]

#: Which record field each parameter count reads: ``total`` (every parameter, as Hoffmann et al. count) or
#: ``non_embedding`` (as Kaplan et al. count).
PARAM_COUNTS: dict[str, str] = {"total": "N_total", "non_embedding": "N"}

#: The default equivalence margin on ``a`` (Chapter 6): two exponents whose whole paired interval of the
#: difference lies within ±0.05 are called equal for practical purposes. Hoffmann et al.'s three approaches gave
#: a = 0.46 to 0.50, a spread the field reads as agreement; 0.05 in ``a`` moves ``N_opt`` by 12 % per decade of C.
EQUIVALENCE_MARGIN = 0.05

#: The resampling schemes of :func:`analyse`: ``parametric`` (new losses simulated on the same runs from the
#: fitted law and the measured noise; the default) and ``trunks`` (whole trunks drawn with replacement).
RESAMPLING = ("parametric", "trunks")

_FIELDS = ("D", "budget", "flops_per_token", "steps", "trunk", "final_val_loss")


# ---------------------------------------------------------------------------------------------
# The runs as columns
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Runs:
    """The runs an analysis uses, as columns (one entry per run), and what was left out."""
    N: np.ndarray
    D: np.ndarray
    budget: np.ndarray      # nan for a shared-step point
    L: np.ndarray
    trunk: np.ndarray
    steps: np.ndarray
    cost: Callable
    n_left_out: int         # runs below min_steps


def check_runs(runs) -> list:
    """``runs`` as a list of record dicts; a ``TypeError`` sentence for anything else."""
    if isinstance(runs, (str, bytes, Mapping)) or not hasattr(runs, "__iter__"):
        raise TypeError(f"runs must be a list of the sweep's result records (dicts); got {type(runs).__name__}.")
    runs = list(runs)
    if not runs or not all(isinstance(r, Mapping) for r in runs):
        raise TypeError("runs must be a non-empty list of dicts (the records utils.sweep.run_sweep returns).")
    return runs


def param_field(param_count: str) -> str:
    """The record field that ``param_count`` (a key of :data:`PARAM_COUNTS`) reads."""
    if param_count not in PARAM_COUNTS:
        raise ValueError(f"param_count must be one of {sorted(PARAM_COUNTS)}, got {param_count!r}.")
    return PARAM_COUNTS[param_count]


def column(runs: list, key: str) -> list:
    """Every run's ``key``, in order; a ``ValueError`` naming the first run without it."""
    missing = [i for i, r in enumerate(runs) if key not in r]
    if missing:
        raise ValueError(f"run {missing[0]} ({runs[missing[0]].get('run', 'unnamed')}) has no field {key!r}; "
                         "pass the sweep's result records (utils.sweep.run_sweep).")
    return [r[key] for r in runs]


def positive(name: str, values: list, runs: list) -> np.ndarray:
    """``values`` as a float array; a ``ValueError`` naming the first run whose ``name`` is not positive and finite."""
    arr = np.asarray(values, dtype=float)
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if len(bad):
        raise ValueError(f"run {bad[0]} ({runs[bad[0]].get('run', 'unnamed')}) has {name} = {values[bad[0]]!r}; "
                         f"every run needs a positive, finite {name}. Fix or remove that record.")
    return arr


@dataclass(frozen=True)
class CostCurve:
    """Training FLOPs per token as a function of ``N``, through the sweep's sizes (:func:`cost_curve`)."""
    ln_N: np.ndarray
    ln_flops: np.ndarray

    def __call__(self, N):
        """FLOPs per token at ``N`` parameters (scalar or array): log-log interpolation between the sizes, and
        the end segments' slopes beyond them."""
        x, xs, ys = np.log(np.asarray(N, dtype=float)), self.ln_N, self.ln_flops
        y = np.interp(x, xs, ys)
        y = np.where(x < xs[0], ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0]), y)
        y = np.where(x > xs[-1], ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1]), y)
        return np.exp(y)


def cost_curve(runs, param_count: str = "total") -> CostCurve:
    """The sweep's cost curve read from its runs: a function ``N -> training FLOPs per token`` (Chapter 6).

    Interpolates ``ln flops_per_token`` against ``ln N`` between the distinct model sizes of ``runs`` (``N``
    counted as ``param_count`` says) and extends the end segments' slopes beyond them, so that the joint fit's
    optimum is searched along the costs the runs really paid. Needs at least two sizes."""
    runs = check_runs(runs)
    N = positive(param_field(param_count), column(runs, param_field(param_count)), runs)
    f = positive("flops_per_token", column(runs, "flops_per_token"), runs)
    ln_n, first = np.unique(np.log(N), return_index=True)
    if len(ln_n) < 2:
        raise ValueError("the runs hold only one model size; a cost curve (and an allocation) needs several.")
    return CostCurve(ln_N=ln_n, ln_flops=np.log(f[first]))


def prepare(runs, param_count: str, min_steps, cost) -> Runs:
    """The runs' columns, without the runs shorter than ``min_steps`` (counted in ``n_left_out``)."""
    runs = check_runs(runs)
    field_N = param_field(param_count)
    for key in (field_N,) + _FIELDS:
        column(runs, key)
    steps = np.asarray(column(runs, "steps"), dtype=float)
    if min_steps is not None:
        if not (isinstance(min_steps, (int, np.integer)) and min_steps >= 1):
            raise ValueError(f"min_steps must be a positive whole number of steps or None, got {min_steps!r}.")
        keep = steps >= min_steps
    else:
        keep = np.ones(len(runs), dtype=bool)
    kept = [r for r, k in zip(runs, keep) if k]
    n_trunks = len({r["trunk"] for r in kept})
    if n_trunks < 5:
        raise ValueError(f"the runs come from {len({r['trunk'] for r in runs})} trunks" +
                         ("" if min_steps is None else f", {n_trunks} of them with runs of {min_steps} steps or more") +
                         "; the analysis needs at least 5 trunks (to resample them, or to measure their shared "
                         "noise). " +
                         ("Add model sizes." if min_steps is None else "Lower min_steps."))
    budget = np.array([np.nan if r["budget"] is None else float(r["budget"]) for r in kept])
    N = positive(field_N, column(kept, field_N), kept)
    if cost is not None:
        paid = np.asarray(column(kept, "flops_per_token"), dtype=float)
        off = np.abs(np.asarray(cost(N), dtype=float) / paid - 1)
        if not np.all(off < 0.01):
            raise ValueError(f"cost(N) differs from the runs' own flops_per_token by up to {np.nanmax(off):.0%}; the cost "
                             f"curve must take N counted as param_count={param_count!r} says (or leave cost=None to "
                             "read it from the runs).")
    return Runs(N=N, D=positive("D", column(kept, "D"), kept),
                budget=budget, L=positive("final_val_loss", column(kept, "final_val_loss"), kept),
                trunk=np.asarray([str(t) for t in column(kept, "trunk")]), steps=steps[keep],
                cost=cost_curve(kept, param_count) if cost is None else cost, n_left_out=int((~keep).sum()))


# ---------------------------------------------------------------------------------------------
# The two estimators, on one resample (weights: how often each run is drawn)
# ---------------------------------------------------------------------------------------------

def _window(r: Runs, w: np.ndarray, c: float, window: int | None) -> np.ndarray:
    """Indices (repeated as drawn) of budget ``c``'s drawn runs within ``window`` ladder rungs of its best one."""
    in_c = np.flatnonzero(r.budget == c)
    rungs = {n: k for k, n in enumerate(np.unique(r.N[in_c]))}      # the profile's sizes, in order of N
    drawn = in_c[w[in_c] > 0]
    if window is not None and len(drawn):
        best = rungs[r.N[drawn[np.argmin(r.L[drawn])]]]
        drawn = drawn[[abs(rungs[n] - best) <= window for n in r.N[drawn]]]
    return np.repeat(drawn, w[drawn].astype(int))


def _approach2(r: Runs, w: np.ndarray, window: int | None) -> tuple[float, isoflop.IsoFLOPMinima]:
    """``(a, minima)`` of Approach 2 on one resample; ``a`` is nan below 3 valid minima."""
    budgets = np.unique(r.budget[np.isfinite(r.budget)])
    k = np.concatenate([_window(r, w, c, window) for c in budgets])
    if len(k) == 0:       # a resample of trunks that have no IsoFLOP point
        return float("nan"), None
    iso = isoflop.isoflop_minima({"C": r.budget[k], "N": r.N[k], "D": r.D[k], "loss": r.L[k]}, rtol=0.0,
                                 warn=False)
    return (float(iso.fit()[0].b) if iso.valid.sum() >= 3 else float("nan")), iso


def joint_slope(consts: Mapping[str, float], C_lo: float, C_hi: float, cost: Callable) -> float:
    """The joint law's ``a`` between ``C_lo`` and ``C_hi`` along ``cost``; nan when the law has no optimum (an
    exponent fitted to 0, or a minimum at an end of compute_optimal's search range, N = 1 or N = C/6)."""
    try:
        n = chinchilla.compute_optimal(np.array([C_lo, C_hi]), consts, cost).N_opt
    except ValueError:
        return float("nan")
    if np.any(n <= 1.001) or np.any(n >= 0.999 * np.array([C_lo, C_hi]) / 6.0):
        return float("nan")
    a = float(np.log(n[1] / n[0]) / math.log(C_hi / C_lo))
    return a if np.isfinite(a) else float("nan")


# ---------------------------------------------------------------------------------------------
# Resampling: whole trunks, or new losses simulated from the fitted law and the measured noise
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resamples:
    """The resampled data sets one analysis fed to both estimators (:func:`analyse`, Chapter 6).

    Row ``b`` of ``weights`` says how often each run counts in resample ``b`` and row ``b`` of ``losses`` which
    losses it sees. ``scheme="trunks"``: whole trunks drawn with replacement, the runs' own losses. ``"parametric"``:
    every run counted once, losses simulated from the fitted law with a shared offset per trunk (SD ``trunk_sd``)
    and independent noise per run (SD ``noise_sd``) around ``law`` (the fitted joint law); ``noise_source`` says
    whether those were measured from the fit's residuals (:func:`utils.noise.split_noise`) or given."""
    scheme: str
    weights: np.ndarray
    losses: np.ndarray
    trunk_sd: float = float("nan")
    noise_sd: float = float("nan")
    noise_source: str = ""
    law: Mapping | None = None


# ---------------------------------------------------------------------------------------------
# analyse: the whole allocation analysis
# ---------------------------------------------------------------------------------------------

def _interval(values: np.ndarray, level: float, seed) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(interval, Monte-Carlo error of its ends)`` of the finite ``values``; nan pairs below 2 of them."""
    v = values[np.isfinite(values)]
    if len(v) < 2:
        nan = (float("nan"), float("nan"))
        return nan, nan
    return bootstrap.percentile_interval(v, level, seed)


@dataclass(frozen=True)
class AllocationResult:
    """Chapter 6's allocation analysis of one set of runs (:func:`analyse`).

    ``a2`` (Approach 2) and ``a_joint`` (the joint fit along the cost curve between ``C_range``) are the exponents
    of ``N_opt ∝ C^a``; ``diff = a2 - a_joint``. Each has a ``level`` interval (``*_ci``), the percentile interval
    of its ``*_samples`` (nan where a resample failed), and the Monte-Carlo error of the interval's ends (``*_mc``).
    ``resampling`` names the scheme (:data:`RESAMPLING`) and ``resamples`` holds its data sets
    (:class:`Resamples`). With ``"trunks"`` the samples are the estimates on each resample. With ``"parametric"``
    they are ``estimate - (simulated - a_joint)``: each simulated estimate's error (the simulations' true exponent
    is the fitted law's, ``a_joint``) taken off the estimate (see :func:`analyse`). ``a2_reference`` and
    ``a_joint_reference`` are the two estimators on the noise-free law (their errors without noise are these
    minus ``a_joint``); ``trunk_sd`` and ``noise_sd`` are the noise it simulated (nan for ``"trunks"``).
    ``a2_failed``/``a_joint_failed`` count failed resamples (fewer than 3 valid IsoFLOP minima; a joint refit
    that raised or has no finite optimum): they are left out of that estimate's interval, and the difference uses
    the ``n_paired`` resamples where both succeeded. ``a2_budgets`` holds, per resample, how many budgets had a
    valid minimum (of ``n_budgets``). ``iso`` and ``joint`` are the point fits (``joint.samples`` and its
    intervals come from the same resamples' refits), ``cost`` the cost curve (``N -> FLOPs per token``) along which
    the joint fit's optimum was found."""
    a2: float
    a_joint: float
    diff: float
    a2_ci: tuple
    a_joint_ci: tuple
    diff_ci: tuple
    a2_mc: tuple
    a_joint_mc: tuple
    diff_mc: tuple
    a2_failed: int
    a_joint_failed: int
    n_paired: int
    n_bootstrap: int
    level: float
    margin: float
    n_runs: int
    n_left_out: int
    n_trunks: int
    n_budgets: int
    n_valid_budgets: int
    C_range: tuple
    param_count: str
    window: int | None
    min_steps: int | None
    iso: isoflop.IsoFLOPMinima = field(repr=False)
    joint: chinchilla.ChinchillaFit = field(repr=False)
    a2_samples: np.ndarray = field(repr=False)
    a_joint_samples: np.ndarray = field(repr=False)
    a2_budgets: np.ndarray = field(repr=False)
    cost: Callable = field(repr=False, default=None)
    resampling: str = "parametric"
    trunk_sd: float = float("nan")
    noise_sd: float = float("nan")
    a2_reference: float = float("nan")
    a_joint_reference: float = float("nan")
    resamples: Resamples | None = field(repr=False, default=None)

    def joint_N_opt(self, C) -> np.ndarray:
        """The joint fit's compute-optimal ``N`` at budget(s) ``C``, along the cost curve the analysis used."""
        return chinchilla.compute_optimal(C, self.joint, self.cost).N_opt

    def verdict(self) -> str:
        """One sentence comparing the two exponents, chosen from the paired interval of ``a2 - a_joint`` and
        ``margin`` (Chapter 6): they *differ* when the interval excludes 0; they *agree within ±margin* only when
        the whole interval lies inside ±margin; otherwise they *cannot be told apart at this precision*."""
        lo, hi = self.diff_ci
        pct, m = round(100 * self.level), self.margin
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return (f"No verdict: only {self.n_paired} of {self.n_bootstrap} resamples gave both exponents, too few "
                    "for an interval of their difference.")
        head = f"a2 - a_joint = {self.diff:+.3f}, {pct} % paired interval [{lo:+.3f}, {hi:+.3f}]"
        if lo > 0 or hi < 0:
            bigger = "Approach 2's" if lo > 0 else "the joint fit's"
            size = (f"by more than the margin of {m:.2f}" if min(abs(lo), abs(hi)) >= m else
                    f"by less than the margin of {m:.2f}: a real but small difference" if max(abs(lo), abs(hi)) < m
                    else f"by somewhere between {min(abs(lo), abs(hi)):.2f} and {max(abs(lo), abs(hi)):.2f}")
            text = f"{head}: the two estimates differ; {bigger} exponent is larger, {size}."
        elif -m < lo and hi < m:
            text = f"{head}: the two estimates agree to within ±{m:.2f} (the whole interval lies inside that margin)."
        else:
            text = (f"{head}: the two estimates cannot be told apart at this precision — not the same as agreeing: "
                    f"the difference could be as large as {max(abs(lo), abs(hi)):.2f}.")
        failed = self.n_bootstrap - self.n_paired
        return text + (f" ({failed} of {self.n_bootstrap} resamples failed for at least one estimate and are not "
                       "in the interval.)" if failed else "")

    def __str__(self) -> str:
        pct = round(100 * self.level)
        win = "all points" if self.window is None else f"±{self.window} rungs"
        kept = "every run kept" if self.min_steps is None else \
            f"{self.n_left_out} shorter than {self.min_steps} steps left out"
        lines = [f"{self.n_runs} runs from {self.n_trunks} trunks ({kept}), "
                 f"{describe_choice('param_count', self.param_count)}, IsoFLOP window {win}; "
                 f"{self.n_valid_budgets} of {self.n_budgets} budgets have a minimum inside their sizes; "
                 f"{self.n_bootstrap} {_scheme_text(self)}, {pct} % intervals",
                 f"  Approach 2 : a = {self.a2:.3f} {_fmt_ci(self.a2_ci)}  (failed resamples: {self.a2_failed})",
                 f"  joint fit  : a = {self.a_joint:.3f} {_fmt_ci(self.a_joint_ci)}  "
                 f"(failed resamples: {self.a_joint_failed}; C from {self.C_range[0]:.3g} to {self.C_range[1]:.3g})",
                 "  " + self.verdict()]
        if self.resampling == "parametric":
            lines.insert(3, f"  on the joint law's own noise-free losses Approach 2 reads a = {self.a2_reference:.3f} "
                            f"and the joint fit {self.a_joint_reference:.3f}, against the law's {self.a_joint:.3f}: "
                            "their errors without noise, which the intervals include")
        return "\n".join(lines)


def _scheme_text(res) -> str:
    """How the resamples of ``res`` (an :class:`AllocationResult`) were made, in words."""
    if res.resampling == "trunks":
        return "paired trunk resamples (whole trunks drawn with replacement)"
    source = res.resamples.noise_source if res.resamples is not None else ""
    return (f"paired parametric resamples (losses simulated on the same runs from the joint law, with a trunk "
            f"offset of SD {res.trunk_sd:.4f} and run noise of SD {res.noise_sd:.4f} nats, {source})")


def _fmt_ci(ci) -> str:
    """``[lo, hi]`` at 3 decimals, or a note when the interval has a nan end."""
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if np.all(np.isfinite(ci)) else "[no interval: too few resamples succeeded]"


def _slopes(consts: np.ndarray, C_range: tuple, cost: Callable) -> np.ndarray:
    """The joint law's ``a`` for each row of constants (E, A, B, alpha, beta); nan where it has none."""
    return np.array([joint_slope(dict(zip(LAW_KEYS, row)), *C_range, cost) if np.all(np.isfinite(row))
                     else float("nan") for row in consts])


def _joint_part(r: Runs, scheme: str, n_bootstrap: int, seed, noise: Mapping, n_starts, workers) -> tuple:
    """The joint fit, its ``a``, the resamples (:class:`Resamples`), ``a`` on every resample and the reference.

    ``"trunks"``: the refits on trunk draws (:func:`utils.bootstrap.cluster_resamples`); no reference (nan).
    ``"parametric"``: the noise split from the fit's residuals (:func:`utils.noise.split_noise`, or ``noise`` as
    given), loss sets simulated from the fitted law (:func:`utils.noise.simulate`), each refitted; the reference is
    ``a`` of the refit to the noise-free law (a check that the fit finds its own law again). The returned fit then
    carries the parametric refits as its ``samples``, with their percentile intervals."""
    budgets = r.budget[np.isfinite(r.budget)]
    C_range = (float(budgets.min()), float(budgets.max()))
    if scheme == "trunks":
        W = bootstrap.cluster_resamples(r.trunk, n_bootstrap, seed)
        fit = chinchilla.fit_chinchilla(r.N, r.D, r.L, groups=r.trunk, resamples=W, n_starts=n_starts, workers=workers)
        if len(fit.samples) != len(W):
            raise ValueError("the joint fit's bootstrap was refused (too few distinct points); add runs or trunks.")
        draws = Resamples("trunks", W, np.broadcast_to(r.L, W.shape))
        return fit, joint_slope(fit.to_dict(), *C_range, r.cost), draws, _slopes(fit.samples, C_range, r.cost), \
            float("nan"), C_range
    fit = chinchilla.fit_chinchilla(r.N, r.D, r.L, n_bootstrap=0, n_starts=n_starts)
    law = fit.to_dict()
    trunk_sd, noise_sd = split_noise(r.L - fit.predict(r.N, r.D), r.trunk, law_jacobian(law, r.N, r.D), **noise)
    given = [k for k in ("trunk_sd", "noise_sd") if noise.get(k) is not None]
    source = ("both given" if len(given) == 2 else
              f"{given[0]} given, the other measured from the fit's residuals" if given else
              "both measured from the fit's residuals")
    losses = simulate(law, r, trunk_sd, noise_sd, n_bootstrap, seed)
    consts = refit_all(r, np.vstack([chinchilla.chinchilla_loss(r.N, r.D, law)[None, :], losses]), n_starts, workers)
    reference = _slopes(consts[:1], C_range, r.cost)[0]
    samples = consts[1:]
    ok = samples[np.all(np.isfinite(samples), axis=1)]
    if len(ok) >= 2:
        ci, mc = bootstrap.percentile_ci(ok, fit.level), bootstrap.mc_error(ok, fit.level, seed)
        fit = dataclasses.replace(fit, samples=ok, mc_se=mc, **{f"{k}_ci": tuple(map(float, ci[i]))
                                                                for i, k in enumerate(LAW_KEYS)})
    draws = Resamples("parametric", np.ones_like(losses), losses, trunk_sd, noise_sd, source, law)
    return fit, joint_slope(law, *C_range, r.cost), draws, _slopes(samples, C_range, r.cost), reference, C_range


def _a2_part(r: Runs, draws: Resamples, window) -> tuple:
    """Approach 2's minima, its ``a``, per resample ``a`` and the number of valid budgets, and the reference
    (``a`` on the noise-free joint law, for ``"parametric"``: its bias on this grid if the law were true; nan for
    ``"trunks"`` and where it fails)."""
    a2, iso = _approach2(r, np.ones(len(r.L)), window)
    if not np.isfinite(a2):
        raise ValueError(f"only {int(iso.valid.sum())} IsoFLOP budgets have a minimum inside their sizes (window "
                         f"{window}); Approach 2 needs at least 3. Widen the window or add sizes around the minima.")
    per = [_approach2(dataclasses.replace(r, L=L), w, window) for w, L in zip(draws.weights, draws.losses)]
    reference = float("nan")
    if draws.scheme == "parametric":
        noise_free = chinchilla.chinchilla_loss(r.N, r.D, draws.law)
        reference = _approach2(dataclasses.replace(r, L=noise_free), np.ones(len(r.L)), window)[0]
    return iso, a2, np.array([p[0] for p in per]), \
        np.array([0 if p[1] is None else int(p[1].valid.sum()) for p in per]), reference


def check_options(n_bootstrap, level, margin, window, resampling="parametric", noise=None) -> float:
    """Refuse bad analysis options with a sentence; return ``level`` as a float."""
    if window is not None and not (isinstance(window, (int, np.integer)) and window >= 1):
        raise ValueError(f"window must be a whole number of ladder rungs (1 or more) or None (all points), "
                         f"got {window!r}.")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer (the paired resamples), got {n_bootstrap!r}.")
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin (the equivalence margin on a) must be positive, got {margin!r}.")
    if resampling not in RESAMPLING:
        raise ValueError(f"resampling must be one of {RESAMPLING}, got {resampling!r}.")
    for name, value in (noise or {}).items():
        check_sd(name, value)
        if resampling == "trunks" and value is not None:
            raise ValueError(f"{name} is used by resampling='parametric' only; the trunk bootstrap measures no noise.")
    return validate.check_level(level)


def analyse(runs, *, n_bootstrap: int = 200, seed: int | None = 0, window: int | None = None,
            min_steps: int | None = None, param_count: str = "total", level: float = 0.95,
            margin: float = EQUIVALENCE_MARGIN, n_starts: int | None = 8, workers: int | None = None,
            cost: Callable | None = None, resampling: str = "parametric", trunk_sd: float | None = None,
            noise_sd: float | None = None) -> AllocationResult:
    """Chapter 6's whole allocation analysis of a sweep's result records; returns an :class:`AllocationResult`.

    Leaves out runs shorter than ``min_steps`` steps (counted), counts parameters as ``param_count`` says
    (``"total"`` or ``"non_embedding"``), and estimates ``a`` in ``N_opt ∝ C^a`` twice: **Approach 2** from
    the minima of parabolas in ``ln N`` through each budget's runs within ``window`` ladder rungs of its best
    run (``None``: all of them), and the **joint fit** ``E + A/N^α + B/D^β`` minimised along ``cost``
    (default: the runs' own :func:`cost_curve`) between the smallest and the largest budget.

    Intervals come from ``n_bootstrap`` **paired** resamples (seeded by ``seed``): each resampled data set feeds
    both estimators, so that ``a2 - a_joint`` gets a paired interval at ``level``. ``resampling`` chooses them:

    - ``"parametric"`` (default) keeps the design: every resample has exactly the real runs, with losses
      simulated as the fitted joint law, plus an offset shared by each trunk's runs (SD ``trunk_sd``), plus
      independent noise per run (SD ``noise_sd``). Either SD left ``None`` is measured from the joint fit's
      residuals (:func:`utils.noise.split_noise`); pass one you measured otherwise (e.g. ``noise_sd`` across seeds). In the
      simulated world the true exponent is known: it is ``a_joint``, the fitted law's. So each estimator's
      result on a simulated set, minus ``a_joint``, is a draw of that estimator's error on this design, its
      systematic part included (a parabola through a few sizes can read the minimum a little off even without
      noise). The interval is the estimator's own estimate minus the percentiles of its errors (the "basic"
      bootstrap interval): Approach 2's interval stays around Approach 2's estimate, shifted only by its
      error measured on the fitted law. (The percentile interval of the simulated estimates would instead sit
      around the joint law's ``a`` whatever Approach 2 found.) ``a2_reference`` is Approach 2 on the noise-free
      law: how far it lands from ``a_joint`` with no noise at all.
    - ``"trunks"`` draws whole trunks with replacement (:func:`utils.bootstrap.cluster_resamples`) and takes the
      percentile interval of the estimates. When each trunk is one model size a resample also loses sizes
      (about a third of them), so its spread includes a changed design, and its intervals are too wide.

    ``margin`` is the equivalence margin of :meth:`AllocationResult.verdict`; ``n_starts`` and ``workers`` go
    to :func:`utils.chinchilla.fit_chinchilla` (``workers`` also runs the parametric refits).
    """
    noise = {"trunk_sd": trunk_sd, "noise_sd": noise_sd}
    level = check_options(n_bootstrap, level, margin, window, resampling, noise)
    return analyse_reusing(runs, {}, n_bootstrap=n_bootstrap, seed=seed, window=window, min_steps=min_steps,
                           param_count=param_count, level=level, margin=margin, n_starts=n_starts, workers=workers,
                           cost=cost, resampling=resampling, noise=noise)


def analyse_reusing(runs, parts: dict, *, n_bootstrap, seed, window, min_steps, param_count, level, margin,
                    n_starts, workers, cost, resampling, noise) -> AllocationResult:
    """:func:`analyse` after its checks; ``parts`` keeps joint fits and their resamples for reuse by
    :func:`sensitivity` (they depend on the runs kept and the parameter count, not on the IsoFLOP window)."""
    r = prepare(runs, param_count, min_steps, cost)
    if np.isfinite(r.budget).sum() == 0:
        raise ValueError("none of the runs belongs to an IsoFLOP budget (every 'budget' is None).")
    key = (param_count, min_steps)
    if key not in parts:
        parts[key] = _joint_part(r, resampling, n_bootstrap, seed, noise, n_starts, workers)
    fit, a_joint, draws, aj_boot, aj_ref, C_range = parts[key]
    iso, a2, a2_boot, a2_budgets, a2_ref = _a2_part(r, draws, window)
    if resampling == "parametric":   # each estimate minus the errors made where the truth was a_joint: basic intervals
        a2_boot, aj_boot = a2 - (a2_boot - a_joint), a_joint - (aj_boot - a_joint)
    both = np.isfinite(a2_boot) & np.isfinite(aj_boot)
    diff_boot = np.where(both, a2_boot - aj_boot, np.nan)
    (ci2, mc2), (cij, mcj), (cid, mcd) = (_interval(v, level, seed) for v in (a2_boot, aj_boot, diff_boot))
    return AllocationResult(
        a2=a2, a_joint=a_joint, diff=a2 - a_joint, a2_ci=ci2, a_joint_ci=cij, diff_ci=cid, a2_mc=mc2, a_joint_mc=mcj,
        diff_mc=mcd, a2_failed=int((~np.isfinite(a2_boot)).sum()), a_joint_failed=int((~np.isfinite(aj_boot)).sum()),
        n_paired=int(both.sum()), n_bootstrap=int(n_bootstrap), level=level, margin=float(margin), n_runs=len(r.L),
        n_left_out=r.n_left_out, n_trunks=len(set(r.trunk)), n_budgets=len(iso.C), n_valid_budgets=int(iso.valid.sum()),
        C_range=C_range, param_count=param_count, window=window, min_steps=min_steps, iso=iso, joint=fit,
        a2_samples=a2_boot, a_joint_samples=aj_boot, a2_budgets=a2_budgets, cost=r.cost, resampling=resampling,
        trunk_sd=draws.trunk_sd, noise_sd=draws.noise_sd, a2_reference=a2_ref, a_joint_reference=aj_ref,
        resamples=draws)


def describe_choice(key: str, value) -> str:
    """One analysis choice (``window``, ``min_steps``, ``max_tokens`` or ``param_count``) in words, for tables."""
    if key == "window":
        return "all points" if value is None else f"±{value} rungs"
    if key == "min_steps":
        return "every run" if value is None else f"runs of {value} steps or more"
    if key == "max_tokens":
        return f"runs of {value:,} tokens or fewer"
    return f"{value.replace('_', '-')} parameters"


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
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from . import scaling

__all__ = ["AllocationResult", "CostCurve", "HeldoutIsoFLOP", "Recovery", "Resamples", "SensitivityTable", "analyse",
           "cost_curve", "heldout_isoflop", "recovery", "sensitivity", "split_noise", "synthetic_runs", "PARAM_COUNTS",
           "RESAMPLING", "EQUIVALENCE_MARGIN"]

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
class _Runs:
    """The runs an analysis uses, as columns (one entry per run), and what was left out."""
    N: np.ndarray
    D: np.ndarray
    budget: np.ndarray      # nan for a shared-step point
    L: np.ndarray
    trunk: np.ndarray
    steps: np.ndarray
    cost: Callable
    n_left_out: int         # runs below min_steps


def _check_runs(runs) -> list:
    if isinstance(runs, (str, bytes, Mapping)) or not hasattr(runs, "__iter__"):
        raise TypeError(f"runs must be a list of the sweep's result records (dicts); got {type(runs).__name__}.")
    runs = list(runs)
    if not runs or not all(isinstance(r, Mapping) for r in runs):
        raise TypeError("runs must be a non-empty list of dicts (the records utils.sweep.run_sweep returns).")
    return runs


def _param_field(param_count: str) -> str:
    if param_count not in PARAM_COUNTS:
        raise ValueError(f"param_count must be one of {sorted(PARAM_COUNTS)}, got {param_count!r}.")
    return PARAM_COUNTS[param_count]


def _column(runs: list, key: str) -> list:
    missing = [i for i, r in enumerate(runs) if key not in r]
    if missing:
        raise ValueError(f"run {missing[0]} ({runs[missing[0]].get('run', 'unnamed')}) has no field {key!r}; "
                         "pass the sweep's result records (utils.sweep.run_sweep).")
    return [r[key] for r in runs]


def _positive(name: str, values: list, runs: list) -> np.ndarray:
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
    runs = _check_runs(runs)
    N = _positive(_param_field(param_count), _column(runs, _param_field(param_count)), runs)
    f = _positive("flops_per_token", _column(runs, "flops_per_token"), runs)
    ln_n, first = np.unique(np.log(N), return_index=True)
    if len(ln_n) < 2:
        raise ValueError("the runs hold only one model size; a cost curve (and an allocation) needs several.")
    return CostCurve(ln_N=ln_n, ln_flops=np.log(f[first]))


def _prepare(runs, param_count: str, min_steps, cost) -> _Runs:
    """The runs' columns, without the runs shorter than ``min_steps`` (counted in ``n_left_out``)."""
    runs = _check_runs(runs)
    field_N = _param_field(param_count)
    for key in (field_N,) + _FIELDS:
        _column(runs, key)
    steps = np.asarray(_column(runs, "steps"), dtype=float)
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
    N = _positive(field_N, _column(kept, field_N), kept)
    if cost is not None:
        paid = np.asarray(_column(kept, "flops_per_token"), dtype=float)
        off = np.abs(np.asarray(cost(N), dtype=float) / paid - 1)
        if not np.all(off < 0.01):
            raise ValueError(f"cost(N) differs from the runs' own flops_per_token by up to {np.nanmax(off):.0%}; the cost "
                             f"curve must take N counted as param_count={param_count!r} says (or leave cost=None to "
                             "read it from the runs).")
    return _Runs(N=N, D=_positive("D", _column(kept, "D"), kept),
                 budget=budget, L=_positive("final_val_loss", _column(kept, "final_val_loss"), kept),
                 trunk=np.asarray([str(t) for t in _column(kept, "trunk")]), steps=steps[keep],
                 cost=cost_curve(kept, param_count) if cost is None else cost, n_left_out=int((~keep).sum()))


# ---------------------------------------------------------------------------------------------
# The two estimators, on one resample (weights: how often each run is drawn)
# ---------------------------------------------------------------------------------------------

def _window(r: _Runs, w: np.ndarray, c: float, window: int | None) -> np.ndarray:
    """Indices (repeated as drawn) of budget ``c``'s drawn runs within ``window`` ladder rungs of its best one."""
    in_c = np.flatnonzero(r.budget == c)
    rungs = {n: k for k, n in enumerate(np.unique(r.N[in_c]))}      # the profile's sizes, in order of N
    drawn = in_c[w[in_c] > 0]
    if window is not None and len(drawn):
        best = rungs[r.N[drawn[np.argmin(r.L[drawn])]]]
        drawn = drawn[[abs(rungs[n] - best) <= window for n in r.N[drawn]]]
    return np.repeat(drawn, w[drawn].astype(int))


def _approach2(r: _Runs, w: np.ndarray, window: int | None) -> tuple[float, scaling.IsoFLOPMinima]:
    """``(a, minima)`` of Approach 2 on one resample; ``a`` is nan below 3 valid minima."""
    budgets = np.unique(r.budget[np.isfinite(r.budget)])
    k = np.concatenate([_window(r, w, c, window) for c in budgets])
    if len(k) == 0:       # a resample of trunks that have no IsoFLOP point
        return float("nan"), None
    iso = scaling.isoflop_minima({"C": r.budget[k], "N": r.N[k], "D": r.D[k], "loss": r.L[k]}, rtol=0.0,
                                 warn=False)
    return (float(iso.fit()[0].b) if iso.valid.sum() >= 3 else float("nan")), iso


def _joint_slope(consts: Mapping[str, float], C_lo: float, C_hi: float, cost: Callable) -> float:
    """The joint law's ``a`` between ``C_lo`` and ``C_hi`` along ``cost``; nan when the law has no optimum (an
    exponent fitted to 0, or a minimum at an end of compute_optimal's search range, N = 1 or N = C/6)."""
    try:
        n = scaling.compute_optimal(np.array([C_lo, C_hi]), consts, cost).N_opt
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
    whether those were measured from the fit's residuals (:func:`split_noise`) or given."""
    scheme: str
    weights: np.ndarray
    losses: np.ndarray
    trunk_sd: float = float("nan")
    noise_sd: float = float("nan")
    noise_source: str = ""
    law: Mapping | None = None


def _law_jacobian(law: Mapping[str, float], N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Derivatives of ``E + A/N^alpha + B/D^beta`` by ``(E, A, B, alpha, beta)`` at every run: shape (runs, 5)."""
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
    linearised at its optimum: ``jacobian`` (runs x parameters, e.g. :func:`_law_jacobian`) spans what the fit
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


def _check_sd(name: str, value) -> None:
    if value is not None and not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a standard deviation in nats (0 or more), or None to measure it from the "
                         f"fit's residuals; got {value!r}.")


def _simulate(law: Mapping[str, float], r: _Runs, trunk_sd: float, noise_sd: float, n: int, seed) -> np.ndarray:
    """``n`` simulated loss vectors (rows) on the runs of ``r``: the law, plus a normal offset per trunk (SD
    ``trunk_sd``, shared by the trunk's runs), plus independent normal noise per run (SD ``noise_sd``)."""
    labels, inverse = np.unique(r.trunk, return_inverse=True)
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, trunk_sd, (n, len(labels)))[:, inverse]
    losses = scaling.chinchilla_loss(r.N, r.D, law) + offsets + rng.normal(0.0, noise_sd, (n, len(r.L)))
    if not np.all(losses > 0):
        raise ValueError("a simulated loss came out non-positive: the measured noise is as large as the losses. "
                         "Check the runs, or pass smaller trunk_sd and noise_sd.")
    return losses


_KEYS = ("E", "A", "B", "alpha", "beta")


def _refit_rows(N: np.ndarray, D: np.ndarray, losses: np.ndarray, n_starts) -> np.ndarray:
    """The joint law refitted to each row of ``losses`` (rows E, A, B, alpha, beta; nan where a fit raised)."""
    out = np.full((len(losses), 5), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # a refit at a bound shows up as a failed slope
        for k, L in enumerate(losses):
            try:
                fit = scaling.fit_chinchilla(N, D, L, n_bootstrap=0, n_starts=n_starts)
            except ValueError:
                continue
            out[k] = [fit[key] for key in _KEYS]
    return out


def _refit_all(r: _Runs, losses: np.ndarray, n_starts, workers) -> np.ndarray:
    """:func:`_refit_rows` over all simulated sets, split across ``workers`` processes (default: one per core)."""
    n_workers = scaling._bootstrap_workers(len(losses), workers)
    chunks = np.array_split(losses, min(len(losses), 4 * n_workers)) if n_workers > 1 else [losses]
    parts = scaling._in_processes(_refit_rows, [(r.N, r.D, c, n_starts) for c in chunks], n_workers,
                                  "the parametric refits")
    return np.vstack(parts)


# ---------------------------------------------------------------------------------------------
# analyse: the whole allocation analysis
# ---------------------------------------------------------------------------------------------

def _interval(values: np.ndarray, level: float, seed) -> tuple[tuple[float, float], tuple[float, float]]:
    v = values[np.isfinite(values)]
    if len(v) < 2:
        nan = (float("nan"), float("nan"))
        return nan, nan
    return scaling.percentile_interval(v, level, seed)


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
    iso: scaling.IsoFLOPMinima = field(repr=False)
    joint: scaling.ChinchillaFit = field(repr=False)
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
        return scaling.compute_optimal(C, self.joint, self.cost).N_opt

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
        lines = [f"{self.n_runs} runs from {self.n_trunks} trunks ({kept}), {_describe('param_count', self.param_count)}, "
                 f"IsoFLOP window {win}; "
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
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if np.all(np.isfinite(ci)) else "[no interval: too few resamples succeeded]"


def _slopes(consts: np.ndarray, C_range: tuple, cost: Callable) -> np.ndarray:
    """The joint law's ``a`` for each row of constants (E, A, B, alpha, beta); nan where it has none."""
    return np.array([_joint_slope(dict(zip(_KEYS, row)), *C_range, cost) if np.all(np.isfinite(row))
                     else float("nan") for row in consts])


def _joint_part(r: _Runs, scheme: str, n_bootstrap: int, seed, noise: Mapping, n_starts, workers) -> tuple:
    """The joint fit, its ``a``, the resamples (:class:`Resamples`), ``a`` on every resample and the reference.

    ``"trunks"``: the refits on trunk draws (:func:`utils.scaling.cluster_resamples`); no reference (nan).
    ``"parametric"``: the noise split from the fit's residuals (:func:`split_noise`, or ``noise`` as given), loss
    sets simulated from the fitted law (:func:`_simulate`), each refitted; the reference is ``a`` of the refit to
    the noise-free law (a check that the fit finds its own law again). The returned fit then carries the
    parametric refits as its ``samples``, with their percentile intervals."""
    budgets = r.budget[np.isfinite(r.budget)]
    C_range = (float(budgets.min()), float(budgets.max()))
    if scheme == "trunks":
        W = scaling.cluster_resamples(r.trunk, n_bootstrap, seed)
        fit = scaling.fit_chinchilla(r.N, r.D, r.L, groups=r.trunk, resamples=W, n_starts=n_starts, workers=workers)
        if len(fit.samples) != len(W):
            raise ValueError("the joint fit's bootstrap was refused (too few distinct points); add runs or trunks.")
        draws = Resamples("trunks", W, np.broadcast_to(r.L, W.shape))
        return fit, _joint_slope(fit.to_dict(), *C_range, r.cost), draws, _slopes(fit.samples, C_range, r.cost), \
            float("nan"), C_range
    fit = scaling.fit_chinchilla(r.N, r.D, r.L, n_bootstrap=0, n_starts=n_starts)
    law = fit.to_dict()
    trunk_sd, noise_sd = split_noise(r.L - fit.predict(r.N, r.D), r.trunk, _law_jacobian(law, r.N, r.D), **noise)
    given = [k for k in ("trunk_sd", "noise_sd") if noise.get(k) is not None]
    source = ("both given" if len(given) == 2 else
              f"{given[0]} given, the other measured from the fit's residuals" if given else
              "both measured from the fit's residuals")
    losses = _simulate(law, r, trunk_sd, noise_sd, n_bootstrap, seed)
    consts = _refit_all(r, np.vstack([scaling.chinchilla_loss(r.N, r.D, law)[None, :], losses]), n_starts, workers)
    reference = _slopes(consts[:1], C_range, r.cost)[0]
    samples = consts[1:]
    ok = samples[np.all(np.isfinite(samples), axis=1)]
    if len(ok) >= 2:
        ci, mc = scaling._percentile_ci(ok, fit.level), scaling._mc_error(ok, fit.level, seed)
        fit = dataclasses.replace(fit, samples=ok, mc_se=mc, **{f"{k}_ci": tuple(map(float, ci[i]))
                                                                for i, k in enumerate(_KEYS)})
    draws = Resamples("parametric", np.ones_like(losses), losses, trunk_sd, noise_sd, source, law)
    return fit, _joint_slope(law, *C_range, r.cost), draws, _slopes(samples, C_range, r.cost), reference, C_range


def _a2_part(r: _Runs, draws: Resamples, window) -> tuple:
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
        noise_free = scaling.chinchilla_loss(r.N, r.D, draws.law)
        reference = _approach2(dataclasses.replace(r, L=noise_free), np.ones(len(r.L)), window)[0]
    return iso, a2, np.array([p[0] for p in per]), \
        np.array([0 if p[1] is None else int(p[1].valid.sum()) for p in per]), reference


def _check_options(n_bootstrap, level, margin, window, resampling="parametric", noise=None) -> float:
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
        _check_sd(name, value)
        if resampling == "trunks" and value is not None:
            raise ValueError(f"{name} is used by resampling='parametric' only; the trunk bootstrap measures no noise.")
    return scaling._check_level(level)


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
      residuals (:func:`split_noise`); pass one you measured otherwise (e.g. ``noise_sd`` across seeds). In the
      simulated world the true exponent is known: it is ``a_joint``, the fitted law's. So each estimator's
      result on a simulated set, minus ``a_joint``, is a draw of that estimator's error on this design, its
      systematic part included (a parabola through a few sizes can read the minimum a little off even without
      noise). The interval is the estimator's own estimate minus the percentiles of its errors (the "basic"
      bootstrap interval): Approach 2's interval stays around Approach 2's estimate, shifted only by its
      error measured on the fitted law. (The percentile interval of the simulated estimates would instead sit
      around the joint law's ``a`` whatever Approach 2 found.) ``a2_reference`` is Approach 2 on the noise-free
      law: how far it lands from ``a_joint`` with no noise at all.
    - ``"trunks"`` draws whole trunks with replacement (:func:`utils.scaling.cluster_resamples`) and takes the
      percentile interval of the estimates. When each trunk is one model size a resample also loses sizes
      (about a third of them), so its spread includes a changed design, and its intervals are too wide.

    ``margin`` is the equivalence margin of :meth:`AllocationResult.verdict`; ``n_starts`` and ``workers`` go
    to :func:`utils.scaling.fit_chinchilla` (``workers`` also runs the parametric refits).
    """
    noise = {"trunk_sd": trunk_sd, "noise_sd": noise_sd}
    level = _check_options(n_bootstrap, level, margin, window, resampling, noise)
    return _analyse(runs, {}, n_bootstrap=n_bootstrap, seed=seed, window=window, min_steps=min_steps,
                    param_count=param_count, level=level, margin=margin, n_starts=n_starts, workers=workers, cost=cost,
                    resampling=resampling, noise=noise)


def _analyse(runs, parts: dict, *, n_bootstrap, seed, window, min_steps, param_count, level, margin, n_starts,
             workers, cost, resampling, noise) -> AllocationResult:
    """:func:`analyse` after its checks; ``parts`` keeps joint fits and their resamples for reuse by
    :func:`sensitivity` (they depend on the runs kept and the parameter count, not on the IsoFLOP window)."""
    r = _prepare(runs, param_count, min_steps, cost)
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


# ---------------------------------------------------------------------------------------------
# sensitivity: the same analysis under other reasonable choices
# ---------------------------------------------------------------------------------------------

_ROW_KEYS = ("varied", "setting", "n_runs", "a2", "a2_lo", "a2_hi", "a2_failed", "a_joint", "a_joint_lo",
             "a_joint_hi", "a_joint_failed", "diff", "diff_lo", "diff_hi", "note")


@dataclass(frozen=True)
class SensitivityTable:
    """Rows of :func:`sensitivity` (Chapter 6): one dict per analysis, keys ``varied`` (which choice differs from
    the baseline), ``setting``, ``n_runs``, ``a2``, ``a2_lo``, ``a2_hi``, ``a2_failed``, the same for ``a_joint``
    and ``diff`` (``a2 - a_joint``, paired), ``note`` (why a row has no numbers, if it has none) and ``mc`` (the
    largest Monte-Carlo error of the row's interval ends; absent from a row without numbers).
    ``str()`` gives a plain-text table, :meth:`to_markdown` a Markdown one."""
    rows: list
    level: float
    n_bootstrap: int
    resampling: str = "parametric"

    def _cells(self, row: Mapping) -> list[str]:
        def est(k):
            if not np.isfinite(row[k]):
                return "n/a"
            fmt = "{:+.2f}" if k == "diff" else "{:.2f}"
            lo, hi = row[k + "_lo"], row[k + "_hi"]
            ci = f"[{fmt.format(lo)}, {fmt.format(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else "[no interval]"
            return f"{fmt.format(row[k])} {ci}"
        return [row["varied"], row["setting"], str(row["n_runs"]), est("a2"), str(row["a2_failed"]), est("a_joint"),
                str(row["a_joint_failed"]), est("diff"), row["note"]]

    def _header(self) -> list[str]:
        pct = round(100 * self.level)
        return ["varied", "setting", "runs", f"a, Approach 2 [{pct} %]", "failed", f"a, joint fit [{pct} %]",
                "failed", "a2 - a_joint (paired)", "note"]

    def to_markdown(self) -> str:
        """The table in Markdown (for ``IPython.display.Markdown``)."""
        lines = ["| " + " | ".join(self._header()) + " |", "|" + "---|" * len(self._header())]
        lines += ["| " + " | ".join(self._cells(r)) + " |" for r in self.rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        table = [self._header()] + [self._cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        lines.insert(1, "-" * len(lines[0]))
        how = ("losses simulated on the same runs from the joint law and the measured noise; basic intervals"
               if self.resampling == "parametric" else "whole trunks drawn with replacement; percentile intervals")
        lines.append(f"{self.n_bootstrap} paired {self.resampling} resamples per row ({how}). failed = resamples in "
                     "which the estimate failed; they are left out of its interval, and the paired difference uses "
                     "the resamples where both succeeded.")
        mc = [r["mc"] for r in self.rows if np.isfinite(r.get("mc", np.nan))]
        if mc:
            lines.append(f"Monte-Carlo error of the interval ends (from {self.n_bootstrap} resamples): up to "
                         f"±{max(mc):.2f}, so two ends closer than about three times that could be the same end drawn twice.")
        return "\n".join(lines)


def _row(varied: str, setting: str, res: AllocationResult | None, note: str = "") -> dict:
    if res is None:
        return dict(zip(_ROW_KEYS, (varied, setting, 0) + (float("nan"),) * 3 + (0,) + (float("nan"),) * 3 + (0,)
                        + (float("nan"),) * 3 + (note,)))
    return {"varied": varied, "setting": setting, "n_runs": res.n_runs, "a2": res.a2, "a2_lo": res.a2_ci[0],
            "a2_hi": res.a2_ci[1], "a2_failed": res.a2_failed, "a_joint": res.a_joint, "a_joint_lo": res.a_joint_ci[0],
            "a_joint_hi": res.a_joint_ci[1], "a_joint_failed": res.a_joint_failed, "diff": res.diff,
            "diff_lo": res.diff_ci[0], "diff_hi": res.diff_ci[1], "note": note,
            "mc": float(np.nanmax(np.concatenate([res.a2_mc, res.a_joint_mc, res.diff_mc])))}


def _describe(key: str, value) -> str:
    if key == "window":
        return "all points" if value is None else f"±{value} rungs"
    if key == "min_steps":
        return "every run" if value is None else f"runs of {value} steps or more"
    if key == "max_tokens":
        return f"runs of {value:,} tokens or fewer"
    return f"{value.replace('_', '-')} parameters"


def sensitivity(runs, *, windows: Sequence = (2, 3, None), min_steps: Sequence | None = None,
                param_counts: Sequence[str] = ("total", "non_embedding"), baseline: Mapping | None = None,
                n_bootstrap: int = 100, seed: int | None = 0, level: float = 0.95, n_starts: int | None = 8,
                workers: int | None = None, resampling: str = "parametric", trunk_sd: float | None = None,
                noise_sd: float | None = None, max_tokens: Sequence = ()) -> SensitivityTable:
    """``a`` from both estimators under other reasonable choices, one choice changed at a time (Chapter 6);
    returns a :class:`SensitivityTable` (print it, or ``.to_markdown()``).

    Starting from ``baseline`` (a dict of :func:`analyse`'s ``window``, ``min_steps`` and ``param_count``;
    default ``window=2``, every run, total parameters) it varies the IsoFLOP window over ``windows``, the
    shortest run kept over ``min_steps`` (default: every run, and runs of at least 2 and 4 times the shortest
    run's steps) and the parameter count over ``param_counts``; each value in ``max_tokens`` adds a row without
    the runs of more tokens than it (pass the training split's length to keep only runs that read each token
    at most once). Every row is a full :func:`analyse` with
    ``n_bootstrap`` paired resamples made as ``resampling`` says, with ``trunk_sd`` and ``noise_sd`` as in
    :func:`analyse` (an SD left ``None`` is measured again for each set of runs; the joint fit and its resamples
    are remade only when the runs or the parameter count change), and reports its failed resamples. A choice
    that leaves too little data gives a row with a ``note`` saying why, instead of an error."""
    runs = _check_runs(runs)
    base = {"window": 2, "min_steps": None, "param_count": "total", **(baseline or {})}
    if set(base) != {"window", "min_steps", "param_count"}:
        raise ValueError(f"baseline takes the keys window, min_steps and param_count; got {sorted(base)}.")
    if min_steps is None:
        shortest = int(min(_column(runs, "steps")))
        min_steps = (None, 2 * shortest, 4 * shortest)
    noise = {"trunk_sd": trunk_sd, "noise_sd": noise_sd}
    configs = [("baseline", base)]
    for key, values in (("window", windows), ("min_steps", min_steps), ("param_count", param_counts)):
        configs += [(key, {**base, key: v}) for v in values if v != base[key]]
    for _, cfg in configs:   # a bad choice is the caller's error, not a row
        _check_options(n_bootstrap, level, EQUIVALENCE_MARGIN, cfg["window"], resampling, noise)
        _param_field(cfg["param_count"])
        if cfg["min_steps"] is not None and not (isinstance(cfg["min_steps"], (int, np.integer)) and cfg["min_steps"] >= 1):
            raise ValueError(f"min_steps values must be positive whole numbers or None, got {cfg['min_steps']!r}.")
    for cap in max_tokens:
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
            raise ValueError(f"max_tokens values must be positive whole numbers of tokens, got {cap!r}; pass, for "
                             "example, the length of the training split to keep the runs that read it at most once.")
    def analysed(name: str, label: str, kept: list, parts: dict, cfg: Mapping) -> dict:
        """One row: the whole analysis of ``kept`` under ``cfg``, or a note that says why it failed."""
        try:
            res = _analyse(kept, parts, n_bootstrap=n_bootstrap, seed=seed, level=level, margin=EQUIVALENCE_MARGIN,
                           n_starts=n_starts, workers=workers, cost=None, resampling=resampling, noise=noise, **cfg)
            return _row(name, label, res)
        except ValueError as err:
            return _row(name, label, None, note=str(err))

    parts: dict = {}
    rows = []
    for varied, cfg in configs:
        label = "; ".join(_describe(k, cfg[k]) for k in ("window", "min_steps", "param_count")) \
            if varied == "baseline" else _describe(varied, cfg[varied])
        name = {"window": "IsoFLOP window", "min_steps": "shortest run kept", "param_count": "parameter count"
                }.get(varied, varied)
        rows.append(analysed(name, label, runs, parts, cfg))
    tokens = np.asarray(_column(runs, "D"), dtype=float) if len(max_tokens) else None
    for cap in max_tokens:   # other runs, so their own joint fit and resamples (a fresh ``parts``)
        kept = [r for r, d in zip(runs, tokens) if d <= cap]
        label = _describe("max_tokens", int(cap))
        rows.append(analysed("most tokens kept", label, kept, {}, base) if kept else
                    _row("most tokens kept", label, None, note=f"no run has {int(cap):,} tokens or fewer."))
    return SensitivityTable(rows=rows, level=level, n_bootstrap=n_bootstrap, resampling=resampling)


# ---------------------------------------------------------------------------------------------
# heldout_isoflop: score a predicted optimum against a held-out IsoFLOP profile
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeldoutIsoFLOP:
    """A held-out IsoFLOP profile scored against a prediction (:func:`heldout_isoflop`, Chapter 6).

    ``N_opt`` is the minimum of the parabola in ``ln N`` through the measured ``losses``, ``N_opt_ci`` its
    ``level`` interval (``method`` says how it was made; an end may be 0 or inf when some simulated profiles had
    no minimum), ``ratio = N_opt / predicted_N_opt`` with ``ratio_ci``. ``residuals`` are measured minus
    predicted losses per size (``None`` without ``predicted_losses``), ``level_error`` their mean with standard
    error ``level_error_se`` (independent noise of SD ``noise_sd`` per size assumed). ``resid_sd`` is the SD of
    the losses about the parabola (compare it with ``noise_sd``). ``n_no_minimum`` and ``n_outside`` count
    simulated profiles whose parabola had no minimum, or a minimum outside the sampled sizes."""
    N: np.ndarray
    losses: np.ndarray
    coefs: np.ndarray
    N_opt: float
    N_opt_ci: tuple
    loss_opt: float
    predicted_N_opt: float
    ratio: float
    ratio_ci: tuple
    residuals: np.ndarray | None
    level_error: float
    level_error_se: float
    resid_sd: float
    noise_sd: float
    n_bootstrap: int
    n_no_minimum: int
    n_outside: int
    level: float
    method: str

    def _interval_text(self, ci, scale: float, fmt: str) -> str:
        """``ci`` as ``[lo, hi]``; an end beyond 100 times the largest size sampled, or below a hundredth of the
        smallest (``scale`` converts sizes to the quantity shown), is written as such: a parabola that is almost
        flat, or has no minimum, puts its vertex anywhere."""
        lo_cap, hi_cap = float(np.min(self.N)) * scale / 100, 100 * float(np.max(self.N)) * scale
        ends = [f"{v:{fmt}}" if np.isfinite(v) and lo_cap <= v <= hi_cap else
                (f"below {lo_cap:{fmt}} (1/100 of the smallest size)" if v < lo_cap else
                 f"beyond {hi_cap:{fmt}} (100x the largest size)") for v in ci]
        return f"[{ends[0]}, {ends[1]}]"

    @property
    def ratio_ci_text(self) -> str:
        """The ratio's interval as text, ends past 100 times the largest size sampled written as such."""
        return self._interval_text(self.ratio_ci, 1 / self.predicted_N_opt, ".2f")

    def __str__(self) -> str:
        pct = round(100 * self.level)
        lines = [f"measured optimum N = {self.N_opt:,.0f}, {pct} % interval {self._interval_text(self.N_opt_ci, 1.0, ',.0f')}"
                 f"; predicted {self.predicted_N_opt:,.0f}",
                 f"measured / predicted = {self.ratio:.2f}, {pct} % interval {self.ratio_ci_text}  ({self.method})"]
        if self.residuals is not None:
            lines.append(f"loss level: measured minus predicted {self.level_error:+.4f} ± {self.level_error_se:.4f} "
                         "nats on average; per size: " + ", ".join(
                             f"N = {n:,.0f}: {r:+.4f}" for n, r in zip(self.N, self.residuals)))
        if self.n_no_minimum or self.n_outside:
            lines.append(f"of {self.n_bootstrap} simulated profiles, {self.n_no_minimum} had no minimum and "
                         f"{self.n_outside} a minimum outside the sampled sizes (kept: they widen the interval)")
        return "\n".join(lines)


def _parabolas(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Least-squares parabolas in ``x`` through each row of ``Y``: coefficients (rows, 3), highest power first."""
    X = np.column_stack([x * x, x, np.ones_like(x)])
    return np.linalg.lstsq(X, Y.T, rcond=None)[0].T


def _vertices(x: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``ln N`` of each parabola's minimum; +inf or -inf (the side with the lower loss) when it has none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        v = -P[:, 1] / (2 * P[:, 0])
    none = P[:, 0] <= 0
    right_lower = np.polyval(P.T, x.max()) < np.polyval(P.T, x.min())
    return np.where(none, np.where(right_lower, np.inf, -np.inf), v)


def heldout_isoflop(N, losses, *, predicted_N_opt: float, predicted_losses=None, noise_sd: float,
                    n_bootstrap: int = 2000, seed: int | None = 0, level: float = 0.95) -> HeldoutIsoFLOP:
    """Fit a parabola in ``ln N`` to a held-out IsoFLOP profile (one budget, several sizes) and score a
    predicted optimum against its minimum (Chapter 6); returns a :class:`HeldoutIsoFLOP`.

    The interval of the measured ``N_opt`` is a **parametric bootstrap**: ``n_bootstrap`` profiles simulated as
    the fitted parabola plus independent normal noise of SD ``noise_sd`` at every size (the measured noise of one
    run's loss, e.g. its seed-to-seed SD), each refitted. It uses the measured noise rather than the parabola's
    residuals because five sizes leave a parabola two degrees of freedom, too few to estimate a noise level.
    A simulated profile without a minimum counts as an optimum beyond the sampled size with the lower loss.
    The ratio's interval is the same interval divided by ``predicted_N_opt`` (a fixed number). Refuses fewer than
    3 sizes, a parabola that opens downwards (a maximum, not a minimum) and a minimum outside the sampled sizes
    (an extrapolation); five sizes or more are what Chapter 6 trains."""
    level = scaling._check_level(level)
    N = scaling._positive_array("N", N)
    losses = scaling._positive_array("losses", losses)
    n = scaling._check_same_length(N=N, losses=losses)
    if len(np.unique(N)) < 3:
        raise ValueError(f"a parabola needs at least 3 distinct sizes; got {len(np.unique(N))}. Train more sizes "
                         "at the held-out budget (Chapter 6 trains five).")
    if not (np.isfinite(predicted_N_opt) and predicted_N_opt > 0):
        raise ValueError(f"predicted_N_opt must be a positive number of parameters, got {predicted_N_opt!r}.")
    if not (np.isfinite(noise_sd) and noise_sd > 0):
        raise ValueError(f"noise_sd must be a positive SD in nats (measure it, e.g. across seeds), got {noise_sd!r}.")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 100:
        raise ValueError(f"n_bootstrap must be an integer of at least 100 (for a percentile interval), "
                         f"got {n_bootstrap!r}.")
    x = np.log(N)
    p = _parabolas(x, losses[None, :])
    if p[0, 0] <= 0:
        raise ValueError("the parabola through the losses opens downwards: it has a maximum, not a minimum, so the "
                         "profile shows no optimum. Check the runs, or train sizes further from the middle.")
    v = float(_vertices(x, p)[0])
    if not (x.min() <= v <= x.max()):
        raise ValueError(f"the parabola's minimum, N = {math.exp(v):,.0f}, lies outside the sampled sizes "
                         f"[{N.min():,.0f}, {N.max():,.0f}]: it would be an extrapolation, not a measurement. "
                         "Train sizes beyond it.")
    fitted = np.polyval(p[0], x)
    rng = np.random.default_rng(seed)
    sims = _vertices(x, _parabolas(x, fitted + rng.normal(0.0, noise_sd, (n_bootstrap, n))))
    alpha = 1 - level
    lo, hi = np.quantile(sims, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")   # order statistics: ±inf allowed
    ci = (float(np.exp(lo)), float(np.exp(hi)))
    if predicted_losses is not None:
        pl = scaling._positive_array("predicted_losses", predicted_losses)
        scaling._check_same_length(N=N, predicted_losses=pl)
        residuals = losses - pl
        level_error, level_se = float(residuals.mean()), float(noise_sd / math.sqrt(n))
    else:
        residuals, level_error, level_se = None, float("nan"), float("nan")
    finite = np.isfinite(sims)
    return HeldoutIsoFLOP(
        N=N, losses=losses, coefs=p[0], N_opt=math.exp(v), N_opt_ci=ci, loss_opt=float(np.polyval(p[0], v)),
        predicted_N_opt=float(predicted_N_opt), ratio=math.exp(v) / predicted_N_opt,
        ratio_ci=(ci[0] / predicted_N_opt, ci[1] / predicted_N_opt), residuals=residuals, level_error=level_error,
        level_error_se=level_se, resid_sd=float(np.sqrt(np.mean((losses - fitted) ** 2) * n / max(n - 3, 1))),
        noise_sd=float(noise_sd), n_bootstrap=int(n_bootstrap), n_no_minimum=int((~finite).sum()),
        n_outside=int((finite & ((sims < x.min()) | (sims > x.max()))).sum()), level=level,
        method=f"parametric bootstrap, {n_bootstrap} profiles with noise SD {noise_sd:.4f} nats")


# ---------------------------------------------------------------------------------------------
# synthetic runs and recovery: does the analysis find a law it is given?
# ---------------------------------------------------------------------------------------------

def synthetic_runs(runs, law: Mapping[str, float], *, noise_sd: float, trunk_sd: float = 0.0,
                   seed: int | None = 0, param_count: str = "total") -> list[dict]:
    """Copies of the sweep's records whose losses come from a known law (Chapter 6); returns a list of dicts.

    ``final_val_loss`` becomes ``E + A/N^alpha + B/D^beta`` (``law``, a dict with those keys; ``N`` counted as
    ``param_count`` says) at each run's own ``N`` and ``D``, plus a shared offset per trunk (normal, SD
    ``trunk_sd``: what one trunk's seed and batch order give all its branches) and independent noise per run
    (normal, SD ``noise_sd``). ``final_val_bpc`` follows; every other field is kept, and ``synthetic`` is set,
    so the copies go through exactly :func:`analyse`."""
    runs = _check_runs(runs)
    for name, sd in (("noise_sd", noise_sd), ("trunk_sd", trunk_sd)):
        if not (np.isfinite(sd) and sd >= 0):
            raise ValueError(f"{name} must be a standard deviation in nats (0 or more), got {sd!r}.")
    N = _positive(_param_field(param_count), _column(runs, _param_field(param_count)), runs)
    D = _positive("D", _column(runs, "D"), runs)
    trunk = [str(t) for t in _column(runs, "trunk")]
    clean = scaling.chinchilla_loss(N, D, law)
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
    """One synthetic sweep through :func:`analyse` (a function of its own, so that worker processes can run it)."""
    fake = synthetic_runs(runs, law, noise_sd=noise_sd, trunk_sd=trunk_sd, seed=data_seed,
                          param_count=options.get("param_count", "total"))   # options may pass the SDs on (known_noise)
    return analyse(fake, n_bootstrap=n_bootstrap, seed=boot_seed, **options)


def recovery(runs, law: Mapping[str, float], *, noise_sd: float, trunk_sd: float = 0.0, n_draws: int = 20,
             n_bootstrap: int = 100, seed: int | None = 0, workers: int | None = None, known_noise: bool = False,
             **options) -> Recovery:
    """Run :func:`analyse` on ``n_draws`` synthetic copies of ``runs`` (:func:`synthetic_runs` with ``law``,
    ``noise_sd`` and ``trunk_sd``) and report how well each estimator recovers the law's ``a`` (Chapter 6);
    returns a :class:`Recovery`. ``options`` go to :func:`analyse` (``window``, ``min_steps``, ``param_count``,
    ``level``, ``n_starts``, ``resampling``, ...), so the analysis is exactly the one the real runs get; with
    ``known_noise`` a parametric analysis is given the true ``trunk_sd`` and ``noise_sd`` instead of measuring
    them (as a chapter that measured its noise separately would pass it). The draws run in
    ``workers`` processes (default: one per core), each analysis in one; the result does not depend on their
    number."""
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 2:
        raise ValueError(f"n_draws must be an integer of at least 2, got {n_draws!r}.")
    if "workers" in options:
        raise TypeError("pass workers to recovery itself: each draw's analysis runs in one process.")
    if known_noise:
        options = {**options, "trunk_sd": float(trunk_sd), "noise_sd": float(noise_sd)}
    param_count = options.get("param_count", "total")
    clean = synthetic_runs(runs, law, noise_sd=0.0, param_count=param_count)    # the runs need not hold losses
    r = _prepare(clean, param_count, options.get("min_steps"), options.get("cost"))
    budgets = r.budget[np.isfinite(r.budget)]
    true_a = _joint_slope(law, float(budgets.min()), float(budgets.max()), r.cost)
    seeds = np.random.SeedSequence(seed).generate_state(2 * n_draws)
    jobs = [(runs, dict(law), noise_sd, trunk_sd, int(seeds[2 * k]), int(seeds[2 * k + 1]), n_bootstrap,
             {**options, "workers": 1}) for k in range(n_draws)]
    results = scaling._in_processes(_recovery_draw, jobs, min(n_draws, scaling._bootstrap_workers(64, workers)),
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

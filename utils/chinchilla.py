"""The joint law :math:`L(N, D) = E + A/N^\\alpha + B/D^\\beta` (Chapter 7): its loss, its fit by Hoffmann
et al. (2022), Approach 3, and the compute-optimal allocation it implies under a compute budget.

:func:`fit_chinchilla` uses the estimator and bootstrap of :mod:`utils.fitting` with five parameters;
:func:`compute_optimal` turns a fit (or published constants from :mod:`utils.published`) into ``N_opt``,
``D_opt`` and the loss at a budget ``C``, and :func:`optimal_size_exponent` into the exponent of
``N_opt ∝ C^a`` with its bootstrap interval (Chapter 6). Kaplan et al.'s (2020) different form is
:func:`kaplan_loss`. Conventions: ``N`` parameters, ``D`` training tokens, ``C`` training FLOPs
(``C = 6 N D`` unless a ``flops_per_token`` is given), losses in nats per token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
from scipy import optimize

from .bootstrap import check_groups, check_resamples, mc_error, percentile_ci
from .fitting import (EXP_BOUNDS, LOG_BOUNDS, SumOfPowers, bootstrap_refits, check_bootstrap_args, fmt_ci,
                      grid_starts, lbfgs, warn_at_bounds, warn_no_floor)
from .published import HOFFMANN_2022, HOFFMANN_GRID, KAPLAN_2020
from .validate import check_level, enough_points, positive_array, same_length

__all__ = ["chinchilla_loss", "kaplan_loss", "ChinchillaFit", "fit_chinchilla", "ComputeOptimal", "compute_optimal",
           "optimal_size_exponent"]


def chinchilla_loss(N, D, constants: Mapping[str, float] = HOFFMANN_2022) -> np.ndarray:
    """``E + A/N**alpha + B/D**beta`` with ``constants`` (a dict like :data:`~utils.published.HOFFMANN_2022` or a
    :class:`ChinchillaFit`); N parameters, D tokens, result in nats per token (Chapter 7)."""
    c = _constants(constants)
    N = np.asarray(N, dtype=float)
    D = np.asarray(D, dtype=float)
    return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]


def kaplan_loss(N=None, D=None, constants: Mapping[str, Any] = KAPLAN_2020) -> np.ndarray:
    """Kaplan et al. (2020) loss in nats per token (Chapter 7).

    With only ``N``: ``(N_c/N)**alpha_N`` (eq. 1.1, model size with enough data). With only ``D``:
    ``(D_c/D)**alpha_D`` (eq. 1.2). With both: the joint law
    ``[(N_c/N)**(alpha_N/alpha_D) + D_c/D]**alpha_D`` with its own fit (their Table 2,
    ``constants['joint']``).
    ``N`` counts non-embedding parameters.
    """
    if N is None and D is None:
        raise ValueError("kaplan_loss needs N (non-embedding parameters), D (tokens), or both.")
    if N is not None and D is not None:
        j = constants["joint"]
        N = np.asarray(N, dtype=float)
        D = np.asarray(D, dtype=float)
        return ((j["N_c"] / N) ** (j["alpha_N"] / j["alpha_D"]) + j["D_c"] / D) ** j["alpha_D"]
    if N is not None:
        return (constants["N_c"] / np.asarray(N, dtype=float)) ** constants["alpha_N"]
    return (constants["D_c"] / np.asarray(D, dtype=float)) ** constants["alpha_D"]


@dataclass(frozen=True)
class ChinchillaFit:
    """A fitted ``L(N, D) = E + A/N**alpha + B/D**beta`` (Chapter 7).

    ``*_ci`` are bootstrap percentile intervals at ``level`` (``(nan, nan)`` without bootstrap);
    ``samples`` holds the bootstrap refits as rows ``(E, A, B, alpha, beta)`` and ``mc_se`` the Monte-Carlo
    standard errors of the intervals' ends (rows in that order; columns lo, hi). The compute-optimal
    exponents ``N_opt ∝ C**a_opt`` and ``D_opt ∝ C**b_opt`` are ``beta/(alpha+beta)`` and
    ``alpha/(alpha+beta)``. Usable wherever a constants dict is (``fit["E"]``, :func:`compute_optimal`).
    """
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    E_ci: tuple[float, float]
    A_ci: tuple[float, float]
    B_ci: tuple[float, float]
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    loss: float
    n: int
    delta: float
    level: float
    samples: np.ndarray = field(repr=False)
    mc_se: np.ndarray = field(repr=False, default=None)

    def predict(self, N, D) -> np.ndarray:
        """``E + A/N**alpha + B/D**beta`` (nats per token) at ``N`` parameters and ``D`` tokens."""
        return chinchilla_loss(N, D, self.to_dict())

    def band(self, N, D, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentile band ``(lo, hi)`` of the predicted loss at ``(N, D)``."""
        level = self.level if level is None else check_level(level)
        if len(self.samples) == 0:
            raise ValueError("this fit has no bootstrap samples; refit with n_bootstrap > 0 to get a band.")
        N, D = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(D, dtype=float))
        S = self.samples
        n_, d_ = N.reshape(1, -1), D.reshape(1, -1)
        curves = S[:, :1] + S[:, 1:2] / n_ ** S[:, 3:4] + S[:, 2:3] / d_ ** S[:, 4:5]
        lo, hi = np.percentile(curves, [50 * (1 - level), 50 * (1 + level)], axis=0)
        return lo.reshape(N.shape), hi.reshape(N.shape)

    @property
    def a_opt(self) -> float:
        """Exponent of ``N_opt ∝ C**a_opt``: ``beta / (alpha + beta)``."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b_opt(self) -> float:
        """Exponent of ``D_opt ∝ C**b_opt``: ``alpha / (alpha + beta)``."""
        return self.alpha / (self.alpha + self.beta)

    def to_dict(self) -> dict[str, float]:
        """The five constants as a dict ``{E, A, B, alpha, beta}``."""
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}

    def __getitem__(self, key: str) -> float:
        return self.to_dict()[key]

    def __str__(self) -> str:
        return (f"L = {self.E:.4g} + {self.A:.4g}/N^{self.alpha:.4f} + {self.B:.4g}/D^{self.beta:.4f}   "
                f"(E {fmt_ci(self.E_ci)}, alpha {fmt_ci(self.alpha_ci)}, beta {fmt_ci(self.beta_ci)}, "
                f"n = {self.n})")


def fit_chinchilla(N, D, L, *, delta: float = 1e-3, n_bootstrap: int = 1000, level: float = 0.95,
                   seed: int | None = 0, n_starts: int | None = 8,
                   grid: Mapping[str, Iterable[float]] | None = None, groups=None,
                   workers: int | None = None, resamples=None) -> ChinchillaFit:
    """Fit ``L(N, D) = E + A/N**alpha + B/D**beta`` by Hoffmann et al. (2022), Approach 3 (Chapter 7).

    Parameters are fitted in log space (``a = log A``, ``b = log B``, ``e = log E``); the prediction is
    ``logsumexp(a - alpha log N, b - beta log D, e)`` and the objective the Huber loss (``delta``,
    1e-3 in the paper) of its difference from ``log L``. Minimised with L-BFGS-B and an analytic
    gradient from the grid :data:`~utils.published.HOFFMANN_GRID` (4,500 points; pass ``grid`` as a dict with keys
    ``a, b, e, alpha, beta`` to change it): the whole grid is scored at once and L-BFGS starts from the
    ``n_starts`` best points (``None`` = every point, slow); the best end point wins. Intervals:
    percentile bootstrap over runs, ``n_bootstrap`` refits seeded by ``seed``, each by the same estimator
    as the point fit (the grid scored on the resample, L-BFGS from its best ``n_starts``). ``groups`` (one
    label per run) resamples whole groups, e.g. model sizes whose points are cool-down branches of one
    training run (Chapter 6). The bootstrap is refused, with a warning and no interval, when the runs
    have fewer than 10 distinct (N, D) points or fewer than 5 groups. The refits run in ``workers``
    processes (default: one per core, for 64 refits or more); the result does not depend on their number.
    ``resamples`` (an array of draw counts, one row per resample, e.g. from
    :func:`~utils.bootstrap.cluster_resamples`) replaces the fit's own draws (and ``n_bootstrap``): another
    estimator given the same rows is then bootstrapped *paired* with this one (Chapter 6). With ``groups`` too, the refusal rule counts those groups.

    ``N`` parameters, ``D`` tokens, ``L`` losses (nats per token). Needs at least 6 points.
    Returns a :class:`ChinchillaFit`.
    """
    level = check_level(level)
    check_bootstrap_args(n_bootstrap, delta)
    N = positive_array("N", N)
    D = positive_array("D", D)
    L = positive_array("L", L)
    n = same_length(N=N, D=D, L=L)
    enough_points(n, 5, "L(N, D) = E + A/N^alpha + B/D^beta")
    if np.ptp(N) == 0 or np.ptp(D) == 0:
        raise ValueError("N and D must each take several values (a grid of model sizes and token counts); "
                         f"got N in [{N.min():.3g}, {N.max():.3g}], D in [{D.min():.3g}, {D.max():.3g}].")
    g = dict(HOFFMANN_GRID) if grid is None else {k: np.atleast_1d(np.asarray(v, dtype=float))
                                                  for k, v in grid.items()}
    missing = {"a", "b", "e", "alpha", "beta"} - set(g)
    if missing:
        raise ValueError(f"grid needs keys a, b, e, alpha, beta; missing {sorted(missing)}.")
    # internal theta order: [e, a, b, alpha, beta]
    mesh = np.meshgrid(g["e"], g["a"], g["b"], g["alpha"], g["beta"], indexing="ij")
    G = np.column_stack([m.ravel() for m in mesh])
    logX, logy = np.log(np.vstack([N, D])), np.log(L)
    bounds = [LOG_BOUNDS] * 3 + [EXP_BOUNDS] * 2

    def factory(weights=None):
        return SumOfPowers(logX, logy, delta, weights)

    model = factory()
    best, fbest, results = lbfgs(model, grid_starts(model, G, n_starts), bounds)
    warn_at_bounds(best, bounds, ["log E", "log A", "log B", "alpha", "beta"])
    warn_no_floor(float(np.exp(best[0])), float(L.min()))
    groups = check_groups(groups, n)
    weights = None if resamples is None else check_resamples(resamples, n)
    boot = bootstrap_refits(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups,
                            np.column_stack([N, D]), 5, "L(N, D) = E + A/N^alpha + B/D^beta", workers, weights)
    if len(boot):
        samples = np.column_stack([np.exp(boot[:, 0]), np.exp(boot[:, 1]), np.exp(boot[:, 2]),
                                   boot[:, 3], boot[:, 4]])
        ci, mc = percentile_ci(samples, level), mc_error(samples, level, seed)
    else:
        samples, ci, mc = np.empty((0, 5)), np.full((5, 2), np.nan), np.full((5, 2), np.nan)
    return ChinchillaFit(
        E=float(np.exp(best[0])), A=float(np.exp(best[1])), B=float(np.exp(best[2])),
        alpha=float(best[3]), beta=float(best[4]),
        E_ci=tuple(map(float, ci[0])), A_ci=tuple(map(float, ci[1])), B_ci=tuple(map(float, ci[2])),
        alpha_ci=tuple(map(float, ci[3])), beta_ci=tuple(map(float, ci[4])),
        loss=fbest, n=n, delta=float(delta), level=level, samples=samples, mc_se=mc,
    )


# ---------------------------------------------------------------------------------------------
# Compute-optimal allocation under C = 6 N D
# ---------------------------------------------------------------------------------------------

class ComputeOptimal(NamedTuple):
    """Compute-optimal allocation for budget(s) ``C`` (FLOPs).

    Unpack as ``N_opt, D_opt, tokens_per_param, loss = compute_optimal(C, fit)`` or use the names.
    """
    N_opt: np.ndarray | float
    D_opt: np.ndarray | float
    tokens_per_param: np.ndarray | float
    loss: np.ndarray | float


def _constants(fit) -> dict[str, float]:
    if isinstance(fit, ChinchillaFit):
        return fit.to_dict()
    if not isinstance(fit, Mapping):
        raise TypeError(f"expected a ChinchillaFit or a dict with keys E, A, B, alpha, beta; got "
                        f"{type(fit).__name__}.")
    missing = [k for k in ("E", "A", "B", "alpha", "beta") if k not in fit]
    if missing:
        raise ValueError(f"the constants need keys E, A, B, alpha, beta (the form E + A/N^alpha + B/D^beta); "
                         f"missing {missing}. KAPLAN_2020 uses a different form: see kaplan_loss.")
    c = {k: float(fit[k]) for k in ("E", "A", "B", "alpha", "beta")}
    if not all(np.isfinite(v) and v > 0 for k, v in c.items() if k != "E") or not np.isfinite(c["E"]):
        raise ValueError(f"A, B, alpha and beta must be positive and finite; got {c}.")
    return c


def compute_optimal(C, fit, flops_per_token=None) -> ComputeOptimal:
    """``N_opt`` and ``D_opt`` minimising ``L(N, D) = E + A/N^alpha + B/D^beta`` at training compute ``C``
    (Chapter 7; Hoffmann et al. 2022, eq. 4).

    By default compute is ``C = 6 N D``, and the closed form holds:
    ``G = (alpha A / (beta B))**(1/(alpha+beta))``, ``N_opt = G (C/6)**(beta/(alpha+beta))``,
    ``D_opt = (C/6)**(alpha/(alpha+beta)) / G``. With ``flops_per_token`` (a function of ``N``, e.g. a
    sweep grid's :meth:`~utils.sweep.SweepGrid.flops_of_params`, Chapter 6) compute is
    ``C = flops_per_token(N) · D`` and the optimum is found numerically along that constraint.
    ``C`` (FLOPs) may be a scalar or an array; ``fit`` is a :class:`ChinchillaFit` or a dict of
    constants such as :data:`~utils.published.HOFFMANN_2022`. Returns a :class:`ComputeOptimal`
    ``(N_opt, D_opt, tokens_per_param = D_opt/N_opt, loss at the optimum)``; scalars in, floats out.
    """
    c = _constants(fit)
    scalar = np.ndim(C) == 0
    C_arr = positive_array("C", np.atleast_1d(np.asarray(C, dtype=float)))
    al, be = c["alpha"], c["beta"]
    if flops_per_token is None:
        G = (al * c["A"] / (be * c["B"])) ** (1.0 / (al + be))
        N_opt = G * (C_arr / 6.0) ** (be / (al + be))
        D_opt = (C_arr / 6.0) ** (al / (al + be)) / G
    else:
        N_opt = np.array([_numeric_optimum(float(ci), c, flops_per_token) for ci in C_arr])
        D_opt = C_arr / np.asarray(flops_per_token(N_opt), dtype=float)
    loss = chinchilla_loss(N_opt, D_opt, c)
    out = (N_opt, D_opt, D_opt / N_opt, loss)
    if scalar:
        out = tuple(float(v[0]) for v in out)
    return ComputeOptimal(*out)


def _numeric_optimum(C: float, c: Mapping[str, float], flops_per_token) -> float:
    """The ``N`` minimising ``L(N, C / flops_per_token(N))``: a log-spaced scan, then a bounded refinement."""
    x = np.linspace(0.0, math.log(C / 6.0), 2001)        # N from 1 to the largest with D >= 1 under 6ND
    f = np.asarray(flops_per_token(np.exp(x)), dtype=float)
    if f.shape != x.shape or not np.all(np.isfinite(f) & (f > 0)):
        raise ValueError("flops_per_token(N) must return positive, finite FLOPs per token for an array of N.")
    loss = chinchilla_loss(np.exp(x), C / f, c)
    i = int(np.argmin(loss))
    lo, hi = x[max(i - 1, 0)], x[min(i + 1, len(x) - 1)]
    res = optimize.minimize_scalar(lambda t: float(chinchilla_loss(math.exp(t), C / float(flops_per_token(
        np.array([math.exp(t)]))[0]), c)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
    return float(math.exp(res.x))


def optimal_size_exponent(fit, C_lo: float, C_hi: float, flops_per_token=None, level: float | None = None,
                          return_samples: bool = False):
    """The exponent ``a`` of ``N_opt ∝ C^a`` between budgets ``C_lo`` and ``C_hi`` implied by a joint fit,
    with a bootstrap interval (Chapter 6).

    Under ``C = 6 N D`` this is ``beta/(alpha + beta)`` at every budget; with ``flops_per_token`` it is
    the slope ``ln(N_opt(C_hi)/N_opt(C_lo)) / ln(C_hi/C_lo)``, which changes with the budget. The
    interval repeats the computation for every bootstrap refit of ``fit`` (a :class:`ChinchillaFit`)
    and takes percentiles at ``level`` (default the fit's); ``(nan, nan)`` without refits.
    Returns ``(a, (lo, hi))``, or ``(a, (lo, hi), samples)`` with ``return_samples=True`` (the exponent of
    every refit, e.g. for the Monte-Carlo error of the interval)."""
    if not isinstance(fit, ChinchillaFit):
        raise TypeError(f"optimal_size_exponent needs a ChinchillaFit (for its bootstrap refits), got "
                        f"{type(fit).__name__}.")
    if not (0 < C_lo < C_hi):
        raise ValueError(f"need 0 < C_lo < C_hi, got C_lo={C_lo!r}, C_hi={C_hi!r}.")
    level = fit.level if level is None else check_level(level)

    def slope(consts) -> float:
        n = compute_optimal(np.array([C_lo, C_hi]), consts, flops_per_token).N_opt
        return float(np.log(n[1] / n[0]) / math.log(C_hi / C_lo))

    a = slope(fit.to_dict())
    if len(fit.samples) == 0:
        return (a, (float("nan"), float("nan"))) + ((np.empty(0),) if return_samples else ())
    keys = ("E", "A", "B", "alpha", "beta")
    vals = np.array([slope(dict(zip(keys, row))) for row in fit.samples])
    lo, hi = np.percentile(vals, [50 * (1 - level), 50 * (1 + level)])
    return (a, (float(lo), float(hi))) + ((vals,) if return_samples else ())

"""Fitting scaling laws: power laws, saturating power laws, the Chinchilla form, and compute-optimal sizes.

Pure NumPy/SciPy (no torch), so it runs anywhere. Chapter 5 explains power laws and how to fit
them honestly; Chapter 6 fits IsoFLOP profiles of our own sweep (:func:`isoflop_minima`, "Approach 2");
Chapter 7 fits the joint law :math:`L(N, D) = E + A/N^\\alpha + B/D^\\beta` (:func:`fit_chinchilla`,
"Approach 3") and turns it into compute-optimal model sizes (:func:`compute_optimal`).

Conventions: ``N`` parameters, ``D`` training tokens, ``C`` training FLOPs (``C = 6 N D``), losses in nats
per token. Every fitter refuses non-positive or non-finite input, mismatched lengths, and too few points,
with a ``ValueError`` that says what to do. Intervals are two-sided at ``level`` (default 95 %).

Published constants (as data, with citations): :data:`KAPLAN_2020`, :data:`HOFFMANN_2022`,
:data:`BESIROGLU_2024`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
from scipy import optimize, stats
from threadpoolctl import threadpool_limits

__all__ = [
    "KAPLAN_2020", "HOFFMANN_2022", "BESIROGLU_2024", "HOFFMANN_GRID",
    "PowerLawFit", "SaturatingFit", "ChinchillaFit", "ComputeOptimal", "IsoFLOPMinima",
    "fit_power_law", "fit_saturating_power_law", "fit_chinchilla", "compute_optimal", "optimal_size_exponent",
    "percentile_interval", "cluster_resamples",
    "isoflop_minima", "chinchilla_loss", "kaplan_loss", "huber",
]

# ---------------------------------------------------------------------------------------------
# Published constants. Values are as printed in the papers (rounded there); see the notes.
# ---------------------------------------------------------------------------------------------

#: Kaplan et al. (2020), "Scaling Laws for Neural Language Models", arXiv:2001.08361.
#: N counts non-embedding parameters, D tokens (GPT-2 BPE on WebText2), losses in nats per token,
#: compute C_min in PF-days. L(N) = (N_c/N)^alpha_N (eq. 1.1), L(D) = (D_c/D)^alpha_D (eq. 1.2),
#: L(C_min) = (C_c_min/C_min)^alpha_C_min (eq. 1.3); the joint law is
#: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, whose own fit (Table 2) is ``joint``.
#: Compute-efficient training: N_opt ∝ C_min^0.73, D ∝ C_min^0.27 (Section 1.2).
KAPLAN_2020: dict[str, Any] = {
    "alpha_N": 0.076, "N_c": 8.8e13,          # non-embedding parameters
    "alpha_D": 0.095, "D_c": 5.4e13,          # tokens
    "alpha_C_min": 0.050, "C_c_min": 3.1e8,   # PF-days
    "N_opt_exponent": 0.73,                   # N_opt ∝ C_min^0.73
    "D_opt_exponent": 0.27,                   # D_opt ∝ C_min^0.27 (B ∝ C^0.24, S ∝ C^0.03)
    "joint": {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},  # Table 2
    "units": "loss in nats/token; N non-embedding parameters; D tokens; C_min in PF-days",
    "citation": "kaplan2020scaling",
    "reference": "Kaplan et al. (2020), Scaling Laws for Neural Language Models, arXiv:2001.08361",
}

#: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models" (Chinchilla), Approach 3
#: (parametric fit, Section 3.3): L(N, D) = E + A/N^alpha + B/D^beta. The paper's compute-optimal
#: exponents (N_opt ∝ C^a, D_opt ∝ C^b): a = b = 0.50 (Approach 1), 0.49/0.51 (Approach 2),
#: 0.46/0.54 (Approach 3);
#: the headline rule is about 20 training tokens per parameter (Chinchilla: 70B parameters, 1.4T tokens).
#: Note: these rounded Approach-3 constants put compute_optimal at ~90 tokens per parameter near Chinchilla's
#: budget, not ~20; Besiroglu et al. (2024) trace this to rounding and an optimiser stopped early.
HOFFMANN_2022: dict[str, Any] = {
    "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
    "a": 0.46, "b": 0.54,                     # Approach 3
    "a_approach1": 0.50, "b_approach1": 0.50,
    "a_approach2": 0.49, "b_approach2": 0.51,
    # Hoffmann et al. (2022), Table 2: the 10th and 90th percentiles of a that they print beside each approach
    # (Approach 3's is the one Besiroglu et al. (2024) call implausibly narrow)
    "a_approach1_ci": (0.488, 0.502), "a_approach2_ci": (0.462, 0.534), "a_ci": (0.454, 0.455),
    "tokens_per_param": 20.0,                 # rule of thumb from Approaches 1 and 2
    "units": "loss in nats/token (MassiveText, SentencePiece); N parameters; D tokens; C = 6ND FLOPs",
    "citation": "hoffmann2022training",
    "reference": "Hoffmann et al. (2022), Training Compute-Optimal Large Language Models, arXiv:2203.15556",
}

#: Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt": Approach 3 refitted on data
#: reconstructed from Hoffmann et al.'s Figure 4, with the optimiser run to convergence
#: (their standard errors in ``se``). Their exponents agree with Hoffmann et al.'s Approaches 1 and 2
#: (a ≈ b ≈ 0.5).
BESIROGLU_2024: dict[str, Any] = {
    "E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658,
    "se": {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02},   # their standard errors
    "a": 0.5126, "b": 0.4874,                 # beta/(alpha+beta), alpha/(alpha+beta)
    "units": "as HOFFMANN_2022",
    "citation": "besiroglu2024chinchilla",
    "reference": "Besiroglu et al. (2024), Chinchilla Scaling: A replication attempt, arXiv:2404.10102",
}

#: The grid of initial values of Hoffmann et al. (2022), Approach 3 (parameters in log space):
#: alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}.
HOFFMANN_GRID: dict[str, np.ndarray] = {
    "alpha": np.arange(0.0, 2.01, 0.5), "beta": np.arange(0.0, 2.01, 0.5),
    "e": np.arange(-1.0, 1.01, 0.5), "a": np.arange(0.0, 25.1, 5.0), "b": np.arange(0.0, 25.1, 5.0),
}

_EXP_BOUNDS = (0.0, 10.0)      # exponents alpha, beta
_LOG_BOUNDS = (-30.0, 60.0)    # log-coefficients e, a, b


# Input checks and the bootstrap machinery live in their own modules; the old private names stay here because
# utils.allocation and the tests import them from this module.
from .bootstrap import (check_groups as _check_groups, check_resamples as _check_resamples,  # noqa: E402
                        cluster_resamples, in_processes as _in_processes, mc_error as _mc_error,
                        percentile_ci as _percentile_ci, percentile_interval, resample_weights as _resample_weights,
                        why_refused as _bootstrap_refused, worker_count as _bootstrap_workers)
from .validate import (check_level as _check_level, enough_points as _check_enough,  # noqa: E402
                       positive_array as _positive_array, same_length as _check_same_length)

# ---------------------------------------------------------------------------------------------
# Pure power law: y = a x^b by least squares on log y = log a + b log x
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PowerLawFit:
    """A fitted power law ``y = a * x**b`` (Chapter 5).

    ``a_ci``/``b_ci`` are ``level`` confidence intervals from the t distribution of the log–log
    regression (the interval for ``a`` is computed for ``log a`` and exponentiated, so it is not
    symmetric). ``a_se`` is the delta-method standard error ``a * se(log a)``. ``resid_std`` is the
    standard deviation of the residuals in natural-log units; ``cov`` the covariance of
    ``(log a, b)``; ``x_range`` the span of the data (predictions outside it are extrapolations).
    """
    a: float
    b: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    a_se: float
    b_se: float
    r2: float
    resid_std: float
    n: int
    level: float
    cov: np.ndarray = field(repr=False)
    x_range: tuple[float, float] = field(repr=False)

    def predict(self, x) -> np.ndarray:
        """``a * x**b`` at ``x`` (scalar or array)."""
        return self.a * np.asarray(x, dtype=float) ** self.b

    def band(self, x, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Confidence band ``(lo, hi)`` for the fitted line at ``x`` (not for new observations)."""
        level = self.level if level is None else _check_level(level)
        lx = np.log(np.asarray(x, dtype=float))
        var = self.cov[0, 0] + 2 * lx * self.cov[0, 1] + lx**2 * self.cov[1, 1]
        t = stats.t.ppf(0.5 + level / 2, max(self.n - 2, 1))
        centre = np.log(self.a) + self.b * lx
        half = t * np.sqrt(np.maximum(var, 0.0))
        return np.exp(centre - half), np.exp(centre + half)

    def __str__(self) -> str:
        pct = round(100 * self.level)
        return (f"y = {self.a:.4g} * x^{self.b:.4f}   (b {pct}% CI [{self.b_ci[0]:.4f}, {self.b_ci[1]:.4f}], "
                f"a {pct}% CI [{self.a_ci[0]:.4g}, {self.a_ci[1]:.4g}], n = {self.n}, R^2 = {self.r2:.4f})")


def fit_power_law(x, y, *, level: float = 0.95) -> PowerLawFit:
    """Fit ``y = a * x**b`` by ordinary least squares in log–log space (Chapter 5).

    Returns a :class:`PowerLawFit` with ``a``, ``b``, their standard errors and ``level`` confidence
    intervals. Needs at least 3 positive, finite points. Exact power-law data is recovered to
    rounding error (and then the intervals have zero width).
    """
    level = _check_level(level)
    x = _positive_array("x", x)
    y = _positive_array("y", y)
    n = _check_same_length(x=x, y=y)
    _check_enough(n, 2, "a power law y = a x^b")
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise ValueError(f"all x values are equal ({x[0]!r}); a power law needs x spread over a range.")
    X = np.column_stack([np.ones(n), lx])
    coef, *_ = np.linalg.lstsq(X, ly, rcond=None)
    log_a, b = float(coef[0]), float(coef[1])
    resid = ly - X @ coef
    dof = n - 2
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(X.T @ X)
    se_log_a, b_se = math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    a = math.exp(log_a)
    return PowerLawFit(
        a=a, b=b,
        a_ci=(math.exp(log_a - t * se_log_a), math.exp(log_a + t * se_log_a)),
        b_ci=(b - t * b_se, b + t * b_se),
        a_se=a * se_log_a, b_se=b_se,
        r2=1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else 1.0,
        resid_std=math.sqrt(s2), n=n, level=level, cov=cov,
        x_range=(float(x.min()), float(x.max())),
    )


# ---------------------------------------------------------------------------------------------
# Huber loss on log residuals, minimised with L-BFGS from a grid (Hoffmann et al. 2022, Approach 3)
# ---------------------------------------------------------------------------------------------

def huber(r, delta: float = 1e-3) -> np.ndarray:
    """Huber's loss of residuals ``r``: ``r²/2`` for ``|r| ≤ delta``, ``delta(|r| − delta/2)`` beyond.

    Quadratic near zero, linear in the tails, so outliers pull less than in least squares (Chapter 5).
    """
    r = np.asarray(r, dtype=float)
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


class _SumOfPowers:
    """log of ``exp(e) + sum_j exp(c_j - s_j * logX_j)``; theta = [e, c_1..c_J, s_1..s_J]."""

    def __init__(self, logX: np.ndarray, logy: np.ndarray, delta: float, weights: np.ndarray | None = None):
        self.logX = logX            # (J, n)
        self.logy = logy            # (n,)
        self.delta = delta
        self.J = logX.shape[0]
        self.w = np.ones_like(logy) if weights is None else weights
        self.scale = 1.0 / (delta * self.w.sum())   # objective ~ mean |r|: keeps L-BFGS tolerances meaningful

    def terms(self, theta: np.ndarray) -> np.ndarray:
        """Log of each term, shape (..., J+1, n) for theta of shape (..., 2J+1)."""
        J = self.J
        e = theta[..., :1, None] * np.ones_like(self.logy)
        c = theta[..., 1:J + 1, None]
        s = theta[..., J + 1:, None]
        return np.concatenate([e, c - s * self.logX], axis=-2)

    def objective_batch(self, thetas: np.ndarray, chunk: int = 256) -> np.ndarray:
        out = np.empty(len(thetas))
        for i in range(0, len(thetas), chunk):
            T = self.terms(thetas[i:i + chunk])
            pred = np.logaddexp.reduce(T, axis=-2)
            out[i:i + chunk] = (huber(pred - self.logy, self.delta) * self.w).sum(-1) * self.scale
        return out

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        T = self.terms(theta)                       # (J+1, n) log of each term
        top = T.max(axis=0)
        P = np.exp(T - top)
        total = P.sum(axis=0)
        P /= total                                  # softmax weights = d pred / d term
        r = top + np.log(total) - self.logy         # log residuals
        f = float((huber(r, self.delta) * self.w).sum()) * self.scale
        Pg = P * (np.clip(r, -self.delta, self.delta) * self.w * self.scale)   # chain rule through huber
        grad = np.empty_like(theta)                 # element-wise sums, no BLAS calls
        grad[0] = Pg[0].sum()
        grad[1:self.J + 1] = Pg[1:].sum(axis=1)
        grad[self.J + 1:] = -(Pg[1:] * self.logX).sum(axis=1)
        return f, grad


def _lbfgs(model: _SumOfPowers, starts: np.ndarray, bounds) -> tuple[np.ndarray, float, list]:
    """Run L-BFGS-B from each start; return the best theta, its objective, and all (f, theta) sorted."""
    results = []
    # L-BFGS-B makes many tiny BLAS calls; with several BLAS threads on a busy machine they spend
    # most of their time waiting for each other (10-20x slower), so the fits use one.
    with threadpool_limits(limits=1, user_api="blas"):
        for x0 in starts:
            res = optimize.minimize(model.value_and_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                    options={"maxiter": 1000, "maxfun": 1500, "ftol": 1e-14, "gtol": 1e-11})
            results.append((float(res.fun), res.x))
    results.sort(key=lambda t: t[0])
    return results[0][1], results[0][0], results


def _warn_at_bounds(theta: np.ndarray, bounds, names: list[str]) -> None:
    """Warn when a fitted parameter sits on its bound: the data do not determine it."""
    for value, (lo, hi), name in zip(theta, bounds, names):
        if value <= lo + 1e-6 or value >= hi - 1e-6:
            warnings.warn(f"the fitted {name} = {value:.4g} sits on its bound [{lo}, {hi}]: the data do not "
                          "determine it (e.g. no visible floor, or too short a range). Treat the fit "
                          "with care or change the model.", RuntimeWarning, stacklevel=3)


def _warn_no_floor(E: float, y_min: float) -> None:
    if E < 1e-6 * y_min:
        warnings.warn(f"the fitted floor E = {E:.3g} is negligible next to the smallest value {y_min:.4g}: the "
                      "data show no floor, and a pure power law (fit_power_law) describes them as well.",
                      RuntimeWarning, stacklevel=3)


def _grid_starts(model: _SumOfPowers, grid: np.ndarray, n_starts: int | None) -> np.ndarray:
    if n_starts is None or n_starts >= len(grid):
        return grid
    if n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer or None (all grid points), got {n_starts!r}.")
    f = model.objective_batch(grid)
    order = np.argsort(f, kind="stable")
    return grid[order[:n_starts]]


def _refit_chunk(logX: np.ndarray, logy: np.ndarray, delta: float, G: np.ndarray, n_starts, bounds,
                 weights: np.ndarray) -> np.ndarray:
    """Refit one chunk of resamples (rows of ``weights``) with the point fit's estimator; runs in a worker."""
    out = np.empty((len(weights), G.shape[1]))
    for k, w in enumerate(weights):
        model = _SumOfPowers(logX, logy, delta, w)
        out[k], _, _ = _lbfgs(model, _grid_starts(model, G, n_starts), bounds)
    return out


def _bootstrap(logX: np.ndarray, logy: np.ndarray, delta: float, n: int, G: np.ndarray, n_starts, bounds,
               n_bootstrap: int, seed: int | None, groups: np.ndarray | None = None,
               workers: int | None = None, weights: np.ndarray | None = None) -> np.ndarray:
    """Refit on ``n_bootstrap`` resamples with the point fit's own estimator (the same grid of starts,
    scored on the resample, and L-BFGS from its best ``n_starts``); returns (n_bootstrap, P) thetas.

    Points are drawn with replacement, or, with ``groups``, whole groups are (a cluster bootstrap:
    points that share a training run are not independent). The resamples are drawn here from
    ``seed`` and refitted in ``workers`` processes (default: one per core), so the result does not
    depend on how many there are. Given ``weights`` (rows of draw counts), those resamples are refitted."""
    if weights is None:
        if n_bootstrap <= 0:
            return np.empty((0, G.shape[1]))
        rng = np.random.default_rng(seed)
        weights = np.stack([_resample_weights(rng, n, groups) for _ in range(n_bootstrap)])
    n_bootstrap = len(weights)
    n_workers = min(_bootstrap_workers(n_bootstrap, workers), n_bootstrap)
    if n_workers == 1:
        return _refit_chunk(logX, logy, delta, G, n_starts, bounds, weights)
    chunks = np.array_split(weights, n_workers * 4)
    return np.vstack(_in_processes(_refit_chunk, [(logX, logy, delta, G, n_starts, bounds, c) for c in chunks],
                                   n_workers, "the bootstrap", instead="refitting", stacklevel=5))


def _check_bootstrap_args(n_bootstrap, delta) -> None:
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError("n_bootstrap must be a non-negative integer (0 = no intervals), "
                         f"got {n_bootstrap!r}.")
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta (the Huber threshold) must be positive, got {delta!r}; "
                         "Hoffmann et al. use 1e-3.")


def _run_bootstrap(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups, points, n_params, what,
                   workers=None, weights=None):
    """Bootstrap thetas, or an empty array and a warning when the resamples would degenerate."""
    if weights is None and n_bootstrap <= 0:
        return np.empty((0, G.shape[1]))
    why = _bootstrap_refused(points, n_params, groups, what)
    if why is not None:
        warnings.warn(why, RuntimeWarning, stacklevel=3)
        return np.empty((0, G.shape[1]))
    return _bootstrap(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups, workers, weights)


# ----------------------------- saturating power law ------------------------------------------

@dataclass(frozen=True)
class SaturatingFit:
    """A fitted saturating power law ``y = E + A * x**(-alpha)`` (Chapter 5).

    ``E`` is the irreducible term (the floor ``y`` approaches as ``x`` grows). Intervals ``*_ci`` are
    bootstrap percentile intervals at ``level`` (``(nan, nan)`` when ``n_bootstrap=0`` or when the
    bootstrap was refused); ``samples`` holds the bootstrap refits as rows ``(E, A, alpha)`` and
    ``mc_se`` the Monte-Carlo standard error of each interval's ends (rows E, A, alpha; columns lo, hi).
    ``loss`` is the minimised mean Huber loss / delta.
    """
    E: float
    A: float
    alpha: float
    E_ci: tuple[float, float]
    A_ci: tuple[float, float]
    alpha_ci: tuple[float, float]
    loss: float
    n: int
    delta: float
    level: float
    samples: np.ndarray = field(repr=False)
    x_range: tuple[float, float] = field(repr=False)
    mc_se: np.ndarray = field(repr=False, default=None)

    def predict(self, x) -> np.ndarray:
        """``E + A * x**(-alpha)`` at ``x``."""
        return self.E + self.A * np.asarray(x, dtype=float) ** (-self.alpha)

    def band(self, x, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentile band ``(lo, hi)`` of the fitted curve at ``x`` (needs ``n_bootstrap > 0``)."""
        level = self.level if level is None else _check_level(level)
        if len(self.samples) == 0:
            raise ValueError("this fit has no bootstrap samples; refit with n_bootstrap > 0 to get a band.")
        x = np.asarray(x, dtype=float)
        S = self.samples
        curves = S[:, :1] + S[:, 1:2] * x.reshape(1, -1) ** (-S[:, 2:3])
        lo, hi = np.percentile(curves, [50 * (1 - level), 50 * (1 + level)], axis=0)
        return lo.reshape(x.shape), hi.reshape(x.shape)

    def __str__(self) -> str:
        return (f"y = {self.E:.4g} + {self.A:.4g} * x^-{self.alpha:.4f}   "
                f"(E {_fmt_ci(self.E_ci)}, A {_fmt_ci(self.A_ci)}, alpha {_fmt_ci(self.alpha_ci)}, "
                f"n = {self.n})")


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def _saturating_grid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Data-adaptive starts [e, a, alpha]: floors below min(y), exponents 0.05..3, A matched at min(x)."""
    y_top = float(y[np.argmin(x)])
    floors = float(y.min()) * np.array([0.05, 0.2, 0.4, 0.6, 0.75, 0.85, 0.95, 0.99])
    alphas = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
    rows = []
    for E in floors:
        gap = max(y_top - E, 1e-3 * y_top)
        for al in alphas:
            base = math.log(gap) + al * math.log(float(x.min()))
            for off in (-1.0, 0.0, 1.0):
                rows.append([math.log(E), base + off, al])
    g = np.array(rows)
    g[:, :2] = np.clip(g[:, :2], *_LOG_BOUNDS)
    return g


def fit_saturating_power_law(x, y, *, delta: float = 1e-3, n_bootstrap: int = 1000, level: float = 0.95,
                             seed: int | None = 0, n_starts: int | None = 4,
                             grid: np.ndarray | None = None, groups=None, workers: int | None = None) -> SaturatingFit:
    """Fit ``y = E + A * x**(-alpha)`` (an irreducible term plus a power law), Chapter 5.

    Method of Hoffmann et al. (2022), Approach 3: parameters in log space (``e = log E``, ``a = log A``),
    prediction ``log y_hat = logsumexp(e, a - alpha log x)``, Huber loss (threshold ``delta``) on the
    log residuals ``log y_hat - log y``, minimised with L-BFGS-B (analytic gradient) from a grid of
    initial values; the best end point wins. The whole grid is scored and L-BFGS starts from the
    ``n_starts`` best grid points (``None`` = all). ``grid`` (rows ``[e, a, alpha]``) replaces the
    default data-adaptive grid. Confidence intervals come from ``n_bootstrap`` refits on resampled
    points (percentile bootstrap, seeded by ``seed``), each made by the same estimator as the point
    fit (grid scored on the resample, L-BFGS from its best ``n_starts``). ``groups`` (one label per
    point) resamples whole groups instead of points, for points that are not independent (e.g. cool-down
    branches of one training run, Chapter 6). The bootstrap is refused, with a warning and no interval,
    when there are fewer than 6 distinct points (twice the 3 parameters) or fewer than 5 groups.
    The refits run in ``workers`` processes (default: one per core, for 64 refits or more).

    Returns a :class:`SaturatingFit`. Needs at least 4 positive, finite points.
    """
    level = _check_level(level)
    _check_bootstrap_args(n_bootstrap, delta)
    x = _positive_array("x", x)
    y = _positive_array("y", y)
    n = _check_same_length(x=x, y=y)
    _check_enough(n, 3, "a saturating power law y = E + A x^-alpha")
    if np.ptp(x) == 0:
        raise ValueError(f"all x values are equal ({x[0]!r}); the fit needs x spread over a range.")
    logX, logy = np.log(x)[None, :], np.log(y)
    bounds = [_LOG_BOUNDS, _LOG_BOUNDS, _EXP_BOUNDS]
    G = _saturating_grid(x, y) if grid is None else np.atleast_2d(np.asarray(grid, dtype=float))
    if G.shape[-1] != 3:
        raise ValueError(f"grid must have rows [e, a, alpha] (3 columns), got shape {G.shape}.")

    def factory(weights=None):
        return _SumOfPowers(logX, logy, delta, weights)

    model = factory()
    best, fbest, results = _lbfgs(model, _grid_starts(model, G, n_starts), bounds)
    _warn_at_bounds(best, bounds, ["log E", "log A", "alpha"])
    _warn_no_floor(float(np.exp(best[0])), float(y.min()))
    groups = _check_groups(groups, n)
    boot = _run_bootstrap(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups, x[:, None], 3,
                          "a saturating power law", workers)
    samples = np.column_stack([np.exp(boot[:, 0]), np.exp(boot[:, 1]), boot[:, 2]]) if len(boot) else \
        np.empty((0, 3))
    ci = _percentile_ci(samples, level) if len(samples) else np.full((3, 2), np.nan)
    mc = _mc_error(samples, level, seed) if len(samples) else np.full((3, 2), np.nan)
    return SaturatingFit(
        E=float(np.exp(best[0])), A=float(np.exp(best[1])), alpha=float(best[2]),
        E_ci=tuple(map(float, ci[0])), A_ci=tuple(map(float, ci[1])), alpha_ci=tuple(map(float, ci[2])),
        loss=fbest, n=n, delta=float(delta), level=level, samples=samples,
        x_range=(float(x.min()), float(x.max())), mc_se=mc,
    )


# ----------------------------- Chinchilla: L(N, D) = E + A/N^alpha + B/D^beta ----------------

def chinchilla_loss(N, D, constants: Mapping[str, float] = HOFFMANN_2022) -> np.ndarray:
    """``E + A/N**alpha + B/D**beta`` with ``constants`` (a dict like :data:`HOFFMANN_2022` or a
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
        level = self.level if level is None else _check_level(level)
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
                f"(E {_fmt_ci(self.E_ci)}, alpha {_fmt_ci(self.alpha_ci)}, beta {_fmt_ci(self.beta_ci)}, "
                f"n = {self.n})")


def fit_chinchilla(N, D, L, *, delta: float = 1e-3, n_bootstrap: int = 1000, level: float = 0.95,
                   seed: int | None = 0, n_starts: int | None = 8,
                   grid: Mapping[str, Iterable[float]] | None = None, groups=None,
                   workers: int | None = None, resamples=None) -> ChinchillaFit:
    """Fit ``L(N, D) = E + A/N**alpha + B/D**beta`` by Hoffmann et al. (2022), Approach 3 (Chapter 7).

    Parameters are fitted in log space (``a = log A``, ``b = log B``, ``e = log E``); the prediction is
    ``logsumexp(a - alpha log N, b - beta log D, e)`` and the objective the Huber loss (``delta``,
    1e-3 in the paper) of its difference from ``log L``. Minimised with L-BFGS-B and an analytic
    gradient from the grid :data:`HOFFMANN_GRID` (4,500 points; pass ``grid`` as a dict with keys
    ``a, b, e, alpha, beta`` to change it): the whole grid is scored at once and L-BFGS starts from the
    ``n_starts`` best points (``None`` = every point, slow); the best end point wins. Intervals:
    percentile bootstrap over runs, ``n_bootstrap`` refits seeded by ``seed``, each by the same estimator
    as the point fit (the grid scored on the resample, L-BFGS from its best ``n_starts``). ``groups`` (one
    label per run) resamples whole groups, e.g. model sizes whose points are cool-down branches of one
    training run (Chapter 6). The bootstrap is refused, with a warning and no interval, when the runs
    have fewer than 10 distinct (N, D) points or fewer than 5 groups. The refits run in ``workers``
    processes (default: one per core, for 64 refits or more); the result does not depend on their number.
    ``resamples`` (an array of draw counts, one row per resample, e.g. from :func:`cluster_resamples`) replaces
    the fit's own draws (and ``n_bootstrap``): another estimator given the same rows is then bootstrapped
    *paired* with this one (Chapter 6). With ``groups`` too, the refusal rule counts those groups.

    ``N`` parameters, ``D`` tokens, ``L`` losses (nats per token). Needs at least 6 points.
    Returns a :class:`ChinchillaFit`.
    """
    level = _check_level(level)
    _check_bootstrap_args(n_bootstrap, delta)
    N = _positive_array("N", N)
    D = _positive_array("D", D)
    L = _positive_array("L", L)
    n = _check_same_length(N=N, D=D, L=L)
    _check_enough(n, 5, "L(N, D) = E + A/N^alpha + B/D^beta")
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
    bounds = [_LOG_BOUNDS] * 3 + [_EXP_BOUNDS] * 2

    def factory(weights=None):
        return _SumOfPowers(logX, logy, delta, weights)

    model = factory()
    best, fbest, results = _lbfgs(model, _grid_starts(model, G, n_starts), bounds)
    _warn_at_bounds(best, bounds, ["log E", "log A", "log B", "alpha", "beta"])
    _warn_no_floor(float(np.exp(best[0])), float(L.min()))
    groups = _check_groups(groups, n)
    weights = None if resamples is None else _check_resamples(resamples, n)
    boot = _run_bootstrap(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups,
                          np.column_stack([N, D]), 5, "L(N, D) = E + A/N^alpha + B/D^beta", workers, weights)
    if len(boot):
        samples = np.column_stack([np.exp(boot[:, 0]), np.exp(boot[:, 1]), np.exp(boot[:, 2]),
                                   boot[:, 3], boot[:, 4]])
        ci, mc = _percentile_ci(samples, level), _mc_error(samples, level, seed)
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
    constants such as :data:`HOFFMANN_2022`. Returns a :class:`ComputeOptimal`
    ``(N_opt, D_opt, tokens_per_param = D_opt/N_opt, loss at the optimum)``; scalars in, floats out.
    """
    c = _constants(fit)
    scalar = np.ndim(C) == 0
    C_arr = _positive_array("C", np.atleast_1d(np.asarray(C, dtype=float)))
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
    level = fit.level if level is None else _check_level(level)

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


# ---------------------------------------------------------------------------------------------
# IsoFLOP profiles (Hoffmann et al. 2022, Approach 2)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IsoFLOPMinima:
    """Per-budget minima of IsoFLOP profiles (Chapter 6). Arrays, one entry per budget, sorted by ``C``.

    ``C`` budget (FLOPs), ``N_opt``/``D_opt`` at the parabola's minimum, ``loss_opt`` the parabola's
    value there, ``n_runs`` runs in the budget, ``curvature`` the parabola's coefficient of
    ``(log N)²`` (must be > 0), ``valid`` whether the minimum can be trusted, ``note`` why not.
    :meth:`fit` fits ``N_opt ∝ C**a`` and ``D_opt ∝ C**b`` on the valid budgets.
    """
    C: np.ndarray
    N_opt: np.ndarray
    D_opt: np.ndarray
    loss_opt: np.ndarray
    n_runs: np.ndarray
    curvature: np.ndarray
    valid: np.ndarray
    note: list
    coefs: list = field(repr=False)   # per budget: (p2, p1, p0) of loss = p2 x² + p1 x + p0, x = ln N

    def parabola(self, i: int, N) -> np.ndarray:
        """The fitted parabola of budget ``i`` evaluated at ``N`` parameters (for plotting)."""
        p = self.coefs[i]
        if p is None:
            raise ValueError(f"budget {i} (C = {self.C[i]:.3g}) has no parabola: {self.note[i]}")
        return np.polyval(p, np.log(np.asarray(N, dtype=float)))

    def fit(self, level: float = 0.95) -> tuple[PowerLawFit, PowerLawFit]:
        """``(fit of N_opt vs C, fit of D_opt vs C)`` by :func:`fit_power_law` on the valid budgets
        (needs at least 3); the exponents are ``a`` and ``b`` of Hoffmann et al. (2022)."""
        v = np.asarray(self.valid, dtype=bool)
        if v.sum() < 3:
            raise ValueError(f"only {int(v.sum())} budget(s) have a trustworthy minimum; fitting N_opt ∝ C^a "
                             "needs at least 3. Add budgets or add model sizes on both sides of the minima.")
        return (fit_power_law(self.C[v], self.N_opt[v], level=level),
                fit_power_law(self.C[v], self.D_opt[v], level=level))


def _column(rows, keys: tuple[str, ...], required: bool = True):
    for k in keys:
        if isinstance(rows, Mapping):
            if k in rows:
                return np.asarray(rows[k], dtype=float)
        elif all(k in r for r in rows):
            return np.array([r[k] for r in rows], dtype=float)
    if required:
        raise ValueError(f"runs need a value for {' or '.join(repr(k) for k in keys)} in every run.")
    return None


def isoflop_minima(runs, *, rtol: float = 0.02, warn: bool = True) -> IsoFLOPMinima:
    """Minima of IsoFLOP profiles: for each compute budget, fit a parabola in ``ln N`` to the losses of
    that budget's runs and take its minimum (Hoffmann et al. 2022, Approach 2; Chapter 6).

    ``runs`` is either an iterable of mappings (one per run, e.g. the JSON lines of a sweep) or a
    mapping of equal-length columns, with keys:

    - ``"C"`` (or ``"budget"``, ``"flops"``): the run's compute budget in FLOPs. Runs whose budgets
      agree within the relative tolerance ``rtol`` form one IsoFLOP profile (its ``C`` is their geometric
      mean);
    - ``"N"`` (or ``"n_params"``): parameters (whichever count you fit with, e.g. non-embedding);
    - ``"loss"`` (or ``"final_val_loss"``, ``"val_loss"``): final loss in nats per token;
    - ``"D"`` (or ``"tokens"``, ``"tokens_seen"``), optional: training tokens; if absent ``D = C/(6N)``.

    ``D_opt`` comes from the runs' own ``(ln N, ln D)`` line at ``N_opt`` (equal to ``C/(6 N_opt)`` when
    ``C = 6ND`` exactly). A budget is flagged ``valid=False`` (and a warning issued, unless
    ``warn=False``) when it has fewer than 3 distinct sizes, its parabola opens downwards, or the
    minimum lies outside the sampled range of ``N`` (then it is an extrapolation, not a measurement).
    Returns :class:`IsoFLOPMinima`; call ``.fit()`` for ``N_opt ∝ C^a`` and ``D_opt ∝ C^b``.
    """
    if isinstance(runs, (str, bytes)) or not isinstance(runs, (Mapping, Iterable)):
        raise TypeError(f"runs must be a list of dicts or a dict of columns; got {type(runs).__name__}.")
    if not isinstance(runs, Mapping):
        runs = list(runs)
        if not runs:
            raise ValueError("runs is empty; pass at least 3 runs per compute budget.")
        if not all(isinstance(r, Mapping) for r in runs):
            raise TypeError("each run must be a mapping (dict) with keys C, N, loss (and optionally D).")
    if not (0 <= rtol < 1):
        raise ValueError(f"rtol must be in [0, 1), got {rtol!r}.")
    C = _positive_array("C", _column(runs, ("C", "budget", "flops")))
    N = _positive_array("N", _column(runs, ("N", "n_params")))
    loss = _positive_array("loss", _column(runs, ("loss", "final_val_loss", "val_loss")))
    D = _column(runs, ("D", "tokens", "tokens_seen"), required=False)
    D = C / (6 * N) if D is None else _positive_array("D", D)
    _check_same_length(C=C, N=N, loss=loss, D=D)

    order = np.argsort(C, kind="stable")
    groups, current = [], [order[0]]
    for i in order[1:]:
        if C[i] <= C[current[0]] * (1 + rtol):
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    groups.append(current)

    keys = ("C", "N_opt", "D_opt", "loss_opt", "n_runs", "curvature", "valid", "note", "coefs")
    out: dict[str, list] = {k: [] for k in keys}
    for idx in groups:
        idx = np.asarray(idx)
        c_b = float(np.exp(np.log(C[idx]).mean()))
        x, l_, d_ = np.log(N[idx]), loss[idx], np.log(D[idx])
        n_sizes = len(np.unique(np.round(x, 9)))
        row = dict(C=c_b, N_opt=np.nan, D_opt=np.nan, loss_opt=np.nan, n_runs=len(idx), curvature=np.nan,
                   valid=False, note="", coefs=None)
        if n_sizes < 3:
            row["note"] = f"only {n_sizes} distinct model size(s); a parabola needs at least 3"
        else:
            p = np.polyfit(x, l_, 2)
            row["coefs"], row["curvature"] = p, float(p[0])
            if p[0] <= 0:
                row["note"] = "the parabola opens downwards (no minimum): losses do not rise on both sides"
            else:
                xs = -p[1] / (2 * p[0])
                q = np.polyfit(x, d_, 1)
                row.update(N_opt=float(np.exp(xs)), D_opt=float(np.exp(np.polyval(q, xs))),
                           loss_opt=float(np.polyval(p, xs)))
                if not (x.min() <= xs <= x.max()):
                    row["note"] = (f"minimum N = {np.exp(xs):.3g} lies outside the sampled sizes "
                                   f"[{N[idx].min():.3g}, {N[idx].max():.3g}]: extend the range of sizes")
                else:
                    row["valid"] = True
        if not row["valid"] and warn:
            warnings.warn(f"IsoFLOP budget C = {c_b:.3g}: {row['note']}; it is flagged invalid.",
                          stacklevel=2)
        for k, v in row.items():
            out[k].append(v)
    return IsoFLOPMinima(
        C=np.array(out["C"]), N_opt=np.array(out["N_opt"]), D_opt=np.array(out["D_opt"]),
        loss_opt=np.array(out["loss_opt"]), n_runs=np.array(out["n_runs"]),
        curvature=np.array(out["curvature"]), valid=np.array(out["valid"], dtype=bool),
        note=out["note"], coefs=out["coefs"],
    )

"""Fitting a law to points (Chapter 5): a pure power law by least squares in log–log space, and the
estimator of Hoffmann et al. (2022), Approach 3, which fits the saturating power law here and the joint
Chinchilla law in :mod:`utils.chinchilla`.

That estimator works in log space: the prediction is the log of a sum of powers, the objective Huber's loss
of the log residuals, minimised with L-BFGS-B (analytic gradient) from the best points of a grid of starts;
its intervals come from refitting it, the same way, on bootstrap resamples (drawn by :mod:`utils.bootstrap`,
optionally in worker processes). Pure NumPy/SciPy (no torch), so it runs anywhere.

Conventions: every fitter refuses non-positive or non-finite input, mismatched lengths and too few points
(:mod:`utils.validate`), with a ``ValueError`` that says what to do. Intervals are two-sided at ``level``
(default 95 %).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats
from threadpoolctl import threadpool_limits

from .bootstrap import (check_groups, in_processes, mc_error, percentile_ci, resample_weights, why_refused,
                        worker_count)
from .validate import check_level, enough_points, positive_array, same_length

__all__ = [
    "PowerLawFit", "fit_power_law", "SaturatingFit", "fit_saturating_power_law", "saturating_grid", "huber",
    "SumOfPowers", "lbfgs", "grid_starts", "warn_at_bounds", "warn_no_floor", "check_bootstrap_args",
    "bootstrap_refits", "fmt_ci", "EXP_BOUNDS", "LOG_BOUNDS",
]

# The box L-BFGS-B searches in, for both Huber fits (the saturating power law here, the joint law in utils.chinchilla):
EXP_BOUNDS = (0.0, 10.0)      # exponents alpha, beta
LOG_BOUNDS = (-30.0, 60.0)    # log-coefficients e, a, b


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
        level = self.level if level is None else check_level(level)
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
    level = check_level(level)
    x = positive_array("x", x)
    y = positive_array("y", y)
    n = same_length(x=x, y=y)
    enough_points(n, 2, "a power law y = a x^b")
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


class SumOfPowers:
    """log of ``exp(e) + sum_j exp(c_j - s_j * logX_j)``; theta = [e, c_1..c_J, s_1..s_J].

    The prediction of both Huber fits in log space (``J = 1``: the saturating power law, with ``c = log A``;
    ``J = 2``: the Chinchilla law, Chapter 7), with the objective: the Huber loss (threshold ``delta``) of
    the log residuals against ``logy``, each point counted ``weights`` times (a bootstrap resample), scaled
    to about the mean ``|r|``.
    """

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
        """The objective at every row of ``thetas`` (e.g. a grid of starts), ``chunk`` rows at a time."""
        out = np.empty(len(thetas))
        for i in range(0, len(thetas), chunk):
            T = self.terms(thetas[i:i + chunk])
            pred = np.logaddexp.reduce(T, axis=-2)
            out[i:i + chunk] = (huber(pred - self.logy, self.delta) * self.w).sum(-1) * self.scale
        return out

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective at ``theta`` and its analytic gradient (what :func:`lbfgs` minimises)."""
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


def lbfgs(model: SumOfPowers, starts: np.ndarray, bounds) -> tuple[np.ndarray, float, list]:
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


def warn_at_bounds(theta: np.ndarray, bounds, names: list[str]) -> None:
    """Warn when a fitted parameter sits on its bound: the data do not determine it."""
    for value, (lo, hi), name in zip(theta, bounds, names):
        if value <= lo + 1e-6 or value >= hi - 1e-6:
            warnings.warn(f"the fitted {name} = {value:.4g} sits on its bound [{lo}, {hi}]: the data do not "
                          "determine it (e.g. no visible floor, or too short a range). Treat the fit "
                          "with care or change the model.", RuntimeWarning, stacklevel=3)


def warn_no_floor(E: float, y_min: float) -> None:
    """Warn when the fitted floor ``E`` is negligible next to the smallest value ``y_min``: no floor is visible."""
    if E < 1e-6 * y_min:
        warnings.warn(f"the fitted floor E = {E:.3g} is negligible next to the smallest value {y_min:.4g}: the "
                      "data show no floor, and a pure power law (fit_power_law) describes them as well.",
                      RuntimeWarning, stacklevel=3)


def grid_starts(model: SumOfPowers, grid: np.ndarray, n_starts: int | None) -> np.ndarray:
    """The ``n_starts`` rows of ``grid`` where ``model``'s objective is lowest (in grid order among ties), or the
    whole grid when ``n_starts`` is ``None`` or at least its length: where :func:`lbfgs` starts."""
    if n_starts is None or n_starts >= len(grid):
        return grid
    if n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer or None (all grid points), got {n_starts!r}.")
    f = model.objective_batch(grid)
    order = np.argsort(f, kind="stable")
    return grid[order[:n_starts]]


# ---------------------------------------------------------------------------------------------
# Its bootstrap: the same estimator refitted on resamples (drawn by utils.bootstrap)
# ---------------------------------------------------------------------------------------------

def _refit_chunk(logX: np.ndarray, logy: np.ndarray, delta: float, G: np.ndarray, n_starts, bounds,
                 weights: np.ndarray) -> np.ndarray:
    """Refit one chunk of resamples (rows of ``weights``) with the point fit's estimator; runs in a worker."""
    out = np.empty((len(weights), G.shape[1]))
    for k, w in enumerate(weights):
        model = SumOfPowers(logX, logy, delta, w)
        out[k], _, _ = lbfgs(model, grid_starts(model, G, n_starts), bounds)
    return out


def _refit_resamples(logX: np.ndarray, logy: np.ndarray, delta: float, n: int, G: np.ndarray, n_starts, bounds,
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
        weights = np.stack([resample_weights(rng, n, groups) for _ in range(n_bootstrap)])
    n_bootstrap = len(weights)
    n_workers = min(worker_count(n_bootstrap, workers), n_bootstrap)
    if n_workers == 1:
        return _refit_chunk(logX, logy, delta, G, n_starts, bounds, weights)
    chunks = np.array_split(weights, n_workers * 4)
    return np.vstack(in_processes(_refit_chunk, [(logX, logy, delta, G, n_starts, bounds, c) for c in chunks],
                                  n_workers, "the bootstrap", instead="refitting", stacklevel=5))


def check_bootstrap_args(n_bootstrap, delta) -> None:
    """Refuse an ``n_bootstrap`` that is not a non-negative integer and a Huber ``delta`` that is not positive."""
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError("n_bootstrap must be a non-negative integer (0 = no intervals), "
                         f"got {n_bootstrap!r}.")
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta (the Huber threshold) must be positive, got {delta!r}; "
                         "Hoffmann et al. use 1e-3.")


def bootstrap_refits(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups, points, n_params, what,
                     workers=None, weights=None):
    """Bootstrap thetas, one row per resample, from refitting the estimator (:func:`lbfgs` on a
    :class:`SumOfPowers` from :func:`grid_starts`) on each; an empty array, and a warning saying why, when
    :func:`utils.bootstrap.why_refused` refuses the resamples (``points`` the distinct design points,
    ``n_params`` the law's parameters, ``what`` its name). Used by both fitters here and by
    :func:`utils.chinchilla.fit_chinchilla`."""
    if weights is None and n_bootstrap <= 0:
        return np.empty((0, G.shape[1]))
    why = why_refused(points, n_params, groups, what)
    if why is not None:
        warnings.warn(why, RuntimeWarning, stacklevel=3)
        return np.empty((0, G.shape[1]))
    return _refit_resamples(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups, workers, weights)


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
        level = self.level if level is None else check_level(level)
        if len(self.samples) == 0:
            raise ValueError("this fit has no bootstrap samples; refit with n_bootstrap > 0 to get a band.")
        x = np.asarray(x, dtype=float)
        S = self.samples
        curves = S[:, :1] + S[:, 1:2] * x.reshape(1, -1) ** (-S[:, 2:3])
        lo, hi = np.percentile(curves, [50 * (1 - level), 50 * (1 + level)], axis=0)
        return lo.reshape(x.shape), hi.reshape(x.shape)

    def __str__(self) -> str:
        return (f"y = {self.E:.4g} + {self.A:.4g} * x^-{self.alpha:.4f}   "
                f"(E {fmt_ci(self.E_ci)}, A {fmt_ci(self.A_ci)}, alpha {fmt_ci(self.alpha_ci)}, "
                f"n = {self.n})")


def fmt_ci(ci) -> str:
    """An interval ``(lo, hi)`` as ``"[lo, hi]"`` with 4 significant digits (for the fits' printouts)."""
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def saturating_grid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
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
    g[:, :2] = np.clip(g[:, :2], *LOG_BOUNDS)
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
    level = check_level(level)
    check_bootstrap_args(n_bootstrap, delta)
    x = positive_array("x", x)
    y = positive_array("y", y)
    n = same_length(x=x, y=y)
    enough_points(n, 3, "a saturating power law y = E + A x^-alpha")
    if np.ptp(x) == 0:
        raise ValueError(f"all x values are equal ({x[0]!r}); the fit needs x spread over a range.")
    logX, logy = np.log(x)[None, :], np.log(y)
    bounds = [LOG_BOUNDS, LOG_BOUNDS, EXP_BOUNDS]
    G = saturating_grid(x, y) if grid is None else np.atleast_2d(np.asarray(grid, dtype=float))
    if G.shape[-1] != 3:
        raise ValueError(f"grid must have rows [e, a, alpha] (3 columns), got shape {G.shape}.")

    def factory(weights=None):
        return SumOfPowers(logX, logy, delta, weights)

    model = factory()
    best, fbest, results = lbfgs(model, grid_starts(model, G, n_starts), bounds)
    warn_at_bounds(best, bounds, ["log E", "log A", "alpha"])
    warn_no_floor(float(np.exp(best[0])), float(y.min()))
    groups = check_groups(groups, n)
    boot = bootstrap_refits(logX, logy, delta, n, G, n_starts, bounds, n_bootstrap, seed, groups, x[:, None], 3,
                            "a saturating power law", workers)
    samples = np.column_stack([np.exp(boot[:, 0]), np.exp(boot[:, 1]), boot[:, 2]]) if len(boot) else \
        np.empty((0, 3))
    ci = percentile_ci(samples, level) if len(samples) else np.full((3, 2), np.nan)
    mc = mc_error(samples, level, seed) if len(samples) else np.full((3, 2), np.nan)
    return SaturatingFit(
        E=float(np.exp(best[0])), A=float(np.exp(best[1])), alpha=float(best[2]),
        E_ci=tuple(map(float, ci[0])), A_ci=tuple(map(float, ci[1])), alpha_ci=tuple(map(float, ci[2])),
        loss=fbest, n=n, delta=float(delta), level=level, samples=samples,
        x_range=(float(x.min()), float(x.max())), mc_se=mc,
    )

"""The held-out IsoFLOP check of Chapter 6: a parabola in ``ln N`` through the losses of one budget the sweep never
saw, its minimum with a parametric-bootstrap interval, and the ratio of that minimum to a predicted optimum.

:func:`heldout_isoflop` returns a :class:`HeldoutIsoFLOP`; :mod:`utils.allocation` re-exports both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import validate

__all__ = ["HeldoutIsoFLOP", "heldout_isoflop"]


@dataclass(frozen=True)
class HeldoutIsoFLOP:
    """A held-out IsoFLOP profile scored against a prediction (:func:`heldout_isoflop`, Chapter 6).

    ``N_opt`` is the minimum of the parabola in ``ln N`` through the measured ``losses``, ``N_opt_ci`` its
    ``level`` interval (``method`` says how it was made; an end may be 0 or inf when some simulated profiles had
    no minimum), ``ratio = N_opt / predicted_N_opt`` with ``ratio_ci``. ``residuals`` are measured minus
    predicted losses per size (``None`` without ``predicted_losses``), ``level_error`` their mean with standard
    error ``level_error_se`` (independent noise of SD ``noise_sd`` per size assumed; ``noise_sd`` holds one SD per
    size). ``resid_sd`` is the SD of the losses about the parabola (compare it with ``noise_rms``, the root mean
    square of ``noise_sd``). ``n_no_minimum`` and ``n_outside`` count
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
    noise_sd: np.ndarray
    n_bootstrap: int
    n_no_minimum: int
    n_outside: int
    level: float
    method: str

    @property
    def noise_rms(self) -> float:
        """The root mean square of the sizes' noise SDs: the scatter about the parabola that noise alone gives."""
        return float(np.sqrt(np.mean(self.noise_sd ** 2)))

    def _interval_text(self, ci, scale: float, fmt: str) -> str:
        """``ci`` as ``[lo, hi]``; an end beyond 100 times the largest size sampled, or below a hundredth of the
        smallest (``scale`` converts sizes to the quantity shown), is written as such: a parabola that is almost
        flat, or has no minimum, puts its vertex anywhere."""
        lo_cap, hi_cap = float(np.min(self.N)) * scale / 100, 100 * float(np.max(self.N)) * scale
        cap = ".2g" if fmt == ".2f" else fmt  # a ratio's cap can be far below 0.01, which .2f would print as 0.00
        ends = [f"{v:{fmt}}" if np.isfinite(v) and lo_cap <= v <= hi_cap else
                (f"below {lo_cap:{cap}} (1/100 of the smallest size)" if v < lo_cap else
                 f"beyond {hi_cap:{cap}} (100x the largest size)") for v in ci]
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


def heldout_isoflop(N, losses, *, predicted_N_opt: float, predicted_losses=None, noise_sd,
                    n_bootstrap: int = 2000, seed: int | None = 0, level: float = 0.95) -> HeldoutIsoFLOP:
    """Fit a parabola in ``ln N`` to a held-out IsoFLOP profile (one budget, several sizes) and score a
    predicted optimum against its minimum (Chapter 6); returns a :class:`HeldoutIsoFLOP`.

    The interval of the measured ``N_opt`` is a **parametric bootstrap**: ``n_bootstrap`` profiles simulated as
    the fitted parabola plus independent normal noise of SD ``noise_sd`` at every size (the measured noise of one
    run's loss, e.g. its seed-to-seed SD: one number for every size, or one per size, since the noise of a run
    depends on its length and the sizes of one budget train for different numbers of steps), each refitted. It
    uses the measured noise rather than the parabola's residuals because five sizes leave a parabola two degrees
    of freedom, too few to estimate a noise level.
    A simulated profile without a minimum counts as an optimum beyond the sampled size with the lower loss.
    The ratio's interval is the same interval divided by ``predicted_N_opt`` (a fixed number). Refuses fewer than
    3 sizes, a parabola that opens downwards (a maximum, not a minimum) and a minimum outside the sampled sizes
    (an extrapolation); five sizes or more are what Chapter 6 trains."""
    level = validate.check_level(level)
    N = validate.positive_array("N", N)
    losses = validate.positive_array("losses", losses)
    n = validate.same_length(N=N, losses=losses)
    if len(np.unique(N)) < 3:
        raise ValueError(f"a parabola needs at least 3 distinct sizes; got {len(np.unique(N))}. Train more sizes "
                         "at the held-out budget (Chapter 6 trains five).")
    if not (np.isfinite(predicted_N_opt) and predicted_N_opt > 0):
        raise ValueError(f"predicted_N_opt must be a positive number of parameters, got {predicted_N_opt!r}.")
    sd = np.asarray(noise_sd, dtype=float)
    if sd.ndim > 1 or (sd.ndim == 1 and len(sd) != n) or not (np.all(np.isfinite(sd)) and np.all(sd > 0)):
        raise ValueError(f"noise_sd must be a positive SD in nats (measure it, e.g. across seeds), one number or one "
                         f"per size ({n}), got {noise_sd!r}.")
    sd = np.broadcast_to(sd, (n,)).copy()
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
    sims = _vertices(x, _parabolas(x, fitted + rng.normal(0.0, 1.0, (n_bootstrap, n)) * sd))
    alpha = 1 - level
    lo, hi = np.quantile(sims, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")   # order statistics: ±inf allowed
    ci = (float(np.exp(lo)), float(np.exp(hi)))
    if predicted_losses is not None:
        pl = validate.positive_array("predicted_losses", predicted_losses)
        validate.same_length(N=N, predicted_losses=pl)
        residuals = losses - pl
        level_error, level_se = float(residuals.mean()), float(np.sqrt(np.sum(sd ** 2)) / n)
    else:
        residuals, level_error, level_se = None, float("nan"), float("nan")
    finite = np.isfinite(sims)
    return HeldoutIsoFLOP(
        N=N, losses=losses, coefs=p[0], N_opt=math.exp(v), N_opt_ci=ci, loss_opt=float(np.polyval(p[0], v)),
        predicted_N_opt=float(predicted_N_opt), ratio=math.exp(v) / predicted_N_opt,
        ratio_ci=(ci[0] / predicted_N_opt, ci[1] / predicted_N_opt), residuals=residuals, level_error=level_error,
        level_error_se=level_se, resid_sd=float(np.sqrt(np.mean((losses - fitted) ** 2) * n / max(n - 3, 1))),
        noise_sd=sd, n_bootstrap=int(n_bootstrap), n_no_minimum=int((~finite).sum()),
        n_outside=int((finite & ((sims < x.min()) | (sims > x.max()))).sum()), level=level,
        method=f"parametric bootstrap, {n_bootstrap} profiles with noise SD " + (
            f"{sd[0]:.4f} nats" if np.all(sd == sd[0]) else f"{sd.min():.4f} to {sd.max():.4f} nats by size"))


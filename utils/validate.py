"""Input checks shared by the fitters: positive finite arrays, equal lengths, enough points, a confidence level.

Each check returns the cleaned value or raises a ``ValueError``/``TypeError`` whose sentence says what
arrived and what to do. Chapter 5 explains why a power law needs positive, finite values (it lives on log
axes) and one point more than it has parameters (to estimate the noise). Used by :mod:`utils.fitting`,
:mod:`utils.chinchilla`, :mod:`utils.isoflop`, :mod:`utils.bootstrap` and :mod:`utils.allocation`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["positive_array", "same_length", "enough_points", "check_level"]


def positive_array(name: str, values, *, allow_scalar: bool = False) -> np.ndarray:
    """``values`` as a float array, refused unless it is 1-D (or a scalar, with ``allow_scalar``) and every
    entry is positive and finite; ``name`` is the argument's name in the error message (Chapter 5)."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numbers (a list or array); got {type(values).__name__}: "
                        f"{values!r:.80}") from err
    if arr.ndim == 0 and not allow_scalar:
        raise ValueError(f"{name} must be a 1-D sequence of values, got the scalar {arr.item()!r}; "
                         "pass a list or array.")
    if arr.ndim > 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}; flatten it first.")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        idx = int(np.flatnonzero(np.atleast_1d(bad))[0])
        val = np.atleast_1d(arr)[idx]
        raise ValueError(f"{name} must be positive and finite (power laws live on log axes), but "
                         f"{name}[{idx}] = {val!r}; drop or fix such points before fitting.")
    return arr


def same_length(**arrays: np.ndarray) -> int:
    """The common length of the keyword ``arrays``; a ``ValueError`` naming every length when they differ."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have the same length, got {lengths}.")
    return next(iter(lengths.values()))


def enough_points(n: int, n_params: int, what: str) -> None:
    """Refuse ``n`` points for a law ``what`` with ``n_params`` parameters unless ``n >= n_params + 1``."""
    if n < n_params + 1:
        raise ValueError(f"{what} has {n_params} parameters and needs at least {n_params + 1} points "
                         f"(one more, to estimate the noise); got {n}.")


def check_level(level: float) -> float:
    """``level`` as a float, refused unless it is a probability strictly between 0 and 1 (e.g. 0.95)."""
    if not (0.0 < float(level) < 1.0):
        raise ValueError(f"level must be a probability between 0 and 1 (e.g. 0.95), got {level!r}.")
    return float(level)

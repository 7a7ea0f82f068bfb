"""IsoFLOP profiles (Hoffmann et al. 2022, Approach 2; Chapter 6): for each compute budget, a parabola in
``ln N`` through the losses of that budget's runs, its minimum ``N_opt``, and power laws ``N_opt ∝ C^a`` and
``D_opt ∝ C^b`` fitted to those minima with :func:`utils.fitting.fit_power_law`.

A budget's minimum is flagged untrustworthy (with the reason) when it has fewer than 3 model sizes, its
parabola opens downwards, or the minimum lies outside the sizes that were run. NumPy only.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .fitting import PowerLawFit, fit_power_law
from .validate import positive_array, same_length

__all__ = ["IsoFLOPMinima", "isoflop_minima"]


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
    """The first of ``keys`` that every run has, as a float array (``rows`` a list of dicts or a dict of
    columns); ``None`` when none is there and the column is not ``required``."""
    for k in keys:
        if isinstance(rows, Mapping):
            if k in rows:
                return np.asarray(rows[k], dtype=float)
        elif all(k in r for r in rows):
            return np.array([r[k] for r in rows], dtype=float)
    if required:
        raise ValueError(f"runs need a value for {' or '.join(repr(k) for k in keys)} in every run.")
    return None


def _budget_groups(C: np.ndarray, rtol: float) -> list[list]:
    """Indices of the runs of each IsoFLOP profile, budgets in increasing order: the runs sorted by ``C``, and a
    new profile wherever a run's ``C`` exceeds the first ``C`` of the current one by more than ``rtol``."""
    order = np.argsort(C, kind="stable")
    groups, current = [], [order[0]]
    for i in order[1:]:
        if C[i] <= C[current[0]] * (1 + rtol):
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    groups.append(current)
    return groups


def _profile_minimum(c_b: float, N: np.ndarray, loss: np.ndarray, D: np.ndarray) -> dict:
    """One IsoFLOP profile (budget ``c_b``; its runs' ``N``, ``loss``, ``D``) as a row of :class:`IsoFLOPMinima`:
    the parabola in ``ln N`` and its minimum, with ``valid=False`` and a ``note`` when it cannot be trusted."""
    x, l_, d_ = np.log(N), loss, np.log(D)
    n_sizes = len(np.unique(np.round(x, 9)))
    row = dict(C=c_b, N_opt=np.nan, D_opt=np.nan, loss_opt=np.nan, n_runs=len(N), curvature=np.nan,
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
                               f"[{N.min():.3g}, {N.max():.3g}]: extend the range of sizes")
            else:
                row["valid"] = True
    return row


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
    C = positive_array("C", _column(runs, ("C", "budget", "flops")))
    N = positive_array("N", _column(runs, ("N", "n_params")))
    loss = positive_array("loss", _column(runs, ("loss", "final_val_loss", "val_loss")))
    D = _column(runs, ("D", "tokens", "tokens_seen"), required=False)
    D = C / (6 * N) if D is None else positive_array("D", D)
    same_length(C=C, N=N, loss=loss, D=D)

    keys = ("C", "N_opt", "D_opt", "loss_opt", "n_runs", "curvature", "valid", "note", "coefs")
    out: dict[str, list] = {k: [] for k in keys}
    for idx in _budget_groups(C, rtol):
        idx = np.asarray(idx)
        c_b = float(np.exp(np.log(C[idx]).mean()))
        row = _profile_minimum(c_b, N[idx], loss[idx], D[idx])
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

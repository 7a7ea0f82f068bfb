"""The sensitivity table of Chapter 6: the allocation analysis again under other reasonable choices (IsoFLOP window,
shortest run kept, parameter count, most tokens kept), one choice changed at a time.

:func:`sensitivity` runs :func:`utils.allocation_core.analyse_reusing` once per row and collects the rows in a
:class:`SensitivityTable`; :mod:`utils.allocation` re-exports both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .allocation_core import (EQUIVALENCE_MARGIN, AllocationResult, analyse_reusing, check_options, check_runs, column,
                              describe_choice, param_field)

__all__ = ["SensitivityTable", "sensitivity"]

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
    """One table row (keys :data:`_ROW_KEYS` and ``mc``) from an analysis, or an empty row with ``note``."""
    if res is None:
        return dict(zip(_ROW_KEYS, (varied, setting, 0) + (float("nan"),) * 3 + (0,) + (float("nan"),) * 3 + (0,)
                        + (float("nan"),) * 3 + (note,)))
    return {"varied": varied, "setting": setting, "n_runs": res.n_runs, "a2": res.a2, "a2_lo": res.a2_ci[0],
            "a2_hi": res.a2_ci[1], "a2_failed": res.a2_failed, "a_joint": res.a_joint, "a_joint_lo": res.a_joint_ci[0],
            "a_joint_hi": res.a_joint_ci[1], "a_joint_failed": res.a_joint_failed, "diff": res.diff,
            "diff_lo": res.diff_ci[0], "diff_hi": res.diff_ci[1], "note": note,
            "mc": float(np.nanmax(np.concatenate([res.a2_mc, res.a_joint_mc, res.diff_mc])))}


def sensitivity(runs, *, windows: Sequence = (2, 3, None), min_steps: Sequence | None = None,
                param_counts: Sequence[str] = ("total", "non_embedding"), baseline: Mapping | None = None,
                n_bootstrap: int = 100, seed: int | None = 0, level: float = 0.95, n_starts: int | None = 8,
                workers: int | None = None, resampling: str = "parametric", trunk_sd: float | None = None,
                noise_sd: float | None = None, max_tokens: Sequence = ()) -> SensitivityTable:
    """``a`` from both estimators under other reasonable choices, one choice changed at a time (Chapter 6);
    returns a :class:`SensitivityTable` (print it, or ``.to_markdown()``).

    Starting from ``baseline`` (a dict of :func:`utils.allocation_core.analyse`'s ``window``, ``min_steps`` and
    ``param_count``; default ``window=2``, every run, total parameters) it varies the IsoFLOP window over
    ``windows``, the shortest run kept over ``min_steps`` (default: every run, and runs of at least 2 and 4 times
    the shortest run's steps) and the parameter count over ``param_counts``; each value in ``max_tokens`` adds a row
    without the runs of more tokens than it (pass the training split's length to keep only runs that read each token
    at most once). Every row is a full :func:`utils.allocation_core.analyse` with ``n_bootstrap`` paired resamples
    made as ``resampling`` says, with ``trunk_sd`` and ``noise_sd`` as in :func:`utils.allocation_core.analyse` (an
    SD left ``None`` is measured again for each set of runs; the joint fit and its resamples are remade only when
    the runs or the parameter count change), and reports its failed resamples. A choice that leaves too little data
    gives a row with a ``note`` saying why, instead of an error."""
    runs = check_runs(runs)
    base = {"window": 2, "min_steps": None, "param_count": "total", **(baseline or {})}
    if set(base) != {"window", "min_steps", "param_count"}:
        raise ValueError(f"baseline takes the keys window, min_steps and param_count; got {sorted(base)}.")
    if min_steps is None:
        shortest = int(min(column(runs, "steps")))
        min_steps = (None, 2 * shortest, 4 * shortest)
    noise = {"trunk_sd": trunk_sd, "noise_sd": noise_sd}
    configs = [("baseline", base)]
    for key, values in (("window", windows), ("min_steps", min_steps), ("param_count", param_counts)):
        configs += [(key, {**base, key: v}) for v in values if v != base[key]]
    for _, cfg in configs:   # a bad choice is the caller's error, not a row
        check_options(n_bootstrap, level, EQUIVALENCE_MARGIN, cfg["window"], resampling, noise)
        param_field(cfg["param_count"])
        if cfg["min_steps"] is not None and not (isinstance(cfg["min_steps"], (int, np.integer)) and cfg["min_steps"] >= 1):
            raise ValueError(f"min_steps values must be positive whole numbers or None, got {cfg['min_steps']!r}.")
    for cap in max_tokens:
        if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
            raise ValueError(f"max_tokens values must be positive whole numbers of tokens, got {cap!r}; pass, for "
                             "example, the length of the training split to keep the runs that read it at most once.")

    def analysed(name: str, label: str, kept: list, parts: dict, cfg: Mapping) -> dict:
        """One row: the whole analysis of ``kept`` under ``cfg``, or a note that says why it failed."""
        try:
            res = analyse_reusing(kept, parts, n_bootstrap=n_bootstrap, seed=seed, level=level,
                                  margin=EQUIVALENCE_MARGIN, n_starts=n_starts, workers=workers, cost=None,
                                  resampling=resampling, noise=noise, **cfg)
            return _row(name, label, res)
        except ValueError as err:
            return _row(name, label, None, note=str(err))

    parts: dict = {}
    rows = []
    for varied, cfg in configs:
        label = "; ".join(describe_choice(k, cfg[k]) for k in ("window", "min_steps", "param_count")) \
            if varied == "baseline" else describe_choice(varied, cfg[varied])
        name = {"window": "IsoFLOP window", "min_steps": "shortest run kept", "param_count": "parameter count"
                }.get(varied, varied)
        rows.append(analysed(name, label, runs, parts, cfg))
    tokens = np.asarray(column(runs, "D"), dtype=float) if len(max_tokens) else None
    for cap in max_tokens:   # other runs, so their own joint fit and resamples (a fresh ``parts``)
        kept = [r for r, d in zip(runs, tokens) if d <= cap]
        label = describe_choice("max_tokens", int(cap))
        rows.append(analysed("most tokens kept", label, kept, {}, base) if kept else
                    _row("most tokens kept", label, None, note=f"no run has {int(cap):,} tokens or fewer."))
    return SensitivityTable(rows=rows, level=level, n_bootstrap=n_bootstrap, resampling=resampling)


"""A sweep's results file: where it lives, how it is read, appended and repaired, and its summary (Chapter 6).

Every point's result is one JSON line in a file in ``runtime.cache_dir('sweeps')`` named by the grid's
hash (:func:`results_path`). Lines are appended as soon as a trunk ends and forced to the disk
(:func:`_append`), so a killed sweep loses nothing it finished; a line that a kill cut short is
reported (file and line) by :func:`load_results`, its point counts as not done, and the next write
drops it. Cluster jobs write one file per trunk into :func:`parts_dir`, merged on read by
:func:`load_all_results`. :func:`_record` builds a result line from a point and its training result;
:func:`summary` prints results as a table.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterable

from . import runtime
from .grids import SCHEMA_VERSION, SweepGrid, plan

__all__ = ["results_path", "load_results", "load_all_results", "parts_dir", "missing_points", "summary"]


def results_path(grid: SweepGrid, kind: str = "sweep") -> Path:
    """Where ``grid``'s results live: ``runtime.cache_dir('sweeps') / '<name>-<key>.jsonl'``
    (``kind`` other than ``'sweep'`` names a file of extra runs, e.g. ``'schedule'`` or ``'heldout'``)."""
    suffix = "" if kind == "sweep" else f"-{kind}"
    return runtime.cache_dir("sweeps") / f"{grid.name}-{grid.key()}{suffix}.jsonl"


def _scan(path: Path) -> tuple[list[tuple[int, str, dict]], list[tuple[int, str]]]:
    """Read a results file: its results as ``(line number, line, record)`` and its damaged lines as
    ``(line number, line)``. A damaged line is not valid JSON (a write cut short by a kill) or is valid
    JSON but not a result (not a dict with ``"run"``); blank lines are neither."""
    good, damaged = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if isinstance(rec, dict) and "run" in rec:
            good.append((number, line, rec))
        else:
            damaged.append((number, line))
    return good, damaged


def _report_damage(path: Path, number: int, line: str, good: list) -> None:
    """Print to stderr which line of ``path`` was skipped and what happens to its point (Chapter 6)."""
    name = re.match(r'\{"run": "([^"]+)"', line)  # a result line starts with its point's name
    holder = next((n for n, _, r in good if name and r["run"] == name.group(1)), None)
    if holder is not None:
        fate = f"line {holder} holds point {name.group(1)} intact, so nothing is trained again"
    else:
        point = f"point {name.group(1)}" if name else "the point it held"
        fate = f"{point} counts as not done and will be trained again"
    print(f"Damaged result skipped: {path}, line {number} is not a complete result (a write cut short, e.g. by "
          f"a killed run); {fate}; the line is removed the next time results are written to this file.",
          file=sys.stderr, flush=True)


def load_results(path) -> list[dict]:
    """The results in a JSON-lines file (``[]`` if it does not exist).

    A damaged line (not valid JSON, as a run killed while writing leaves it, or not a dict with ``"run"``)
    is reported on stderr, naming the file and the line, and skipped: its point counts as not done and
    is trained again, and the next write to the file (:func:`_append`) drops the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    good, damaged = _scan(path)
    for number, line in damaged:
        _report_damage(path, number, line, good)
    return [rec for _, _, rec in good]


def _append(path: Path, records: Iterable[dict]) -> None:
    """Append JSON lines and make sure they reached the disk (a kill right after loses nothing).

    If the file holds damaged lines (:func:`load_results`), it is rewritten without them instead:
    its results, then ``records``, into a temporary file beside it that replaces it in one step
    (``os.replace``), so a kill at any moment leaves either the old file or the new one."""
    path = Path(path)
    good, damaged = _scan(path) if path.exists() else ([], [])
    if damaged:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for _, line, _ in good)
            f.writelines(json.dumps(record) + "\n" for record in records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    with open(path, "a+", encoding="utf-8") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:  # a killed write may have left a complete line without its newline
            f.seek(f.tell() - 1)
            last = f.read(1)
            f.seek(0, os.SEEK_END)
            if last != "\n":
                f.write("\n")
        for record in records:
            f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def parts_dir(path) -> Path:
    """The folder next to a results file where cluster jobs write one file per trunk
    (:func:`utils.cluster.submit_sweep`)."""
    path = Path(path)
    return path.with_name(path.stem + ".parts")


def load_all_results(path) -> list[dict]:
    """The results of a sweep: its results file and, merged on read, the one-file-per-trunk results that
    cluster jobs wrote into :func:`parts_dir` (no two writers ever share a file). The first line for
    a point wins."""
    out, seen = [], set()
    files = [Path(path)] + sorted(parts_dir(path).glob("*.jsonl")) if parts_dir(path).is_dir() else [Path(path)]
    for f in files:
        for r in load_results(f):
            if r["run"] not in seen:
                seen.add(r["run"])
                out.append(r)
    return out


def missing_points(grid: SweepGrid, path=None) -> list[dict]:
    """The planned points of ``grid`` that its results (file and cluster parts) do not hold yet."""
    done = {r["run"] for r in load_all_results(results_path(grid) if path is None else path)}
    return [r for r in plan(grid) if r["run"] not in done]


def _record(spec: dict, res, grid: SweepGrid, trunk_loss: float | None, trunk_time: float,
            trunk_cpu: float | None = None) -> dict:
    """One result line: the point's plan plus what training measured. ``trunk_cpu``: the processor seconds of
    the process that trained the trunk (``time.process_time``), which other programs on a busy machine do not
    inflate as they do the wall-clock ``trunk_time``; ``None`` where it would not measure the training (a GPU)."""
    ln2 = math.log(2)
    rec = dict(spec)
    rec.update({
        "grid": f"{grid.name}-{grid.key()}", "schema": SCHEMA_VERSION,
        "D": int(res.tokens_seen), "n_params": int(res.n_params),
        "n_params_non_embedding": int(res.n_params_non_embedding), "flops": float(res.flops),
        "final_train_loss": float(res.final_train_loss), "final_val_loss": float(res.final_val_loss),
        "final_train_bpc": float(res.final_train_loss) / ln2, "final_val_bpc": float(res.final_val_loss) / ln2,
        "constant_lr_val_loss": None if trunk_loss is None else float(trunk_loss),
        "wall_time_s": float(res.wall_time_s), "trunk_wall_time_s": float(trunk_time),
        "trunk_cpu_time_s": None if trunk_cpu is None else float(trunk_cpu),
        "device": str(getattr(res, "device", "")),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    rec["tokens_per_param"] = rec["D"] / rec["N"]
    rec["C"] = float(spec["flops_per_token"] * rec["D"])
    rec["history"] = [{k: h[k] for k in ("step", "tokens", "train_loss", "val_loss", "lr") if k in h}
                      for h in getattr(res, "history", [])][-1:]
    return rec



def summary(results: Iterable[dict]) -> str:
    """A plain-text table of results, one line per point, grouped by size."""
    rows = sorted(results, key=lambda r: (r["N"], r["D"]))
    if not rows:
        return "(no results)"
    head = (f"{'run':<20}{'N':>9}{'D':>11}{'D/N':>8}{'C (FLOPs)':>11}{'C/6ND':>7}{'val nats':>10}"
            f"{'val bpc':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['run']:<20}{r['N']:>9,d}{r['D']:>11,d}{r['D'] / r['N']:>8.1f}{r['C']:>11.3g}"
                     f"{r['C'] / r['C_6ND']:>7.2f}{r['final_val_loss']:>10.4f}{r['final_val_bpc']:>9.4f}")
    trunk_time = {r["trunk"]: r["trunk_wall_time_s"] for r in rows}
    best = min(rows, key=lambda r: r["final_val_loss"])
    lines.append(f"{len(rows)} points from {len(trunk_time)} trunks, {sum(trunk_time.values()) / 60:.1f} min of "
                 f"training; lowest validation loss {best['final_val_loss']:.4f} nats "
                 f"({best['final_val_bpc']:.4f} bits/char) by {best['run']}.")
    return "\n".join(lines)


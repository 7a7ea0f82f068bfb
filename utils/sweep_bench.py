"""The sweep's benchmark: points per minute with cool-down branches against one cosine run per point (Chapter 6).

``python -m utils.sweep --bench`` runs :func:`bench` and prints it with the machine (:func:`_cpu_name`)
and the load of other processes (:func:`_load`) at its start and end; ``benchmarks/`` keeps recorded runs.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from . import runtime
from .grids import SweepGrid, grid_for, plan
from .sweep_run import _train_points, default_workers

__all__ = ["bench"]


def bench(grid: SweepGrid | str = "quick", sizes: tuple | None = None, workers: int | None = None,
          out_dir=None, progress: bool = True) -> dict:
    """Points per minute: cool-down branches against one cosine run per point, side by side (Chapter 6).

    Trains the IsoFLOP and shared-step points of ``sizes`` (default: three widths from the middle of
    the ladder) twice from scratch, in fresh files under ``out_dir``: first every point as its own run
    with a cosine schedule over its length (the sweep's design until this chapter's rewrite), then with
    one ``wsd`` trunk per size and a cool-down branch per point. Same workers, same machine, back to
    back. Returns (and :func:`utils.sweep.main` prints) points, seconds, points per minute and their ratio."""
    import tempfile

    grid = grid_for(grid) if isinstance(grid, str) else grid
    if sizes is None:
        mid = len(grid.sizes) // 2
        sizes = tuple(grid.sizes[max(0, mid - 2):mid + 1])
    pts = [p for p in plan(grid) if (p["n_layer"], p["n_embd"]) in set(map(tuple, sizes))]
    if not pts:
        raise ValueError(f"none of the sizes {sizes!r} has points in grid {grid.name!r}.")
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    separate = []
    for p in pts:
        q = dict(p)
        q["train_config"] = grid.train_config(p["steps"], p["n_embd"], schedule="cosine")
        q["trunk"] = p["run"]  # its own run
        separate.append(q)
    timings = {}
    for name, todo in (("separate cosine runs", separate), ("wsd trunks with branches", pts)):
        path = out / f"{name.split()[0]}.jsonl"
        if path.exists():
            path.unlink()
        t0 = time.perf_counter()
        _train_points(grid, todo, path, None, None, progress, None, None, workers, desc=name, total=len(todo))
        timings[name] = time.perf_counter() - t0
    res = {"grid": grid.name, "grid_key": grid.key(), "sizes": [list(s) for s in sizes], "points": len(pts),
           "workers": workers if workers is not None else default_workers(), "cores": runtime.usable_cores()}
    for name, sec in timings.items():
        res[name] = {"seconds": round(sec, 3), "points_per_minute": round(60 * len(pts) / sec, 2)}
    res["ratio"] = round(timings["separate cosine runs"] / timings["wsd trunks with branches"], 2)
    res["date"] = time.strftime("%Y-%m-%d")
    return res



def _cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()  # pragma: no cover


def _load() -> str:
    """The 1-minute load average (runnable processes) as text, or 'unknown' where the OS does not say."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):  # pragma: no cover - not Unix
        return "unknown"


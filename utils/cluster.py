"""A sweep on a cluster: one submitit job per trunk, each writing a results file of its own (Chapter 6;
"Beyond one machine" in How to use this course).

:func:`submit_sweep` sends every trunk whose points are still missing as a job (SLURM, or submitit's
``local`` and ``debug`` executors); each job trains its trunk like :func:`utils.sweep_run.run_sweep`
does and writes its points atomically into :func:`utils.sweep_results.parts_dir`, where
:func:`utils.sweep_results.load_all_results` merges them on read.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import runtime
from .grids import SweepGrid, grid_for, plan, trunks
from .sweep_results import load_all_results, missing_points, parts_dir, results_path
from .sweep_run import _train_trunk

__all__ = ["submit_sweep", "DEFAULT_TIMEOUT_MIN"]

DEFAULT_TIMEOUT_MIN = 240  # a cluster job's time limit when none is given (--timeout_min on the command line)


def _cluster_job(trunk: dict, grid: SweepGrid, out_file: str, device: str | None) -> int:
    """One cluster job: train one trunk and write its points to a file of its own (atomically)."""
    from .data import load_dataset
    from .train import train

    overrides = {} if device is None else {"device": device}
    recs = _train_trunk(trunk, grid, train, load_dataset(), overrides)
    out = Path(out_file)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    os.replace(tmp, out)  # a job killed mid-write leaves no half file behind
    return len(recs)


def submit_sweep(grid: SweepGrid | str | None = None, *, executor: str = "slurm", path=None, folder=None,
                 wait: bool = True, device: str | None = None, timeout_min: int = DEFAULT_TIMEOUT_MIN,
                 **parameters) -> list:
    """Submit the sweep's missing trunks as cluster jobs with submitit (SLURM, or its ``local`` and ``debug``
    executors); return the jobs (``wait=False``) or, after they finish, all results (Chapter 6, "Beyond one
    machine" in How to use).

    Each job trains one trunk and writes its points to its own file in :func:`~utils.sweep_results.parts_dir`, merged on
    read by :func:`~utils.sweep_results.load_all_results`, so no two jobs ever write to one file. Submitting again after an
    interruption sends only the trunks whose points are still missing. ``folder`` holds submitit's logs
    (default: in the course cache; on SLURM it must be on a file system the compute nodes share, like
    the cache itself). ``parameters`` go to ``executor.update_parameters`` (e.g. ``slurm_partition="gpu"``,
    ``gpus_per_node=1``, ``cpus_per_task=4``). Needs ``pip install submitit``.
    """
    try:
        import submitit
    except ImportError:  # pragma: no cover - an optional dependency
        raise ImportError("submit_sweep needs submitit: pip install submitit (Python 3.11 or newer).") from None
    if executor not in ("slurm", "local", "debug"):
        raise ValueError(f"executor must be 'slurm', 'local' or 'debug', got {executor!r}.")
    if grid is None or isinstance(grid, str):
        grid = grid_for(grid)
    path = results_path(grid) if path is None else Path(path)
    parts = parts_dir(path)
    parts.mkdir(parents=True, exist_ok=True)
    work = trunks(grid, missing_points(grid, path))
    folder = Path(folder) if folder is not None else runtime.cache_dir("sweeps", "submitit", f"{grid.name}-{grid.key()}")
    ex = submitit.AutoExecutor(folder=str(folder) + "/%j", cluster=executor)
    ex.update_parameters(timeout_min=int(timeout_min), name=f"sweep-{grid.name}", **parameters)
    jobs = [ex.submit(_cluster_job, t, grid, str(parts / f"{t['trunk']}.jsonl"), device) for t in work]
    if not wait:
        return jobs
    for job in jobs:
        job.result()  # raises with the job's traceback if it failed
    by_name = {r["run"]: r for r in load_all_results(path)}
    return [by_name[p["run"]] for p in plan(grid) if p["run"] in by_name]



"""The scaling sweep: a grid of (model size x token count) points, bought with cool-down branches.

Chapter 6 runs it and fits scaling laws to what it writes. A :class:`SweepGrid` names a ladder
of model shapes, a few compute budgets ``C`` (training FLOPs, counted with the course's one count
:func:`utils.attention.train_flops_per_token`) and a few shared step counts. Every size gets a
*point* at ``D = C / flops_per_token`` tokens for each budget (the budget's runs form one
*IsoFLOP* profile, Hoffmann et al. 2022, Approach 2), and one at each shared step count (the
points of all sizes at one step count give ``L(N)`` at fixed ``D``).

Every point is what a warm-up, constant, cool-down (``wsd``) run of its length would end with
(Hägele et al. 2024). Such runs share everything before their cool-downs, so each size is trained
**once**, as one *trunk*, and a short cool-down is branched off at every point's length
(:func:`utils.train.train` with ``branches``): a size pays for its longest run plus a fifth of the
others, instead of for all of them. ``python -m utils.sweep --bench`` measures the gain against
training every point separately with its own cosine schedule, the way the course did before.

Finished trunks are appended at once, one JSON line per point, to a results file in
``runtime.cache_dir('sweeps')`` named by a hash of the grid, and points already in the file are
skipped: a killed sweep resumes with the unfinished sizes, and a finished one loads in a second. A line
that a kill cut short is reported (file and line), its point is trained again, and the next write drops it.

The sweep's parts live in modules of their own, and this one is the front door that Chapter 6 imports
(it re-exports them all) and the command line:

- :mod:`utils.grids`: the grid (:class:`SweepGrid`, :data:`GRIDS`), its points (:func:`plan`, its design
  checks, :func:`make_point`) and the trunks that train them (:func:`trunks`);
- :mod:`utils.sweep_results`: the results file (:func:`results_path`, :func:`load_results`, the repair of
  a line cut short) and :func:`summary`;
- :mod:`utils.sweep_run`: training (:func:`run_sweep`, worker processes, :func:`train_points`,
  :func:`schedule_check`);
- :mod:`utils.cluster`: the same trunks as cluster jobs (:func:`submit_sweep`);
- :mod:`utils.sweep_bench`: branches against separate runs (:func:`bench`).

Command line (prints a summary table)::

    python -m utils.sweep --profile quick          # the quick sweep (a few minutes on a 2-core CPU)
    python -m utils.sweep --profile full --list    # the plan only, no training
    python -m utils.sweep --bench                  # branches against separate runs, side by side
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import runtime

# The sweep's parts, re-exported: Chapter 6, Chapter 3, the GPU check and the tests import them from here.
from .cluster import DEFAULT_TIMEOUT_MIN, submit_sweep
from .grids import (GRIDS, MAX_WARMUP_FRACTION, MIN_POINTS_BESIDE, SCHEMA_VERSION, SweepGrid, decades, grid_for,
                    lr_for_width, make_point, plan, shape_for_params, trunks)
from .sweep_bench import _cpu_name, _load, bench
from .sweep_results import load_all_results, load_results, missing_points, parts_dir, results_path, summary
from .sweep_run import default_workers, run_sweep, schedule_check, train_points

__all__ = ["SweepGrid", "GRIDS", "grid_for", "plan", "trunks", "results_path", "load_results", "load_all_results",
           "parts_dir", "submit_sweep", "run_sweep",
           "missing_points", "summary", "decades", "default_workers", "shape_for_params", "lr_for_width",
           "train_points", "schedule_check", "bench", "main", "make_point"]


def _plan_table(grid: SweepGrid) -> str:
    """The plan as ``--list`` prints it: a line on the grid (points, trunks, decades of N, optimiser steps with
    branches and as separate runs), then one line per point."""
    runs = plan(grid)
    tr = trunks(grid)
    steps_branch = sum(t["steps"] for t in tr)
    steps_sep = sum(r["steps"] for r in runs)
    lines = [f"grid {grid.name} ({grid.key()}): {len(runs)} points from {len(tr)} trunks, N from "
             f"{min(r['N'] for r in runs):,} to {max(r['N'] for r in runs):,} ({decades(grid):.2f} decades); "
             f"{steps_branch:,.0f} optimiser steps with branches, {steps_sep:,} as separate runs"]
    for r in runs:
        lines.append(f"  {r['run']:<20} N={r['N']:>9,d}  steps={r['steps']:>6}  D={r['D']:>10,d}  "
                     f"D/N={r['tokens_per_param']:>7.1f}  C/6ND={r['C'] / r['C_6ND']:.2f}  "
                     f"lr={r['train_config']['lr']:.2g}")
    return "\n".join(lines)



# The command's modes: "--list", "--bench", "--executor", or "" (train here). Each flag below works in some of
# them; given in another, it would be ignored, so the command stops and says so instead.
_FLAG_MODES = {
    "out": (("", "--executor"), "names the sweep's results file"),
    "max_trunks": (("",), "stops after that many sizes"),
    "device": (("", "--executor"), "picks the device the sweep's runs train on"),
    "workers": (("", "--bench"), "sets how many runs train at once on this machine"),
    "whole": (("--bench",), "adds the whole grid, trained from scratch, to the benchmark"),
    "save": (("--bench",), "writes the benchmark's JSON result to a file"),
    "gpus_per_node": (("--executor",), "sets the GPUs of each job"),
    "timeout_min": (("--executor",), "sets each job's time limit"),
    "no_wait": (("--executor",), "returns as soon as the jobs are submitted"),
}


def _check_flags(p: argparse.ArgumentParser, args) -> None:
    """Stop with a usage error (``p.error``, exit status 2) on a flag the chosen mode would ignore, naming
    the flag and the one it needs, or on a flag value that cannot work."""
    modes = [m for m in ("--list", "--bench", "--executor") if getattr(args, m[2:]) not in (None, False)]
    if len(modes) > 1:
        p.error(f"{modes[0]} and {modes[1]} cannot be combined: choose one.")
    mode = modes[0] if modes else ""
    if args.partition is not None and args.executor != "slurm":
        p.error("--partition needs --executor slurm: it names the SLURM partition of the jobs; "
                + ("add --executor slurm or drop --partition." if args.executor is None
                   else f"--executor {args.executor} has no partitions, so drop --partition."))
    where = {"": "when the sweep trains here", "--bench": "with --bench", "--executor": "with --executor"}
    for dest, (allowed, what) in _FLAG_MODES.items():
        value = getattr(args, dest)
        if value is None or value is False or mode in allowed:
            continue
        flag = "--" + dest
        if mode == "" and "" not in allowed:
            p.error(f"{flag} needs {allowed[0]}: it {what}; add {allowed[0]} or drop {flag}.")
        p.error(f"{flag} does not apply with {mode}: it {what} "
                f"{' or '.join(where[m] for m in allowed)}; drop {flag}.")
    if args.timeout_min is not None and args.timeout_min < 1:
        p.error(f"--timeout_min must be at least 1 minute, got {args.timeout_min}.")
    if args.gpus_per_node is not None and args.gpus_per_node < 0:
        p.error(f"--gpus_per_node must be 0 or more, got {args.gpus_per_node}.")



def _parser() -> argparse.ArgumentParser:
    """The command line's options (:func:`main`)."""
    p = argparse.ArgumentParser(prog="python -m utils.sweep",
                                description="Train the scaling sweep of a profile (skipping finished points) "
                                            "and print a summary.")
    p.add_argument("--profile", choices=sorted(GRIDS), default=None,
                   help="grid to run (default: the current profile, quick on a CPU)")
    p.add_argument("--out", default=None, help="results file (default: in the course cache, named by the grid)")
    p.add_argument("--list", action="store_true", help="print the planned points and exit without training")
    p.add_argument("--bench", action="store_true",
                   help="train three sizes' points as separate cosine runs and as branches; print both and the ratio")
    p.add_argument("--whole", action="store_true",
                   help="with --bench: also train the whole grid from scratch with branches and time it")
    p.add_argument("--save", default=None, help="with --bench: also write the JSON result to this file")
    p.add_argument("--executor", choices=("slurm", "local", "debug"), default=None,
                   help="submit the missing trunks as cluster jobs with submitit instead of training here")
    p.add_argument("--partition", default=None, help="with --executor slurm: the SLURM partition")
    p.add_argument("--gpus_per_node", type=int, default=None, help="with --executor: GPUs per job")
    p.add_argument("--timeout_min", type=int, default=None,
                   help=f"with --executor: time limit per job in minutes (default {DEFAULT_TIMEOUT_MIN})")
    p.add_argument("--no_wait", action="store_true", help="with --executor: submit and return without waiting")
    p.add_argument("--max_trunks", type=int, default=None, help="stop after this many sizes")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--workers", type=int, default=None,
                   help="runs trained at once on the CPU, one thread each (default: one per core, at most 8)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _bench_command(grid: SweepGrid, args) -> int:
    """``--bench``: run :func:`bench` (and with ``--whole`` the whole grid), print it, ``--save`` it; return 0."""
    load_start = _load()
    res = bench(grid, workers=args.workers, progress=not args.no_progress)
    for name in ("separate cosine runs", "wsd trunks with branches"):
        print(f"{name:>26}: {res['points']} points in {res[name]['seconds']:7.1f} s = "
              f"{res[name]['points_per_minute']:6.2f} points/min")
    print(f"{'ratio':>26}: {res['ratio']:.2f}x more points per minute with branches")
    if args.whole:
        import tempfile
        path = Path(tempfile.mkdtemp(prefix="sweep-whole-")) / "whole.jsonl"
        t0 = time.perf_counter()
        whole = run_sweep(grid, path=path, progress=not args.no_progress, workers=args.workers)
        sec = time.perf_counter() - t0
        res["whole sweep"] = {"points": len(whole), "seconds": round(sec, 1),
                              "points_per_minute": round(60 * len(whole) / sec, 2)}
        print(f"{'whole ' + grid.name + ' sweep':>26}: {len(whole)} points in {sec:7.1f} s = "
              f"{60 * len(whole) / sec:6.2f} points/min")
    res["machine"] = f"{runtime.usable_cores()} usable cores; {_cpu_name()}"
    res["load"] = f"1-minute load average {load_start} at the start, {_load()} at the end (other processes)"
    print(json.dumps(res))
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(res, indent=1) + "\n")
    return 0


def _submit_command(grid: SweepGrid, path: Path, args) -> int:
    """``--executor``: submit the missing trunks (:func:`submit_sweep`), then print the summary or the jobs;
    return 0."""
    params = {}
    if args.partition:
        params["slurm_partition"] = args.partition
    if args.gpus_per_node is not None:
        params["gpus_per_node"] = args.gpus_per_node
    out = submit_sweep(grid, executor=args.executor, path=path, wait=not args.no_wait, device=args.device,
                       timeout_min=args.timeout_min or DEFAULT_TIMEOUT_MIN, **params)
    if args.no_wait:
        print(f"submitted {len(out)} jobs: {', '.join(str(j.job_id) for j in out)}; results go to {parts_dir(path)}")
    else:
        print(summary(out))
        print(f"results: {path} and {parts_dir(path)} ({len(out)}/{len(plan(grid))} points)")
    return 0


def main(argv=None) -> int:
    """Command-line entry point: run (or resume) a profile's sweep and print a summary table, print the
    plan (``--list``), measure branches against separate runs (``--bench``), or submit the sweep as cluster
    jobs (``--executor``).

    Returns 0 (the exit status; the ``course-sweep`` script passes it to ``sys.exit``)."""
    p = _parser()
    args = p.parse_args(argv)
    _check_flags(p, args)
    grid = grid_for(args.profile)
    if args.list:
        print(_plan_table(grid))
        return 0
    if args.bench:
        return _bench_command(grid, args)
    path = Path(args.out) if args.out else results_path(grid)
    if args.executor:
        return _submit_command(grid, path, args)
    t0 = time.perf_counter()
    results = run_sweep(grid, path=path, progress=not args.no_progress, device=args.device,
                        max_trunks=args.max_trunks, workers=args.workers)
    print(summary(results))
    print(f"results: {path} ({len(results)}/{len(plan(grid))} points; {time.perf_counter() - t0:.1f} s this call)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

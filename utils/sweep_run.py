"""Running a sweep: trunks trained one after another or in worker processes, results appended as they end.

:func:`run_sweep` trains every point of a grid that its results file does not hold yet (Chapter 6);
:func:`train_points` trains extra points outside the plan into a file of their own, and
:func:`schedule_check` uses it to train cool-down branches beside cosine runs with a second seed. Each
size's points come from one trunk (:func:`utils.grids.trunks`), trained by :func:`utils.train.train`
with its branches (:func:`_train_trunk`); on the CPU several trunks train at once in spawned worker
processes with one thread each (:func:`default_workers`).
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from . import runtime
from .grids import SweepGrid, grid_for, make_point, plan, trunks
from .sweep_results import _append, _record, load_all_results, load_results, missing_points, results_path

__all__ = ["run_sweep", "train_points", "schedule_check", "default_workers"]


def _train_trunk(trunk: dict, grid: SweepGrid, train_fn: Callable, dataset, overrides: dict) -> list[dict]:
    """Train one size's trunk with its branches; return the result lines of its points."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_fn(trunk["model_config"], {**trunk["train_config"], **overrides}, dataset, progress=False,
                   branches=trunk["branches"])
    spent, cpu = time.perf_counter() - t0, time.process_time() - c0
    by_steps = {b.iters: b for b in res.branches}
    by_steps[res.iters] = res
    from .schedule import cooldown_steps

    # the trunk's own loss at a branch's length is a constant-rate loss only before the trunk cools down itself
    own_cool_start = res.iters - cooldown_steps(res.iters, SimpleNamespace(cooldown_fraction=grid.cooldown_fraction))
    trunk_loss = {h["step"]: h["val_loss"] for h in res.history if h["step"] <= own_cool_start}
    on_cpu = str(getattr(res, "device", "cpu")).startswith("cpu")
    return [_record(p, by_steps[p["steps"]], grid, trunk_loss.get(p["steps"]), spent, cpu if on_cpu else None)
            for p in trunk["points"]]


def run_sweep(grid: SweepGrid | str | None = None, *, path=None, dataset=None,
              train_fn: Callable | None = None, progress: bool = True, device: str | None = None,
              max_trunks: int | None = None, workers: int | None = None) -> list[dict]:
    """Train every point of ``grid`` that is not in its results file yet; return all its results (Chapter 6).

    ``grid``: a :class:`SweepGrid`, a profile name, or ``None`` for the current profile's grid.
    ``path``: the results file (default :func:`~utils.sweep_results.results_path`). Missing points are grouped by size
    into :func:`~utils.grids.trunks`; each trunk trains once, branching a cool-down off at every missing point,
    and its points are appended as soon as it ends, so an interrupted sweep resumes with the next
    unfinished size (a trunk is deterministic, so a resumed sweep gives the same numbers).
    ``dataset``: the corpus (default :func:`utils.data.load_dataset`, loaded only if a point is
    missing). ``train_fn(model_config, train_config, dataset, progress=False, branches=[...])``
    defaults to :func:`utils.train.train` (tests pass a fake). ``max_trunks`` stops after that many
    trunks. ``workers``: how many trunks train at once on the CPU, each in its own process with one
    thread (default :func:`default_workers`: one per core); with a GPU, a given ``train_fn``, or
    ``workers=1``, trunks train one after another in this process.
    Returns a list of result dicts (the fields of :func:`~utils.grids.plan`, plus losses in nats and bits per
    character, the trunk's constant-rate loss at the same step, wall times), in the order of :func:`~utils.grids.plan`.
    """
    if grid is None or isinstance(grid, str):
        grid = grid_for(grid)
    if not isinstance(grid, SweepGrid):
        raise TypeError(f"grid must be a SweepGrid, a profile name or None; got {type(grid).__name__}.")
    if max_trunks is not None and (int(max_trunks) != max_trunks or max_trunks < 0):
        raise ValueError(f"max_trunks must be a non-negative integer or None, got {max_trunks!r}.")
    if workers is not None and (int(workers) != workers or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}.")
    path = results_path(grid) if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = plan(grid)
    todo = missing_points(grid, path)
    _train_points(grid, todo, path, dataset, train_fn, progress, device, max_trunks, workers,
                  desc=f"sweep {grid.name}", total=len(specs))
    by_name = {r["run"]: r for r in load_all_results(path)}
    return [by_name[s["run"]] for s in specs if s["run"] in by_name]


def _train_points(grid, todo, path, dataset, train_fn, progress, device, max_trunks, workers, desc, total):
    """Train the trunks that produce the points ``todo``, appending their results to ``path``."""
    work = trunks(grid, todo)
    if max_trunks is not None:
        work = work[:max_trunks]
    if not work:
        return
    own_train_fn = train_fn is None
    if train_fn is None:
        from .train import train as train_fn
    if dataset is None:
        from .data import load_dataset
        dataset = load_dataset()
    if dataset.vocab_size != grid.vocab_size:
        raise ValueError(f"the dataset has {dataset.vocab_size} token types but grid {grid.name!r} was "
                         f"designed for vocab_size={grid.vocab_size}; build the grid with "
                         f"vocab_size={dataset.vocab_size}.")
    from tqdm import tqdm

    bar = tqdm(total=total, initial=total - len(todo), desc=desc, unit="point",
               disable=not (progress and runtime.progress_bars()), dynamic_ncols=True)
    n_workers = _workers(workers, device, own_train_fn, len(work))
    try:
        if n_workers > 1:
            _run_parallel(work, grid, path, bar, n_workers, dataset)
        else:
            overrides = {} if device is None else {"device": device}
            for trunk in work:
                bar.set_postfix_str(trunk["trunk"], refresh=True)
                recs = _train_trunk(trunk, grid, train_fn, dataset, overrides)
                _append(path, recs)
                bar.update(len(recs))
    finally:
        bar.close()


def default_workers() -> int:
    """Trunks to train at once on the CPU: one per core this process may use, at most 8.

    Unlike the threads of one run, which wait for each other at every operation (so the trainer
    uses only idle cores, :func:`utils.hardware.cpu_threads`), separate one-thread runs never wait
    for each other: on a busy machine they simply get a larger share of it than one run would.
    """
    return min(8, runtime.usable_cores())


def _workers(workers, device, own_train_fn: bool, n_todo: int) -> int:
    """How many worker processes a sweep uses: one when a GPU trains, a test's fake ``train_fn``, or one run."""
    if not own_train_fn or n_todo < 2:
        return 1
    if runtime.pick_device(device).type != "cpu":
        return 1  # one GPU: runs take turns on it
    return min(n_todo, workers if workers is not None else default_workers())


_WORKER_DATASET = None


def _worker_init(dataset) -> None:
    """Each worker process receives the corpus once."""
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _worker_train(trunk: dict, grid: SweepGrid) -> list[dict]:
    """One trunk in a worker process: on the CPU, with one thread."""
    from .train import train
    return _train_trunk(trunk, grid, train, _WORKER_DATASET, {"num_threads": 1, "device": "cpu"})


def _run_parallel(work: list, grid: SweepGrid, path: Path, bar, n_workers: int, dataset) -> None:
    """Train ``work`` (trunks, largest first) in ``n_workers`` fresh processes (spawned: safe after torch
    has started threads). Each trunk's results are appended by this process as soon as they arrive, so
    a killed sweep still resumes; an interrupt (or an error in a run) stops the workers at once.
    Spawned processes import the calling script again: from a script of your own, call
    :func:`run_sweep` under ``if __name__ == "__main__":`` (notebooks need nothing).
    """
    import multiprocessing as mp
    from functools import partial

    pool = mp.get_context("spawn").Pool(n_workers, initializer=_worker_init, initargs=(dataset,))
    try:
        for recs in pool.imap_unordered(partial(_worker_train, grid=grid), work):
            _append(path, recs)
            bar.set_postfix_str(recs[0]["trunk"], refresh=False)
            bar.update(len(recs))
        pool.close()
    except BaseException:
        pool.terminate()  # do not leave workers training after an interrupt
        raise
    finally:
        pool.join()



def train_points(grid: SweepGrid, points: list[dict], kind: str, *, dataset=None, progress: bool = True,
                 workers: int | None = None, train_fn: Callable | None = None) -> list[dict]:
    """Train extra points outside the sweep's plan (each its own run, e.g. Chapter 6's held-out models),
    cached in the results file of ``kind`` (:func:`~utils.sweep_results.results_path`); return their results in order.

    Each point is a dict like :func:`~utils.grids.plan`'s (build them with :func:`~utils.grids.make_point`); its
    ``trunk`` names the run that trains it, so points with the same ``trunk`` must share a model and a schedule and
    differ only in length (they are then branches of one run)."""
    path = results_path(grid, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["run"] for r in load_results(path)}
    todo = [p for p in points if p["run"] not in done]
    _train_points(grid, todo, path, dataset, train_fn, progress, None, None, workers,
                  desc=f"{kind} runs", total=len(points))
    by_name = {r["run"]: r for r in load_results(path)}
    return [by_name[p["run"]] for p in points if p["run"] in by_name]



def schedule_check(grid: SweepGrid, pairs: list[tuple[int, int, int]], *, dataset=None, progress: bool = True,
                   workers: int | None = None) -> list[dict]:
    """Cool-down branches against cosine runs of the same length, with a second seed (Chapter 6).

    For each ``(n_layer, n_embd, steps)`` in ``pairs``, trains four independent runs: ``wsd`` and
    ``cosine``, each with the grid's seed and with the seed + 1 (a ``wsd`` run equals the sweep's
    branch of that length, :func:`utils.train.train`). Returns their results (cached)."""
    points = [make_point(grid, L, w, s, schedule=sch, seed=grid.seed + k, tag="check-")
              for L, w, s in pairs for sch in ("wsd", "cosine") for k in (0, 1)]
    return train_points(grid, points, "schedule", dataset=dataset, progress=progress, workers=workers)


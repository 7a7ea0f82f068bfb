"""The scaling sweep: train a grid of (model size x compute budget) runs and keep every result.

Chapter 6 runs it and fits scaling laws to what it writes. A :class:`SweepGrid` names a ladder
of model shapes and a few compute budgets ``C`` (FLOPs). For every budget it trains each size
of the ladder for ``D = C / (6 N)`` tokens (``N`` non-embedding parameters), with a warm-up and
a cosine learning-rate schedule as long as that run, so each budget's runs form one *IsoFLOP*
profile (Hoffmann et al. 2022, Approach 2). Because ``N`` roughly doubles at every rung of the
ladder and budgets double, the same runs also give ``L(D)`` at fixed ``N`` (one size across
budgets) and ``L(N)`` at (nearly) fixed ``D``. On the CPU, runs train two (or more) at a time
in separate one-thread processes, one per core.

Every finished run is appended at once, as one JSON line, to a results file in
``runtime.cache_dir('sweeps')`` named by a hash of the grid, and runs already in the file are
skipped: a killed sweep resumes where it stopped, and a finished one costs nothing to load.

Command line (prints a summary table)::

    python -m utils.sweep --profile quick          # about 6 minutes on an idle 2-core CPU
    python -m utils.sweep --profile full --list    # the plan only, no training
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import runtime
from .attention import count_params

__all__ = ["SweepGrid", "GRIDS", "grid_for", "plan", "results_path", "load_results", "run_sweep",
           "missing_runs", "summary", "decades", "default_workers", "main"]

SCHEMA_VERSION = 1  # bump when the fields of a result line change


@dataclass(frozen=True)
class SweepGrid:
    """A scaling sweep's definition: model shapes, compute budgets and how each run is trained.

    ``sizes`` are ``(n_layer, n_embd)`` pairs (heads at most ``head_dim`` wide); ``budgets`` are
    training compute budgets ``C`` in FLOPs. A run exists for every (budget, size) pair whose
    token count ``D = C / (6 N)`` gives at least ``min_steps`` optimiser steps, at most
    ``max_tokens`` tokens and at most ``max_tokens_per_param`` tokens per parameter. ``lrs`` maps ``n_embd`` to the peak learning rate (one per width);
    the schedule warms up for ``warmup_fraction`` of the run (at least ``min_warmup`` steps) and
    decays by a cosine to ``min_lr_ratio`` times the peak at the run's last step. Losses are
    measured on ``eval_iters`` fixed batches (the same for every run) every ``eval_every`` steps
    and at the end.
    The grid's :meth:`key` hashes every field, so a changed grid gets a new results file.
    """

    name: str
    sizes: tuple
    budgets: tuple
    lrs: tuple  # ((n_embd, lr), ...)
    n_ctx: int = 64
    batch_size: int = 16
    head_dim: int = 16
    vocab_size: int = 76
    min_steps: int = 100
    max_tokens: int = 4_300_000
    max_tokens_per_param: float = math.inf
    warmup_fraction: float = 0.05
    min_warmup: int = 10
    min_lr_ratio: float = 0.1
    eval_iters: int = 20
    eval_every: int = 512
    seed: int = 1337
    num_threads: int | None = None  # CPU threads per run (None: torch's default); does not change results

    def __post_init__(self):
        if not self.sizes or not self.budgets:
            raise ValueError(f"a SweepGrid needs at least one size and one budget; got sizes={self.sizes!r}, "
                             f"budgets={self.budgets!r}.")
        for s in self.sizes:
            if len(s) != 2 or any(int(v) != v or v < 1 for v in s):
                raise ValueError(f"each size must be a pair (n_layer, n_embd) of positive integers; got {s!r}.")
            heads = self.n_head(s[1])
            if s[1] % heads:
                raise ValueError(f"n_embd={s[1]} cannot be split into {heads} heads of at most head_dim="
                                 f"{self.head_dim}; choose a width that is a multiple of {heads}.")
            if s[1] not in dict(self.lrs):
                raise ValueError(f"no learning rate for width n_embd={s[1]}; add it to lrs={self.lrs!r}.")
        if any(not (c > 0 and math.isfinite(c)) for c in self.budgets):
            raise ValueError(f"budgets must be positive FLOP counts; got {self.budgets!r}.")

    def n_head(self, n_embd: int) -> int:
        """Heads of a width: ``ceil(n_embd / head_dim)``, so no head is wider than ``head_dim``
        (width 24 with ``head_dim=16``: two heads of 12; width 8: one head of 8)."""
        return -(-int(n_embd) // self.head_dim)

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimiser step: ``batch_size * n_ctx``."""
        return self.batch_size * self.n_ctx

    def key(self) -> str:
        """A short hash of the definition (names the results file); ``num_threads`` is left out."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "num_threads"}
        blob = json.dumps({"v": SCHEMA_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def model_config(self, n_layer: int, n_embd: int) -> dict:
        """The model configuration (GPTConfig fields) of one rung of the ladder."""
        return {"vocab_size": self.vocab_size, "n_ctx": self.n_ctx, "n_layer": int(n_layer),
                "n_head": self.n_head(n_embd), "n_embd": int(n_embd), "dropout": 0.0, "bias": True}

    def train_config(self, steps: int, n_embd: int) -> dict:
        """The training configuration (TrainConfig fields) of a run of ``steps`` steps at width ``n_embd``."""
        lr = float(dict(self.lrs)[n_embd])
        extra = {"num_threads": self.num_threads} if self.num_threads else {}
        return {**extra, "batch_size": self.batch_size, "max_iters": int(steps), "lr": lr,
                "min_lr": lr * self.min_lr_ratio,
                "warmup_iters": max(self.min_warmup, round(self.warmup_fraction * steps)),
                "eval_interval": int(min(steps, self.eval_every)), "eval_iters": self.eval_iters,
                "seed": self.seed}


def _size_label(n_layer: int, n_embd: int) -> str:
    return f"L{n_layer}-d{n_embd}"


def plan(grid: SweepGrid) -> list[dict]:
    """The runs of ``grid``, without training: one dict per run, ordered by budget then size.

    Each has ``run`` (a unique name), ``budget`` (the nominal ``C``), ``n_layer, n_head, n_embd``,
    ``N`` (non-embedding parameters, :func:`utils.attention.count_params`), ``N_total``,
    ``steps``, ``D`` (tokens), ``C`` (``6 N D``, within rounding of ``budget``),
    ``tokens_per_param``, ``model_config`` and ``train_config`` (Chapter 6).
    """
    if not isinstance(grid, SweepGrid):
        raise TypeError(f"plan expects a SweepGrid (e.g. GRIDS['quick']), got {type(grid).__name__}.")
    runs = []
    for budget in grid.budgets:
        for n_layer, n_embd in grid.sizes:
            mc = grid.model_config(n_layer, n_embd)
            cfg = argparse.Namespace(**mc)
            N = count_params(cfg, non_embedding=True)
            steps = round(budget / (6 * N * grid.tokens_per_step))
            D = steps * grid.tokens_per_step
            if steps < grid.min_steps or D > grid.max_tokens or D > grid.max_tokens_per_param * N:
                continue
            runs.append({
                "run": f"C{budget:.3g}-{_size_label(n_layer, n_embd)}", "budget": float(budget),
                "n_layer": int(n_layer), "n_head": mc["n_head"], "n_embd": int(n_embd),
                "N": N, "N_total": count_params(cfg), "steps": steps, "D": D, "C": 6.0 * N * D,
                "tokens_per_param": D / N, "model_config": mc, "train_config": grid.train_config(steps, n_embd),
            })
    if not runs:
        raise ValueError(f"grid {grid.name!r} has no runs: every (budget, size) pair gives fewer than "
                         f"{grid.min_steps} steps or more than {grid.max_tokens} tokens; change the budgets.")
    return runs


def decades(grid: SweepGrid) -> float:
    """How many decades of non-embedding parameters the grid's runs span: ``log10(N_max / N_min)``."""
    Ns = [r["N"] for r in plan(grid)]
    return math.log10(max(Ns) / min(Ns))


# ----------------------------------------------------------------------------- the two profiles

#: The course's grids. ``quick``: CPU, about 6 minutes on an idle 2-core machine; ``full``: a GPU.
#: Widths grow by about 1.5x per rung (8, 12, 16, 24, 32, ...), so N roughly doubles, and budgets
#: double, so the runs nearly line up in N, D and C. Small character models use a budget best
#: with hundreds of tokens per parameter (Chapter 6), hence the high cap and up to 4 epochs.
GRIDS: dict[str, SweepGrid] = {
    "quick": SweepGrid(
        name="quick",
        sizes=((2, 8), (2, 12), (2, 16), (2, 24), (2, 32), (2, 48), (2, 64), (2, 96), (2, 128)),
        budgets=(2.5e10, 5e10, 1e11, 2e11, 4e11),
        lrs=((8, 1.5e-2), (12, 1.2e-2), (16, 1e-2), (24, 8e-3), (32, 6e-3), (48, 4e-3), (64, 3e-3),
             (96, 3e-3), (128, 3e-3)),
        n_ctx=64, batch_size=8, min_steps=100, max_tokens=17_200_000, max_tokens_per_param=1400,
        eval_iters=40, eval_every=1024,
    ),
    # Data-limited: the training split has about 4.3 million characters, so D <= 17M is up to 4 epochs,
    # and at the hundreds of tokens per parameter that small models want, budgets much above 1e13
    # would have no room for the small side of their IsoFLOP profile.
    "full": SweepGrid(
        name="full",
        sizes=((2, 16), (2, 24), (2, 32), (2, 48), (2, 64), (2, 96), (2, 128), (4, 128), (4, 192), (4, 256)),
        budgets=(5e11, 1e12, 2e12, 4e12, 8e12),
        lrs=((16, 1e-2), (24, 8e-3), (32, 6e-3), (48, 4e-3), (64, 3e-3), (96, 2.5e-3), (128, 2e-3),
             (192, 1.5e-3), (256, 1e-3)),
        n_ctx=128, batch_size=16, min_steps=200, max_tokens=17_000_000, max_tokens_per_param=3000,
        eval_iters=40, eval_every=1024,
    ),
    # A few seconds of training: for tests and smoke checks of the machinery, not for science.
    "tiny": SweepGrid(
        name="tiny", sizes=((1, 16), (2, 16)), budgets=(2e7, 4e7), lrs=((16, 1e-2),),
        n_ctx=16, batch_size=4, min_steps=5, max_tokens=10_000, eval_iters=2, num_threads=1,
    ),
}


def grid_for(profile: str | None = None) -> SweepGrid:
    """The grid of a profile (``'quick'``, ``'full'`` or ``'tiny'``); ``None`` = :func:`runtime.profile`."""
    name = runtime.profile() if profile is None else profile
    if name not in GRIDS:
        raise ValueError(f"unknown sweep profile {name!r}; choose one of {sorted(GRIDS)}.")
    return GRIDS[name]


# ----------------------------------------------------------------------------- results file

def results_path(grid: SweepGrid) -> Path:
    """Where ``grid``'s results live: ``runtime.cache_dir('sweeps') / '<name>-<key>.jsonl'``."""
    return runtime.cache_dir("sweeps") / f"{grid.name}-{grid.key()}.jsonl"


def load_results(path) -> list[dict]:
    """The results in a JSON-lines file (``[]`` if it does not exist).

    A line that is not valid JSON (a run killed while writing) is skipped: that run counts as
    not done and is trained again.
    """
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "run" in rec:
            out.append(rec)
    return out


def _append(path: Path, record: dict) -> None:
    """Append one JSON line and make sure it reached the disk (a kill right after loses nothing)."""
    with open(path, "a+", encoding="utf-8") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:  # a killed write may have left a line without its newline
            f.seek(f.tell() - 1)
            last = f.read(1)
            f.seek(0, os.SEEK_END)
            if last != "\n":
                f.write("\n")
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def missing_runs(grid: SweepGrid, path=None) -> list[dict]:
    """The planned runs of ``grid`` that its results file does not hold yet."""
    done = {r["run"] for r in load_results(results_path(grid) if path is None else path)}
    return [r for r in plan(grid) if r["run"] not in done]


def _record(spec: dict, res, grid: SweepGrid) -> dict:
    """One result line: the run's plan plus what training measured."""
    ln2 = math.log(2)
    rec = {k: v for k, v in spec.items()}
    rec.update({
        "grid": f"{grid.name}-{grid.key()}", "schema": SCHEMA_VERSION,
        "D": int(res.tokens_seen), "C": 6.0 * spec["N"] * int(res.tokens_seen),
        "n_params": int(res.n_params), "n_params_non_embedding": int(res.n_params_non_embedding),
        "flops": float(res.flops),
        "final_train_loss": float(res.final_train_loss), "final_val_loss": float(res.final_val_loss),
        "final_train_bpc": float(res.final_train_loss) / ln2, "final_val_bpc": float(res.final_val_loss) / ln2,
        "wall_time_s": float(res.wall_time_s), "tokens_per_s": float(res.tokens_per_s),
        "device": str(getattr(res, "device", "")),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    rec["tokens_per_param"] = rec["D"] / rec["N"]
    rec["history"] = [{k: h[k] for k in ("step", "tokens", "train_loss", "val_loss", "lr") if k in h}
                      for h in getattr(res, "history", [])]
    return rec


def run_sweep(grid: SweepGrid | str | None = None, *, path=None, dataset=None,
              train_fn: Callable | None = None, progress: bool = True, device: str | None = None,
              max_runs: int | None = None, workers: int | None = None) -> list[dict]:
    """Train every run of ``grid`` that is not in its results file yet; return all its results (Chapter 6).

    ``grid``: a :class:`SweepGrid`, a profile name, or ``None`` for the current profile's grid.
    ``path``: the results file (default :func:`results_path`). Each run's result is appended as
    soon as the run ends, so an interrupted sweep resumes with the next unfinished run.
    ``dataset``: the corpus (default :func:`utils.data.load_dataset`, loaded only if a run is
    missing). ``train_fn(model_config, train_config, dataset, progress=False)`` defaults to
    :func:`utils.train.train` (tests pass a fake). ``max_runs`` stops after that many new runs.
    ``workers``: how many runs train at once on the CPU, each in its own process with one
    thread (default :func:`default_workers`: one per core). Small models cannot keep two
    cores busy with one run (Chapter 4: per-operation overhead dominates), so two one-thread
    runs side by side finish a sweep in a little over half the time. With a GPU, a given
    ``train_fn``, or ``workers=1``, runs train one after another in this process.
    Returns a list of result dicts (fields as in :func:`plan`, plus losses in nats and bits
    per character, measured tokens and FLOPs, wall time), in the order of :func:`plan`.
    """
    if grid is None or isinstance(grid, str):
        grid = grid_for(grid)
    if not isinstance(grid, SweepGrid):
        raise TypeError(f"grid must be a SweepGrid, a profile name or None; got {type(grid).__name__}.")
    if max_runs is not None and (int(max_runs) != max_runs or max_runs < 0):
        raise ValueError(f"max_runs must be a non-negative integer or None, got {max_runs!r}.")
    path = results_path(grid) if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = plan(grid)
    todo = missing_runs(grid, path)
    if max_runs is not None:
        todo = todo[:max_runs]

    if workers is not None and (int(workers) != workers or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}.")
    if todo:
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

        bar = tqdm(total=len(specs), initial=len(specs) - len(missing_runs(grid, path)), desc=f"sweep {grid.name}",
                   unit="run", disable=not (progress and runtime.progress_bars()), dynamic_ncols=True)
        n_workers = _workers(workers, device, own_train_fn, len(todo))
        try:
            if n_workers > 1:
                _run_parallel(todo, grid, path, bar, n_workers, dataset)
            else:
                overrides = {} if device is None else {"device": device}
                for spec in todo:
                    bar.set_postfix_str(spec["run"], refresh=True)
                    _append(path, _train_and_record(spec, grid, train_fn, dataset, overrides))
                    bar.update(1)
        finally:
            bar.close()

    by_name = {r["run"]: r for r in load_results(path)}
    return [by_name[s["run"]] for s in specs if s["run"] in by_name]


def default_workers() -> int:
    """Runs to train at once on the CPU: one per core this process may use, at most 8.

    Unlike the threads of one run, which wait for each other at every operation (so the trainer
    uses only idle cores, :func:`utils.train.cpu_threads`), separate one-thread runs never wait
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


def _train_and_record(spec: dict, grid: SweepGrid, train_fn: Callable, dataset, overrides: dict) -> dict:
    """Train one planned run (its train config updated by ``overrides``) and return its result line."""
    res = train_fn(spec["model_config"], {**spec["train_config"], **overrides}, dataset, progress=False)
    return _record(spec, res, grid)


def _worker_init(dataset) -> None:
    """Each worker process receives the corpus once."""
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _worker_train(spec: dict, grid: SweepGrid) -> dict:
    """One run in a worker process: on the CPU, with one thread."""
    from .train import train
    return _train_and_record(spec, grid, train, _WORKER_DATASET, {"num_threads": 1, "device": "cpu"})


def _run_parallel(todo: list, grid: SweepGrid, path: Path, bar, n_workers: int, dataset) -> None:
    """Train ``todo`` in ``n_workers`` fresh processes (spawned: safe after torch has started threads).

    The largest runs start first so that the last ones to finish are short. Each result is
    appended by this process as soon as it arrives, so a killed sweep still resumes; an
    interrupt (or an error in a run) stops the workers at once. Spawned processes import the
    calling script again: from a script of your own, call :func:`run_sweep` under
    ``if __name__ == "__main__":`` (notebooks need nothing).
    """
    import multiprocessing as mp
    from functools import partial

    order = sorted(todo, key=lambda r: -r["C"] * (1 + 64 / r["n_embd"]))  # rough cost: small widths are slow per FLOP
    pool = mp.get_context("spawn").Pool(n_workers, initializer=_worker_init, initargs=(dataset,))
    try:
        for rec in pool.imap_unordered(partial(_worker_train, grid=grid), order):
            _append(path, rec)
            bar.set_postfix_str(rec["run"], refresh=False)
            bar.update(1)
        pool.close()
    except BaseException:
        pool.terminate()  # do not leave workers training after an interrupt
        raise
    finally:
        pool.join()


# ----------------------------------------------------------------------------- reporting

def summary(results: Iterable[dict]) -> str:
    """A plain-text table of results, one line per run, grouped by budget."""
    rows = sorted(results, key=lambda r: (r["budget"], r["N"]))
    if not rows:
        return "(no results)"
    head = f"{'run':<22}{'N':>9}{'N_total':>9}{'D':>10}{'D/N':>8}{'val nats':>10}{'val bpc':>9}{'time s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['run']:<22}{r['N']:>9,d}{r['N_total']:>9,d}{r['D']:>10,d}{r['D'] / r['N']:>8.1f}"
                     f"{r['final_val_loss']:>10.4f}{r['final_val_bpc']:>9.4f}{r['wall_time_s']:>8.1f}")
    total = sum(r["wall_time_s"] for r in rows)
    best = min(rows, key=lambda r: r["final_val_loss"])
    lines.append(f"{len(rows)} runs, {total / 60:.1f} min of training; lowest validation loss "
                 f"{best['final_val_loss']:.4f} nats ({best['final_val_bpc']:.4f} bits/char) by {best['run']}.")
    return "\n".join(lines)


def _plan_table(grid: SweepGrid) -> str:
    runs = plan(grid)
    lines = [f"grid {grid.name} ({grid.key()}): {len(runs)} runs, N from {min(r['N'] for r in runs):,} to "
             f"{max(r['N'] for r in runs):,} ({decades(grid):.2f} decades)"]
    for r in runs:
        lines.append(f"  {r['run']:<22} N={r['N']:>9,d}  steps={r['steps']:>6}  D={r['D']:>10,d}  "
                     f"D/N={r['tokens_per_param']:>7.1f}  lr={r['train_config']['lr']:.2g}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command-line entry point: run (or resume) a profile's sweep and print a summary table.

    Returns 0 (the exit status; the ``course-sweep`` script passes it to ``sys.exit``)."""
    p = argparse.ArgumentParser(prog="python -m utils.sweep",
                                description="Train the scaling sweep of a profile (skipping finished runs) "
                                            "and print a summary.")
    p.add_argument("--profile", choices=sorted(GRIDS), default=None,
                   help="grid to run (default: the current profile, quick on a CPU)")
    p.add_argument("--out", default=None, help="results file (default: in the course cache, named by the grid)")
    p.add_argument("--list", action="store_true", help="print the planned runs and exit without training")
    p.add_argument("--max_runs", type=int, default=None, help="stop after this many new runs")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--workers", type=int, default=None,
                   help="runs trained at once on the CPU, one thread each (default: one per core, at most 8)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    grid = grid_for(args.profile)
    if args.list:
        print(_plan_table(grid))
        return 0
    path = Path(args.out) if args.out else results_path(grid)
    t0 = time.perf_counter()
    results = run_sweep(grid, path=path, progress=not args.no_progress, device=args.device,
                        max_runs=args.max_runs, workers=args.workers)
    print(summary(results))
    print(f"results: {path} ({len(results)}/{len(plan(grid))} runs; {time.perf_counter() - t0:.1f} s this call)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

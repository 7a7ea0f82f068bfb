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

Command line (prints a summary table)::

    python -m utils.sweep --profile quick          # the quick sweep (about eight minutes on a 2-core CPU)
    python -m utils.sweep --profile full --list    # the plan only, no training
    python -m utils.sweep --bench                  # branches against separate runs, side by side
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable

from . import runtime
from .attention import count_params, kaplan_train_flops_per_token, matmul_params, train_flops_per_token

__all__ = ["SweepGrid", "GRIDS", "grid_for", "plan", "trunks", "results_path", "load_results", "load_all_results",
           "parts_dir", "submit_sweep", "run_sweep",
           "missing_points", "summary", "decades", "default_workers", "shape_for_params", "lr_for_width",
           "train_points", "schedule_check", "bench", "main"]

SCHEMA_VERSION = 2  # bump when the fields of a result line change
MAX_WARMUP_FRACTION = 0.1  # of the shortest run's steps (Chapter 6: longer warm-ups bias the fits)
MIN_POINTS_BESIDE = 2  # points each IsoFLOP profile needs on each side of the expected optimum


@dataclass(frozen=True)
class SweepGrid:
    """A scaling sweep's definition: model shapes, compute budgets, shared step counts, training recipe.

    ``sizes`` are ``(n_layer, n_embd)`` pairs (heads at most ``head_dim`` wide); ``budgets`` are
    training compute budgets ``C`` in FLOPs (:func:`utils.attention.train_flops_per_token` per token);
    ``slice_steps`` are step counts at which every size also gets a point (``L(N)`` at fixed ``D``).
    A point exists where its step count is at least ``min_steps`` and its tokens at most
    ``max_tokens`` and ``max_tokens_per_param`` times ``N``. ``lrs`` maps ``n_embd`` to the peak
    learning rate (one per width). Every point is a ``wsd`` run: linear warm-up over ``warmup_iters``
    steps (the same for every length, so that runs of one size share it), the peak rate, and a
    linear cool-down to ``min_lr_ratio`` times the peak over the last ``cooldown_fraction`` of its
    steps; the warm-up may take at most ``MAX_WARMUP_FRACTION`` (10 %) of the shortest run, so that every
    fitted point is mostly real training. Losses are measured on ``eval_iters`` fixed batches, the same
    windows for every run whatever its seed (``eval_seed`` in :meth:`train_config`).
    Two design rules are checked by :func:`plan`: the IsoFLOP points span at least ``min_decades_C``
    decades of compute, and where ``optimum_tokens_per_param=(low, high)`` is given, every budget has at
    least ``MIN_POINTS_BESIDE`` (2) points with more than ``high`` tokens per parameter and as many with
    fewer than ``low``, so that a minimum anywhere in that range has two points on each side.
    ``family_layers`` is the depth of the shapes built for sizes between or beyond the ladder's
    (:func:`shape_for_params`, Chapter 6's prediction). The grid's :meth:`key` hashes every field
    (but ``num_threads``), so a changed grid gets a new results file.
    """

    name: str
    sizes: tuple
    budgets: tuple
    lrs: tuple  # ((n_embd, lr), ...)
    slice_steps: tuple = ()
    n_ctx: int = 64
    batch_size: int = 16
    head_dim: int = 16
    vocab_size: int = 76
    min_steps: int = 100
    max_tokens: int = 4_300_000
    max_tokens_per_param: float = math.inf
    warmup_iters: int = 10
    cooldown_fraction: float = 0.2
    min_lr_ratio: float = 0.1
    eval_iters: int = 20
    seed: int = 1337
    family_layers: int = 2
    min_decades_C: float = 0.0
    optimum_tokens_per_param: tuple = ()  # (low, high): where the IsoFLOP minima are expected
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
        if any(int(s) != s or s < 1 for s in self.slice_steps):
            raise ValueError(f"slice_steps must be positive whole step counts; got {self.slice_steps!r}.")
        if not 0 < self.cooldown_fraction < 1:
            raise ValueError(f"cooldown_fraction must be in (0, 1), got {self.cooldown_fraction!r}.")
        if self.warmup_iters > MAX_WARMUP_FRACTION * self.min_steps:
            raise ValueError(f"the warm-up of {self.warmup_iters} steps would be more than "
                             f"{MAX_WARMUP_FRACTION:.0%} of the shortest run ({self.min_steps} steps): such points "
                             f"measure the warm-up more than training; raise min_steps to at least "
                             f"{math.ceil(self.warmup_iters / MAX_WARMUP_FRACTION)} or shorten the warm-up.")
        if self.min_steps * (1 - self.cooldown_fraction) < self.warmup_iters:
            raise ValueError(f"the shortest run ({self.min_steps} steps) would start cooling down inside the "
                             f"warm-up of {self.warmup_iters} steps; raise min_steps or shorten the cool-down.")
        band = tuple(self.optimum_tokens_per_param)
        if band and not (len(band) == 2 and 0 < band[0] < band[1]):
            raise ValueError(f"optimum_tokens_per_param must be () or a pair (low, high) with 0 < low < high; "
                             f"got {self.optimum_tokens_per_param!r}.")

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
        """The model configuration (GPTConfig fields) of one shape."""
        return {"vocab_size": self.vocab_size, "n_ctx": self.n_ctx, "n_layer": int(n_layer),
                "n_head": self.n_head(n_embd), "n_embd": int(n_embd), "dropout": 0.0, "bias": True}

    def flops_per_token(self, n_layer: int, n_embd: int) -> int:
        """Training FLOPs per token of a shape: :func:`utils.attention.train_flops_per_token`."""
        return train_flops_per_token(SimpleNamespace(**self.model_config(n_layer, n_embd)))

    def flops_of_params(self, N, n_layer: int | None = None):
        """Training FLOPs per token of a model with ``N`` non-embedding parameters along this grid's ladder:
        the cost curve along which :func:`utils.scaling.compute_optimal` searches (Chapter 6). Scalars or arrays.

        For a ladder of one depth (or with ``n_layer`` given) the width is solved from
        ``N = n_layer (12 d² + 13 d) + 2 d`` and may be fractional, so the curve equals
        :meth:`flops_per_token` at every real shape. A ladder of several depths is interpolated (log-log)
        between its real shapes, and beyond its ends follows the depth of the nearest end."""
        import numpy as np

        N = np.asarray(N, dtype=float)
        depths = {L for L, _ in self.sizes}
        if n_layer is not None or len(depths) == 1:
            return self._family_flops(N, int(n_layer) if n_layer is not None else depths.pop())
        ladder = sorted((count_params(SimpleNamespace(**self.model_config(L, w)), non_embedding=True),
                         self.flops_per_token(L, w), L) for L, w in self.sizes)
        n_l = np.log([n for n, _, _ in ladder])
        f_l = np.log([f for _, f, _ in ladder])
        out = np.exp(np.interp(np.log(N), n_l, f_l))
        lo, hi = N < ladder[0][0], N > ladder[-1][0]
        if lo.any():
            out[lo] = self._family_flops(N[lo], ladder[0][2])
        if hi.any():
            out[hi] = self._family_flops(N[hi], ladder[-1][2])
        return out if out.ndim else float(out)

    def _family_flops(self, N, L: int):
        import numpy as np

        b = 13 * L + 2
        d = (-b + np.sqrt(b * b + 48 * L * np.asarray(N, dtype=float))) / (24 * L)
        return 6 * (12 * L * d ** 2 + self.vocab_size * d) + 12 * L * self.n_ctx * d

    def train_config(self, steps: int, n_embd: int, schedule: str = "wsd", seed: int | None = None) -> dict:
        """The training configuration (TrainConfig fields) of a run of ``steps`` steps at width ``n_embd``.

        ``schedule="cosine"`` gives the same run with a cosine decay over its whole length instead of
        the cool-down (Chapter 6 compares the two); ``seed`` replaces the grid's seed for training (initial
        weights, batch order), while ``eval_seed`` stays the grid's: every run is scored on the same windows."""
        lr = lr_for_width(self, n_embd)
        extra = {"num_threads": self.num_threads} if self.num_threads else {}
        return {**extra, "batch_size": self.batch_size, "max_iters": int(steps), "lr": lr,
                "min_lr": lr * self.min_lr_ratio, "warmup_iters": self.warmup_iters,
                "schedule": schedule, "cooldown_fraction": self.cooldown_fraction,
                "eval_interval": int(steps), "eval_iters": self.eval_iters,
                "seed": self.seed if seed is None else int(seed), "eval_seed": self.seed}


def lr_for_width(grid: SweepGrid, n_embd: int) -> float:
    """The peak learning rate of a width: the grid's own, or interpolated log-linearly between its widths
    (held constant beyond the ends). Chapter 6's prediction trains widths that are not on the ladder."""
    table = sorted((float(w), float(lr)) for w, lr in grid.lrs)
    w = float(n_embd)
    for ww, lr in table:
        if ww == w:
            return lr
    if w <= table[0][0]:
        return table[0][1]
    if w >= table[-1][0]:
        return table[-1][1]
    for (w0, l0), (w1, l1) in zip(table, table[1:]):
        if w0 <= w <= w1:
            t = math.log(w / w0) / math.log(w1 / w0)
            return float(math.exp(math.log(l0) + t * math.log(l1 / l0)))
    raise AssertionError("unreachable")  # pragma: no cover


def _size_label(n_layer: int, n_embd: int) -> str:
    return f"L{n_layer}-d{n_embd}"


def _counts(grid: SweepGrid, n_layer: int, n_embd: int) -> dict:
    cfg = SimpleNamespace(**grid.model_config(n_layer, n_embd))
    return {"N": count_params(cfg, non_embedding=True), "N_total": count_params(cfg), "N_matmul": matmul_params(cfg),
            "flops_per_token": train_flops_per_token(cfg), "kaplan_flops_per_token": kaplan_train_flops_per_token(cfg)}


def _point(grid: SweepGrid, n_layer: int, n_embd: int, steps: int, budget: float | None, counts: dict) -> dict:
    D = steps * grid.tokens_per_step
    name = f"C{budget:.3g}-" if budget is not None else f"S{steps}-"
    return {
        "run": name + _size_label(n_layer, n_embd), "trunk": _size_label(n_layer, n_embd),
        "budget": None if budget is None else float(budget), "n_layer": int(n_layer),
        "n_head": grid.n_head(n_embd), "n_embd": int(n_embd), **counts, "steps": int(steps), "D": D,
        "C": float(counts["flops_per_token"] * D), "C_6ND": 6.0 * counts["N"] * D,
        "C_kaplan": float(counts["kaplan_flops_per_token"] * D), "tokens_per_param": D / counts["N"],
        "model_config": grid.model_config(n_layer, n_embd), "train_config": grid.train_config(steps, n_embd),
    }


def plan(grid: SweepGrid) -> list[dict]:
    """The points of ``grid``, without training: one dict per point, IsoFLOP points (by budget, then
    size) first, then the shared-step points (by step count, then size).

    Each has ``run`` (a unique name), ``trunk`` (the size it branches from), ``budget`` (the nominal
    ``C``, ``None`` for a shared-step point), ``n_layer, n_head, n_embd``, ``N`` (non-embedding
    parameters), ``N_total``, ``N_matmul``, ``flops_per_token`` (the course's count) and
    ``kaplan_flops_per_token``, ``steps``, ``D`` (tokens), ``C`` (``flops_per_token * D``, within
    whole steps of ``budget``), ``C_6ND`` (``6 N D``) and ``C_kaplan``, ``tokens_per_param``,
    ``model_config`` and ``train_config`` (the ``wsd`` run the point equals), Chapter 6.
    """
    if not isinstance(grid, SweepGrid):
        raise TypeError(f"plan expects a SweepGrid (e.g. GRIDS['quick']), got {type(grid).__name__}.")
    iso, shared = [], []
    for budget in grid.budgets:
        for n_layer, n_embd in grid.sizes:
            counts = _counts(grid, n_layer, n_embd)
            steps = round(budget / (counts["flops_per_token"] * grid.tokens_per_step))
            if _allowed(grid, steps, counts["N"]):
                iso.append(_point(grid, n_layer, n_embd, steps, budget, counts))
    for steps in sorted(set(int(s) for s in grid.slice_steps)):
        for n_layer, n_embd in grid.sizes:
            counts = _counts(grid, n_layer, n_embd)
            taken = any(p["steps"] == steps and p["trunk"] == _size_label(n_layer, n_embd) for p in iso)
            if _allowed(grid, steps, counts["N"]) and not taken:
                shared.append(_point(grid, n_layer, n_embd, steps, None, counts))
    if not iso:
        raise ValueError(f"grid {grid.name!r} has no IsoFLOP points: every (budget, size) pair gives fewer than "
                         f"{grid.min_steps} steps or more than {grid.max_tokens} tokens; change the budgets.")
    _check_design(grid, iso)
    return iso + shared


def _check_design(grid: SweepGrid, iso: list[dict]) -> None:
    """Raise ``ValueError`` if the IsoFLOP points break the grid's span or optimum-bracketing rule."""
    Cs = [p["C"] for p in iso]
    span = math.log10(max(Cs) / min(Cs))
    if span < grid.min_decades_C - 1e-9:
        raise ValueError(f"grid {grid.name!r}: its IsoFLOP points span {span:.2f} decades of compute, fewer than "
                         f"min_decades_C={grid.min_decades_C}; add budgets or spread them further apart.")
    if not grid.optimum_tokens_per_param:
        return
    low, high = grid.optimum_tokens_per_param
    for budget in grid.budgets:
        tpp = [p["tokens_per_param"] for p in iso if p["budget"] == budget]
        left, right = sum(t > high for t in tpp), sum(t < low for t in tpp)
        if min(left, right) < MIN_POINTS_BESIDE:
            raise ValueError(f"grid {grid.name!r}: budget C = {budget:.3g} has {left} point(s) above {high} tokens per "
                             f"parameter and {right} below {low}; a minimum between them needs {MIN_POINTS_BESIDE} "
                             f"on each side: add sizes near it, or move the budget (min_steps and max_tokens "
                             f"decide which sizes a budget can train).")


def _allowed(grid: SweepGrid, steps: int, N: int) -> bool:
    D = steps * grid.tokens_per_step
    return steps >= grid.min_steps and D <= grid.max_tokens and D <= grid.max_tokens_per_param * N


def trunks(grid: SweepGrid, points: list[dict] | None = None) -> list[dict]:
    """The training runs that produce ``points`` (default: the whole plan), one per size: the longest
    point's ``wsd`` run, with a cool-down branch at each shorter point's length. Each dict has
    ``trunk``, ``model_config``, ``train_config``, ``branches`` (step counts), ``points`` and ``steps`` (the
    optimiser steps it trains: about ``(1 - f) S_max + f Σ S`` for cool-down fraction ``f``); largest
    cost first."""
    points = plan(grid) if points is None else points
    by_trunk: dict[str, list] = {}
    for p in points:
        by_trunk.setdefault(p["trunk"], []).append(p)
    out = []
    for name, pts in by_trunk.items():
        longest = max(pts, key=lambda p: p["steps"])
        steps = sorted({p["steps"] for p in pts})
        f = grid.cooldown_fraction
        cost_steps = (1 - f) * steps[-1] + f * sum(steps)
        out.append({"trunk": name, "model_config": longest["model_config"],
                    "train_config": longest["train_config"], "branches": steps[:-1], "points": pts,
                    "steps": cost_steps, "cost": cost_steps * longest["flops_per_token"] * (1 + 64 / longest["n_embd"])})
    return sorted(out, key=lambda t: -t["cost"])


def decades(grid: SweepGrid) -> float:
    """How many decades of non-embedding parameters the grid's points span: ``log10(N_max / N_min)``."""
    Ns = [r["N"] for r in plan(grid)]
    return math.log10(max(Ns) / min(Ns))


def shape_for_params(grid: SweepGrid, N_target: float, n_layer: int | None = None) -> tuple[int, int]:
    """The shape ``(n_layer, n_embd)`` of depth ``n_layer`` (default ``grid.family_layers``) whose
    non-embedding parameter count is closest to ``N_target`` (in ratio), among widths that split
    into heads of at most ``head_dim`` (Chapter 6 builds its predicted model with it)."""
    if not (N_target > 0 and math.isfinite(N_target)):
        raise ValueError(f"N_target must be a positive number of parameters, got {N_target!r}.")
    L = grid.family_layers if n_layer is None else int(n_layer)
    best = None
    for w in range(4, 4097):
        if w % grid.n_head(w):
            continue
        N = count_params(SimpleNamespace(**grid.model_config(L, w)), non_embedding=True)
        score = abs(math.log(N / N_target))
        if best is None or score < best[0]:
            best = (score, w)
        if N > 4 * N_target:
            break
    return L, best[1]


# ----------------------------------------------------------------------------- the profiles

#: The course's grids. ``quick``: CPU, about eight minutes on a 2-core machine (466 s under `make nbval`, 3 December 2026); ``full``: a GPU.
#: Widths grow by 1.2-1.5x per rung, so N grows by about 1.4-2.2x (Chapter 6 prints the factors), with extra rungs (d20; and in
#: ``full`` every 1.2x) where the minima lie; budgets grow by 2^(1/3) (full's by sqrt(2)) over at least
#: 1.5 decades of compute (full: 2). Every run warms up over at most a tenth of the shortest run's steps.
#: Small character models are best trained on hundreds of tokens per parameter (Chapter 6), hence the
#: high cap and up to four passes over the data.
GRIDS: dict[str, SweepGrid] = {
    "quick": SweepGrid(
        name="quick",
        sizes=((2, 4), (2, 6), (2, 8), (2, 12), (2, 16), (2, 20), (2, 24), (2, 32), (2, 48), (2, 64), (2, 96)),
        budgets=tuple(1e10 * 2 ** (k / 3) for k in range(16)),
        slice_steps=(512, 1024),
        lrs=((4, 1.5e-2), (6, 1.5e-2), (8, 1.5e-2), (12, 1.2e-2), (16, 1e-2), (20, 9e-3), (24, 8e-3), (32, 6e-3),
             (48, 4e-3), (64, 3e-3), (96, 3e-3)),
        n_ctx=64, batch_size=8, min_steps=200, max_tokens=17_200_000, max_tokens_per_param=3000,
        warmup_iters=20, eval_iters=40, min_decades_C=1.5, optimum_tokens_per_param=(30, 250),
    ),
    # Data-limited: the training split has about 4.3 million characters, so D <= 17M is up to 4 epochs.
    "full": SweepGrid(
        name="full",
        sizes=tuple((2, w) for w in (8, 12, 16, 20, 24, 28, 32, 36, 48, 56, 64, 80, 96, 112, 128))
        + ((4, 128), (4, 160), (4, 192), (4, 256)),
        budgets=tuple(7e10 * 2 ** (k / 2) for k in range(15)),
        slice_steps=(512, 1024),
        lrs=((8, 1.5e-2), (12, 1.2e-2), (16, 1e-2), (20, 8.8e-3), (24, 8e-3), (28, 6.9e-3), (32, 6e-3), (36, 5.3e-3),
             (48, 4e-3), (56, 3.4e-3), (64, 3e-3), (80, 2.7e-3), (96, 2.5e-3), (112, 2.2e-3), (128, 2e-3),
             (160, 1.7e-3), (192, 1.5e-3), (256, 1e-3)),
        n_ctx=128, batch_size=8, min_steps=300, max_tokens=17_000_000, max_tokens_per_param=3000,
        warmup_iters=30, eval_iters=40, family_layers=4, min_decades_C=2.0, optimum_tokens_per_param=(30, 100),
    ),
    # A few seconds of training: for tests and smoke checks of the machinery, not for science.
    "tiny": SweepGrid(
        name="tiny", sizes=((1, 16), (2, 16)), budgets=(6e7, 1.2e8), slice_steps=(12,), lrs=((16, 1e-2),),
        n_ctx=16, batch_size=4, min_steps=10, max_tokens=10_000, warmup_iters=1, eval_iters=2, num_threads=1,
    ),
}


def grid_for(profile: str | None = None) -> SweepGrid:
    """The grid of a profile (``'quick'``, ``'full'`` or ``'tiny'``); ``None`` = :func:`runtime.profile`."""
    name = runtime.profile() if profile is None else profile
    if name not in GRIDS:
        raise ValueError(f"unknown sweep profile {name!r}; choose one of {sorted(GRIDS)}.")
    return GRIDS[name]


# ----------------------------------------------------------------------------- results file

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
    """The folder next to a results file where cluster jobs write one file per trunk (:func:`submit_sweep`)."""
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


def _train_trunk(trunk: dict, grid: SweepGrid, train_fn: Callable, dataset, overrides: dict) -> list[dict]:
    """Train one size's trunk with its branches; return the result lines of its points."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_fn(trunk["model_config"], {**trunk["train_config"], **overrides}, dataset, progress=False,
                   branches=trunk["branches"])
    spent, cpu = time.perf_counter() - t0, time.process_time() - c0
    by_steps = {b.iters: b for b in res.branches}
    by_steps[res.iters] = res
    from .train import cooldown_steps

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
    ``path``: the results file (default :func:`results_path`). Missing points are grouped by size
    into :func:`trunks`; each trunk trains once, branching a cool-down off at every missing point,
    and its points are appended as soon as it ends, so an interrupted sweep resumes with the next
    unfinished size (a trunk is deterministic, so a resumed sweep gives the same numbers).
    ``dataset``: the corpus (default :func:`utils.data.load_dataset`, loaded only if a point is
    missing). ``train_fn(model_config, train_config, dataset, progress=False, branches=[...])``
    defaults to :func:`utils.train.train` (tests pass a fake). ``max_trunks`` stops after that many
    trunks. ``workers``: how many trunks train at once on the CPU, each in its own process with one
    thread (default :func:`default_workers`: one per core); with a GPU, a given ``train_fn``, or
    ``workers=1``, trunks train one after another in this process.
    Returns a list of result dicts (the fields of :func:`plan`, plus losses in nats and bits per
    character, the trunk's constant-rate loss at the same step, wall times), in the order of :func:`plan`.
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


# ----------------------------------------------------------------------------- on a cluster

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
                 wait: bool = True, device: str | None = None, timeout_min: int = 240,
                 **parameters) -> list:
    """Submit the sweep's missing trunks as cluster jobs with submitit (SLURM, or its ``local`` and ``debug``
    executors); return the jobs (``wait=False``) or, after they finish, all results (Chapter 6, "Beyond one
    machine" in How to use).

    Each job trains one trunk and writes its points to its own file in :func:`parts_dir`, merged on read
    by :func:`load_all_results`, so no two jobs ever write to one file. Submitting again after an
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


# ----------------------------------------------------------------------------- extra runs

def train_points(grid: SweepGrid, points: list[dict], kind: str, *, dataset=None, progress: bool = True,
                 workers: int | None = None, train_fn: Callable | None = None) -> list[dict]:
    """Train extra points outside the sweep's plan (each its own run, e.g. Chapter 6's held-out models),
    cached in the results file of ``kind`` (:func:`results_path`); return their results in order.

    Each point is a dict like :func:`plan`'s (build them with :func:`make_point`); its ``trunk`` names
    the run that trains it, so points with the same ``trunk`` must share a model and a schedule and
    differ only in length (they are then branches of one run)."""
    path = results_path(grid, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["run"] for r in load_results(path)}
    todo = [p for p in points if p["run"] not in done]
    _train_points(grid, todo, path, dataset, train_fn, progress, None, None, workers,
                  desc=f"{kind} runs", total=len(points))
    by_name = {r["run"]: r for r in load_results(path)}
    return [by_name[p["run"]] for p in points if p["run"] in by_name]


def make_point(grid: SweepGrid, n_layer: int, n_embd: int, steps: int, *, budget: float | None = None,
               schedule: str = "wsd", seed: int | None = None, tag: str = "") -> dict:
    """A point like :func:`plan`'s for any shape, length, schedule and seed (for :func:`train_points`)."""
    counts = _counts(grid, n_layer, n_embd)
    p = _point(grid, n_layer, n_embd, int(steps), budget, counts)
    p["train_config"] = grid.train_config(int(steps), n_embd, schedule=schedule, seed=seed)
    p["schedule"], p["seed"] = schedule, p["train_config"]["seed"]
    label = f"{tag}{schedule}-s{p['seed']}-"
    p["run"] = label + p["run"]
    p["trunk"] = label + p["trunk"]
    if schedule != "wsd":
        p["trunk"] += f"-S{steps}"  # a cosine run cannot share its schedule with another length
    return p


def schedule_check(grid: SweepGrid, pairs: list[tuple[int, int, int]], *, dataset=None, progress: bool = True,
                   workers: int | None = None) -> list[dict]:
    """Cool-down branches against cosine runs of the same length, with a second seed (Chapter 6).

    For each ``(n_layer, n_embd, steps)`` in ``pairs``, trains four independent runs: ``wsd`` and
    ``cosine``, each with the grid's seed and with the seed + 1 (a ``wsd`` run equals the sweep's
    branch of that length, :func:`utils.train.train`). Returns their results (cached)."""
    points = [make_point(grid, L, w, s, schedule=sch, seed=grid.seed + k, tag="check-")
              for L, w, s in pairs for sch in ("wsd", "cosine") for k in (0, 1)]
    return train_points(grid, points, "schedule", dataset=dataset, progress=progress, workers=workers)


# ----------------------------------------------------------------------------- the benchmark

def bench(grid: SweepGrid | str = "quick", sizes: tuple | None = None, workers: int | None = None,
          out_dir=None, progress: bool = True) -> dict:
    """Points per minute: cool-down branches against one cosine run per point, side by side (Chapter 6).

    Trains the IsoFLOP and shared-step points of ``sizes`` (default: three widths from the middle of
    the ladder) twice from scratch, in fresh files under ``out_dir``: first every point as its own run
    with a cosine schedule over its length (the sweep's design until this chapter's rewrite), then with
    one ``wsd`` trunk per size and a cool-down branch per point. Same workers, same machine, back to
    back. Returns (and :func:`main` prints) points, seconds, points per minute and their ratio."""
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


# ----------------------------------------------------------------------------- reporting

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


def _plan_table(grid: SweepGrid) -> str:
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


DEFAULT_TIMEOUT_MIN = 240  # a cluster job's time limit when --timeout_min is not given

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


def main(argv=None) -> int:
    """Command-line entry point: run (or resume) a profile's sweep and print a summary table, print the
    plan (``--list``), or measure branches against separate runs (``--bench``).

    Returns 0 (the exit status; the ``course-sweep`` script passes it to ``sys.exit``)."""
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
    args = p.parse_args(argv)
    _check_flags(p, args)
    grid = grid_for(args.profile)
    if args.list:
        print(_plan_table(grid))
        return 0
    if args.bench:
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
    path = Path(args.out) if args.out else results_path(grid)
    if args.executor:
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
    t0 = time.perf_counter()
    results = run_sweep(grid, path=path, progress=not args.no_progress, device=args.device,
                        max_trunks=args.max_trunks, workers=args.workers)
    print(summary(results))
    print(f"results: {path} ({len(results)}/{len(plan(grid))} points; {time.perf_counter() - t0:.1f} s this call)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

"""A scaling sweep's design: the grid, its points and the trunks that train them (Chapter 6).

A :class:`SweepGrid` names a ladder of model shapes, a few compute budgets ``C`` (training FLOPs,
counted with the course's one count :func:`utils.attention.train_flops_per_token`) and a few shared
step counts; :data:`GRIDS` holds the course's three (``quick``, ``full``, ``tiny``). :func:`plan` turns a
grid into its points (one per size and budget, the *IsoFLOP* profiles, and one per size and shared step
count), checking the design rules on the way, and :func:`trunks` groups them into one ``wsd`` run per
size with a cool-down branch at each shorter point. :func:`make_point` builds a point outside the plan
(Chapter 6's schedule check and held-out models); :func:`shape_for_params` and :func:`lr_for_width` give
the shape and learning rate of a size between or beyond the ladder's.

Nothing here trains: :mod:`utils.sweep_run` does, and :mod:`utils.sweep` is the front door that
Chapter 6 imports (it re-exports everything here).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from types import SimpleNamespace

from . import runtime
from .attention import count_params, kaplan_train_flops_per_token, matmul_params, train_flops_per_token

__all__ = ["SweepGrid", "GRIDS", "grid_for", "plan", "trunks", "decades", "shape_for_params", "lr_for_width",
           "make_point", "SCHEMA_VERSION", "MAX_WARMUP_FRACTION", "MIN_POINTS_BESIDE"]

SCHEMA_VERSION = 2  # bump when the fields of a result line (utils.sweep_results) change: the grid's key hashes it
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

#: The course's grids. ``quick``: CPU, a few minutes on a 2-core machine (Chapter 6 prints the measured time);
#: ``full``: a GPU. Widths grow by 1.1-1.6x per rung, so N grows by about 1.3-2.4x (Chapter 6 prints the factors),
#: with extra rungs (``full``: every 1.2x) where the minima lie; budgets grow by 2^(1/3) (full's by sqrt(2)) over
#: at least 1.5 decades of compute (full: 2). Every run warms up over at most a tenth of the shortest run's steps.
#: Small character models are best trained on about a hundred tokens per parameter (Chapter 6), hence the high
#: cap and more than one pass over the data for the longest runs. ``quick`` keeps only the widths its IsoFLOP
#: profiles need (each budget has two points on each side of the optimum's band), plus the narrowest (d4, two
#: points) so that N spans two decades, and it starts at 300 steps and
#: stops at 1,500 tokens per parameter: an earlier version from 200 steps and up to 3,000 tokens per parameter
#: left residuals that tracked run length at both ends (see Chapter 6's residual plot).
GRIDS: dict[str, SweepGrid] = {
    "quick": SweepGrid(
        name="quick",
        sizes=tuple((2, w) for w in (4, 6, 8, 10, 14, 16, 20, 24, 36, 56)),
        budgets=tuple(1.26e10 * 2 ** (k / 3) for k in range(16)),
        slice_steps=(512, 1024),
        lrs=((4, 1.5e-2), (6, 1.5e-2), (8, 1.5e-2), (10, 1.3e-2), (12, 1.2e-2), (14, 1.1e-2), (16, 1e-2), (20, 9e-3),
             (24, 8e-3), (32, 6e-3), (36, 5.3e-3), (48, 4e-3), (56, 3.4e-3), (64, 3e-3), (96, 3e-3)),
        n_ctx=64, batch_size=8, min_steps=300, max_tokens=17_200_000, max_tokens_per_param=1500,
        warmup_iters=20, eval_iters=40, min_decades_C=1.5, optimum_tokens_per_param=(50, 250),
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


def make_point(grid: SweepGrid, n_layer: int, n_embd: int, steps: int, *, budget: float | None = None,
               schedule: str = "wsd", seed: int | None = None, tag: str = "") -> dict:
    """A point like :func:`plan`'s for any shape, length, schedule and seed (for
    :func:`utils.sweep_run.train_points`)."""
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


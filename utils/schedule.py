"""The learning-rate schedule: warm-up, then cosine decay or warmup-stable-decay with its cool-down.

:func:`lr_at` gives the rate of one optimiser step; Chapter 4b plots the cosine schedule (linear
warm-up {cite}`goyal2017accurate`, then half a cosine {cite}`loshchilov2017sgdr`) and Chapter 6 the
``wsd`` one, whose linear cool-down lasts :func:`cooldown_steps` steps. ``tc`` is a
:class:`utils.train.TrainConfig` (its ``lr``, ``min_lr``, ``warmup_iters``, ``lr_decay_iters``,
``max_iters``, ``schedule`` and ``cooldown_fraction`` are read).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: utils.train imports this module
    from .train import TrainConfig

__all__ = ["lr_at", "cooldown_steps"]


def lr_at(step: int, tc: TrainConfig, total_iters: int | None = None) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, cosine decay, floor.

    Warm-up rises linearly to ``tc.lr`` over ``warmup_iters`` steps; then the rate follows
    half a cosine down to ``min_lr`` at ``lr_decay_iters`` (default: the run's length) and
    stays there. Chapter 4 plots it. With ``tc.schedule == "wsd"`` the rate stays at ``tc.lr``
    after the warm-up and falls linearly over the last :func:`cooldown_steps` steps of the run,
    reaching ``min_lr`` at its last step (Chapter 6).
    """
    total = total_iters if total_iters is not None else tc.max_iters
    decay = tc.lr_decay_iters or total
    if step < tc.warmup_iters:
        return tc.lr * (step + 1) / tc.warmup_iters
    if tc.schedule == "wsd":
        cool = cooldown_steps(decay, tc)
        start = decay - cool
        if step < start:
            return tc.lr
        if step >= decay:
            return tc.min_lr
        return tc.lr + (tc.min_lr - tc.lr) * (step - start + 1) / cool
    if step >= decay:
        return tc.min_lr
    progress = (step - tc.warmup_iters) / max(1, decay - tc.warmup_iters)
    return tc.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (tc.lr - tc.min_lr)


def cooldown_steps(total_iters: int, tc: TrainConfig) -> int:
    """Steps of the linear cool-down that ends a ``wsd`` run of ``total_iters`` steps (at least one)."""
    return max(1, round(tc.cooldown_fraction * total_iters))

"""Cool-down branches: several run lengths from one warmup-stable-decay run (Chapter 6).

With ``schedule="wsd"`` a run of ``b`` steps keeps a constant learning rate until its last
:func:`utils.schedule.cooldown_steps` ``(b)`` steps; before that it is the same computation as any longer
``wsd`` run with the same seed. So a long run can stop at the step where a ``b``-step run would start
cooling down (:func:`branch_starts`), save its state (:func:`save_state`), take the cool-down steps
(:func:`cool_down`), and put the state back (:func:`restore_state`): the branch ends exactly as an
independent run of ``b`` steps would, for the price of its cool-down alone. :func:`check_branches`
refuses lengths where that equality would not hold. :func:`utils.train.train` with ``branches`` does it.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch

from .schedule import cooldown_steps, lr_at

__all__ = ["check_branches", "branch_starts", "save_state", "restore_state", "cool_down"]


def check_branches(branches, tc, mc, out_dir, cache) -> list[int]:
    """The branch lengths as a sorted list of distinct step counts, each a valid ``wsd`` run shorter than this one.

    ``tc`` and ``mc`` are the run's :class:`utils.train.TrainConfig` and :class:`utils.model.GPTConfig`;
    raises ``TypeError``/``ValueError`` with what to change where a branch could not equal its own run."""
    if branches is None:
        return []
    total = tc.iterations(mc.n_ctx)
    try:
        out = sorted({int(b) for b in branches})
    except (TypeError, ValueError):
        raise TypeError(f"branches must be a sequence of step counts, got {branches!r}.") from None
    if any(int(b) != b for b in branches):
        raise ValueError(f"branches must be whole step counts, got {list(branches)!r}.")
    if out and tc.schedule != "wsd":
        raise ValueError("branches need schedule='wsd' (a constant rate to branch from); this run uses "
                         f"schedule={tc.schedule!r}.")
    if out and (out_dir is not None or cache):
        raise ValueError("branches do not combine with checkpoints: train them without out_dir and cache.")
    if tc.lr_decay_iters is not None and out:
        raise ValueError("branches need lr_decay_iters=None (each branch cools down over its own length).")
    for b in out:
        if not 0 < b < total:
            raise ValueError(f"branch length {b} must be between 1 and the run's own length {total - 1}.")
        if b - cooldown_steps(b, tc) < tc.warmup_iters:
            raise ValueError(f"a branch of {b} steps would start cooling down at step {b - cooldown_steps(b, tc)}, "
                             f"inside the warm-up of {tc.warmup_iters} steps; use longer branches or a shorter warm-up.")
    return out


def branch_starts(branch_list, tc) -> dict[int, int]:
    """``{step where its cool-down starts: branch length}`` for each branch length in ``branch_list``."""
    return {b - cooldown_steps(b, tc): b for b in branch_list}


def save_state(run) -> tuple:
    """Copies of what a branch's steps change in ``run`` (a :class:`utils.train.TrainingState`): weights,
    optimiser, the batches' generator, torch's random state and the gradient scaler."""
    scaler = run.scaler
    return (copy.deepcopy(run.model.state_dict()), copy.deepcopy(run.optimizer.state_dict()),
            run.batches.generator.get_state(), torch.get_rng_state(),
            copy.deepcopy(scaler.state_dict()) if scaler is not None else None)


def restore_state(run, saved: tuple) -> None:
    """Put back into ``run`` the state :func:`save_state` copied."""
    run.model.load_state_dict(saved[0])
    run.optimizer.load_state_dict(saved[1])
    run.batches.generator.set_state(saved[2])
    torch.set_rng_state(saved[3])
    if run.scaler is not None:
        run.scaler.load_state_dict(saved[4])


def cool_down(run, b: int, train_step: Callable) -> tuple[list, float]:
    """Take the steps from ``run.step`` to ``b`` at the learning rates of a ``wsd`` run of ``b`` steps, with
    ``train_step(run, step, lr)``; returns their losses and the last learning rate (``tc.lr`` if none).
    ``run.step`` itself does not move."""
    losses, lr_b = [], run.tc.lr
    for s in range(run.step, b):
        lr_b = lr_at(s, run.tc, b)
        losses.append(train_step(run, s, lr_b))
    return losses, lr_b

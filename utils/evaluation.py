"""Evaluating a model's loss: on fixed random windows during training, or on a whole split (Chapters 4b and 6).

During training, :func:`utils.train.train` scores the model every ``eval_interval`` steps on the same
windows each time (:func:`fixed_eval_batches`, drawn once), with :func:`mean_loss`. After training,
:func:`evaluate_split` reads a whole split in consecutive windows, so its result carries no sampling
noise from the choice of windows.
"""
from __future__ import annotations

import numpy as np
import torch

from .batches import RandomWindows
from .precision import autocast

__all__ = ["mean_loss", "fixed_eval_batches", "evaluate_split"]


@torch.no_grad()
def mean_loss(model, batches: list, amp_dtype, device, distributed: bool = False) -> float:
    """Mean loss over fixed evaluation batches (each the same size, so the mean of means is exact).

    ``distributed=True``: each process holds a share of the windows; the sums are added across processes.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    for x, y in batches:
        with autocast(device, amp_dtype):
            _, loss = model(x, y)
        total += loss.float() * x.shape[0]
    model.train(was_training)
    n = sum(x.shape[0] for x, _ in batches)
    if distributed:
        both = torch.stack([total, torch.tensor(float(n), device=device)])
        torch.distributed.all_reduce(both)
        return float(both[0]) / float(both[1])
    return float(total) / n


def fixed_eval_batches(data, tc, n_ctx: int, seed: int, device, shard: tuple[int, int] | None = None) -> list:
    """``tc.eval_iters`` batches of ``tc.batch_size`` windows, drawn once with ``seed`` (the same at every
    evaluation), merged into larger chunks: a list of ``(x, y)`` pairs on ``device``.

    ``shard=(rank, world_size)``: only this process's contiguous share of the windows.
    """
    src = RandomWindows(data, tc.batch_size, n_ctx, seed, torch.device("cpu"))
    x, y = src.sample(tc.batch_size * tc.eval_iters)
    chunk = tc.batch_size * min(tc.eval_iters, 8)  # fewer, larger forward passes: less per-op overhead
    if shard is not None:
        rank, world = shard
        rows = x.shape[0] // world
        x, y = x[rank * rows:(rank + 1) * rows], y[rank * rows:(rank + 1) * rows]
        chunk = max(1, chunk // world)
    out = []
    for i in range(0, x.shape[0], chunk):
        xb, yb = x[i:i + chunk].contiguous(), y[i:i + chunk].contiguous()
        out.append((xb.to(device), yb.to(device)))
    return out


@torch.no_grad()
def evaluate_split(model, tokens, *, n_ctx: int, batch_size: int = 64, device=None) -> float:
    """Mean cross-entropy in nats per predicted token over a whole token array (Chapters 4b and 6).

    The array is cut into consecutive, non-overlapping windows of ``n_ctx`` inputs (the last,
    shorter window included): window ``k`` reads ``tokens[k*n_ctx : (k+1)*n_ctx]`` and predicts the
    tokens one place later, so every token after the first is predicted exactly once. Unlike the
    random windows :func:`utils.train.train` evaluates on, the result is the same for every run: comparisons
    between models carry no evaluation-sampling noise. ``device=None`` uses the model's device.
    """
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    data = np.asarray(tokens)
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.integer):
        raise TypeError(f"tokens must be a 1-D array of integer token ids, got dtype {data.dtype} "
                        f"and shape {data.shape}; pass a split such as dataset.val.")
    if len(data) < 2:
        raise ValueError(f"tokens holds {len(data)} token(s); at least 2 are needed to predict one.")
    model_ctx = model.config.n_ctx
    if not 1 <= int(n_ctx) <= model_ctx:
        raise ValueError(f"n_ctx must be between 1 and the model's context {model_ctx}, got {n_ctx}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    data = torch.from_numpy(np.ascontiguousarray(data, dtype=np.int64))
    n_ctx, batch_size, n_pred = int(n_ctx), int(batch_size), len(data) - 1
    n_full = n_pred // n_ctx
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        if n_full:
            x_all = data[:n_full * n_ctx].view(n_full, n_ctx)
            y_all = data[1:n_full * n_ctx + 1].view(n_full, n_ctx)
            for i in range(0, n_full, batch_size):
                total += _summed_loss(model, x_all[i:i + batch_size], y_all[i:i + batch_size], device)
        if n_pred > n_full * n_ctx:  # the last, shorter window
            start = n_full * n_ctx
            total += _summed_loss(model, data[start:-1][None], data[start + 1:][None], device)
    finally:
        model.train(was_training)
    return total / n_pred


def _summed_loss(model, x: torch.Tensor, y: torch.Tensor, device) -> float:
    """Sum (not mean) of the cross-entropy in nats over every target in a batch of windows."""
    logits, _ = model(x.to(device))
    return float(torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                                                   y.to(device).reshape(-1), reduction="sum"))

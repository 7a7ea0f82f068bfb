"""Training batches: random windows of ``n_ctx + 1`` tokens, drawn with their own seeded generator (Chapter 4b).

:class:`RandomWindows` is the sampler :func:`utils.train.train` draws every training batch from (and,
once, the fixed evaluation batches, :func:`utils.evaluation.fixed_eval_batches`). Its generator is
its own, so the order of the batches depends on the seed alone, and a checkpoint can save and restore it.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["RandomWindows"]


class RandomWindows:
    """Random windows of ``n_ctx + 1`` tokens from one split, drawn with their own generator.

    ``sample()`` returns ``(x, y)``: inputs and the same windows one token later, each of shape
    ``(batch_size, n_ctx)``, on ``device``. ``shard=(rank, world_size)`` (data-parallel training):
    the start positions of the whole batch are drawn, as in one process, and this process keeps
    only its ``rank``-th slice of them.
    """

    def __init__(self, data: np.ndarray, batch_size: int, n_ctx: int, seed: int, device: torch.device,
                 shard: tuple[int, int] | None = None):
        self.data = torch.from_numpy(np.ascontiguousarray(np.asarray(data, dtype=np.int64)))
        self.batch_size, self.n_ctx, self.device = batch_size, n_ctx, device
        self.offsets = torch.arange(n_ctx + 1)
        self.high = len(self.data) - n_ctx
        self.generator = torch.Generator().manual_seed(seed)
        self.shard = shard

    def sample(self, batch_size: int | None = None):
        """One batch ``(x, y)`` of ``batch_size`` windows (default: the sampler's), this process's share."""
        starts = torch.randint(self.high, (batch_size or self.batch_size,), generator=self.generator)
        if self.shard is not None:
            rank, world = self.shard
            starts = starts.view(world, -1)[rank]
        windows = self.data[starts[:, None] + self.offsets]  # (B, n_ctx + 1), one gather
        if self.device.type == "cuda":
            windows = windows.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            windows = windows.to(self.device)
        return windows[:, :-1], windows[:, 1:]

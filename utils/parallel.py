"""Data-parallel training: one run spread over several processes with ``DistributedDataParallel`` {cite}`li2020pytorch`.

``torchrun --nproc_per_node=K -m utils.train ...`` starts K processes; :func:`init_distributed` joins
them into a process group (``nccl`` on GPUs, ``gloo`` on the CPU). Inside :func:`utils.train.train`
every process draws the positions of the whole batch from the same seeded generator and keeps its own
``batch_size / K`` windows (:class:`utils.batches.RandomWindows` with ``shard``); the model is wrapped by
:func:`data_parallel`, which averages the gradients across processes during the backward pass. One
process (``distributed() is None``) uses none of this. Chapter 4b explains the set-up.
"""
from __future__ import annotations

import contextlib
import os

import torch

from . import runtime

__all__ = ["distributed", "init_distributed", "check_batch_split", "data_parallel", "gradient_sync",
           "average_over_processes", "gather_to_all"]


def distributed() -> tuple[int, int] | None:
    """``(rank, world_size)`` inside an initialised ``torch.distributed`` process group, else ``None``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def init_distributed(args) -> bool:
    """Under ``torchrun`` (which sets ``RANK`` and ``WORLD_SIZE``), join the process group: ``nccl`` with
    one GPU per process (``LOCAL_RANK``) on CUDA, ``gloo`` on the CPU. Returns whether it did.

    ``args`` is the command line's namespace: its ``device`` is read and set to this process's device.
    Without CUDA the processes would share the CPU, which is slower than one process: that happens only
    when asked for (``--device cpu`` or ``COURSE_DEVICE=cpu``); otherwise this raises ``ValueError``."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or torch.distributed.is_initialized():
        return False
    device = runtime.pick_device(args.device)
    if device.type == "cpu" and not (args.device or os.environ.get("COURSE_DEVICE")):
        raise ValueError(f"torchrun started {os.environ['WORLD_SIZE']} process(es), but there is no CUDA GPU here, "
                         "so they would all train on the CPU (gloo), more slowly than one process. To train "
                         "data-parallel on the CPU on purpose, add --device cpu or set COURSE_DEVICE=cpu; to train "
                         "on GPUs, run the command on a machine where torch.cuda.is_available() is True.")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise ValueError(f"torchrun started process {local} on a machine with {torch.cuda.device_count()} "
                             "GPU(s); use --nproc_per_node at most the number of GPUs.")
        torch.cuda.set_device(local)
        args.device = f"cuda:{local}"
        backend = "nccl"
    elif device.type == "cpu":
        args.device = "cpu"
        backend = "gloo"
    else:
        raise ValueError(f"data-parallel training runs on CUDA (nccl) or the CPU (gloo), not on {device.type}; "
                         "set --device cpu or COURSE_DEVICE=cpu.")
    torch.distributed.init_process_group(backend)
    return True


def check_batch_split(batch_size: int, ddp: tuple[int, int], branches) -> None:
    """Raise ``ValueError`` unless a data-parallel run over ``ddp = (rank, world_size)`` can train:
    no cool-down branches, and a global ``batch_size`` that the processes share equally."""
    if branches:
        raise ValueError("branches are not supported in data-parallel training (torchrun): train a run with "
                         "branches in one process, or train each branch length as its own run.")
    if batch_size % ddp[1]:
        raise ValueError(f"data-parallel training over {ddp[1]} processes splits every batch between them, so "
                         f"batch_size must be a multiple of {ddp[1]}; got batch_size={batch_size}. Use "
                         f"batch_size={max(1, round(batch_size / ddp[1])) * ddp[1]} or another process count.")


def data_parallel(model, device: torch.device):
    """``model`` wrapped in ``DistributedDataParallel`` (on this process's GPU, or the CPU): its backward
    passes average the gradients across the processes."""
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gradient_sync(wrapped, ddp, micro: int, grad_accum: int):
    """The context for micro-batch ``micro`` of ``grad_accum``: data-parallel, gradients are averaged
    across processes once, on the last micro-batch (``no_sync`` before it); otherwise nothing."""
    if ddp is not None and micro < grad_accum - 1:
        return wrapped.no_sync()
    return contextlib.nullcontext()


def average_over_processes(value: torch.Tensor, ddp) -> torch.Tensor:
    """Data-parallel: replace ``value`` in place by its mean over the processes (their equal shares of a
    batch) and return it; one process: ``value`` unchanged."""
    if ddp is not None:
        torch.distributed.all_reduce(value)
        value /= ddp[1]
    return value


def gather_to_all(obj, ddp) -> list:
    """Every process's ``obj``, as a list indexed by rank (every process must call this)."""
    out = [None] * ddp[1]
    torch.distributed.all_gather_object(out, obj)
    return out

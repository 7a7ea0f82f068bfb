"""Training a GPT: one function for the notebooks, the scaling sweep and the command line.

:func:`train` takes a model configuration (:class:`~utils.model.GPTConfig`), a
:class:`TrainConfig` and a dataset, and returns a :class:`TrainResult`: the trained model,
the history of training and validation losses, and how fast it went (tokens per second
and model FLOPs utilisation, MFU). Chapter 4 explains each ingredient: AdamW with weight
decay on matrices {cite}`loshchilov2019decoupled`, linear warm-up then cosine decay
{cite}`loshchilov2017sgdr`, gradient clipping and accumulation, mixed precision on GPUs
{cite}`micikevicius2018mixed`, checkpoints that resume exactly, and MFU
{cite}`chowdhery2022palm`.

Command line (prints one JSON object as its last line)::

    python -m utils.train --n_layer 4 --n_head 4 --n_embd 128 --n_ctx 64 --max_iters 2000

One run on several GPUs (or CPU processes), data-parallel with PyTorch's
``DistributedDataParallel`` {cite}`li2020pytorch`: start the same command with ``torchrun``::

    torchrun --nproc_per_node=4 -m utils.train --n_layer 6 --n_head 6 --n_embd 384 --n_ctx 256 --batch_size 32

Every process draws the positions of the whole batch from the same seeded generator and gathers
only its own ``batch_size / world_size`` windows, so the global batch, the schedule, the token
counts, FLOPs and MFU (against the peak of all the devices) are those of the one-process run, and
the loss curve is the same up to rounding. Only rank 0 writes checkpoints and prints the JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import runtime
from .model import GPT, GPTConfig, dataclass_from_dict

__all__ = ["TrainConfig", "TrainResult", "NonFiniteLossError", "OutDirInUseError", "train", "lr_at", "cooldown_steps", "peak_flops", "gpu_peak_flops",
           "cpu_peak_flops", "cpu_threads", "data_fingerprint", "run_key", "evaluate_split", "main"]

CACHE_VERSION = 2  # bump when a change to the trainer changes results, so cached runs are redone

# Dense (no sparsity) bf16/fp16 tensor-core peaks in FLOP/s, by the exact name CUDA reports
# (torch.cuda.get_device_name). Exact names, not substrings: "NVIDIA L40" is not an L4, and an
# H100 NVL is not an H100 SXM. A GPU that is not listed gets no MFU rather than a wrong one.
# Sources: NVIDIA's product datasheets (sparse figures halved); AWS's documentation for the A10G.
_H100_SXM, _H100_PCIE, _HOPPER_NVL = 989e12, 756e12, 835e12   # 1,979 / 1,513 / 1,671 TFLOPS with sparsity
_A100, _V100_SXM2, _V100_PCIE = 312e12, 125e12, 112e12
GPU_PEAK_FLOPS: dict[str, float] = {
    "NVIDIA H100 80GB HBM3": _H100_SXM,    # H100 SXM5
    "NVIDIA H100 PCIe": _H100_PCIE,
    "NVIDIA H100 NVL": _HOPPER_NVL,
    "NVIDIA H200": _H100_SXM,              # H200 SXM: the same tensor cores as the H100 SXM
    "NVIDIA H200 NVL": _HOPPER_NVL,
    "NVIDIA A100-SXM4-40GB": _A100,
    "NVIDIA A100-SXM4-80GB": _A100,
    "NVIDIA A100-PCIE-40GB": _A100,
    "NVIDIA A100 80GB PCIe": _A100,
    "NVIDIA L40S": 362e12,                 # 733 TFLOPS with sparsity
    "NVIDIA L40": 181e12,                  # 362 TFLOPS with sparsity
    "NVIDIA L4": 121e12,                   # 242 TFLOPS with sparsity
    "NVIDIA A10G": 70e12,                  # AWS G5 documentation
    "NVIDIA A10": 125e12,
    "Tesla V100-SXM2-16GB": _V100_SXM2,
    "Tesla V100-SXM2-32GB": _V100_SXM2,
    "Tesla V100-PCIE-16GB": _V100_PCIE,
    "Tesla V100-PCIE-32GB": _V100_PCIE,
    "Tesla T4": 65e12,                     # mixed precision (FP16/FP32)
}



class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite; the message names the step and what to try."""


class OutDirInUseError(ValueError):
    """``out_dir`` holds a run (finished, or a checkpoint) of another configuration. The message names
    the Python argument (``resume=False``); the command line names its flag (``--no_resume``) instead."""

    def __init__(self, run_dir: Path, what: str):
        self.run_dir, self.what = run_dir, what
        super().__init__(f"{run_dir} holds {what} of a different configuration; choose another out_dir, "
                         "or pass resume=False to start again there (it overwrites that run).")


@dataclass
class TrainConfig:
    """How to train: batch, schedule, optimiser, evaluation, seed, device (Chapter 4).

    Defaults are the course's reference run: batch 12, 2000 iterations, AdamW at learning
    rate 1e-3 (warm-up 100 iterations, cosine decay to 1e-4), weight decay 0.1 on matrices,
    gradient clipping at 1.0, evaluation every 250 iterations on 20 batches.

    ``schedule="wsd"`` replaces the cosine by warm-up, a constant rate, and a linear cool-down to
    ``min_lr`` over the last ``cooldown_fraction`` of the steps (Hägele et al. 2024; Chapter 6):
    runs of different lengths then share everything before their cool-downs, so one run can branch
    off cool-downs at several lengths (:func:`train` with ``branches``).
    ``max_tokens`` (optional) sets the length as a token budget instead of ``max_iters``:
    iterations = ceil(max_tokens / (batch_size * n_ctx * grad_accum)). ``lr_decay_iters``
    defaults to the number of iterations. ``device=None`` picks CUDA > MPS > CPU;
    ``dtype="auto"`` trains in bf16 autocast on GPUs with bf16 hardware (compute capability
    8.0 and newer), fp16 with a gradient scaler on older ones such as the T4, fp32 elsewhere.
    ``num_threads=None`` lets :func:`cpu_threads` choose the CPU thread count (the idle cores). ``checkpoint_interval=None`` saves a checkpoint
    at every evaluation when the run has a directory.
    ``seed`` sets the initial weights, the order of the training batches and dropout; it also picks the
    fixed evaluation windows unless ``eval_seed`` is given: runs with different ``seed`` and the same
    ``eval_seed`` are scored on the same windows, so their losses differ by training noise only (Chapter 6).
    """

    batch_size: int = 12
    max_iters: int = 2000
    max_tokens: int | None = None
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    eval_seed: int | None = None
    device: str | None = None
    dtype: str = "auto"
    compile: bool = False
    num_threads: int | None = None
    checkpoint_interval: int | None = None
    schedule: str = "cosine"
    cooldown_fraction: float = 0.2

    # fields that change speed but not the numbers a run produces: left out of cache keys
    _NOT_IN_KEY = ("device", "compile", "num_threads", "checkpoint_interval", "dtype")

    def __post_init__(self):
        positive = ("batch_size", "max_iters", "grad_accum", "eval_interval", "eval_iters")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}.")
            setattr(self, name, int(value))
        for name in ("max_tokens", "lr_decay_iters", "num_threads", "checkpoint_interval"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"TrainConfig.{name} must be a positive integer or None, got {value!r}.")
            if value is not None:
                setattr(self, name, int(value))
        if isinstance(self.warmup_iters, bool) or int(self.warmup_iters) != self.warmup_iters or self.warmup_iters < 0:
            raise ValueError(f"TrainConfig.warmup_iters must be a non-negative integer, got {self.warmup_iters!r}.")
        self.warmup_iters = int(self.warmup_iters)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}.")
        if not (math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"TrainConfig.min_lr must be between 0 and lr={self.lr}, got {self.min_lr!r}.")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"weight_decay and grad_clip must be >= 0 (grad_clip=0 turns clipping off), "
                             f"got {self.weight_decay!r} and {self.grad_clip!r}.")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}.")
        if self.schedule not in ("cosine", "wsd"):
            raise ValueError(f"TrainConfig.schedule must be 'cosine' (warm-up, cosine decay) or 'wsd' (warm-up, "
                             f"constant, linear cool-down), got {self.schedule!r}.")
        if not (isinstance(self.cooldown_fraction, (int, float)) and 0 < self.cooldown_fraction <= 1):
            raise ValueError(f"TrainConfig.cooldown_fraction must be in (0, 1] (the share of steps spent "
                             f"cooling down in the 'wsd' schedule), got {self.cooldown_fraction!r}.")
        self.cooldown_fraction = float(self.cooldown_fraction)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"TrainConfig.dtype must be 'auto', 'float32', 'bfloat16' or 'float16', "
                             f"got {self.dtype!r}.")
        self.seed = int(self.seed)
        if self.eval_seed is not None:
            if isinstance(self.eval_seed, bool) or int(self.eval_seed) != self.eval_seed:
                raise ValueError(f"TrainConfig.eval_seed must be an integer or None (None: the seed's), "
                                 f"got {self.eval_seed!r}.")
            self.eval_seed = int(self.eval_seed)

    def iterations(self, n_ctx: int) -> int:
        """Number of optimiser steps: ``max_iters``, or enough for ``max_tokens`` at context ``n_ctx``."""
        if self.max_tokens is None:
            return self.max_iters
        return math.ceil(self.max_tokens / (self.batch_size * n_ctx * self.grad_accum))

    def to_dict(self) -> dict:
        """The configuration as a plain ``dict``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`'s output; unknown keys raise ``ValueError``."""
        return dataclass_from_dict(cls, d)


@dataclass
class TrainResult:
    """What :func:`train` returns: the model, its loss history and how fast training went.

    Losses are in nats per token (for the character tokenizer, per character); divide by
    ``ln 2`` for bits (``final_val_bpc``). ``history`` has one dict per evaluation with
    ``step, tokens, train_loss, val_loss, train_bpc, val_bpc, lr, time_s``; ``step_losses``
    holds the loss of every optimiser step (one minibatch, so noisy). ``flops`` is the
    training compute, :func:`utils.attention.train_flops_per_token` x tokens (Chapter 3). ``mfu`` is achieved
    model FLOP/s over the device's peak, or ``None`` where the peak is unknown.
    ``num_threads`` is the CPU thread count used (``None`` on GPUs). ``branches`` holds one result
    (without a model) per cool-down branch when :func:`train` was given ``branches``; a branch's
    ``wall_time_s`` is the time of its cool-down alone.
    """

    model: GPT | None
    model_config: dict
    train_config: dict
    history: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)
    iters: int = 0
    tokens_seen: int = 0
    final_train_loss: float = float("nan")
    final_val_loss: float = float("nan")
    wall_time_s: float = 0.0
    tokens_per_s: float = 0.0
    mfu: float | None = None
    n_params: int = 0
    n_params_non_embedding: int = 0
    flops: float = 0.0
    device: str = "cpu"
    dtype: str = "float32"
    num_threads: int | None = None
    cached: bool = False
    out_dir: str | None = None
    branches: list = field(default_factory=list)

    @property
    def final_val_bpc(self) -> float:
        """Final validation loss in bits per token (bits per character for the character tokenizer)."""
        return self.final_val_loss / math.log(2)

    @property
    def final_train_bpc(self) -> float:
        """Final training loss in bits per token."""
        return self.final_train_loss / math.log(2)

    def to_dict(self, history: bool = True) -> dict:
        """Everything but the model, as JSON-ready plain types (``history=False`` leaves out the curves)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "branches")}
        d["branches"] = [b.to_dict(history) for b in self.branches]
        d["final_train_bpc"] = self.final_train_bpc
        d["final_val_bpc"] = self.final_val_bpc
        if not history:
            d.pop("history")
            d.pop("step_losses")
        return d


# ----------------------------------------------------------------------------- schedule, peaks

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


@functools.lru_cache(maxsize=None)
def _cpu_peak(threads: int, n: int) -> float:
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)  # warm up the kernels
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(3):
            torch.mm(a, b)
        best = max(best, 3 * 2 * n**3 / (time.perf_counter() - t))
    return best


def cpu_peak_flops(n: int = 768, *, fresh: bool = False) -> float:
    """FLOP/s of a float32 ``n x n`` matrix multiply on this CPU, measured once per process.

    This is the "peak" that CPU MFU is measured against: the best a large, simple matmul
    reaches here, with torch's current thread count. On a loaded machine it is lower too.
    The first measurement per thread count is kept for the rest of the process;
    ``fresh=True`` measures again instead (and keeps nothing), which Chapter 4b uses to
    compare the machine's speed now with the speed a run's MFU was divided by.
    """
    if fresh:
        return _cpu_peak.__wrapped__(torch.get_num_threads(), n)
    return _cpu_peak(torch.get_num_threads(), n)


def _idle_cores(window_s: float = 0.2) -> float | None:
    """Idle cores over a short window, from ``/proc/stat`` (Linux); ``None`` where unavailable."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values[:8])  # idle + iowait, total (without guest time)
    try:
        idle0, total0 = sample()
        time.sleep(window_s)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def cpu_threads() -> int:
    """How many threads to train with on the CPU: the cores this process may use that are idle.

    The threads of one matrix multiply wait for each other at every operation; when other
    programs keep the cores busy, a second thread mostly waits, and one thread trains
    several times faster. So we look at how idle the cores are right now (Linux
    ``/proc/stat``; elsewhere all cores) and use that many, at least one.
    """
    cores = min(runtime.usable_cores(), torch.get_num_threads())
    idle = _idle_cores()
    if idle is None:  # pragma: no cover - not Linux
        return cores
    return max(1, min(cores, int(idle + 0.5)))


def peak_flops(device) -> float | None:
    """Peak FLOP/s of ``device`` for MFU: GPU table (bf16/fp16 dense), measured on CPU, else ``None``."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_peak_flops()
    if device.type == "cuda":
        return gpu_peak_flops(torch.cuda.get_device_name(device))
    return None


def gpu_peak_flops(name: str) -> float | None:
    """Dense bf16/fp16 peak FLOP/s of the GPU that CUDA calls ``name`` (exact match), or ``None``."""
    return GPU_PEAK_FLOPS.get(str(name).strip())


# ----------------------------------------------------------------------------- data and keys

def data_fingerprint(dataset) -> str:
    """A short hash of a dataset's training and validation ids (and vocabulary size)."""
    h = hashlib.blake2b(digest_size=12)
    for part in (dataset.train, dataset.val):
        arr = np.ascontiguousarray(np.asarray(part, dtype=np.int64))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    h.update(str(dataset.vocab_size).encode())
    return h.hexdigest()


def run_key(model_config: GPTConfig, train_config: TrainConfig, dataset=None, fingerprint: str | None = None) -> str:
    """The cache key of a run: a hash of the model config, the result-relevant train config and the data."""
    tc = {k: v for k, v in train_config.to_dict().items() if k not in TrainConfig._NOT_IN_KEY}
    if tc.get("eval_seed") is None:
        tc.pop("eval_seed", None)  # the default: keys of runs cached before the field existed stay valid
    if fingerprint is None:
        fingerprint = data_fingerprint(dataset)
    blob = json.dumps({"v": CACHE_VERSION, "model": model_config.to_dict(), "train": tc, "data": fingerprint},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class _Batches:
    """Random windows of ``n_ctx + 1`` tokens from one split, drawn with their own generator.

    ``shard=(rank, world_size)`` (data-parallel training): the start positions of the whole batch
    are drawn, as in one process, and this process keeps only its ``rank``-th slice of them.
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


def _as_model_config(mc) -> GPTConfig:
    if isinstance(mc, GPTConfig):
        return mc
    if isinstance(mc, dict):
        return GPTConfig.from_dict(mc)
    raise TypeError(f"model_config must be a GPTConfig or a dict of its fields, got {type(mc).__name__}.")


def _as_train_config(tc) -> TrainConfig:
    if tc is None:
        return TrainConfig()
    if isinstance(tc, TrainConfig):
        return tc
    if isinstance(tc, dict):
        return TrainConfig.from_dict(tc)
    raise TypeError(f"train_config must be a TrainConfig, a dict of its fields or None, got {type(tc).__name__}.")


def _native_bf16(device: torch.device) -> bool:
    """Whether a CUDA device does bfloat16 arithmetic in hardware (compute capability 8.0 on, or ROCm).

    ``torch.cuda.is_bf16_supported()`` also says yes on older GPUs such as the T4, where bfloat16
    only runs emulated and slowly; those should train in float16 with a gradient scaler.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def _precision(device: torch.device, dtype: str):
    """(autocast dtype or None, name, needs a gradient scaler) for a device and requested dtype."""
    if dtype == "auto":
        if device.type == "cuda":
            dtype = "bfloat16" if _native_bf16(device) else "float16"
        else:
            dtype = "float32"
    if dtype == "float32":
        return None, "float32", False
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("dtype='float16' is not supported on the CPU; use 'float32' or 'bfloat16'.")
    return getattr(torch, dtype), dtype, dtype == "float16"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _load_finished(run_dir: Path, mc: GPTConfig, device: torch.device) -> TrainResult:
    info = json.loads((run_dir / "result.json").read_text())
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    model = GPT(mc)
    model.load_state_dict(state["model"])
    model.to(device)
    known = {f.name for f in fields(TrainResult)}
    res = TrainResult(model=model, **{k: v for k, v in info.items() if k in known and k not in ("model", "branches")})
    res.cached = True
    res.out_dir = str(run_dir)
    return res


# ----------------------------------------------------------------------------- the trainer

@torch.no_grad()
def _evaluate(model, batches: list, amp_dtype, device, distributed: bool = False) -> float:
    """Mean loss over fixed evaluation batches (each the same size, so the mean of means is exact).

    ``distributed=True``: each process holds a share of the windows; the sums are added across processes.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    for x, y in batches:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            _, loss = model(x, y)
        total += loss.float() * x.shape[0]
    model.train(was_training)
    n = sum(x.shape[0] for x, _ in batches)
    if distributed:
        both = torch.stack([total, torch.tensor(float(n), device=device)])
        torch.distributed.all_reduce(both)
        return float(both[0]) / float(both[1])
    return float(total) / n


def _fixed_eval_batches(data, tc: TrainConfig, n_ctx: int, seed: int, device,
                        shard: tuple[int, int] | None = None) -> list:
    """``eval_iters`` batches drawn once (same every evaluation), merged into larger chunks.

    ``shard=(rank, world_size)``: only this process's contiguous share of the windows.
    """
    src = _Batches(data, tc.batch_size, n_ctx, seed, torch.device("cpu"))
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
    random windows :func:`train` evaluates on, the result is the same for every run: comparisons
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


def train(model_config, train_config=None, dataset=None, *, out_dir=None, resume: bool = True,
          progress: bool = True, cache: bool = False,
          callback: Callable[[int, dict], None] | None = None,
          branches=None, on_branch: Callable[["TrainResult"], None] | None = None) -> TrainResult:
    """Train a :class:`~utils.model.GPT` and return a :class:`TrainResult` (Chapter 4).

    ``model_config``: a :class:`GPTConfig` (or dict); ``train_config``: a
    :class:`TrainConfig` (or dict; ``None`` = defaults); ``dataset``: a
    :class:`utils.data.CharDataset` or anything with ``train``, ``val`` (token-id arrays)
    and ``vocab_size`` (default :func:`utils.data.load_dataset`).

    With ``out_dir``, checkpoints (model, optimiser, step, configs, random states) are
    saved there atomically and, with ``resume=True``, an interrupted run continues where
    it stopped and ends exactly as an uninterrupted one; a finished run is loaded, not
    redone. ``cache=True`` uses ``runtime.cache_dir('runs', key)`` as that directory, the
    key hashing model config, train config and data, so an identical call pays once.
    ``callback(step, info)`` is called after every optimiser step. A NaN or infinite loss
    raises :class:`NonFiniteLossError` before the optimiser applies it.

    ``branches`` (with ``schedule="wsd"``): shorter run lengths, in steps, to branch off this run
    (Chapter 6). When the run reaches the step where a ``wsd`` run of length ``b`` would start
    cooling down, the state (weights, optimiser, data order) is copied, a cool-down of
    :func:`cooldown_steps` ``(b)`` steps runs to step ``b`` and is evaluated, and the state is
    restored. Each branch ends exactly as an independent ``wsd`` run of ``b`` steps would: before
    its cool-down the two are the same computation. Branch results (without models) are in
    ``result.branches`` and are passed, as each finishes, to ``on_branch(result)``. The run also
    evaluates itself at each branch's length (its constant-rate loss there). Branches do not
    combine with checkpoints (``out_dir``, ``cache``).

    Data-parallel: called in every process of an initialised ``torch.distributed`` process group
    (``torchrun ... -m utils.train`` sets one up), the run is one run spread over the processes
    with ``DistributedDataParallel``. ``batch_size`` stays the global batch: each process takes
    ``batch_size / world_size`` of its windows (it must divide), so the schedule, ``tokens_seen``,
    ``flops`` and ``mfu`` (against the summed peak of all processes' devices) mean what they mean
    for one process. Only rank 0 writes checkpoints and results; every process returns the result.
    Branches are refused there.
    """
    mc = _as_model_config(model_config)
    tc = _as_train_config(train_config)
    ddp = _distributed()
    if ddp is not None:
        if branches:
            raise ValueError("branches are not supported in data-parallel training (torchrun): train a run with "
                             "branches in one process, or train each branch length as its own run.")
        if tc.batch_size % ddp[1]:
            raise ValueError(f"data-parallel training over {ddp[1]} processes splits every batch between them, so "
                             f"batch_size must be a multiple of {ddp[1]}; got batch_size={tc.batch_size}. Use "
                             f"batch_size={max(1, round(tc.batch_size / ddp[1])) * ddp[1]} or another process count.")
    branch_list = _check_branches(branches, tc, mc, out_dir, cache)
    if dataset is None:
        from .data import load_dataset
        dataset = load_dataset()
    for attr in ("train", "val", "vocab_size"):
        if not hasattr(dataset, attr):
            raise TypeError(f"dataset must have .train, .val and .vocab_size (like utils.data.CharDataset); "
                            f"{type(dataset).__name__} has no .{attr}.")
    if dataset.vocab_size > mc.vocab_size:
        raise ValueError(f"the dataset has {dataset.vocab_size} token types but the model's vocab_size is "
                         f"{mc.vocab_size}; build the GPTConfig with vocab_size={dataset.vocab_size}.")
    for split in ("train", "val"):
        if len(getattr(dataset, split)) <= mc.n_ctx + 1:
            raise ValueError(f"the {split} split has {len(getattr(dataset, split))} tokens, too few for "
                             f"windows of n_ctx + 1 = {mc.n_ctx + 1}; use a smaller n_ctx or more data.")
    total_iters = tc.iterations(mc.n_ctx)
    device = runtime.pick_device(tc.device)
    if ddp is not None and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # torchrun: this process's GPU

    # the key (hash of configs and data) names cached runs and guards checkpoints against mix-ups
    key = run_key(mc, tc, dataset) if (out_dir is not None or cache) else None
    run_dir = Path(out_dir) if out_dir is not None else (runtime.cache_dir("runs", key) if cache else None)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resume and (run_dir / "result.json").exists() and (run_dir / "model.pt").exists():
            info = json.loads((run_dir / "result.json").read_text())
            if info.get("key") == key:
                return _load_finished(run_dir, mc, device)
            if out_dir is not None:
                raise OutDirInUseError(run_dir, "a finished run")

    amp_dtype, dtype_name, use_scaler = _precision(device, tc.dtype)
    old_threads = torch.get_num_threads()
    if device.type == "cpu":
        share = 1 if ddp is None else int(os.environ.get("LOCAL_WORLD_SIZE", ddp[1]))
        torch.set_num_threads(tc.num_threads or max(1, cpu_threads() // share))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        return _train_loop(mc, tc, dataset, device, amp_dtype, dtype_name, use_scaler, total_iters, key,
                           run_dir, resume, progress, callback, branch_list, on_branch)
    finally:
        torch.set_num_threads(old_threads)


def _distributed() -> tuple[int, int] | None:
    """``(rank, world_size)`` inside an initialised ``torch.distributed`` process group, else ``None``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def _check_branches(branches, tc: TrainConfig, mc: GPTConfig, out_dir, cache) -> list[int]:
    """The branch lengths as a sorted list of distinct step counts, each a valid ``wsd`` run shorter than this one."""
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


def _make_optimizer(model: GPT, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices: embeddings and linear weights
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # biases and LayerNorm gains
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {}
    if device.type in ("cuda", "cpu"):
        kwargs["fused"] = True  # one kernel for the whole update instead of several per tensor
    try:
        return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), **kwargs)
    except (RuntimeError, TypeError):  # older torch without a fused kernel for this device
        return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2))


def _maybe_compile(model: GPT, tc: TrainConfig, device: torch.device):
    if not tc.compile:
        return model
    if device.type == "cpu" and not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
        import warnings
        warnings.warn("compile=True but no C++ compiler was found, which torch.compile needs on the CPU; "
                      "training without compiling.")
        return model
    return torch.compile(model)


def _train_loop(mc, tc, dataset, device, amp_dtype, dtype_name, use_scaler, total_iters, key, run_dir,
                resume, progress, callback, branch_list=(), on_branch=None) -> TrainResult:
    from tqdm import tqdm

    ddp = _distributed()
    rank, world = ddp if ddp is not None else (0, 1)
    shard = ddp  # data-parallel: this process's slice of every batch
    runtime.seed_everything(tc.seed)
    model = GPT(mc)  # initialised on the CPU, so every device starts from the same weights
    if rank > 0:
        torch.manual_seed(tc.seed + 7919 * rank)  # dropout masks of their own on the other processes
    model.to(device)
    optimizer = _make_optimizer(model, tc, device)
    scaler = torch.amp.GradScaler(device.type) if use_scaler else None
    train_batches = _Batches(dataset.train, tc.batch_size, mc.n_ctx, tc.seed, device, shard=shard)
    eval_seed = tc.seed if tc.eval_seed is None else tc.eval_seed
    eval_sets = {split: _fixed_eval_batches(getattr(dataset, split), tc, mc.n_ctx, eval_seed + 1 + i, device, shard)
                 for i, split in enumerate(("train", "val"))}
    tokens_per_step = tc.batch_size * mc.n_ctx * tc.grad_accum
    step, history, step_losses, elapsed = 0, [], [], 0.0

    ckpt_path = run_dir / "ckpt.pt" if run_dir is not None else None
    if ckpt_path is not None and resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck.get("key") != key:
            raise OutDirInUseError(run_dir, "a checkpoint")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        step, history, step_losses, elapsed = ck["step"], ck["history"], ck["step_losses"], ck["elapsed"]
        train_batches.generator.set_state(ck["batch_rng"])
        own = ck.get("rank_rng")  # data-parallel: every process's (torch, cuda) random state
        if own is not None and len(own) == world:
            cpu_rng, cuda_rng = own[rank]
        else:  # one process; or another process count than before: rank 0 keeps rank 0's state
            cpu_rng, cuda_rng = (ck["torch_rng"], ck.get("cuda_rng")) if rank == 0 else (None, None)
        if cpu_rng is not None:
            torch.set_rng_state(cpu_rng)
        if device.type == "cuda" and cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)

    def checkpoint(gather: bool = True):
        """Save the state (rank 0 only). Data-parallel, every process must call it (``gather=True``):
        the processes' random states are gathered to rank 0 so that dropout resumes exactly."""
        if ckpt_path is None:
            return
        rng = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
        rank_rng = None
        if ddp is not None and gather:
            rank_rng = [None] * world
            torch.distributed.all_gather_object(rank_rng, rng)
        if rank != 0:
            return
        _atomic_save({
            "key": key, "model_config": mc.to_dict(), "train_config": tc.to_dict(),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "step": step, "history": history, "step_losses": step_losses,
            "elapsed": elapsed + (time.perf_counter() - t_start),
            "batch_rng": train_batches.generator.get_state(), "torch_rng": rng[0], "cuda_rng": rng[1],
            "rank_rng": rank_rng,
        }, ckpt_path)

    fwd = _maybe_compile(model, tc, device)
    step_fwd = fwd  # what the training steps call: the data-parallel wrapper when there is one
    if ddp is not None:
        from torch.nn.parallel import DistributedDataParallel
        step_fwd = DistributedDataParallel(fwd, device_ids=[device.index] if device.type == "cuda" else None)
    flops_per_token = model.train_flops_per_token()  # Chapter 3's count, forward and backward

    def eval_entry(at_step: int, lr: float, time_s: float) -> dict:
        losses = {s: _evaluate(fwd, b, amp_dtype, device, ddp is not None) for s, b in eval_sets.items()}
        return {"step": at_step, "tokens": at_step * tokens_per_step,
                "train_loss": losses["train"], "val_loss": losses["val"],
                "train_bpc": losses["train"] / math.log(2), "val_bpc": losses["val"] / math.log(2),
                "lr": lr, "time_s": time_s}

    def evaluate_now(lr: float):
        history.append(eval_entry(step, lr, elapsed + time.perf_counter() - t_start))

    def one_step(at_step: int, lr: float) -> float:
        """One optimiser step at learning rate ``lr``; returns its training loss."""
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(tc.grad_accum):
            x, y = train_batches.sample()
            # data-parallel: gradients are averaged across processes once, on the last micro-batch
            quiet = step_fwd.no_sync() if ddp is not None and micro < tc.grad_accum - 1 else contextlib.nullcontext()
            with quiet:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    _, loss = step_fwd(x, y)
                loss = loss / tc.grad_accum
                (scaler.scale(loss) if scaler is not None else loss).backward()
            loss_sum += loss.detach()
        if ddp is not None:  # the loss of the whole batch: the mean of the processes' equal shares
            torch.distributed.all_reduce(loss_sum)
            loss_sum /= world
        loss_value = float(loss_sum)
        if not math.isfinite(loss_value):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(
                f"the training loss became {loss_value} at step {at_step} (learning rate {lr:.3g}); "
                f"the run was stopped before applying it. Try a lower learning rate (e.g. lr={tc.lr / 3:.3g}), "
                "a longer warm-up, or gradient clipping (grad_clip=1.0).")
        if scaler is not None:
            scaler.unscale_(optimizer)
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss_value

    branch_starts = {b - cooldown_steps(b, tc): b for b in branch_list}
    branch_results: list[TrainResult] = []
    branch_time = [0.0]  # seconds spent in branches: not part of this run's own speed

    def run_branch(b: int) -> None:
        """Cool down from the current state to step ``b``, evaluate, record, and restore the state."""
        t0 = time.perf_counter()
        saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()),
                 train_batches.generator.get_state(), torch.get_rng_state(),
                 copy.deepcopy(scaler.state_dict()) if scaler is not None else None)
        losses, lr_b = [], tc.lr
        for s in range(step, b):
            lr_b = lr_at(s, tc, b)
            losses.append(one_step(s, lr_b))
        spent = time.perf_counter() - t0
        branch_time[0] += spent
        entry = eval_entry(b, lr_b, elapsed + time.perf_counter() - t_start)
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        train_batches.generator.set_state(saved[2])
        torch.set_rng_state(saved[3])
        if scaler is not None:
            scaler.load_state_dict(saved[4])
        n_tok = b * tokens_per_step
        res_b = TrainResult(
            model=None, model_config=mc.to_dict(), train_config={**tc.to_dict(), "max_iters": b, "max_tokens": None},
            history=[h for h in history if h["step"] <= step] + [entry], step_losses=step_losses[:step] + losses,
            iters=b, tokens_seen=n_tok, final_train_loss=entry["train_loss"], final_val_loss=entry["val_loss"],
            wall_time_s=spent, tokens_per_s=(b - step) * tokens_per_step / spent if spent > 0 else 0.0,
            n_params=model.num_params(non_embedding=False), n_params_non_embedding=model.num_params(),
            flops=float(flops_per_token * n_tok), device=str(device), dtype=dtype_name,
            num_threads=torch.get_num_threads() if device.type == "cpu" else None)
        branch_results.append(res_b)
        if on_branch is not None:
            on_branch(res_b)

    t_start = time.perf_counter()
    if step == 0 and not history:
        evaluate_now(lr_at(0, tc, total_iters))  # the loss before training, about ln(vocab_size)
    bar = tqdm(total=total_iters, initial=step, disable=not (progress and runtime.progress_bars() and rank == 0),
               desc="train", unit="it", dynamic_ncols=True, leave=True)
    model.train()
    lr = lr_at(step, tc, total_iters)
    last_report = time.perf_counter()
    interval = tc.checkpoint_interval or tc.eval_interval
    try:
        while step < total_iters:
            if step in branch_starts:
                run_branch(branch_starts[step])
            lr = lr_at(step, tc, total_iters)
            loss_value = one_step(step, lr)
            step += 1
            step_losses.append(loss_value)
            if step % tc.eval_interval == 0 or step == total_iters or step in branch_list:
                evaluate_now(lr)
            if step % interval == 0 and step < total_iters:
                checkpoint()
            now = time.perf_counter()
            if progress and (now - last_report > 0.5 or step == total_iters):
                tok_s = step * tokens_per_step / max(1e-9, elapsed + now - t_start)
                post = {"loss": f"{loss_value:.3f}", "tok/s": f"{tok_s:,.0f}"}
                if history:
                    post["val"] = f"{history[-1]['val_loss']:.3f}"
                bar.set_postfix(post, refresh=False)
                last_report = now
            bar.update(1)
            if callback is not None:
                callback(step, {"loss": loss_value, "lr": lr, "tokens": step * tokens_per_step})
    except KeyboardInterrupt:
        # stopping by hand keeps the progress; train again with the same out_dir to resume (data-parallel:
        # rank 0 saves without the others' random states, since they may not be able to answer)
        checkpoint(gather=ddp is None)
        raise
    finally:
        bar.close()

    wall = elapsed + time.perf_counter() - t_start
    tokens = step * tokens_per_step
    own = wall - branch_time[0]
    tok_s = tokens / own if own > 0 else 0.0
    peak = peak_flops(device)
    if peak and ddp is not None:
        peak *= world  # the run's tokens/s come from all the processes' devices together
    mfu = flops_per_token * tok_s / peak if peak else None
    last = history[-1]
    result = TrainResult(
        model=model, model_config=mc.to_dict(), train_config=tc.to_dict(), history=history,
        step_losses=step_losses, iters=step, tokens_seen=tokens, final_train_loss=last["train_loss"],
        final_val_loss=last["val_loss"], wall_time_s=wall, tokens_per_s=tok_s, mfu=mfu,
        n_params=model.num_params(non_embedding=False), n_params_non_embedding=model.num_params(),
        flops=float(flops_per_token * tokens), device=str(device), dtype=dtype_name,
        num_threads=torch.get_num_threads() if device.type == "cpu" else None,
        out_dir=str(run_dir) if run_dir is not None else None, branches=branch_results)
    if run_dir is not None and rank == 0:
        _atomic_save({"model": model.state_dict(), "model_config": mc.to_dict()}, run_dir / "model.pt")
        _atomic_write_json({**result.to_dict(), "key": key},
                           run_dir / "result.json")
        if ckpt_path.exists():
            ckpt_path.unlink()  # finished: the weights and the result are kept, the optimiser state is not
    if ddp is not None:
        torch.distributed.barrier()  # no process moves on before rank 0 has written the results
    return result


# ----------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.train",
                                description="Train a small GPT on the course corpus; the last line of output "
                                            "is one JSON object with the results.")
    m = p.add_argument_group("model")
    m.add_argument("--n_layer", type=int, default=4)
    m.add_argument("--n_head", type=int, default=4)
    m.add_argument("--n_embd", type=int, default=128)
    m.add_argument("--n_ctx", type=int, default=64)
    m.add_argument("--dropout", type=float, default=0.0)
    m.add_argument("--no_bias", action="store_true", help="linear layers and LayerNorms without biases")
    t = p.add_argument_group("training")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        default = getattr(defaults, f.name)
        if f.name == "compile":
            t.add_argument("--compile", action="store_true", help="use torch.compile")
        elif f.name in ("device", "dtype", "schedule"):
            t.add_argument(f"--{f.name}", type=str, default=default)
        elif isinstance(default, float):
            t.add_argument(f"--{f.name}", type=float, default=default)
        else:  # ints and optional ints
            t.add_argument(f"--{f.name}", type=int, default=default)
    p.add_argument("--out_dir", type=str, default=None, help="checkpoint directory (resumed if it exists)")
    p.add_argument("--no_resume", action="store_true",
                   help="with --out_dir or --cache: start again even if the directory holds a run")
    p.add_argument("--cache", action="store_true", help="reuse a finished identical run from the course cache")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--max_chars", type=int, default=None,
                   help="use only the first MAX_CHARS characters of the corpus (quick trials)")
    return p


def _check_args(p: argparse.ArgumentParser, args) -> None:
    """Stop with a usage error (``p.error``, exit status 2) on a flag this run would ignore, naming the flag
    it needs, before any data is loaded."""
    has_dir = args.out_dir is not None or args.cache
    if args.out_dir is not None and args.cache:
        p.error("--cache and --out_dir cannot be combined: both choose the run's directory (--cache one in the "
                "course cache, named by the configuration); give one.")
    if args.no_resume and not has_dir:
        p.error("--no_resume needs --out_dir (or --cache): it starts again in a directory that holds a run; "
                "without one, every run starts from scratch anyway.")
    if args.checkpoint_interval is not None and not has_dir:
        p.error("--checkpoint_interval needs --out_dir (or --cache): checkpoints are saved in the run's directory.")
    defaults = TrainConfig()
    if args.max_tokens is not None and args.max_iters != defaults.max_iters:
        p.error("--max_iters and --max_tokens cannot be combined: both set the run's length; give one.")
    if args.cooldown_fraction != defaults.cooldown_fraction and args.schedule != "wsd":
        p.error(f"--cooldown_fraction needs --schedule wsd: only that schedule cools down, and this run uses "
                f"--schedule {args.schedule}.")
    if args.num_threads is not None and (device := runtime.pick_device(args.device)).type != "cpu":
        p.error(f"--num_threads sets CPU threads, but this run trains on {device}; drop --num_threads, or add "
                "--device cpu.")


def _init_distributed(args) -> bool:
    """Under ``torchrun`` (which sets ``RANK`` and ``WORLD_SIZE``), join the process group: ``nccl`` with
    one GPU per process (``LOCAL_RANK``) on CUDA, ``gloo`` on the CPU. Returns whether it did.

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


def main(argv=None) -> int:
    """Command-line entry point: parse arguments, train, print the results as one JSON line.

    Under ``torchrun`` every process trains its share of one data-parallel run (:func:`train`)
    and only rank 0 prints. Returns 0 (the exit status; the ``course-train`` script passes it to
    ``sys.exit``).
    """
    p = _parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    joined = _init_distributed(args)
    try:
        _main(args)
    except OutDirInUseError as e:  # the command line's name for resume=False
        p.error(f"--out_dir {e.run_dir} holds {e.what} of a different configuration; choose another --out_dir, "
                "or add --no_resume to start again there (it overwrites that run).")
    finally:
        if joined:
            torch.distributed.destroy_process_group()
    return 0


def _main(args) -> dict:
    from .data import CharDataset, CharTokenizer, corpus_text, load_dataset, train_val_split

    ddp = _distributed()
    rank = ddp[0] if ddp is not None else 0
    if rank > 0:
        torch.distributed.barrier()  # rank 0 builds the cached corpus first; the others then read it
    if args.max_chars is None:
        dataset = load_dataset()
    else:
        if args.max_chars < 20 * (args.n_ctx + 2):
            raise ValueError(f"--max_chars {args.max_chars} is too small for n_ctx={args.n_ctx}; "
                             f"use at least {20 * (args.n_ctx + 2)}.")
        text = corpus_text()
        tok = CharTokenizer.from_text(text)  # the full vocabulary, so configs match full-corpus runs
        tr, va = train_val_split(tok.encode(text[: args.max_chars]), 0.1)
        dataset = CharDataset(text=text[: args.max_chars], tokenizer=tok, train=tr, val=va)
    if ddp is not None and rank == 0:
        torch.distributed.barrier()
    mc = GPTConfig(vocab_size=dataset.vocab_size, n_ctx=args.n_ctx, n_layer=args.n_layer, n_head=args.n_head,
                   n_embd=args.n_embd, dropout=args.dropout, bias=not args.no_bias)
    tc = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    res = train(mc, tc, dataset, out_dir=args.out_dir, resume=not args.no_resume,
                progress=not args.no_progress, cache=args.cache)
    out = {
        "model_config": res.model_config, "train_config": res.train_config,
        "n_params": res.n_params, "n_params_non_embedding": res.n_params_non_embedding,
        "tokens_seen": res.tokens_seen, "iters": res.iters,
        "final_train_loss": res.final_train_loss, "final_val_loss": res.final_val_loss,
        "final_val_bpc": res.final_val_bpc, "wall_time_s": res.wall_time_s, "tokens_per_s": res.tokens_per_s,
        "mfu": res.mfu, "flops": res.flops, "device": res.device, "dtype": res.dtype,
        "num_threads": res.num_threads, "cached": res.cached,
    }
    if ddp is not None:
        out["world_size"] = ddp[1]
    if rank == 0:
        print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

"""Training a GPT: one function for the notebooks, the scaling sweep and the command line.

:func:`train` takes a model configuration (:class:`~utils.model.GPTConfig`), a
:class:`TrainConfig` and a dataset, and returns a :class:`TrainResult`: the trained model,
the history of training and validation losses, and how fast it went (tokens per second
and model FLOPs utilisation, MFU). Chapter 4b explains each ingredient: AdamW with weight
decay on matrices {cite}`loshchilov2019decoupled`, linear warm-up then cosine decay
{cite}`loshchilov2017sgdr`, gradient clipping and accumulation, mixed precision on GPUs
{cite}`micikevicius2018mixed`, checkpoints that resume exactly, and MFU
{cite}`chowdhery2022palm`.

The loop itself is :func:`training_loop`, and one optimiser step :func:`train_step`: sample a
batch, forward, backward, clip, step, with the learning rate from the schedule, and an evaluation
every ``eval_interval`` steps. The parts around it live in modules named after them:

* :mod:`utils.schedule` -- the learning rate of every step (warm-up, cosine, warmup-stable-decay);
* :mod:`utils.batches` and :mod:`utils.evaluation` -- the random training windows, and the losses;
* :mod:`utils.checkpoints` -- saving, resuming exactly, the run cache's keys;
* :mod:`utils.precision` -- mixed precision; :mod:`utils.parallel` -- data-parallel training;
* :mod:`utils.branches` -- cool-down branches (Chapter 6); :mod:`utils.hardware` -- peak FLOP/s, threads;
* :mod:`utils.train_cli` -- the command line below.

(About 680 lines, over the course's 500: the two configuration dataclasses with their checks and
documentation take 170, ``train`` with its argument checks 130, and the loop with the state it
shares 300; each part is short, and splitting them further would part the loop from its state.)

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

import dataclasses
import functools
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
from .batches import RandomWindows
from .branches import branch_starts, check_branches, cool_down, restore_state, save_state
from .checkpoints import (CACHE_VERSION,  # noqa: F401 (re-exported)
                          OutDirInUseError, atomic_save, atomic_write_json, data_fingerprint,
                          resume_from_checkpoint, run_key, save_checkpoint)
from .evaluation import evaluate_split, fixed_eval_batches, mean_loss
from .hardware import GPU_PEAK_FLOPS, cpu_peak_flops, cpu_threads, gpu_peak_flops, peak_flops
from .model import GPT, GPTConfig, dataclass_from_dict
from .parallel import average_over_processes, check_batch_split, data_parallel, distributed, gradient_sync
from .parallel import init_distributed
from .precision import autocast, choose_precision, grad_scaler
from .schedule import cooldown_steps, lr_at

__all__ = ["TrainConfig", "TrainResult", "NonFiniteLossError", "OutDirInUseError", "train", "training_loop",
           "train_step", "TrainingState", "start_run", "make_optimizer", "lr_at", "cooldown_steps", "peak_flops",
           "gpu_peak_flops", "cpu_peak_flops", "cpu_threads", "data_fingerprint", "run_key", "evaluate_split", "main"]

# Names imported above only to be re-exported (notebooks, tests and other modules import them from
# utils.train): CACHE_VERSION, GPU_PEAK_FLOPS, cpu_peak_flops, cpu_threads, gpu_peak_flops,
# data_fingerprint, evaluate_split, init_distributed.


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite; the message names the step and what to try."""


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


# ----------------------------------------------------------------------------- train(): check, set up, run

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
    ddp = distributed()
    if ddp is not None:
        check_batch_split(tc.batch_size, ddp, branches)
    branch_list = check_branches(branches, tc, mc, out_dir, cache)
    if dataset is None:
        from .data import load_dataset
        dataset = load_dataset()
    _check_dataset(dataset, mc)
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

    precision = choose_precision(device, tc.dtype)
    old_threads = torch.get_num_threads()
    if device.type == "cpu":
        share = 1 if ddp is None else int(os.environ.get("LOCAL_WORLD_SIZE", ddp[1]))
        torch.set_num_threads(tc.num_threads or max(1, cpu_threads() // share))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        ckpt_path = run_dir / "ckpt.pt" if run_dir is not None else None
        run = start_run(mc, tc, dataset, device, precision, resume_from=ckpt_path if resume else None,
                        key=key, run_dir=run_dir)
        save = functools.partial(save_checkpoint, ckpt_path, key=key) if ckpt_path is not None else None
        branch_results = training_loop(run, total_iters, save=save, progress=progress, callback=callback,
                                       branch_list=branch_list, on_branch=on_branch)
        return _finish(run, branch_results, key, run_dir)
    finally:
        torch.set_num_threads(old_threads)


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


def _check_dataset(dataset, mc: GPTConfig) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``dataset`` fits the model: its attributes, vocabulary, lengths."""
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


def _load_finished(run_dir: Path, mc: GPTConfig, device: torch.device) -> TrainResult:
    """The finished run saved in ``run_dir`` (weights and result), as a :class:`TrainResult` with ``cached=True``."""
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


# ----------------------------------------------------------------------------- the run's state

def make_optimizer(model: GPT, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only (embeddings, linear weights), fused where torch can (Chapter 4b)."""
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


@dataclass
class TrainingState:
    """Everything a run carries from one step to the next: what :func:`training_loop` and its parts share.

    ``fwd`` is the model the evaluations call (compiled, if asked), ``step_fwd`` what the training
    steps call (``fwd``, or its data-parallel wrapper); ``ddp`` is ``(rank, world_size)`` or ``None``.
    ``elapsed`` is the training time before this process started (a resumed run's), ``t_start`` when
    this process's loop started, and ``branch_time`` the seconds spent in cool-down branches.
    """

    mc: GPTConfig
    tc: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    dtype_name: str
    ddp: tuple[int, int] | None
    model: GPT
    optimizer: torch.optim.Optimizer
    scaler: object
    batches: RandomWindows
    eval_sets: dict
    tokens_per_step: int
    fwd: object = None
    step_fwd: object = None
    flops_per_token: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    step_losses: list = field(default_factory=list)
    elapsed: float = 0.0
    t_start: float = 0.0
    branch_time: float = 0.0

    @property
    def rank(self) -> int:
        return self.ddp[0] if self.ddp is not None else 0

    @property
    def world(self) -> int:
        return self.ddp[1] if self.ddp is not None else 1


def start_run(mc: GPTConfig, tc: TrainConfig, dataset, device: torch.device, precision: tuple, *,
              resume_from: Path | None = None, key: str | None = None, run_dir: Path | None = None) -> TrainingState:
    """A fresh run's :class:`TrainingState`: seeded weights, optimiser, batches and evaluation windows; then,
    if the checkpoint ``resume_from`` exists, its saved state (:func:`utils.checkpoints.resume_from_checkpoint`).

    ``precision`` is :func:`utils.precision.choose_precision`'s triple. Data-parallel, the model is
    wrapped after resuming, so every process starts from the same weights."""
    ddp = distributed()
    rank = ddp[0] if ddp is not None else 0
    runtime.seed_everything(tc.seed)
    model = GPT(mc)  # initialised on the CPU, so every device starts from the same weights
    if rank > 0:
        torch.manual_seed(tc.seed + 7919 * rank)  # dropout masks of their own on the other processes
    model.to(device)
    optimizer = make_optimizer(model, tc, device)
    amp_dtype, dtype_name, use_scaler = precision
    scaler = grad_scaler(device, use_scaler)
    batches = RandomWindows(dataset.train, tc.batch_size, mc.n_ctx, tc.seed, device, shard=ddp)
    eval_seed = tc.seed if tc.eval_seed is None else tc.eval_seed
    eval_sets = {split: fixed_eval_batches(getattr(dataset, split), tc, mc.n_ctx, eval_seed + 1 + i, device, ddp)
                 for i, split in enumerate(("train", "val"))}
    run = TrainingState(mc=mc, tc=tc, device=device, amp_dtype=amp_dtype, dtype_name=dtype_name, ddp=ddp,
                        model=model, optimizer=optimizer, scaler=scaler, batches=batches, eval_sets=eval_sets,
                        tokens_per_step=tc.batch_size * mc.n_ctx * tc.grad_accum)
    if resume_from is not None and resume_from.exists():
        resume_from_checkpoint(resume_from, run, key, run_dir)
    run.fwd = _maybe_compile(model, tc, device)
    run.step_fwd = data_parallel(run.fwd, device) if ddp is not None else run.fwd
    run.flops_per_token = model.train_flops_per_token()  # Chapter 3's count, forward and backward
    return run


# ----------------------------------------------------------------------------- the loop

def train_step(run: TrainingState, at_step: int, lr: float) -> float:
    """One optimiser step at learning rate ``lr`` (Chapter 4b); returns its training loss.

    For each of ``grad_accum`` micro-batches: sample a batch, forward (under autocast), backward.
    Then clip the gradient norm and step. A NaN or infinite loss raises :class:`NonFiniteLossError`
    before the step is applied."""
    tc, optimizer, scaler = run.tc, run.optimizer, run.scaler
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=run.device)
    for micro in range(tc.grad_accum):
        x, y = run.batches.sample()
        with gradient_sync(run.step_fwd, run.ddp, micro, tc.grad_accum):  # data-parallel: on the last one
            with autocast(run.device, run.amp_dtype):
                _, loss = run.step_fwd(x, y)
            loss = loss / tc.grad_accum
            (scaler.scale(loss) if scaler is not None else loss).backward()
        loss_sum += loss.detach()
    loss_value = float(average_over_processes(loss_sum, run.ddp))  # the loss of the whole batch
    if not math.isfinite(loss_value):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLossError(
            f"the training loss became {loss_value} at step {at_step} (learning rate {lr:.3g}); "
            f"the run was stopped before applying it. Try a lower learning rate (e.g. lr={tc.lr / 3:.3g}), "
            "a longer warm-up, or gradient clipping (grad_clip=1.0).")
    if scaler is not None:
        scaler.unscale_(optimizer)
    if tc.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_value


def evaluation(run: TrainingState, at_step: int, lr: float, time_s: float) -> dict:
    """One entry of ``history``: the mean loss on the fixed training and validation windows, in nats and bits."""
    losses = {s: mean_loss(run.fwd, b, run.amp_dtype, run.device, run.ddp is not None)
              for s, b in run.eval_sets.items()}
    return {"step": at_step, "tokens": at_step * run.tokens_per_step,
            "train_loss": losses["train"], "val_loss": losses["val"],
            "train_bpc": losses["train"] / math.log(2), "val_bpc": losses["val"] / math.log(2),
            "lr": lr, "time_s": time_s}


def _evaluate_now(run: TrainingState, lr: float) -> None:
    run.history.append(evaluation(run, run.step, lr, run.elapsed + time.perf_counter() - run.t_start))


def training_loop(run: TrainingState, total_iters: int, *, save: Callable | None = None, progress: bool = False,
                  callback: Callable[[int, dict], None] | None = None, branch_list=(),
                  on_branch: Callable[[TrainResult], None] | None = None) -> list:
    """Train ``run`` from ``run.step`` to ``total_iters`` steps: Chapter 4b's loop. Returns the branches' results.

    Every step takes its learning rate from the schedule (:func:`utils.schedule.lr_at`) and runs
    :func:`train_step` (sample a batch, forward, backward, clip, step); every ``eval_interval``
    steps (and at the end) the model is evaluated into ``run.history``; every checkpoint interval
    ``save(run)`` is called (:func:`utils.checkpoints.save_checkpoint`, when the run has a directory).
    At each branch's start a cool-down branch runs first (:func:`run_branch`)."""
    tc = run.tc
    starts = branch_starts(branch_list, tc)
    branch_results = []
    run.t_start = time.perf_counter()
    if run.step == 0 and not run.history:
        _evaluate_now(run, lr_at(0, tc, total_iters))  # the loss before training, about ln(vocab_size)
    bar = _ProgressBar(run, total_iters, progress)
    run.model.train()
    interval = tc.checkpoint_interval or tc.eval_interval
    try:
        while run.step < total_iters:
            if run.step in starts:
                branch_results.append(run_branch(run, starts[run.step], on_branch))
            lr = lr_at(run.step, tc, total_iters)
            loss_value = train_step(run, run.step, lr)
            run.step += 1
            run.step_losses.append(loss_value)
            if run.step % tc.eval_interval == 0 or run.step == total_iters or run.step in branch_list:
                _evaluate_now(run, lr)
            if save is not None and run.step % interval == 0 and run.step < total_iters:
                save(run)
            bar.update(loss_value)
            if callback is not None:
                callback(run.step, {"loss": loss_value, "lr": lr, "tokens": run.step * run.tokens_per_step})
    except KeyboardInterrupt:
        # stopping by hand keeps the progress; train again with the same out_dir to resume (data-parallel:
        # rank 0 saves without the others' random states, since they may not be able to answer)
        if save is not None:
            save(run, gather=run.ddp is None)
        raise
    finally:
        bar.close()
    return branch_results


class _ProgressBar:
    """The loop's progress bar (rank 0, when asked for): steps, the last loss, tokens/s, the last validation loss."""

    def __init__(self, run: TrainingState, total_iters: int, show: bool):
        from tqdm import tqdm
        self.run, self.total, self.show = run, total_iters, show
        shown = show and runtime.progress_bars() and run.rank == 0
        self.bar = tqdm(total=total_iters, initial=run.step, disable=not shown,
                        desc="train", unit="it", dynamic_ncols=True, leave=True)
        self.last_report = time.perf_counter()

    def update(self, loss_value: float) -> None:
        run, now = self.run, time.perf_counter()
        if self.show and (now - self.last_report > 0.5 or run.step == self.total):
            tok_s = run.step * run.tokens_per_step / max(1e-9, run.elapsed + now - run.t_start)
            post = {"loss": f"{loss_value:.3f}", "tok/s": f"{tok_s:,.0f}"}
            if run.history:
                post["val"] = f"{run.history[-1]['val_loss']:.3f}"
            self.bar.set_postfix(post, refresh=False)
            self.last_report = now
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------- results

def _result(run: TrainingState, **values) -> TrainResult:
    """A :class:`TrainResult` with the fields every result of ``run`` shares, and ``values``."""
    model, device = run.model, run.device
    return TrainResult(model_config=run.mc.to_dict(), n_params=model.num_params(non_embedding=False),
                       n_params_non_embedding=model.num_params(), device=str(device), dtype=run.dtype_name,
                       num_threads=torch.get_num_threads() if device.type == "cpu" else None, **values)


def run_branch(run: TrainingState, b: int, on_branch: Callable[[TrainResult], None] | None = None) -> TrainResult:
    """Cool down from the current state to step ``b``, evaluate, restore the state; returns the branch's
    result (without a model), also passed to ``on_branch`` (:mod:`utils.branches`, Chapter 6)."""
    t0 = time.perf_counter()
    saved = save_state(run)
    losses, lr_b = cool_down(run, b, train_step)
    spent = time.perf_counter() - t0
    run.branch_time += spent
    entry = evaluation(run, b, lr_b, run.elapsed + time.perf_counter() - run.t_start)
    restore_state(run, saved)
    n_tok = b * run.tokens_per_step
    res_b = _result(
        run, model=None, train_config={**run.tc.to_dict(), "max_iters": b, "max_tokens": None},
        history=[h for h in run.history if h["step"] <= run.step] + [entry],
        step_losses=run.step_losses[:run.step] + losses,
        iters=b, tokens_seen=n_tok, final_train_loss=entry["train_loss"], final_val_loss=entry["val_loss"],
        wall_time_s=spent, tokens_per_s=(b - run.step) * run.tokens_per_step / spent if spent > 0 else 0.0,
        flops=float(run.flops_per_token * n_tok))
    if on_branch is not None:
        on_branch(res_b)
    return res_b


def _finish(run: TrainingState, branch_results: list, key: str | None, run_dir: Path | None) -> TrainResult:
    """The run's :class:`TrainResult` (speed without the branches' time); with a directory, rank 0 saves the
    weights and the result there and removes the checkpoint."""
    wall = run.elapsed + time.perf_counter() - run.t_start
    tokens = run.step * run.tokens_per_step
    own = wall - run.branch_time
    tok_s = tokens / own if own > 0 else 0.0
    peak = peak_flops(run.device)
    if peak and run.ddp is not None:
        peak *= run.world  # the run's tokens/s come from all the processes' devices together
    mfu = run.flops_per_token * tok_s / peak if peak else None
    last = run.history[-1]
    result = _result(
        run, model=run.model, train_config=run.tc.to_dict(), history=run.history,
        step_losses=run.step_losses, iters=run.step, tokens_seen=tokens, final_train_loss=last["train_loss"],
        final_val_loss=last["val_loss"], wall_time_s=wall, tokens_per_s=tok_s, mfu=mfu,
        flops=float(run.flops_per_token * tokens), out_dir=str(run_dir) if run_dir is not None else None,
        branches=branch_results)
    if run_dir is not None and run.rank == 0:
        atomic_save({"model": run.model.state_dict(), "model_config": run.mc.to_dict()}, run_dir / "model.pt")
        atomic_write_json({**result.to_dict(), "key": key}, run_dir / "result.json")
        ckpt_path = run_dir / "ckpt.pt"
        if ckpt_path.exists():
            ckpt_path.unlink()  # finished: the weights and the result are kept, the optimiser state is not
    if run.ddp is not None:
        torch.distributed.barrier()  # no process moves on before rank 0 has written the results
    return result


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    """Command-line entry point (``python -m utils.train``, the ``course-train`` script):
    :func:`utils.train_cli.main`."""
    from .train_cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

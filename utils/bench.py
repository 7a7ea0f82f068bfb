"""Benchmark of the trainer on the reference configuration (``python -m utils.bench``; ``make bench``).

The reference run: a GPT with 4 layers, 4 heads, width 128 and context 64, trained on the
course corpus with batch 12 for 2000 iterations (no dropout; learning rate 1e-3 with
warm-up and cosine decay to 1e-4; evaluation every 250 iterations on 20 batches), on the
CPU. It prints one JSON object: tokens per second and MFU end to end (the evaluations' time
included; :func:`training_throughput` takes it out), the FLOP/s that MFU divides by
(``cpu_peak_flops``: this machine's measured matrix-product speed, not a datasheet peak) and the
final validation loss. ``--baseline`` also times a deliberately plain training loop on the same
model, data and steps, back to back with the same thread count, so the two can be compared
under the same machine load; ``tokens_per_cpu_s`` (tokens per second of this process's CPU
time) is the steadier measure on a shared machine. ``--profile STEPS`` adds where the time of a
step goes (:func:`step_profile`). Chapter 4b discusses what makes small models slow or fast.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import torch

from .evaluation import fixed_eval_batches, mean_loss
from .hardware import peak_flops
from .model import GPT, GPTConfig
from .precision import autocast, choose_precision
from .schedule import lr_at
from .train import TrainConfig, train

REFERENCE_MODEL = dict(n_ctx=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True)
REFERENCE_TRAIN = dict(batch_size=12, max_iters=2000, lr=1e-3, min_lr=1e-4, warmup_iters=100,
                       eval_interval=250, eval_iters=20, device="cpu", seed=1337)


def plain_loop(model_config: GPTConfig, tc: TrainConfig, dataset) -> dict:
    """A straightforward PyTorch training loop, the yardstick for :func:`reference_run`.

    Same model, schedule, data and evaluation schedule as :func:`~utils.train.train`, written
    the simple way: :func:`utils.data.get_batch` for every batch, default AdamW, one
    forward pass per evaluation batch, ``loss.item()`` every step. Returns tokens/s and the
    final validation loss.
    """
    from .data import get_batch

    torch.manual_seed(tc.seed)
    model = GPT(model_config)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)
    train_ids, val_ids = torch.from_numpy(dataset.train), torch.from_numpy(dataset.val)
    gen = torch.Generator().manual_seed(tc.seed)
    T, B = model_config.n_ctx, tc.batch_size

    @torch.no_grad()
    def val_loss():
        model.eval()
        losses = {name: sum(model(*get_batch(d, B, T, generator=gen))[1].item() for _ in range(tc.eval_iters))
                  / tc.eval_iters for name, d in (("train", train_ids), ("val", val_ids))}
        model.train()
        return losses["val"]

    t0, c0 = time.perf_counter(), time.process_time()
    loss_val = val_loss()
    for step in range(tc.max_iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x, y = get_batch(train_ids, B, T, generator=gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        loss.item()
        if (step + 1) % tc.eval_interval == 0 or step + 1 == tc.max_iters:
            loss_val = val_loss()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = tc.max_iters * B * T
    return {"tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu, "wall_time_s": wall,
            "final_val_loss": loss_val}


def run_peak_flops(result) -> float | None:
    """The FLOP/s that a :func:`~utils.train.train` run's MFU divided by (Chapter 4b), or ``None`` without an MFU.

    On a GPU, the datasheet's peak; on a CPU, what one large float32 matrix product reached on this
    machine with the run's thread count when the run was trained (:func:`utils.hardware.cpu_peak_flops`).
    Recovered from the result: model FLOPs per token x tokens per second / MFU.
    """
    if not result.mfu or result.tokens_seen <= 0:
        return None
    return result.flops / result.tokens_seen * result.tokens_per_s / result.mfu


def evaluation_seconds(model: GPT, train_config: TrainConfig, dataset, *, device=None, repeats: int = 3) -> float:
    """Seconds that one of :func:`~utils.train.train`'s evaluations of ``model`` takes (Chapter 4b).

    An evaluation is the trainer's own: ``eval_iters`` batches of ``batch_size`` windows from each
    split, drawn once and run through the model in its evaluation mode. Timed here with the
    trainer's functions, in the current thread setting, on ``device`` (default: the model's);
    returns the median of ``repeats`` timings, after one untimed warm-up.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    tc = train_config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    amp_dtype = choose_precision(device, tc.dtype)[0]
    n_ctx = model.config.n_ctx
    sets = [fixed_eval_batches(getattr(dataset, split), tc, n_ctx, tc.seed + 1 + i, device)
            for i, split in enumerate(("train", "val"))]

    def one() -> float:
        t0 = time.perf_counter()
        for batches in sets:
            mean_loss(model, batches, amp_dtype, device)  # returns a float, so a GPU has finished
        return time.perf_counter() - t0

    one()
    times = sorted(one() for _ in range(repeats))
    return times[len(times) // 2]


def step_seconds(model_config: GPTConfig, batch_size: int, *, steps: int = 10, warmup: int = 2, device="cpu",
                 amp_dtype=None, seed: int = 0) -> float:
    """Seconds per training step of a fresh model of ``model_config`` on random tokens (Chapter 4b).

    A step as :func:`~utils.train.train` takes it: forward (under autocast with ``amp_dtype``, if
    given), backward, gradient clipping, a fused AdamW update. Runs ``warmup`` untimed steps, then
    returns the mean time of ``steps`` steps, in the current thread setting, on ``device``.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}.")
    device = torch.device(device)
    step = _random_token_step(model_config, batch_size, seed, device, amp_dtype)
    for _ in range(warmup):
        step()
    _synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return (time.perf_counter() - t0) / steps


def training_throughput(result, dataset, *, repeats: int = 2) -> dict:
    """A run's speed without its evaluations: tokens per second and MFU of the training steps alone (Chapter 4b).

    ``result.tokens_per_s`` divides the tokens trained by the run's wall-clock time, which includes
    the evaluations that :func:`~utils.train.train` runs every ``eval_interval`` steps. The run does
    not record how long they took, so this measures it again, now, on the run's device and (on a
    CPU) with its thread count: one evaluation of the trained model (:func:`evaluation_seconds`) and
    one training step of its configuration (:func:`step_seconds`), back to back. Their ratio gives
    the share of the run's time spent evaluating (``result.history`` holds one entry per
    evaluation), which is taken off the run's time. A ratio measured under the same load stays
    sensible when the machine is busier now than during the run; it is still an estimate. MFU keeps
    the run's denominator (:func:`run_peak_flops`). The model is moved to the run's device.

    Returns a dict: ``n_evals``; ``eval_s_each`` and ``step_s_each`` (timed now);
    ``eval_time_share``, the share of the run's time spent evaluating; ``run_s`` (the time
    ``result.tokens_per_s`` divides by), ``eval_s`` and ``train_s = run_s - eval_s``;
    ``eval_forward_share``, the evaluations' forward tokens over three times the training tokens (a
    training step's forward and backward passes cost about three forward passes); ``tokens_per_s``
    and ``mfu`` of the training steps alone; ``peak_flops``, the FLOP/s the run's MFU divides by
    (``None``, like ``mfu``, where the run's device had no known peak).
    """
    if getattr(result, "model", None) is None:
        raise ValueError("training_throughput needs the trained model: pass the TrainResult that train() returned "
                         "(a cool-down branch's result carries no model).")
    if not result.history or result.tokens_seen <= 0 or result.tokens_per_s <= 0:
        raise ValueError(f"the run recorded no speed (tokens_seen={result.tokens_seen}, "
                         f"tokens_per_s={result.tokens_per_s}, {len(result.history)} evaluations); "
                         "pass the result of a finished train() run.")
    tc = TrainConfig.from_dict(result.train_config)
    device = torch.device(result.device)
    model = result.model.to(device)
    old = torch.get_num_threads()
    if device.type == "cpu" and result.num_threads:
        torch.set_num_threads(result.num_threads)
    try:
        each_eval = evaluation_seconds(model, tc, dataset, device=device, repeats=repeats)
        each_step = tc.grad_accum * step_seconds(model.config, tc.batch_size, device=device,
                                                 amp_dtype=choose_precision(device, tc.dtype)[0])
    finally:
        torch.set_num_threads(old)
    n_evals = len(result.history)
    share = n_evals * each_eval / (n_evals * each_eval + result.iters * each_step)
    run_s = result.tokens_seen / result.tokens_per_s
    train_s = run_s * (1 - share)
    flops_per_token = result.flops / result.tokens_seen
    peak = run_peak_flops(result)
    tok_s = result.tokens_seen / train_s
    eval_tokens = n_evals * 2 * tc.eval_iters * tc.batch_size * model.config.n_ctx
    return {"n_evals": n_evals, "eval_s_each": each_eval, "step_s_each": each_step, "eval_time_share": share,
            "run_s": run_s, "eval_s": run_s - train_s, "train_s": train_s,
            "eval_forward_share": eval_tokens / (3 * result.tokens_seen),
            "tokens_per_s": tok_s, "mfu": flops_per_token * tok_s / peak if peak else None, "peak_flops": peak}


#: Profiler operator names grouped into the parts of a training step that Chapter 4b discusses.
STEP_PARTS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "gelu": ("aten::gelu", "aten::gelu_backward"),
    "layer_norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
    "optimizer": ("aten::_fused_adamw_", "aten::_foreach_add_", "aten::_foreach_mul_", "aten::linalg_vector_norm",
                  "aten::_foreach_norm"),
}


def _random_token_step(model_config: GPTConfig, batch_size: int, seed: int, device: torch.device, amp_dtype=None):
    """A function that takes one training step of a fresh model on one fixed batch of random tokens."""
    torch.manual_seed(seed)
    model = GPT(model_config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, model_config.vocab_size, (batch_size, model_config.n_ctx), device=device)
    y = torch.randint(0, model_config.vocab_size, (batch_size, model_config.n_ctx), device=device)

    def step():
        with autocast(device, amp_dtype):
            _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send what C++ code writes to stderr (file descriptor 2) to the null device for a while.

    PyTorch's profiler (Kineto) prints a line when every trace starts and stops; on a notebook
    page those lines would sit among the results. Python's own ``sys.stderr`` is flushed first.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def step_profile(model_config: GPTConfig, batch_size: int, steps: int = 20, warmup: int = 5, seed: int = 0) -> dict:
    """Where the time of one training step goes: milliseconds per step for each part of :data:`STEP_PARTS`.

    Runs ``warmup + steps`` steps of the model on random tokens (forward, backward, gradient
    clipping, fused AdamW) under :mod:`torch.profiler` on the CPU, in the current thread
    setting, and adds up each operator's own (``self``) CPU time. ``other`` is the rest of the
    step: embeddings, the loss, residual additions, copies and the framework's overhead.
    ``total`` is the step's wall-clock time, measured on ``steps`` steps without the profiler
    (:func:`step_seconds`).
    """
    from torch.profiler import ProfilerActivity, profile

    # the step's wall-clock time, without the profiler's own overhead
    wall_ms = step_seconds(model_config, batch_size, steps=steps, warmup=warmup, seed=seed) * 1e3
    step = _random_token_step(model_config, batch_size, seed, torch.device("cpu"))
    step()
    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    # an operator's self time is measured on the thread that calls it, so with several threads
    # it is wall-clock time, comparable with the step's
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()}
    parts = {name: round(sum(self_ms.get(op, 0.0) for op in ops), 2) for name, ops in STEP_PARTS.items()}
    parts["other"] = round(max(0.0, wall_ms - sum(parts.values())), 2)
    parts["total"] = round(wall_ms, 2)
    parts["threads"] = torch.get_num_threads()
    return parts


def reference_run(iters: int = 2000, compile: bool = False, num_threads: int | None = None,
                  baseline: bool = False, progress: bool = True, profile_steps: int = 0) -> dict:
    """Train the reference configuration on the CPU and return the benchmark's numbers as a dict."""
    from .data import load_dataset

    dataset = load_dataset()
    mc = GPTConfig(vocab_size=dataset.vocab_size, **REFERENCE_MODEL)
    tc = TrainConfig(**{**REFERENCE_TRAIN, "max_iters": iters, "compile": compile, "num_threads": num_threads})
    # one-time costs of the process, paid before either timed loop: torch.optim's first
    # optimiser imports the compiler stack (seconds), and the CPU peak probe is cached
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    peak_flops("cpu")
    c0 = time.process_time()
    res = train(mc, tc, dataset, progress=progress)
    cpu = time.process_time() - c0
    out = {
        "benchmark": "reference GPT (4 layers, 4 heads, width 128, context 64, batch 12) on the CPU",
        "iters": res.iters, "threads": res.num_threads, "compile": compile,
        "tokens_per_s": round(res.tokens_per_s, 1), "wall_time_s": round(res.wall_time_s, 2),
        "tokens_per_cpu_s": round(res.tokens_seen / cpu, 1),
        "vocab_size": mc.vocab_size, "mfu": res.mfu, "cpu_peak_flops": run_peak_flops(res),
        "final_val_loss": res.final_val_loss, "final_val_bpc": res.final_val_bpc,
        "load_average_1min": _load(),
    }
    old = torch.get_num_threads()
    torch.set_num_threads(res.num_threads)  # same threads as our run, so the loop is what differs
    try:
        if profile_steps:
            out["step_profile_ms"] = step_profile(mc, tc.batch_size, steps=profile_steps)
        plain = plain_loop(mc, tc, dataset) if baseline else None
    finally:
        torch.set_num_threads(old)
    if plain is not None:
        out["plain_tokens_per_s"] = round(plain["tokens_per_s"], 1)
        out["plain_tokens_per_cpu_s"] = round(plain["tokens_per_cpu_s"], 1)
        out["plain_final_val_loss"] = plain["final_val_loss"]
        out["speedup_wall"] = round(res.tokens_per_s / plain["tokens_per_s"], 2)
        out["speedup_cpu_time"] = round(out["tokens_per_cpu_s"] / plain["tokens_per_cpu_s"], 2)
    return out


def _load():
    try:
        import os
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def main(argv=None) -> dict:
    """Command line: run the benchmark and print its JSON as the last line."""
    p = argparse.ArgumentParser(prog="python -m utils.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=2000, help="iterations (2000 for the reference run)")
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the trainer's choice)")
    p.add_argument("--baseline", action="store_true", help="also time a plain training loop, back to back")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="also profile this many steps and report milliseconds per step by part")
    p.add_argument("--no_progress", action="store_true")
    args = p.parse_args(argv)
    if args.iters < 1:
        raise ValueError(f"--iters must be positive, got {args.iters}.")
    if args.profile < 0:
        raise ValueError(f"--profile must be a number of steps >= 0, got {args.profile}.")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}; leave it out to let the trainer choose.")
    out = reference_run(args.iters, args.compile, args.threads, args.baseline, not args.no_progress, args.profile)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":  # pragma: no cover
    main()

"""The GPU check's sections: each measures one claim the course makes about GPUs (How to use this course,
"Beyond one machine"; the list is in :mod:`utils.gpucheck`, which runs them).

A section is a function ``section_<name>(ctx, budget)`` that returns a JSON-ready dict within about
``budget`` seconds. ``ctx`` is what :func:`utils.gpucheck.run` prepared: the dataset, the device,
``dry_run``, the model configuration ``(GPTConfig, TrainConfig)``, the 5-gram baseline, the device's
peak FLOP/s and the trainer (``ctx["train"]``, :func:`utils.train.train`); sections that measure
something a later one uses leave it in ``ctx`` (the full run's and the sweep's seconds for the T4
estimate). A training run is timed step by step with :class:`_Clock`, which also stops it at a
deadline (:class:`_OutOfTime`). :data:`RUNNERS` maps each section's name to its function.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]  # the repository: the unit tests run from it
PRECISION_TOL_NATS = 0.05  # |final validation loss - float32's| after the precision section's steps, nats per character


# Peak memory bandwidth in bytes/s, by the exact name CUDA reports (NVIDIA's datasheets): a second
# yardstick for the T4 estimate, since small models are often limited by memory traffic, not FLOP/s.
GPU_MEMORY_BANDWIDTH: dict[str, float] = {
    "Tesla T4": 320e9, "NVIDIA L4": 300e9, "NVIDIA A10G": 600e9, "NVIDIA A10": 600e9,
    "NVIDIA A100-SXM4-40GB": 1555e9, "NVIDIA A100-SXM4-80GB": 2039e9, "NVIDIA A100 80GB PCIe": 1935e9,
    "NVIDIA H100 80GB HBM3": 3.35e12, "NVIDIA H100 PCIe": 2.0e12, "NVIDIA H200": 4.8e12,
}


class _OutOfTime(Exception):
    """Raised from a training callback when a section's time is up."""


def _replace(tc, **kw):
    from .train import TrainConfig

    return TrainConfig(**{**tc.to_dict(), **kw})


def _replace_dict(d: dict):
    from .train import TrainConfig

    return TrainConfig.from_dict(d)


class _Clock:
    """Timestamps of every optimiser step (the trainer's callback), with a deadline."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self.t0 = time.perf_counter()
        self.times: list[float] = []
        self.last: dict = {}

    def __call__(self, step, info):
        self.times.append(time.perf_counter())
        self.last = {"step": step, **info}
        if self.deadline is not None and self.times[-1] > self.deadline:
            raise _OutOfTime(f"time budget reached at step {step}")

    def first_step_s(self) -> float | None:
        return self.times[0] - self.t0 if self.times else None

    def step_s(self, skip: int = 5) -> float | None:
        """Median seconds per step after the first ``skip`` steps (steady state)."""
        dts = [b - a for a, b in zip(self.times[skip:], self.times[skip + 1:])]
        return statistics.median(dts) if dts else None


def _probe(ctx: dict, mc, tc, deadline: float, skip: int = 2) -> float | None:
    """Seconds per step of a short run (``tc``), stopped at ``deadline``; ``None`` if under three steps ran."""
    clock = _Clock(deadline)
    try:
        ctx["train"](mc, tc, ctx["dataset"], progress=False, callback=clock)
    except _OutOfTime:
        pass
    if len(clock.times) < 3:
        return None
    return clock.step_s(skip=min(skip, len(clock.times) - 2))


# ----------------------------------------------------------------------------- the sections

def section_unit_tests(ctx: dict, budget: float) -> dict:
    """Run the CUDA-only unit tests (skipped, not failed, on a CPU) in a subprocess within ``budget``."""
    import xml.etree.ElementTree as ET

    files = [f for f in ("tests/test_train.py", "tests/test_ddp.py", "tests/test_runtime.py") if (ROOT / f).exists()]
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        # no:nbval: the notebooks' plugin, where installed, is not needed and needs packages a bare machine lacks
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:nbval", "-k", "cuda or test_runtime",
               f"--junitxml={xml}", *files]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        t0 = time.perf_counter()
        try:
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "budget_s": budget, "command": " ".join(cmd[1:])}
        res = {"command": "python -m pytest -k 'cuda or test_runtime' " + " ".join(files), "returncode": out.returncode,
               "seconds": round(time.perf_counter() - t0, 1)}
        if xml.exists():
            cases = ET.parse(xml).getroot().iter("testcase")
            passed, failed, skipped = [], [], []
            for c in cases:
                name = f"{c.get('classname', '').split('.')[-1]}::{c.get('name')}"
                if c.find("failure") is not None or c.find("error") is not None:
                    failed.append(name)
                elif c.find("skipped") is not None:
                    skipped.append(name)
                else:
                    passed.append(name)
            res.update(passed=len(passed), failed=failed, skipped=skipped)
        if out.returncode not in (0, 5):
            res["output_tail"] = (out.stdout + out.stderr)[-2000:]
            res["status"] = "failed"
        return res


def section_precision(ctx: dict, budget: float) -> dict:
    """Float32, bfloat16 autocast and float16 with a gradient scaler, over the same short run."""
    import torch

    ds, dev, dry = ctx["dataset"], ctx["device"], ctx["dry_run"]
    mc, tc = ctx["model"]
    steps = 30 if dry else 100
    tc = _replace(tc, max_iters=steps, warmup_iters=max(1, steps // 5), eval_interval=steps,
                  eval_iters=2 if dry else 10, device=str(dev))
    dtypes = ["float32", "bfloat16", "float16"]
    out = {"steps": steps, "batch_size": tc.batch_size, "tolerance_nats": PRECISION_TOL_NATS, "runs": {},
           "note": "float32 is the trainer's: on CUDA its matrix products use TF32; float16 always uses a GradScaler"}
    deadline = time.perf_counter() + budget
    for name in dtypes:
        if name == "float16" and dev.type != "cuda":
            out["runs"][name] = {"status": "skipped", "why": "float16 autocast with a GradScaler needs CUDA"}
            continue
        if name == "bfloat16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            out["runs"][name] = {"status": "skipped", "why": "this GPU has no bfloat16"}
            continue
        clock = _Clock(deadline)
        try:
            r = ctx["train"](mc, _replace(tc, dtype=name), ds, progress=False, callback=clock)
        except _OutOfTime as e:
            out["runs"][name] = {"status": "out of time", "why": str(e)}
            continue
        out["runs"][name] = {"dtype": r.dtype, "final_val_loss": r.final_val_loss, "final_train_loss": r.final_train_loss,
                             "mean_last10_step_loss": sum(r.step_losses[-10:]) / len(r.step_losses[-10:]),
                             "tokens_per_s_steady": _steady_tok_s(clock, r), "wall_time_s": r.wall_time_s,
                             "scaler": name == "float16"}
    ref = out["runs"].get("float32", {}).get("final_val_loss")
    agree = {}
    for name in ("bfloat16", "float16"):
        got = out["runs"].get(name, {}).get("final_val_loss")
        if ref is not None and got is not None:
            agree[name] = {"val_loss_diff": got - ref, "within_tolerance": abs(got - ref) <= PRECISION_TOL_NATS}
    out["agreement"] = agree
    out["all_agree"] = bool(agree) and all(a["within_tolerance"] for a in agree.values())
    if agree and not out["all_agree"]:
        out["status"] = "failed"
    return out


def _whole_split_bpc(model, tokens, n_ctx: int) -> float:
    """Bits per character of ``model`` on the whole token array (``utils.train.evaluate_split``), as the n-gram is scored."""
    import math

    from .evaluation import evaluate_split

    return evaluate_split(model, tokens, n_ctx=n_ctx) / math.log(2)


def _steady_tok_s(clock: _Clock, res) -> float | None:
    s = clock.step_s()
    if not s:
        return None
    return res.tokens_seen / max(1, res.iters) / s


def _time_steps(mc, batch_size: int, steps: int, device, tf32: bool, seed: int = 0) -> dict:
    """Tokens/s of ``steps`` training steps (forward, backward, fused AdamW) in float32 on random tokens,
    with TensorFloat-32 matrix products ``tf32`` on or off, after three warm-up steps."""
    import torch

    from .model import GPT
    from .train import TrainConfig, make_optimizer

    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        torch.manual_seed(seed)
        model = GPT(mc).to(device)
        opt = make_optimizer(model, TrainConfig(lr=1e-4), device)  # the trainer's AdamW (fused)
        x = torch.randint(mc.vocab_size, (batch_size, mc.n_ctx), device=device)
        y = torch.randint(mc.vocab_size, (batch_size, mc.n_ctx), device=device)

        def step():
            _, loss = model(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        for _ in range(3):
            step()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        _sync(device)
        dt = time.perf_counter() - t0
        return {"tokens_per_s": steps * batch_size * mc.n_ctx / dt, "ms_per_step": 1e3 * dt / steps,
                "last_loss": float(loss.detach())}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def section_tf32(ctx: dict, budget: float) -> dict:
    """Float32 training steps with TF32 matrix products off, then on (the trainer turns it on)."""
    dev, dry = ctx["device"], ctx["dry_run"]
    mc, tc = ctx["model"]
    steps = 5 if dry else 20
    off = _time_steps(mc, tc.batch_size, steps, dev, tf32=False)
    on = _time_steps(mc, tc.batch_size, steps, dev, tf32=True)
    out = {"steps": steps, "batch_size": tc.batch_size, "off": off, "on": on,
           "speedup": on["tokens_per_s"] / off["tokens_per_s"],
           "note": "float32 steps outside the trainer (which always turns TF32 on for CUDA)"}
    if dev.type != "cuda":
        out["note"] += "; on the CPU there is no TF32, so this only rehearses the code"
    return out


def section_full_run(ctx: dict, budget: float) -> dict:
    """Chapter 4b's full run, or the longest complete run of its recipe that fits ``budget``."""
    ds, dev, dry = ctx["dataset"], ctx["device"], ctx["dry_run"]
    mc, tc = ctx["model"]
    tc = _replace(tc, device=str(dev))
    planned = tc.iterations(mc.n_ctx)
    # seconds per step, from the precision section's auto-precision twin if it ran, else a short probe
    auto = ctx.get("auto_dtype")
    step_s = ctx.get("step_s", {}).get(auto)
    probe = None
    if step_s is None:
        probe = 12 if dry else 30
        step_s = _probe(ctx, mc, _replace(tc, max_iters=probe, warmup_iters=1, eval_interval=probe, eval_iters=1),
                        time.perf_counter() + budget / 4)
        if step_s is None:
            return {"status": "skipped", "why": f"fewer than three steps ran in {budget / 4:.0f} s"}
    evals = planned // tc.eval_interval + 1
    eval_s = evals * 2 * tc.eval_iters * step_s / 3  # a forward pass is about a third of a step
    predicted = planned * step_s + eval_s
    iters = planned
    if predicted > 0.8 * budget:
        iters = max(10, int((0.8 * budget - eval_s) / step_s))
        iters = min(iters, planned)
    run_tc = tc if iters == planned else _replace(
        tc, max_iters=iters, warmup_iters=min(tc.warmup_iters, max(1, iters // 10)),
        eval_interval=max(1, min(tc.eval_interval, iters // 4)))
    clock = _Clock(time.perf_counter() + budget)
    out = {"model_config": mc.to_dict(), "planned_iters": planned, "iters_run": iters,
           "planned_tokens": planned * tc.batch_size * mc.n_ctx, "complete": iters == planned,
           "predicted_planned_s": predicted, "seconds_per_step_estimate": step_s, "probe_steps": probe}
    if iters < planned:
        out["note"] = (f"the planned {planned} steps did not fit the budget of {budget:.0f} s; this is a complete "
                       f"run of {iters} steps with the same recipe (warm-up and cosine over its own length)")
    try:
        r = ctx["train"](mc, run_tc, ds, progress=False, callback=clock)
    except _OutOfTime as e:
        out.update(status="out of time", why=str(e), last=clock.last)
        return out
    ng = ctx["ngram"]
    # the n-gram is scored on the whole validation split, so the GPT is too (like for like, as in Chapter 4b);
    # final_val_bpc is the trainer's random windows, kept for the curve
    whole = _whole_split_bpc(r.model, ds.val, mc.n_ctx)
    out.update({"train_config": run_tc.to_dict(), "dtype": r.dtype, "tokens_seen": r.tokens_seen,
                "wall_time_s": r.wall_time_s, "tokens_per_s": r.tokens_per_s,
                "tokens_per_s_steady": _steady_tok_s(clock, r), "mfu": r.mfu, "flops": r.flops,
                "n_params": r.n_params, "final_val_bpc": r.final_val_bpc, "final_train_bpc": r.final_train_bpc,
                "val_bpc_whole_split": whole,
                "val_bpc_curve": [[h["step"], h["val_bpc"]] for h in r.history],
                "ngram_val_bpc": ng["val_bpc"], "ngram_n": ng["n"], "beats_ngram": whole < ng["val_bpc"],
                "planned_time_s": r.wall_time_s if iters == planned else r.wall_time_s * planned / iters})
    ctx["full_run_s"] = out["planned_time_s"]
    ctx["full_run_step_s"] = clock.step_s()
    return out


def section_compile(ctx: dict, budget: float) -> dict:
    """``torch.compile`` through the trainer: the time its first step costs and the steady-state speed-up."""
    import torch

    ds, dev, dry = ctx["dataset"], ctx["device"], ctx["dry_run"]
    mc, tc = ctx["model"]
    steps = 25 if dry else 150
    tc = _replace(tc, max_iters=steps, warmup_iters=5, eval_interval=steps, eval_iters=2 if dry else 5,
                  device=str(dev))
    deadline = time.perf_counter() + budget
    out = {"steps": steps, "backend": "inductor"}
    real_compile = torch.compile
    if dry:  # inductor's C++ build takes minutes on a small CPU: rehearse the graph capture only
        torch.compile = lambda model, **kw: real_compile(model, backend="eager", **kw)
        out["backend"] = "eager (dry run: graph capture without code generation)"
    try:
        runs = {}
        for name, flag in (("eager", False), ("compiled", True)):
            clock = _Clock(deadline)
            t0 = time.perf_counter()
            try:
                r = ctx["train"](mc, _replace(tc, compile=flag), ds, progress=False, callback=clock)
            except _OutOfTime as e:
                out[name] = {"status": "out of time", "why": str(e), "steps_done": len(clock.times),
                             "first_step_s": clock.first_step_s()}
                out["status"] = "out of time"
                return out
            runs[name] = {"first_step_s": clock.first_step_s(), "step_ms": 1e3 * clock.step_s(),
                          "total_s": time.perf_counter() - t0, "final_val_loss": r.final_val_loss,
                          "tokens_per_s_steady": _steady_tok_s(clock, r)}
            out[name] = runs[name]
        out["compile_time_s"] = runs["compiled"]["first_step_s"] - runs["eager"]["first_step_s"]
        out["speedup_steady"] = runs["eager"]["step_ms"] / runs["compiled"]["step_ms"]
        out["val_loss_diff"] = runs["compiled"]["final_val_loss"] - runs["eager"]["final_val_loss"]
        out["note"] = ("compile time: the compiled run's time to its first step (with the step-0 evaluation) "
                       "minus the eager run's; speed-up: median step time after five steps")
    finally:
        torch.compile = real_compile
    return out


def _trunk_steps(trunk: dict, f: float) -> float:
    """Optimiser steps a trunk costs: its longest run plus the cool-down of every branch."""
    return trunk["train_config"]["max_iters"] + f * sum(trunk["branches"])


def _pick_trunk(by_size: list[dict], step_of: dict, f: float, left: float) -> tuple[dict, float]:
    """The trunk the sweep section trains, and its predicted seconds (:func:`_trunk_steps` times its probed
    seconds per step, ``step_of``): among ``by_size`` (trunks sorted by model size), the one nearest the median
    size (the smaller of two as near) whose prediction fits 80 % of the ``left`` seconds, else the median one."""
    median = len(by_size) // 2
    order = sorted(range(len(by_size)), key=lambda i: (abs(i - median), i))
    fits = [i for i in order if _trunk_steps(by_size[i], f) * step_of[by_size[i]["trunk"]] <= 0.8 * left]
    mid = by_size[fits[0] if fits else median]
    return mid, _trunk_steps(mid, f) * step_of[mid["trunk"]]


def section_sweep(ctx: dict, budget: float) -> dict:
    """Probe every trunk of the sweep grid for its step time; train a mid-sized trunk with its branches."""
    from . import sweep

    ds, dev, dry = ctx["dataset"], ctx["device"], ctx["dry_run"]
    grid = sweep.GRIDS["tiny" if dry else "full"]
    work = sweep.trunks(grid)
    f = grid.cooldown_fraction
    deadline = time.perf_counter() + budget
    probe_deadline = time.perf_counter() + budget / 3
    n_probe = 8 if dry else 60
    probes = {}
    for t in work:  # most expensive first
        if time.perf_counter() > probe_deadline:
            break
        tc = {**t["train_config"], "device": str(dev), "max_iters": n_probe, "warmup_iters": 2,
              "eval_interval": n_probe, "eval_iters": 1}
        got = _probe(ctx, t["model_config"], _replace_dict(tc), probe_deadline, skip=min(5, n_probe // 2))
        if got is not None:
            probes[t["trunk"]] = got
    # the whole sweep's time from the probes (a trunk not probed: the slowest probed step time)
    fallback = max(probes.values()) if probes else None
    est = 0.0
    for t in work:
        est += _trunk_steps(t, f) * probes.get(t["trunk"], fallback or 0.0)
    out = {"grid": f"{grid.name}-{grid.key()}", "trunks": len(work), "points": sum(len(t["points"]) for t in work),
           "probe_steps": n_probe, "probed": len(probes), "step_ms": {k: 1e3 * v for k, v in probes.items()},
           "estimated_sweep_s": est if probes else None,
           "estimate_note": "sum over trunks of (longest run + cool-down fraction x branch lengths) x the probed "
                            "seconds per step; evaluations and set-up not counted"
                            + ("" if len(probes) == len(work) else
                               "; trunks not probed in time are given the slowest probed step time")}
    ctx["sweep_s"] = out["estimated_sweep_s"]
    if not probes:
        out["trained"] = {"status": "skipped", "why": "no trunk could be probed in the time"}
        out["status"] = "out of time"
        return out
    # a mid-sized trunk: the median model size whose trunk fits the time left, else the closest to it that does
    from .attention import count_params

    by_size = sorted(work, key=lambda t: count_params(SimpleNamespace(**t["model_config"]), non_embedding=True))
    left = deadline - time.perf_counter()
    step_of = {t["trunk"]: probes.get(t["trunk"], fallback or 0.0) for t in work}
    mid, predicted = _pick_trunk(by_size, step_of, f, left)
    pick = {"trunk": mid["trunk"], "model_config": mid["model_config"], "steps": mid["train_config"]["max_iters"],
            "branches": mid["branches"], "predicted_s": predicted}
    tc = {**mid["train_config"], "device": str(dev)}
    branches = mid["branches"]
    if predicted > 0.8 * left:  # the whole trunk does not fit: its shortest point alone, as one wsd run
        shortest = min(p["steps"] for p in mid["points"])
        predicted = shortest * step_of[mid["trunk"]]
        pick.update(note="the whole trunk did not fit the budget; trained its shortest point alone",
                    steps=shortest, branches=[], predicted_s=predicted)
        tc = {**tc, "max_iters": shortest, "eval_interval": shortest}
        branches = None
        if predicted > 0.8 * left:
            out["trained"] = {**pick, "status": "skipped", "why": f"{predicted:.0f} s predicted, {left:.0f} s left"}
            return out
    clock = _Clock(deadline)
    t0 = time.perf_counter()
    try:
        r = ctx["train"](mid["model_config"], tc, ds, progress=False, callback=clock, branches=branches)
    except _OutOfTime as e:
        out["trained"] = {**pick, "status": "out of time", "why": str(e)}
        return out
    wall = time.perf_counter() - t0
    pick.update(wall_time_s=wall, tokens_per_s=r.tokens_per_s, mfu=r.mfu, dtype=r.dtype,
                points={r.iters: r.final_val_bpc, **{b.iters: b.final_val_bpc for b in r.branches}})
    out["trained"] = pick
    return out


def section_estimates(ctx: dict, budget: float) -> dict:
    """A Colab T4's time for the full profile's main run and sweep, scaled by the ratio of peak FLOP/s."""
    from .hardware import gpu_peak_flops

    here = ctx["peak_flops"]
    t4 = gpu_peak_flops("Tesla T4")
    if not here:
        return {"status": "skipped", "why": "this device's peak FLOP/s is not known"}
    ratio = here / t4
    parts = {"chapter4b_full_run_s": ctx.get("full_run_s"), "chapter6_full_sweep_s": ctx.get("sweep_s")}
    out = {"label": "ESTIMATE: measured seconds here x (peak FLOP/s here / a T4's peak); small models are often "
                    "limited by kernel launches and memory traffic rather than peak FLOP/s, so treat it as a "
                    "rough guide, not a measurement",
           "peak_flops_here": here, "peak_flops_t4": t4, "ratio": ratio, "measured_here_s": parts,
           "t4_estimate_s": {k: (v * ratio if v is not None else None) for k, v in parts.items()}}
    known = [v for v in out["t4_estimate_s"].values() if v is not None]
    out["t4_estimate_total_h"] = sum(known) / 3600 if known else None
    bw_here = GPU_MEMORY_BANDWIDTH.get(str(ctx.get("gpu")))
    if bw_here:  # the same estimate with the ratio of memory bandwidths
        bw_ratio = bw_here / GPU_MEMORY_BANDWIDTH["Tesla T4"]
        out["bandwidth_ratio"] = bw_ratio
        out["t4_estimate_by_bandwidth_s"] = {k: (v * bw_ratio if v is not None else None) for k, v in parts.items()}
    if ctx["device"].type != "cuda":
        out["label"] += " (dry run on the CPU: the CPU's measured peak stands in, so the numbers mean nothing)"
    return out


RUNNERS = {"unit_tests": section_unit_tests, "precision": section_precision, "tf32": section_tf32,
           "full_run": section_full_run, "compile": section_compile, "sweep": section_sweep,
           "estimates": section_estimates}


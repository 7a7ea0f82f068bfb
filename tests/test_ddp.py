"""Tests for data-parallel training (utils.train under torchrun): two CPU processes with gloo train the
same run as one process with the same global batch, resume from a checkpoint, and only rank 0 writes.

Tolerance: the two processes compute the same batch in two halves and average their gradients, so
their sums are rounded in another order than one process's. Over 30 steps of a tiny model in float32
the per-step losses must agree to within 1e-4 nats (the tolerance of gradient accumulation in
test_train.py; the differences seen are below 1e-6). A resumed data-parallel run must repeat the
uninterrupted one to within 1e-6.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from utils.data import CharDataset, CharTokenizer, train_val_split
from utils.model import GPTConfig
from utils.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("FIRST CITIZEN:\nBefore we proceed any further, hear me speak.\n\nALL:\nSpeak, speak.\n\n"
        "FIRST CITIZEN:\nYou are all resolved rather to die than to famish?\n\n") * 60
TOL = 1e-4  # nats, per step: the two ways of adding up one batch round differently


def _dataset():
    tok = CharTokenizer.from_text(TEXT)
    tr, va = train_val_split(tok.encode(TEXT), 0.1)
    return CharDataset(text=TEXT, tokenizer=tok, train=tr, val=va)


def _configs(ds, **kw):
    mc = GPTConfig(vocab_size=ds.vocab_size, n_ctx=16, n_layer=2, n_head=2, n_embd=32)
    tc = TrainConfig(**{**dict(batch_size=8, max_iters=30, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=10,
                               eval_iters=2, device="cpu", seed=0, num_threads=1, checkpoint_interval=5), **kw})
    return mc, tc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, backend: str = "gloo") -> None:
    """One of the processes: an uninterrupted run, a run that crashes at step 17 and its resumption,
    and the refusals; rank 0 writes what it saw to ``out/rank0.json``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    torch.distributed.init_process_group(backend, rank=rank, world_size=world)
    try:
        ds = _dataset()
        mc, tc = _configs(ds, device=device, **({"dtype": "float32"} if backend == "nccl" else {}))
        whole = train(mc, tc, ds, progress=False)

        def crash_at_17(step, info):
            if step == 17:
                raise RuntimeError("simulated crash")

        run_dir = Path(out) / "run"
        try:
            train(mc, tc, ds, out_dir=run_dir, progress=False, callback=crash_at_17)
        except RuntimeError:
            pass
        torch.distributed.barrier()
        had_ckpt = (run_dir / "ckpt.pt").exists()
        resumed = train(mc, tc, ds, out_dir=run_dir, progress=False)
        errors = {}
        refused = {"branches": dict(tc=_configs(ds, schedule="wsd", device=device)[1], branches=[20])}
        if world == 2:
            refused["batch"] = dict(tc=_configs(ds, batch_size=7, device=device)[1])
        for name, kwargs in refused.items():
            try:
                train(mc, kwargs["tc"], ds, progress=False, branches=kwargs.get("branches"))
            except ValueError as e:
                errors[name] = str(e)
        if rank == 0:
            (Path(out) / "rank0.json").write_text(json.dumps({
                "step_losses": whole.step_losses, "history": whole.history, "tokens_seen": whole.tokens_seen,
                "flops": whole.flops, "mfu": whole.mfu, "had_ckpt": had_ckpt,
                "resumed_losses": resumed.step_losses, "resumed_val": resumed.final_val_loss,
                "resumed_cached": resumed.cached, "errors": errors, "device": whole.device, "dtype": whole.dtype,
                "files": sorted(p.name for p in run_dir.iterdir())}))
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    ds = _dataset()
    mc, tc = _configs(ds)
    one = train(mc, tc, ds, progress=False)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    got = json.loads((tmp_path / "rank0.json").read_text())
    # the same loss curve, step by step, and the same evaluations
    assert got["step_losses"] == pytest.approx(one.step_losses, abs=TOL)
    assert [h["step"] for h in got["history"]] == [h["step"] for h in one.history]
    assert [h["val_loss"] for h in got["history"]] == pytest.approx([h["val_loss"] for h in one.history], abs=TOL)
    # tokens and FLOPs count the global batch; MFU is measured against both processes' peak
    assert got["tokens_seen"] == one.tokens_seen == 30 * 8 * 16 and got["flops"] == one.flops
    assert 0 < got["mfu"] < 1
    # interrupted at step 17 (checkpoint at 15), resumed: the same run
    assert got["had_ckpt"] and not got["resumed_cached"]
    assert got["resumed_losses"] == pytest.approx(got["step_losses"], abs=1e-6)
    assert got["resumed_val"] == pytest.approx(one.final_val_loss, abs=TOL)
    assert got["files"] == ["model.pt", "result.json"]  # finished: weights and results, no checkpoint
    # what data-parallel training refuses, with a sentence that says why
    assert "branches are not supported in data-parallel" in got["errors"]["branches"]
    assert "multiple of 2" in got["errors"]["batch"] and "batch_size=8" in got["errors"]["batch"]


def test_torchrun_command_line_prints_one_json_object_from_rank_zero(tmp_path):
    env = {**os.environ, "COURSE_DEVICE": "cpu", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "utils.train", "--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--n_ctx", "16",
           "--batch_size", "4", "--max_iters", "6", "--eval_interval", "3", "--eval_iters", "2",
           "--warmup_iters", "2", "--max_chars", "20000", "--no_progress", "--num_threads", "1",
           "--out_dir", str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1  # only rank 0 prints
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["tokens_seen"] == 6 * 4 * 16
    assert (tmp_path / "run" / "result.json").exists() and not (tmp_path / "run" / "ckpt.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_data_parallel_with_nccl_matches_one_process(tmp_path):
    # nccl wants one GPU per process: two processes where there are two GPUs, else one (still through DDP).
    # On the GPU the fp32 matrix products use TF32 and the kernels may differ with the batch shape, so the
    # tolerance is looser than on the CPU: 1e-2 nats per step.
    world = min(2, torch.cuda.device_count())
    ds = _dataset()
    mc, tc = _configs(ds, device="cuda:0", dtype="float32")
    one = train(mc, tc, ds, progress=False)
    mp.spawn(_cuda_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    got = json.loads((tmp_path / "rank0.json").read_text())
    assert got["device"].startswith("cuda") and got["tokens_seen"] == one.tokens_seen
    assert got["step_losses"] == pytest.approx(one.step_losses, abs=1e-2)
    assert got["had_ckpt"] and got["resumed_losses"] == pytest.approx(got["step_losses"], abs=1e-2)
    assert got["files"] == ["model.pt", "result.json"]


def _cuda_worker(rank: int, world: int, port: int, out: str) -> None:
    _worker(rank, world, port, out, backend="nccl")


def _torchrun_env(monkeypatch, world: int) -> None:
    """The variables torchrun sets for rank 0 of ``world`` processes (the rendezvous of a one-process group)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))


def test_torchrun_without_cuda_refuses_to_train_on_the_cpu_unasked(monkeypatch):
    from types import SimpleNamespace

    from utils.parallel import init_distributed

    _torchrun_env(monkeypatch, 4)
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    def join(*args, **kwargs):  # a wrong set-up would wait here for three processes that never come
        raise AssertionError(f"joined a process group {args} on the CPU without being asked to")

    monkeypatch.setattr(torch.distributed, "init_process_group", join)
    with pytest.raises(ValueError, match="no CUDA GPU here") as refused:
        init_distributed(SimpleNamespace(device=None))
    assert "add --device cpu or set COURSE_DEVICE=cpu" in str(refused.value) and "4 process" in str(refused.value)
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("flag, variable", [("cpu", None), (None, "cpu")])
def test_torchrun_on_the_cpu_when_asked_for_joins_a_gloo_group(monkeypatch, flag, variable):
    from types import SimpleNamespace

    from utils.parallel import init_distributed

    _torchrun_env(monkeypatch, 1)
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    if variable:
        monkeypatch.setenv("COURSE_DEVICE", variable)
    args = SimpleNamespace(device=flag)
    try:
        assert init_distributed(args) and torch.distributed.get_backend() == "gloo" and args.device == "cpu"
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

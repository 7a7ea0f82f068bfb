"""Tests for utils.bench: the step profile, training throughput without evaluations and the benchmark's
command line (a few iterations only)."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from utils import bench
from utils.model import GPTConfig
from utils.train import TrainConfig, cpu_peak_flops, train

TINY = GPTConfig(vocab_size=20, n_ctx=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0, bias=True)
TINY_TRAIN = TrainConfig(batch_size=4, max_iters=12, warmup_iters=2, eval_interval=4, eval_iters=3, device="cpu",
                         seed=0, num_threads=1)


@pytest.fixture(scope="module")
def tiny_run():
    rng = np.random.default_rng(0)
    ds = SimpleNamespace(train=rng.integers(0, 20, 2000), val=rng.integers(0, 20, 500), vocab_size=20)
    return ds, train(TINY, TINY_TRAIN, ds, progress=False)


def test_training_throughput_takes_out_the_evaluations_share_of_the_time(tiny_run, monkeypatch):
    ds, res = tiny_run
    monkeypatch.setattr(bench, "evaluation_seconds", lambda *args, **kwargs: 1e-3)
    monkeypatch.setattr(bench, "step_seconds", lambda *args, **kwargs: 2e-3)
    out = bench.training_throughput(res, ds)
    assert out["n_evals"] == len(res.history) == 4  # before training, then at steps 4, 8 and 12
    # 4 evaluations of 1 ms against 12 steps of 2 ms: a seventh of the time
    assert out["eval_time_share"] == pytest.approx(4e-3 / (4e-3 + 24e-3))
    assert out["run_s"] == pytest.approx(res.tokens_seen / res.tokens_per_s)
    assert out["train_s"] == pytest.approx(out["run_s"] * 6 / 7)
    assert out["eval_s"] == pytest.approx(out["run_s"] / 7)
    assert out["tokens_per_s"] == pytest.approx(res.tokens_per_s * 7 / 6)
    # 4 evaluations x 2 splits x 3 batches x 4 windows x 8 tokens, over 3 x 12 steps x 4 windows x 8 tokens
    assert out["eval_forward_share"] == pytest.approx(4 * 2 * 3 * 4 * 8 / (3 * 12 * 4 * 8))
    # the MFU keeps the run's denominator: the probe at the run's thread count (cached in this process)
    old = torch.get_num_threads()
    torch.set_num_threads(res.num_threads)
    try:
        probe = cpu_peak_flops()
    finally:
        torch.set_num_threads(old)
    assert out["peak_flops"] == pytest.approx(probe, rel=1e-9) == bench.run_peak_flops(res)
    assert out["mfu"] == pytest.approx(res.mfu * out["tokens_per_s"] / res.tokens_per_s, rel=1e-9)


def test_evaluation_seconds_runs_the_trainers_evaluation(tiny_run, monkeypatch):
    ds, res = tiny_run
    seen = []

    def counting(model, batches, amp_dtype, device):
        seen.append(sum(x.shape[0] for x, _ in batches))
        return 0.0

    monkeypatch.setattr(bench, "mean_loss", counting)
    seconds = bench.evaluation_seconds(res.model, TINY_TRAIN, ds, repeats=3)
    assert seconds >= 0
    assert seen == [TINY_TRAIN.eval_iters * TINY_TRAIN.batch_size] * (2 * (3 + 1))  # two splits, warm-up + 3 timings


def test_evaluation_and_step_seconds_measure_real_work(tiny_run):
    ds, res = tiny_run
    assert 0 < bench.evaluation_seconds(res.model, TINY_TRAIN, ds, repeats=1) < 60
    assert 0 < bench.step_seconds(TINY, 4, steps=2, warmup=1) < 60
    with pytest.raises(ValueError, match="steps"):
        bench.step_seconds(TINY, 4, steps=0)


def test_step_profile_keeps_the_profilers_messages_off_stderr(capfd):
    bench.step_profile(TINY, batch_size=2, steps=1, warmup=0)
    assert capfd.readouterr().err == ""


def test_training_throughput_refuses_a_result_without_its_model(tiny_run):
    ds, res = tiny_run
    with pytest.raises(ValueError, match="trained model"):
        bench.training_throughput(SimpleNamespace(**{**vars(res), "model": None}), ds)
    with pytest.raises(ValueError, match="repeats"):
        bench.evaluation_seconds(res.model, TINY_TRAIN, ds, repeats=0)


def test_step_profile_accounts_for_the_whole_step():
    parts = bench.step_profile(TINY, batch_size=2, steps=3, warmup=1)
    assert set(parts) == set(bench.STEP_PARTS) | {"other", "total", "threads"}
    assert parts["total"] > 0 and parts["matmul"] > 0 and parts["threads"] == torch.get_num_threads()
    assert all(parts[k] >= 0 for k in bench.STEP_PARTS)
    assert parts["other"] == pytest.approx(max(0.0, parts["total"] - sum(parts[k] for k in bench.STEP_PARTS)),
                                           abs=0.02)


def test_step_profile_refuses_no_steps():
    with pytest.raises(ValueError, match="steps"):
        bench.step_profile(TINY, batch_size=2, steps=0)


def test_cli_prints_its_json_last(capsys):
    out = bench.main(["--iters", "2", "--no_progress", "--baseline", "--profile", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    printed = json.loads(last)
    assert printed == json.loads(json.dumps(out))
    for key in ("tokens_per_s", "mfu", "cpu_peak_flops", "final_val_loss", "plain_tokens_per_s", "speedup_wall",
                "step_profile_ms"):
        assert key in printed, key
    assert printed["iters"] == 2 and printed["tokens_per_s"] > 0 and 0 < printed["mfu"] < 1
    # the peak printed is the one the MFU divided by
    flops_per_token = bench.GPT(GPTConfig(vocab_size=printed["vocab_size"], **bench.REFERENCE_MODEL)).train_flops_per_token()
    assert math.isclose(printed["mfu"] * printed["cpu_peak_flops"], flops_per_token * printed["tokens_per_s"], rel_tol=1e-3)


def test_cli_refuses_bad_arguments():
    with pytest.raises(ValueError, match="iters"):
        bench.main(["--iters", "0"])
    with pytest.raises(ValueError, match="profile"):
        bench.main(["--profile", "-1"])


def test_threads_flag_below_one_names_the_flag():
    with pytest.raises(ValueError, match="--threads must be at least 1"):
        bench.main(["--threads", "0", "--iters", "1"])

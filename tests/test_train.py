"""Tests for utils.train: the trainer of Chapter 4 (learning, resuming, errors, cache, command line)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import utils.model
from utils.data import CharDataset, CharTokenizer, train_val_split
from utils.model import GPTConfig
from utils.model import GPT
from utils.train import (NonFiniteLossError, TrainConfig, evaluate_split, lr_at, make_optimizer, peak_flops,
                         train)

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("FIRST CITIZEN:\nBefore we proceed any further, hear me speak.\n\nALL:\nSpeak, speak.\n\n"
        "FIRST CITIZEN:\nYou are all resolved rather to die than to famish?\n\n") * 60


@pytest.fixture(scope="module")
def dataset():
    tok = CharTokenizer.from_text(TEXT)
    tr, va = train_val_split(tok.encode(TEXT), 0.1)
    return CharDataset(text=TEXT, tokenizer=tok, train=tr, val=va)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


def tiny_model(ds, **kw):
    return GPTConfig(**{**dict(vocab_size=ds.vocab_size, n_ctx=16, n_layer=2, n_head=2, n_embd=32), **kw})


def tiny_train(**kw):
    base = dict(batch_size=8, max_iters=40, lr=3e-3, min_lr=3e-4, warmup_iters=5, eval_interval=10,
                eval_iters=2, device="cpu", seed=0, num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_on_a_tiny_run(dataset):
    res = train(tiny_model(dataset), tiny_train(), dataset, progress=False)
    first, last = res.history[0], res.history[-1]
    assert abs(first["val_loss"] - math.log(dataset.vocab_size)) < 0.3  # starts near ln(V)
    assert last["train_loss"] < first["train_loss"] - 0.5
    assert last["val_loss"] < first["val_loss"] - 0.5
    assert [h["step"] for h in res.history] == [0, 10, 20, 30, 40]
    assert res.iters == 40 and len(res.step_losses) == 40
    assert res.tokens_seen == 40 * 8 * 16
    assert res.final_val_loss == last["val_loss"]
    assert math.isclose(res.final_val_bpc, res.final_val_loss / math.log(2))
    assert res.device == "cpu" and res.dtype == "float32" and res.num_threads == 1
    assert 0 < res.mfu < 1 and res.tokens_per_s > 0
    assert res.n_params == res.model.num_params(non_embedding=False)
    assert res.flops == res.model.train_flops_per_token() * res.tokens_seen
    json.dumps(res.to_dict())  # everything but the model is plain data


def test_resume_matches_uninterrupted_run(dataset, tmp_path):
    mc, tc = tiny_model(dataset, dropout=0.1), tiny_train(max_iters=30, checkpoint_interval=5)
    full = train(mc, tc, dataset, progress=False)

    def crash_at_17(step, info):
        if step == 17:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(mc, tc, dataset, out_dir=tmp_path / "run", progress=False, callback=crash_at_17)
    assert (tmp_path / "run" / "ckpt.pt").exists()
    resumed = train(mc, tc, dataset, out_dir=tmp_path / "run", progress=False)
    assert resumed.iters == 30 and not resumed.cached
    assert resumed.step_losses == pytest.approx(full.step_losses, abs=1e-6)
    assert resumed.final_val_loss == pytest.approx(full.final_val_loss, abs=1e-6)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    # the finished directory is now loaded, not trained again
    again = train(mc, tc, dataset, out_dir=tmp_path / "run", progress=False)
    assert again.cached and again.final_val_loss == resumed.final_val_loss
    # a different configuration in the same directory is refused
    with pytest.raises(ValueError, match="different configuration.*pass resume=False") as refused:
        train(mc, tiny_train(max_iters=31), dataset, out_dir=tmp_path / "run", progress=False)
    assert "--no_resume" not in str(refused.value)  # Python callers get the Python argument's name


def test_training_loop_by_hand_is_what_train_runs(dataset):
    # Chapter 4b names the loop: set up a run's state, run the loop, and the numbers are train()'s
    from utils.train import start_run, training_loop
    mc, tc = tiny_model(dataset, dropout=0.1), tiny_train(max_iters=20)
    full = train(mc, tc, dataset, progress=False)
    old = torch.get_num_threads()
    torch.set_num_threads(tc.num_threads)
    try:
        run = start_run(mc, tc, dataset, torch.device("cpu"), (None, "float32", False))
        assert training_loop(run, tc.iterations(mc.n_ctx)) == []  # no branches
    finally:
        torch.set_num_threads(old)
    assert run.step == 20 and run.step_losses == full.step_losses
    assert [(h["step"], h["val_loss"], h["lr"]) for h in run.history] == [
        (h["step"], h["val_loss"], h["lr"]) for h in full.history]


def test_non_finite_loss_stops_with_the_step_and_a_hint(dataset, monkeypatch):
    real = utils.model.F.cross_entropy
    calls = {"train": 0}

    def poisoned(logits, targets, *a, **k):
        loss = real(logits, targets, *a, **k)
        if logits.requires_grad:
            calls["train"] += 1
            if calls["train"] > 3:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(utils.model.F, "cross_entropy", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step 3.*lower learning rate"):
        train(tiny_model(dataset), tiny_train(), dataset, progress=False)
    assert issubclass(NonFiniteLossError, ValueError)


def test_cache_reuses_a_finished_run_of_the_same_configuration(dataset):
    mc, tc = tiny_model(dataset), tiny_train(max_iters=20)
    first = train(mc, tc, dataset, progress=False, cache=True)
    assert not first.cached
    second = train(mc, tc, dataset, progress=False, cache=True)
    assert second.cached and second.history == first.history and second.wall_time_s == first.wall_time_s
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    other = train(mc, tiny_train(max_iters=20, lr=1e-3), dataset, progress=False, cache=True)
    assert not other.cached


def test_max_tokens_sets_the_number_of_iterations(dataset):
    tc = tiny_train(max_tokens=1000, eval_interval=100)
    assert tc.iterations(16) == math.ceil(1000 / (8 * 16))
    res = train(tiny_model(dataset), tc, dataset, progress=False)
    assert res.iters == 8 and res.tokens_seen == 8 * 8 * 16


def test_gradient_accumulation_matches_one_large_batch(dataset):
    mc = tiny_model(dataset)
    big = train(mc, tiny_train(batch_size=8, max_iters=10, eval_iters=4), dataset, progress=False)
    accum = train(mc, tiny_train(batch_size=4, grad_accum=2, max_iters=10, eval_iters=8), dataset,
                  progress=False)
    assert accum.tokens_seen == big.tokens_seen
    assert accum.step_losses == pytest.approx(big.step_losses, abs=1e-4)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    tc = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=100)
    lrs = [lr_at(s, tc) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(55, tc) == pytest.approx(5.5e-4)  # half-way through the cosine: the mean of lr and min_lr
    assert lr_at(100, tc) == pytest.approx(1e-4) and lr_at(500, tc) == pytest.approx(1e-4)


def test_weight_decay_applies_to_matrices_only(dataset):
    model = utils.model.GPT(tiny_model(dataset))
    opt = make_optimizer(model, tiny_train(weight_decay=0.1), torch.device("cpu"))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params(False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size"), (dict(lr=-1.0), "lr"), (dict(min_lr=1.0), "min_lr"),
    (dict(dtype="fp8"), "dtype"), (dict(beta2=1.0), "beta2"), (dict(max_tokens=0), "max_tokens"),
])
def test_bad_train_configs_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_mismatched_vocabulary_or_short_data_raise_value_error(dataset):
    with pytest.raises(ValueError, match="vocab_size"):
        train(tiny_model(dataset, vocab_size=3), tiny_train(), dataset, progress=False)
    short = CharDataset(text="", tokenizer=dataset.tokenizer, train=dataset.train, val=dataset.val[:10])
    with pytest.raises(ValueError, match="val split"):
        train(tiny_model(dataset), tiny_train(), short, progress=False)
    with pytest.raises(TypeError, match="train_config"):
        train(tiny_model(dataset), 5, dataset)


def test_cpu_peak_is_measured_once_per_process():
    peak = peak_flops("cpu")
    assert peak > 1e8 and peak_flops("cpu") == peak


def test_cpu_peak_fresh_measures_again_and_keeps_the_first_measurement(monkeypatch):
    import utils.train as train_module

    calls = []
    real_mm = torch.mm

    def counting_mm(a, b):
        calls.append(a.shape)
        return real_mm(a, b)

    first = train_module.cpu_peak_flops(n=64)  # cached for this thread count and size
    monkeypatch.setattr(torch, "mm", counting_mm)
    assert train_module.cpu_peak_flops(n=64) == first and not calls  # the cached value, no matmul run
    again = train_module.cpu_peak_flops(n=64, fresh=True)
    assert len(calls) == 16 and all(shape == (64, 64) for shape in calls)  # warm-up + 5 x 3 timed products
    assert again > 0
    calls.clear()
    assert train_module.cpu_peak_flops(n=64) == first and not calls  # a fresh probe replaces nothing


@pytest.mark.parametrize("name, peak", [
    ("Tesla T4", 65e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100-PCIE-40GB", 312e12),
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989e12), ("NVIDIA H200 NVL", 835e12), ("NVIDIA L4", 121e12), ("NVIDIA L40", 181e12),
    ("NVIDIA L40S", 362e12), ("Tesla V100-SXM2-16GB", 125e12), ("Tesla V100-PCIE-32GB", 112e12),
    ("NVIDIA A10G", 70e12), ("NVIDIA A10", 125e12),
])
def test_gpu_peaks_match_the_exact_name_cuda_reports(name, peak):
    from utils.train import gpu_peak_flops
    assert gpu_peak_flops(name) == peak


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090", "L4", "NVIDIA L40 something", "H100"])
def test_unlisted_gpus_get_no_peak_rather_than_a_near_miss(name):
    from utils.train import gpu_peak_flops
    assert gpu_peak_flops(name) is None


def test_wsd_schedule_warms_up_holds_and_cools_down_linearly():
    tc = TrainConfig(max_iters=100, lr=1e-2, min_lr=1e-3, warmup_iters=10, schedule="wsd", cooldown_fraction=0.2)
    lrs = [lr_at(s, tc) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert all(v == 1e-2 for v in lrs[10:80])          # constant until the last 20 steps
    assert lrs[99] == pytest.approx(1e-3)               # the last step trained is at the floor
    steps = np.diff(lrs[79:])
    assert np.allclose(steps, steps[0]) and steps[0] < 0  # a straight line down
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="cooldown_fraction"):
        TrainConfig(schedule="wsd", cooldown_fraction=0)


def test_cooldown_branch_equals_an_independent_run_of_its_length(dataset):
    mc = tiny_model(dataset)
    wsd = dict(schedule="wsd", eval_interval=1000, max_iters=60)
    trunk = train(mc, tiny_train(**wsd), dataset, progress=False, branches=[25, 40])
    assert [b.iters for b in trunk.branches] == [25, 40]
    for b in trunk.branches:
        alone = train(mc, tiny_train(**{**wsd, "max_iters": b.iters}), dataset, progress=False)
        assert b.final_val_loss == alone.final_val_loss and b.final_train_loss == alone.final_train_loss
        assert b.step_losses == alone.step_losses and b.tokens_seen == alone.tokens_seen
    # branching leaves the trunk untouched: it ends as a run without branches
    plain = train(mc, tiny_train(**wsd), dataset, progress=False)
    assert trunk.final_val_loss == plain.final_val_loss and trunk.step_losses == plain.step_losses
    assert {25, 40} <= {h["step"] for h in trunk.history}  # the trunk's own loss at each branch length
    json.dumps(trunk.to_dict())


def test_branches_are_refused_where_they_cannot_match_a_run(dataset):
    mc = tiny_model(dataset)
    with pytest.raises(ValueError, match="wsd"):
        train(mc, tiny_train(), dataset, progress=False, branches=[20])
    with pytest.raises(ValueError, match="between 1 and"):
        train(mc, tiny_train(schedule="wsd"), dataset, progress=False, branches=[40])
    with pytest.raises(ValueError, match="warm-up"):
        train(mc, tiny_train(schedule="wsd", warmup_iters=9), dataset, progress=False, branches=[10])
    with pytest.raises(ValueError, match="checkpoints"):
        train(mc, tiny_train(schedule="wsd"), dataset, progress=False, branches=[20], cache=True)


@pytest.mark.parametrize("capability, expected", [((7, 5), ("float16", True)), ((8, 0), ("bfloat16", False)),
                                                  ((9, 0), ("bfloat16", False))])
def test_auto_precision_uses_float16_with_a_scaler_below_ampere(monkeypatch, capability, expected):
    # a T4 (7.5) reports bfloat16 "supported" through emulation; it must still get float16 and a scaler
    from utils.precision import choose_precision
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    amp, name, scaler = choose_precision(torch.device("cuda"), "auto")
    assert (name, scaler) == expected and amp == getattr(torch, expected[0])
    assert choose_precision(torch.device("cpu"), "auto") == (None, "float32", False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_path_trains_in_mixed_precision(dataset):
    res = train(tiny_model(dataset), tiny_train(device="cuda"), dataset, progress=False)
    assert res.dtype in ("bfloat16", "float16") and res.device.startswith("cuda")
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    assert res.mfu is None or 0 < res.mfu < 1


def test_command_line_prints_one_json_object_last(tmp_path):
    env = {**os.environ, "COURSE_DEVICE": "cpu", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "utils.train", "--n_layer", "2", "--n_head", "2", "--n_embd", "32",
           "--n_ctx", "16", "--batch_size", "4", "--max_iters", "6", "--eval_interval", "3", "--eval_iters", "2",
           "--warmup_iters", "2", "--max_chars", "20000", "--no_progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("model_config", "train_config", "n_params", "n_params_non_embedding", "tokens_seen",
                "final_train_loss", "final_val_loss", "wall_time_s", "tokens_per_s", "mfu"):
        assert key in result, key
    assert result["tokens_seen"] == 6 * 4 * 16
    assert result["model_config"]["n_embd"] == 32 and result["train_config"]["max_iters"] == 6
    assert np.isfinite(result["final_val_loss"]) and result["mfu"] > 0


def test_cpu_threads_is_between_one_and_the_core_count():
    from utils.train import cpu_threads
    n = cpu_threads()
    assert 1 <= n <= max(1, torch.get_num_threads())


def _token_by_token_loss(model, tokens, n_ctx):
    """The definition, one prediction at a time: token t is predicted from its window's earlier tokens."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(tokens)):
            start = ((t - 1) // n_ctx) * n_ctx  # the window that predicts token t begins here
            logits, _ = model(torch.as_tensor(tokens[start:t], dtype=torch.long)[None])
            total -= float(torch.log_softmax(logits[0, -1].double(), dim=-1)[int(tokens[t])])
    return total / (len(tokens) - 1)


@pytest.mark.parametrize("length", [23, 21])  # 22 predictions: a last, shorter window; 20: none
def test_evaluate_split_is_the_mean_loss_over_every_predicted_token(dataset, length):
    torch.manual_seed(0)
    model = GPT(tiny_model(dataset, n_ctx=8))
    model.train()  # dropout is 0 here, but evaluate_split must restore the mode it found
    tokens = np.asarray(dataset.val[:length])
    got = evaluate_split(model, tokens, n_ctx=5, batch_size=2)
    assert got == pytest.approx(_token_by_token_loss(model, tokens, 5), rel=1e-5)
    assert model.training
    # a different window length changes the contexts, so the loss changes: the windows are really n_ctx long
    assert evaluate_split(model, tokens, n_ctx=2) != pytest.approx(got, rel=1e-6)
    assert evaluate_split(model, torch.as_tensor(tokens), n_ctx=5, batch_size=64) == pytest.approx(got, rel=1e-6)


def test_evaluate_split_refuses_bad_input_with_a_sentence(dataset):
    model = GPT(tiny_model(dataset, n_ctx=8))
    tokens = np.asarray(dataset.val[:30])
    with pytest.raises(ValueError, match="between 1 and the model's context 8"):
        evaluate_split(model, tokens, n_ctx=9)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_split(model, tokens[:1], n_ctx=4)
    with pytest.raises(TypeError, match="1-D array of integer token ids"):
        evaluate_split(model, tokens.astype(float), n_ctx=4)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        evaluate_split(model, tokens, n_ctx=4, batch_size=0)


def test_eval_seed_picks_the_evaluation_windows_and_nothing_else(dataset):
    base = dict(max_iters=6, eval_interval=6)
    a = train(tiny_model(dataset), tiny_train(seed=1, eval_seed=5, **base), dataset, progress=False)
    b = train(tiny_model(dataset), tiny_train(seed=1, eval_seed=6, **base), dataset, progress=False)
    assert b.step_losses == a.step_losses                          # the eval seed does not touch training
    assert b.history[0]["val_loss"] != a.history[0]["val_loss"]    # but scores on other windows
    c = train(tiny_model(dataset), tiny_train(seed=2, eval_seed=5, **base), dataset, progress=False)
    assert c.step_losses != a.step_losses                          # the seed trains another model
    d = train(tiny_model(dataset), tiny_train(seed=1, **base), dataset, progress=False)
    e = train(tiny_model(dataset), tiny_train(seed=1, eval_seed=1, **base), dataset, progress=False)
    assert [h["val_loss"] for h in d.history] == [h["val_loss"] for h in e.history]  # default: the seed's windows
    with pytest.raises(ValueError, match="eval_seed must be an integer or None"):
        TrainConfig(eval_seed=1.5)


TINY_CLI = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--n_ctx", "16", "--batch_size", "4",
            "--eval_interval", "3", "--eval_iters", "2", "--warmup_iters", "2", "--device", "cpu",
            "--num_threads", "1", "--no_progress"]


def test_command_line_names_no_resume_when_out_dir_holds_another_run(dataset, tmp_path, monkeypatch, capsys):
    import utils.data
    from utils.train import main

    monkeypatch.setattr(utils.data, "load_dataset", lambda *a, **k: dataset)
    run = str(tmp_path / "run")
    assert main([*TINY_CLI, "--max_iters", "4", "--out_dir", run]) == 0  # an exit status, for course-train
    for where, what in ((run, "a finished run"), (str(tmp_path / "crashed"), "a checkpoint")):
        if what == "a checkpoint":  # a run that stopped after its first checkpoint
            def crash_at_3(step, info):
                if step == 3:
                    raise RuntimeError("simulated crash")

            with pytest.raises(RuntimeError, match="simulated crash"):
                train(tiny_model(dataset), tiny_train(max_iters=8, checkpoint_interval=2), dataset, out_dir=where,
                      progress=False, callback=crash_at_3)
            assert (tmp_path / "crashed" / "ckpt.pt").exists()
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main([*TINY_CLI, "--max_iters", "6", "--out_dir", where])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and f"--out_dir {where} holds {what}" in err
        assert "add --no_resume" in err and "resume=False" not in err
    assert main([*TINY_CLI, "--max_iters", "6", "--out_dir", run, "--no_resume"]) == 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["iters"] == 6


@pytest.mark.parametrize("argv, message", [
    (["--no_resume"], "--no_resume needs --out_dir (or --cache)"),
    (["--checkpoint_interval", "5"], "--checkpoint_interval needs --out_dir (or --cache)"),
    (["--cache", "--out_dir", "x"], "--cache and --out_dir cannot be combined"),
    (["--max_iters", "10", "--max_tokens", "1000"], "--max_iters and --max_tokens cannot be combined"),
    (["--cooldown_fraction", "0.3"], "--cooldown_fraction needs --schedule wsd"),
])
def test_command_line_refuses_a_flag_the_run_would_ignore(argv, message, capsys, monkeypatch):
    import utils.data
    from utils.train import main

    def no_data(*a, **k):
        raise AssertionError("the flags must be refused before any data is loaded")

    monkeypatch.setattr(utils.data, "load_dataset", no_data)
    with pytest.raises(SystemExit) as stop:
        main(["--device", "cpu", *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_num_threads_flag_on_a_gpu_is_refused(capsys, monkeypatch):
    from utils import runtime
    from utils.train import main

    monkeypatch.setattr(runtime, "pick_device", lambda override=None: torch.device("cuda"))
    with pytest.raises(SystemExit) as stop:
        main(["--num_threads", "2"])
    assert stop.value.code == 2 and "--num_threads sets CPU threads" in capsys.readouterr().err


def test_forbidding_lr_at_in_utils_train_also_blocks_it_in_its_home_module():
    # Chapter 4b's graded cell forbids "utils.train.lr_at"; the function lives in utils.schedule, and an
    # answer that reaches it there (or through the trainer) must be stopped too
    import utils.branches
    import utils.schedule
    import utils.train
    from utils.grading import ForbiddenHelperError, forbid

    tc = TrainConfig(max_iters=100, warmup_iters=10)
    for reach in (lambda: utils.train.lr_at(5, tc), lambda: utils.schedule.lr_at(5, tc),
                  lambda: utils.branches.cool_down.__globals__["lr_at"](5, tc)):
        with pytest.raises(ForbiddenHelperError):
            with forbid("utils.train.lr_at"):
                reach()
    assert utils.schedule.lr_at(5, tc) == pytest.approx(6e-4)  # restored afterwards

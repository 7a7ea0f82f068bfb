"""Tests for utils.sweep: the scaling sweep of Chapter 6 (plan, resume, results file, command line)."""
import dataclasses
import json
import math
import types

import numpy as np
import pytest

import utils.data
from utils import sweep
from utils.attention import count_params
from utils.data import CharDataset, CharTokenizer, train_val_split
from utils.sweep import GRIDS, SweepGrid, load_results, plan, results_path, run_sweep

TEXT = ("FIRST CITIZEN:\nBefore we proceed any further, hear me speak.\n\nALL:\nSpeak, speak.\n\n"
        "FIRST CITIZEN:\nYou are all resolved rather to die than to famish?\n\n") * 40


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def dataset():
    """A small corpus whose tokenizer has the real corpus's 76 token types (as the grids expect)."""
    chars = sorted(set(TEXT))
    chars += [c for c in map(chr, range(0x100, 0x200)) if c not in chars][: 76 - len(chars)]
    tok = CharTokenizer(chars)
    tr, va = train_val_split(tok.encode(TEXT), 0.1)
    return CharDataset(text=TEXT, tokenizer=tok, train=tr, val=va)


def fake_train(calls):
    """A stand-in for utils.train.train: no training, a loss that falls with N and D."""
    def train_fn(model_config, train_config, dataset, progress=True):
        cfg = types.SimpleNamespace(**model_config)
        N = count_params(cfg, non_embedding=True)
        tokens = train_config["max_iters"] * train_config["batch_size"] * model_config["n_ctx"]
        loss = 1.5 + 30 / N**0.3 + 40 / tokens**0.3
        calls.append(model_config)
        return types.SimpleNamespace(
            final_train_loss=loss - 0.01, final_val_loss=loss, tokens_seen=tokens, wall_time_s=0.01,
            tokens_per_s=1e6, n_params=count_params(cfg), n_params_non_embedding=N, flops=6.0 * N * tokens,
            device="cpu", history=[{"step": 0, "tokens": 0, "train_loss": 4.3, "val_loss": 4.3, "lr": 0.0},
                                   {"step": train_config["max_iters"], "tokens": tokens,
                                    "train_loss": loss - 0.01, "val_loss": loss, "lr": 1e-4}])
    return train_fn


SMALL = SweepGrid(name="small", sizes=((1, 16), (2, 16), (2, 32)), budgets=(2e9, 4e9),
                  lrs=((16, 1e-2), (32, 6e-3)), min_steps=10)


def test_plan_trains_each_run_for_its_budget():
    for grid in (GRIDS["quick"], GRIDS["full"]):
        runs = plan(grid)
        assert len({r["run"] for r in runs}) == len(runs)
        for r in runs:
            assert r["steps"] >= grid.min_steps and r["D"] <= grid.max_tokens
            assert r["D"] == r["steps"] * grid.batch_size * grid.n_ctx
            assert math.isclose(r["C"], r["budget"], rel_tol=0.01)  # C = 6 N D up to whole steps
            cfg = types.SimpleNamespace(**r["model_config"])
            assert r["N"] == count_params(cfg, non_embedding=True) and r["N_total"] == count_params(cfg)
            tc = r["train_config"]
            assert tc["max_iters"] == r["steps"] and tc["warmup_iters"] < r["steps"]
            assert tc["min_lr"] == pytest.approx(grid.min_lr_ratio * tc["lr"])


def test_every_budget_has_enough_sizes_for_an_isoflop_parabola():
    for grid in (GRIDS["quick"], GRIDS["full"]):
        runs = plan(grid)
        for C in grid.budgets:
            assert sum(r["budget"] == C for r in runs) >= 3, (grid.name, C)


@pytest.mark.parametrize("profile, minimum", [("quick", 1.5), ("full", 2.5)])
def test_grid_spans_the_required_decades_of_parameters(profile, minimum):
    assert sweep.decades(GRIDS[profile]) >= minimum


def test_parameter_counts_match_the_model():
    from utils.model import GPT, GPTConfig
    runs = plan(GRIDS["quick"])
    for r in (min(runs, key=lambda r: r["N"]), max(runs, key=lambda r: r["N"])):
        model = GPT(GPTConfig(**r["model_config"]))
        assert model.num_params(non_embedding=True) == r["N"]
        assert model.num_params(non_embedding=False) == r["N_total"]


def test_heads_are_never_wider_than_head_dim():
    grid = GRIDS["quick"]
    assert [grid.n_head(d) for d in (8, 12, 16, 24, 32, 48, 128)] == [1, 1, 1, 2, 2, 3, 8]
    from utils.model import GPTConfig
    for n_layer, n_embd in grid.sizes:  # every rung is a valid model
        cfg = GPTConfig(**grid.model_config(n_layer, n_embd))
        assert cfg.n_embd // cfg.n_head <= grid.head_dim and cfg.n_embd % cfg.n_head == 0


def test_quick_grid_repeats_the_data_at_most_four_times():
    from utils.data import load_dataset
    n_train = len(load_dataset().train)
    for grid in (GRIDS["quick"], GRIDS["full"]):
        assert max(r["D"] for r in plan(grid)) <= 4 * n_train, grid.name


def test_results_file_is_in_the_cache_and_named_by_the_grid(tmp_path):
    a = results_path(GRIDS["quick"])
    b = results_path(dataclasses.replace(GRIDS["quick"], seed=1))
    assert a.parent == tmp_path / "cache" / "sweeps" and a.suffix == ".jsonl"
    assert a != b and a.name.startswith("quick-")
    assert results_path(GRIDS["quick"]) == a  # stable
    assert results_path(dataclasses.replace(GRIDS["quick"], num_threads=1)) == a  # threads do not change results


def test_resume_skips_finished_runs(dataset):
    calls = []
    first = run_sweep(SMALL, dataset=dataset, train_fn=fake_train(calls), progress=False, max_runs=2)
    assert len(first) == 2 and len(calls) == 2
    everything = run_sweep(SMALL, dataset=dataset, train_fn=fake_train(calls), progress=False)
    assert len(calls) == len(plan(SMALL)) == len(everything)  # only the missing runs were trained
    assert [r["run"] for r in everything] == [r["run"] for r in plan(SMALL)]
    again = run_sweep(SMALL, train_fn=fake_train(calls), progress=False)  # finished: no data, no training
    assert len(calls) == len(plan(SMALL)) and again == everything
    assert len(results_path(SMALL).read_text().splitlines()) == len(plan(SMALL))


def test_a_line_cut_by_a_kill_is_trained_again(dataset):
    calls = []
    run_sweep(SMALL, dataset=dataset, train_fn=fake_train(calls), progress=False, max_runs=2)
    path = results_path(SMALL)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:40])  # the second write was interrupted
    assert [r["run"] for r in load_results(path)] == [json.loads(lines[0])["run"]]
    results = run_sweep(SMALL, dataset=dataset, train_fn=fake_train(calls), progress=False)
    assert len(results) == len(plan(SMALL)) and len(calls) == 2 + len(plan(SMALL)) - 1
    assert len(load_results(path)) == len(plan(SMALL))  # the new line did not glue onto the broken one


def test_results_schema(dataset):
    results = run_sweep(SMALL, dataset=dataset, train_fn=fake_train([]), progress=False)
    for r in results:
        for key in ("run", "budget", "n_layer", "n_head", "n_embd", "N", "N_total", "n_params",
                    "n_params_non_embedding", "steps", "D", "C", "flops", "tokens_per_param",
                    "final_train_loss", "final_val_loss", "final_train_bpc", "final_val_bpc", "wall_time_s",
                    "model_config", "train_config", "history", "grid"):
            assert key in r, key
        assert r["N"] == r["n_params_non_embedding"] < r["N_total"] == r["n_params"]
        assert r["C"] == pytest.approx(6 * r["N"] * r["D"])
        assert r["final_val_bpc"] == pytest.approx(r["final_val_loss"] / math.log(2))
        assert r["history"][-1]["val_loss"] == r["final_val_loss"]
    assert sweep.summary(results).count("\n") == len(results) + 2


def test_one_real_tiny_run_records_sensible_losses(dataset, tmp_path):
    grid = GRIDS["tiny"]
    results = run_sweep(grid, path=tmp_path / "tiny.jsonl", dataset=dataset, progress=False, max_runs=1)
    (r,) = results
    assert r["D"] == r["steps"] * grid.batch_size * grid.n_ctx
    assert r["history"][0]["val_loss"] == pytest.approx(math.log(76), abs=0.3)  # untrained: about ln V
    assert np.isfinite(r["final_val_loss"]) and r["final_val_loss"] < r["history"][0]["val_loss"]


def test_cli_runs_a_tiny_grid_and_prints_a_summary(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(utils.data, "load_dataset", lambda *a, **k: dataset)
    out = tmp_path / "cli.jsonl"
    assert sweep.main(["--profile", "tiny", "--out", str(out), "--no_progress"]) == 0
    text = capsys.readouterr().out
    assert len(plan(GRIDS["tiny"])) == len(load_results(out))
    assert "lowest validation loss" in text and str(out) in text
    sweep.main(["--profile", "tiny", "--list"])
    assert "decades" in capsys.readouterr().out


def test_parallel_workers_give_the_same_results_as_one_process(dataset, tmp_path):
    grid = GRIDS["tiny"]  # one thread per run, so the two ways do the same arithmetic
    serial = run_sweep(grid, path=tmp_path / "serial.jsonl", dataset=dataset, progress=False, workers=1)
    parallel = run_sweep(grid, path=tmp_path / "parallel.jsonl", dataset=dataset, progress=False, workers=2)
    assert [r["run"] for r in parallel] == [r["run"] for r in serial] == [r["run"] for r in plan(grid)]
    for a, b in zip(serial, parallel):
        assert b["final_val_loss"] == pytest.approx(a["final_val_loss"], rel=1e-6)
        assert b["D"] == a["D"]


def test_workers_default_to_one_per_core(monkeypatch):
    import os
    assert 1 <= sweep.default_workers() <= min(8, os.cpu_count())
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    assert sweep.default_workers() == 8  # capped: every worker holds its own copy of torch and the corpus
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert sweep.default_workers() == 1
    assert sweep._workers(None, "cpu", own_train_fn=False, n_todo=10) == 1  # a fake train_fn: in process
    assert sweep._workers(3, "cpu", own_train_fn=True, n_todo=2) == 2  # never more workers than runs
    assert sweep._workers(4, "cpu", own_train_fn=True, n_todo=1) == 1


def test_bad_input_is_explained(dataset):
    with pytest.raises(ValueError, match="unknown sweep profile"):
        sweep.grid_for("huge")
    with pytest.raises(ValueError, match="no learning rate"):
        SweepGrid(name="x", sizes=((2, 48),), budgets=(1e9,), lrs=((16, 1e-2),))
    with pytest.raises(ValueError, match="cannot be split into 3 heads"):
        SweepGrid(name="x", sizes=((2, 34),), budgets=(1e9,), lrs=((34, 1e-2),))
    with pytest.raises(ValueError, match="workers"):
        run_sweep(SMALL, workers=0, train_fn=fake_train([]), progress=False)
    with pytest.raises(ValueError, match="no runs"):
        plan(SweepGrid(name="x", sizes=((1, 16),), budgets=(1.0,), lrs=((16, 1e-2),)))
    with pytest.raises(TypeError, match="SweepGrid"):
        run_sweep(42)
    other = CharDataset(text="ab" * 200, tokenizer=CharTokenizer(["a", "b"]),
                        train=np.zeros(300, dtype=np.int64), val=np.zeros(100, dtype=np.int64))
    with pytest.raises(ValueError, match="vocab_size"):
        run_sweep(SMALL, dataset=other, train_fn=fake_train([]), progress=False)

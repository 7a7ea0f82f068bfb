"""Tests for utils.checkpoints: atomic files that two writers cannot collide on, and a checkpoint that restores
a run's whole state (weights, optimiser, step, losses, random states) into a fresh one."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from types import SimpleNamespace

from utils import checkpoints
from utils.checkpoints import OutDirInUseError, atomic_save, atomic_write_json, resume_from_checkpoint, save_checkpoint
from utils.model import GPTConfig
from utils.train import TrainConfig, start_run, train_step

TINY = GPTConfig(vocab_size=20, n_ctx=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1, bias=True)
TC = TrainConfig(batch_size=4, max_iters=12, warmup_iters=2, eval_interval=4, eval_iters=2, device="cpu", seed=0,
                 num_threads=1)


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    return SimpleNamespace(train=rng.integers(0, 20, 2000), val=rng.integers(0, 20, 500), vocab_size=20)


@pytest.mark.parametrize("write, read", [
    (atomic_save, lambda p: torch.load(p, weights_only=True)),
    (atomic_write_json, lambda p: json.loads(p.read_text())),
])
def test_two_writers_of_one_path_do_not_share_a_temporary_file(tmp_path, monkeypatch, write, read):
    # Another writer of the same path runs between this one's writing and its rename (as a second process
    # could). With one fixed temporary name, the inner rename would take the outer's file away.
    path = tmp_path / "result.x"
    real_replace, seen = os.replace, []

    def replace_after_another_writer(src, dst):
        seen.append(Path(src).name)
        if len(seen) == 1:
            write({"who": "inner"}, path)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_another_writer)
    write({"who": "outer"}, path)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(name.startswith("result.x.") and name.endswith(".tmp") for name in seen)
    assert read(path) == {"who": "outer"}  # the last rename wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.x"]  # no temporary file left behind


def test_a_failed_save_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json({"a": 1}, path)
    with pytest.raises(TypeError):
        atomic_write_json({"a": object()}, path)  # not JSON: fails while writing
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_json_file_content_is_indented_json(tmp_path):
    atomic_write_json({"b": [1, 2]}, tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text() == json.dumps({"b": [1, 2]}, indent=1)


def test_resume_from_checkpoint_restores_the_state_so_the_next_steps_match(dataset, tmp_path):
    device, precision = torch.device("cpu"), (None, "float32", False)
    run = start_run(TINY, TC, dataset, device, precision)
    for s in range(3):
        run.step_losses.append(train_step(run, s, 1e-3))
        run.step += 1
    save_checkpoint(tmp_path / "ckpt.pt", run, "key-1")
    ahead = [train_step(run, s, 1e-3) for s in range(3, 6)]  # the original carries on (dropout included)

    again = start_run(TINY, TC, dataset, device, precision, resume_from=tmp_path / "ckpt.pt", key="key-1",
                      run_dir=tmp_path)
    assert again.step == 3 and again.step_losses == run.step_losses[:3]
    assert [train_step(again, s, 1e-3) for s in range(3, 6)] == ahead
    for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_configuration_is_refused(dataset, tmp_path):
    device, precision = torch.device("cpu"), (None, "float32", False)
    save_checkpoint(tmp_path / "ckpt.pt", start_run(TINY, TC, dataset, device, precision), "key-1")
    with pytest.raises(OutDirInUseError, match="a checkpoint of a different configuration"):
        start_run(TINY, TC, dataset, device, precision, resume_from=tmp_path / "ckpt.pt", key="key-2",
                  run_dir=tmp_path)


def test_run_key_ignores_speed_settings_and_follows_the_data(dataset):
    base = checkpoints.run_key(TINY, TC, dataset)
    assert checkpoints.run_key(TINY, TrainConfig(**{**TC.to_dict(), "num_threads": 2}), dataset) == base
    assert checkpoints.run_key(TINY, TrainConfig(**{**TC.to_dict(), "lr": 2e-3}), dataset) != base
    other = SimpleNamespace(train=dataset.train[:-1], val=dataset.val, vocab_size=20)
    assert checkpoints.run_key(TINY, TC, other) != base

"""Tests for utils.branches (Chapter 6's cool-down branches), on their own: where branches start, and that
saving and restoring the state around a cool-down leaves the run as it was."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from utils.branches import branch_starts, cool_down, restore_state, save_state
from utils.model import GPTConfig
from utils.schedule import lr_at
from utils.train import TrainConfig, start_run, train_step

TINY = GPTConfig(vocab_size=20, n_ctx=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1, bias=True)
WSD = TrainConfig(batch_size=4, max_iters=40, warmup_iters=2, eval_interval=10, eval_iters=2, device="cpu", seed=0,
                  num_threads=1, schedule="wsd", cooldown_fraction=0.2)


def test_a_branch_starts_where_its_own_run_would_start_cooling_down():
    assert branch_starts([10, 25], WSD) == {8: 10, 20: 25}  # 20 % of 10 = 2 steps, of 25 = 5 steps
    for start, b in branch_starts([10, 25], WSD).items():
        assert lr_at(start - 1, WSD, b) == WSD.lr > lr_at(start, WSD, b)  # the rate falls from that step on


def _steps(run, steps):
    out = []
    for s in steps:
        out.append(train_step(run, s, lr_at(s, WSD)))
        run.step += 1
    return out


def test_a_cool_down_between_save_and_restore_leaves_the_run_as_it_was():
    rng = np.random.default_rng(0)
    ds = SimpleNamespace(train=rng.integers(0, 20, 2000), val=rng.integers(0, 20, 500), vocab_size=20)
    run = start_run(TINY, WSD, ds, torch.device("cpu"), (None, "float32", False))
    _steps(run, range(8))
    saved = save_state(run)
    losses, lr_last = cool_down(run, 10, train_step)
    assert len(losses) == 2 and run.step == 8 and lr_last == pytest.approx(WSD.min_lr)
    assert any(not torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), saved[0].values()))
    restore_state(run, saved)
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), saved[0].values()))
    after_branch = _steps(run, range(8, 12))

    # the same run without the branch (start_run seeds everything again, dropout included)
    plain = start_run(TINY, WSD, ds, torch.device("cpu"), (None, "float32", False))
    _steps(plain, range(8))
    assert after_branch == _steps(plain, range(8, 12))
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), plain.model.state_dict().values()))

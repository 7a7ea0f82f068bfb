"""Tests for utils.bench: the step profile and the benchmark's command line (a few iterations only)."""
import json

import pytest
import torch

from utils import bench
from utils.model import GPTConfig

TINY = GPTConfig(vocab_size=20, n_ctx=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0, bias=True)


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
    for key in ("tokens_per_s", "mfu", "final_val_loss", "plain_tokens_per_s", "speedup_wall", "step_profile_ms"):
        assert key in printed, key
    assert printed["iters"] == 2 and printed["tokens_per_s"] > 0 and 0 < printed["mfu"] < 1


def test_cli_refuses_bad_arguments():
    with pytest.raises(ValueError, match="iters"):
        bench.main(["--iters", "0"])
    with pytest.raises(ValueError, match="profile"):
        bench.main(["--profile", "-1"])

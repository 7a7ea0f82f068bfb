"""Tests for utils.parallel's pieces on their own, in one process (tests/test_ddp.py trains with two), and for
utils.precision's autocast and gradient scaler."""
import contextlib

import pytest
import torch

from utils.parallel import average_over_processes, check_batch_split, distributed, gradient_sync
from utils.precision import autocast, grad_scaler


def test_one_process_is_not_data_parallel_and_its_loss_stays_as_it_is():
    assert distributed() is None
    loss = torch.tensor(2.5)
    assert average_over_processes(loss, None) is loss and float(loss) == 2.5
    assert isinstance(gradient_sync(object(), None, 0, 4), contextlib.nullcontext)


def test_gradients_are_synchronised_on_the_last_micro_batch_only():
    class Wrapped:
        def no_sync(self):
            return "no_sync"

    ddp = (0, 2)
    assert [gradient_sync(Wrapped(), ddp, m, 3) for m in range(2)] == ["no_sync", "no_sync"]
    assert isinstance(gradient_sync(Wrapped(), ddp, 2, 3), contextlib.nullcontext)


def test_a_batch_the_processes_cannot_share_equally_is_refused_with_a_size_that_works():
    check_batch_split(12, (0, 4), None)  # 3 windows each
    with pytest.raises(ValueError, match="batch_size must be a multiple of 4; got batch_size=11. Use batch_size=12"):
        check_batch_split(11, (0, 4), None)
    with pytest.raises(ValueError, match="branches are not supported"):
        check_batch_split(12, (0, 4), [100])


def test_float32_runs_without_autocast_or_a_scaler():
    cpu = torch.device("cpu")
    with autocast(cpu, None):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast(cpu, torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert grad_scaler(cpu, False) is None

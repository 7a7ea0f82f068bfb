"""Tests for utils.noise, the parametric resamples' pieces of Chapter 6's allocation analysis, each on its own:
the law's derivatives, losses simulated with a shared offset per trunk and noise per run, the refits (in this
process and in worker processes) and the check of a given SD. split_noise is tested with the whole analysis in
tests/test_allocation.py."""
from types import SimpleNamespace

import numpy as np
import pytest

from utils import chinchilla, noise

LAW = {"E": 1.3, "A": 30.0, "B": 60.0, "alpha": 0.35, "beta": 0.30}


def _runs(n_trunks=4, per_trunk=5):
    """Runs as columns (what utils.allocation_core.prepare returns, the fields simulate and refit_all read):
    trunk k is one model size, its runs several lengths."""
    N = np.repeat(np.geomspace(2e3, 2e5, n_trunks), per_trunk)
    D = np.tile(np.geomspace(1e5, 1e7, per_trunk), n_trunks)
    trunk = np.repeat([f"t{k}" for k in range(n_trunks)], per_trunk)
    return SimpleNamespace(N=N, D=D, L=chinchilla.chinchilla_loss(N, D, LAW), trunk=trunk)


def test_the_law_jacobian_matches_central_differences():
    r = _runs()
    J = noise.law_jacobian(LAW, r.N, r.D)
    assert J.shape == (len(r.N), 5)
    for j, key in enumerate(noise.LAW_KEYS):
        h = 1e-6 * LAW[key]
        up, down = dict(LAW, **{key: LAW[key] + h}), dict(LAW, **{key: LAW[key] - h})
        numeric = (chinchilla.chinchilla_loss(r.N, r.D, up) - chinchilla.chinchilla_loss(r.N, r.D, down)) / (2 * h)
        np.testing.assert_allclose(J[:, j], numeric, rtol=1e-6, err_msg=key)


def test_simulated_losses_share_one_offset_per_trunk():
    r = _runs()
    dev = noise.simulate(LAW, r, trunk_sd=0.05, noise_sd=0.0, n=300, seed=0) - r.L
    assert dev.shape == (300, len(r.N))
    for t in np.unique(r.trunk):
        block = dev[:, r.trunk == t]
        np.testing.assert_allclose(block, block[:, :1].repeat(block.shape[1], axis=1), atol=1e-12)
    offsets = dev[:, ::5]                        # one column per trunk
    assert abs(np.std(offsets) / 0.05 - 1) < 0.1      # 1,200 draws: the SD's own relative error is about 2 %
    assert np.all(np.std(offsets, axis=1) > 0)        # each simulated set draws its trunks apart


def test_simulated_run_noise_is_independent_within_a_trunk():
    r = _runs()
    dev = noise.simulate(LAW, r, trunk_sd=0.0, noise_sd=0.01, n=400, seed=1) - r.L
    assert abs(np.std(dev) / 0.01 - 1) < 0.05        # 8,000 draws: about 0.8 % relative error
    within = dev[:, :5] - dev[:, :5].mean(axis=1, keepdims=True)
    assert np.all(np.ptp(within, axis=1) > 0)
    # neighbouring runs of one trunk are uncorrelated (a shared offset would make this about 1)
    assert abs(np.corrcoef(dev[:, 0], dev[:, 1])[0, 1]) < 0.15


def test_simulation_is_seeded():
    r = _runs()
    a, b = (noise.simulate(LAW, r, 0.02, 0.01, 5, seed=7) for _ in range(2))
    c = noise.simulate(LAW, r, 0.02, 0.01, 5, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_simulation_refuses_non_positive_losses():
    with pytest.raises(ValueError, match="non-positive"):
        noise.simulate(LAW, _runs(), trunk_sd=0.0, noise_sd=5.0, n=50, seed=0)


def test_refit_rows_finds_the_law_and_marks_a_failed_refit_as_nan():
    r = _runs(n_trunks=6, per_trunk=6)
    bad = r.L.copy()
    bad[3] = 0.0                                 # fit_chinchilla refuses a non-positive loss
    out = noise.refit_rows(r.N, r.D, np.vstack([r.L, bad]), n_starts=4)
    assert out.shape == (2, 5)
    np.testing.assert_allclose(out[0], [LAW[k] for k in noise.LAW_KEYS], rtol=1e-3)
    assert np.all(np.isnan(out[1]))


def test_refits_in_worker_processes_come_back_in_order():
    r = _runs(n_trunks=6, per_trunk=6)
    losses = noise.simulate(LAW, r, 0.003, 0.002, 5, seed=2)
    here = noise.refit_rows(r.N, r.D, losses, n_starts=2)
    spread = noise.refit_all(r, losses, n_starts=2, workers=2)     # 5 rows in chunks over 2 processes
    np.testing.assert_array_equal(spread, here)
    assert len({tuple(row) for row in here}) == 5    # the rows differ, so an order mix-up would show


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.01"])
def test_check_sd_refuses_what_is_not_a_standard_deviation(bad):
    with pytest.raises(ValueError, match="standard deviation"):
        noise.check_sd("noise_sd", bad)


def test_check_sd_accepts_none_and_zero():
    noise.check_sd("trunk_sd", None)
    noise.check_sd("trunk_sd", 0.0)

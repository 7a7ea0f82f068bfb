"""Tests for the parts of utils.allocation_core that the whole analysis (tests/test_allocation.py) reaches only
through analyse: the runs as columns (prepare), the joint law's exponent along a cost curve (joint_slope) and the
choices in words (describe_choice)."""
import math

import numpy as np
import pytest

from utils import allocation_core as core

LAW = {"E": 1.3, "A": 30.0, "B": 60.0, "alpha": 0.35, "beta": 0.30}


def _record(k, trunk, steps, budget):
    N = 1000 * (k + 1) ** 2
    return {"run": f"r{k}-{steps}", "trunk": trunk, "N": N, "N_total": N + 500, "D": 512 * steps, "steps": steps,
            "budget": budget, "flops_per_token": 6.0 * (N + 500), "final_val_loss": 2.0 + 0.01 * k}


def _sweep():
    """Six trunks (one size each), each with a short shared-step run and a longer IsoFLOP run."""
    return [_record(k, k, steps, budget) for k in range(6) for steps, budget in ((50, None), (400, 1e12))]


def test_prepare_keeps_the_runs_long_enough_as_columns():
    runs = _sweep()
    r = core.prepare(runs, "total", min_steps=100, cost=None)
    assert r.n_left_out == 6 and len(r.L) == 6
    kept = [x for x in runs if x["steps"] >= 100]
    np.testing.assert_array_equal(r.N, [x["N_total"] for x in kept])
    np.testing.assert_array_equal(r.D, [x["D"] for x in kept])
    np.testing.assert_array_equal(r.L, [x["final_val_loss"] for x in kept])
    assert list(r.trunk) == [str(x["trunk"]) for x in kept]          # trunk labels become strings
    np.testing.assert_allclose(r.cost(r.N), [x["flops_per_token"] for x in kept], rtol=1e-12)


def test_prepare_marks_shared_step_points_with_a_nan_budget():
    r = core.prepare(_sweep(), "non_embedding", min_steps=None, cost=None)
    assert r.n_left_out == 0
    assert np.array_equal(np.isnan(r.budget), r.steps == 50)
    np.testing.assert_array_equal(r.N, [x["N"] for x in _sweep()])


def test_joint_slope_is_the_closed_form_exponent_when_compute_is_6ND():
    a = core.joint_slope(LAW, 1e15, 1e18, lambda N: 6.0 * np.asarray(N, dtype=float))
    assert a == pytest.approx(LAW["beta"] / (LAW["alpha"] + LAW["beta"]), abs=1e-6)


def test_joint_slope_is_nan_without_an_optimum():
    six_N = lambda N: 6.0 * np.asarray(N, dtype=float)   # noqa: E731
    assert math.isnan(core.joint_slope(dict(LAW, alpha=0.0), 1e15, 1e18, six_N))   # compute_optimal refuses
    # a law whose model term is negligible next to the data term puts the optimum at the smallest model, N = 1
    assert math.isnan(core.joint_slope(dict(LAW, A=1e-30), 1e15, 1e18, six_N))


def test_describe_choice_words_each_choice():
    assert core.describe_choice("window", None) == "all points"
    assert core.describe_choice("window", 2) == "±2 rungs"
    assert core.describe_choice("min_steps", 400) == "runs of 400 steps or more"
    assert core.describe_choice("max_tokens", 1234567) == "runs of 1,234,567 tokens or fewer"
    assert core.describe_choice("param_count", "non_embedding") == "non-embedding parameters"

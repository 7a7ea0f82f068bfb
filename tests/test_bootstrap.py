"""Tests for utils.bootstrap on its own: percentile intervals, their Monte-Carlo error, refusals and workers."""
import numpy as np
import pytest

from utils import runtime
from utils.bootstrap import in_processes, mc_error, percentile_ci, why_refused, worker_count


def test_percentile_ci_reads_each_columns_percentiles():
    samples = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 10.0, 0.1]
    ci = percentile_ci(samples, 0.9)
    assert ci.shape == (3, 2)
    for j in range(3):
        np.testing.assert_allclose(ci[j], np.percentile(samples[:, j], [5, 95]), rtol=1e-12)


def test_monte_carlo_error_is_zero_for_identical_refits_and_repeats_with_its_seed():
    assert np.all(mc_error(np.ones((100, 2)), 0.95, seed=0) == 0)
    samples = np.random.default_rng(1).normal(size=(300, 2))
    first, again, other = mc_error(samples, 0.95, 0), mc_error(samples, 0.95, 0), mc_error(samples, 0.95, 1)
    assert first.shape == (2, 2) and np.all(first > 0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_bootstrap_is_refused_with_too_few_distinct_points_or_groups():
    five = np.arange(1.0, 6.0)[:, None]
    assert "only 5 distinct points" in why_refused(five, 3, None, "a law")
    six = np.arange(1.0, 7.0)[:, None]
    assert why_refused(six, 3, None, "a law") is None
    assert "only 4 groups" in why_refused(six, 3, np.array([0, 0, 1, 2, 3, 3]), "a law")
    assert why_refused(six, 3, np.arange(6), "a law") is None


def test_worker_count_takes_the_given_number_or_one_per_core_for_many_refits():
    assert worker_count(10, None) == 1
    assert worker_count(10, 3) == 3
    assert worker_count(200, None) == min(8, runtime.usable_cores())
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match="workers"):
            worker_count(200, bad)


@pytest.mark.parametrize("workers", [1, 2])
def test_in_processes_returns_each_jobs_result_in_order(workers):
    assert in_processes(pow, [(2, 3), (3, 2), (5, 1), (7, 0)], workers, "powers") == [8, 9, 5, 1]

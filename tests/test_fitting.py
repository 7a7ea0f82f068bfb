"""Tests for the pieces of utils.fitting's Huber estimator on their own: the objective, its gradient, the starts."""
import numpy as np
import pytest

from utils.fitting import SumOfPowers, grid_starts, huber


def _two_term_model(delta: float) -> SumOfPowers:
    """A Chinchilla-shaped model (J = 2) on noisy points, each counted 1 to 3 times (a resample)."""
    rng = np.random.default_rng(0)
    N, D = rng.uniform(1e3, 1e5, 15), rng.uniform(1e4, 1e6, 15)
    L = (1.0 + 20.0 / N ** 0.4 + 50.0 / D ** 0.3) * np.exp(rng.normal(0, 0.02, 15))
    return SumOfPowers(np.log(np.vstack([N, D])), np.log(L), delta, rng.integers(1, 4, 15).astype(float))


@pytest.mark.parametrize("delta", [1e-3, 0.05])
def test_the_analytic_gradient_matches_central_differences(delta):
    model = _two_term_model(delta)
    theta = np.array([0.1, 3.0, 4.0, 0.4, 0.3])   # [e, a, b, alpha, beta], near but not at the optimum
    f, grad = model.value_and_grad(theta)
    h = 1e-6
    numeric = np.array([(model.value_and_grad(theta + h * e)[0] - model.value_and_grad(theta - h * e)[0]) / (2 * h)
                        for e in np.eye(len(theta))])
    assert f > 0
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_the_batched_objective_is_the_objective_at_each_row():
    model = _two_term_model(1e-3)
    thetas = np.random.default_rng(1).uniform([-1, 0, 0, 0, 0], [1, 8, 8, 1, 1], size=(300, 5))
    one_by_one = [model.value_and_grad(t)[0] for t in thetas]
    np.testing.assert_allclose(model.objective_batch(thetas, chunk=64), one_by_one, rtol=1e-12)
    # and it is the weighted Huber loss of the log residuals, scaled by 1 / (delta * total weight)
    pred = np.logaddexp.reduce(model.terms(thetas[0]), axis=0)
    direct = (huber(pred - model.logy, model.delta) * model.w).sum() / (model.delta * model.w.sum())
    assert one_by_one[0] == pytest.approx(direct, rel=1e-12)


def test_grid_starts_are_the_grid_points_with_the_lowest_objective():
    model = _two_term_model(1e-3)
    grid = np.random.default_rng(2).uniform([-1, 0, 0, 0, 0], [1, 8, 8, 1, 1], size=(50, 5))
    starts = grid_starts(model, grid, 4)
    f = model.objective_batch(grid)
    np.testing.assert_array_equal(starts, grid[np.argsort(f)[:4]])
    assert grid_starts(model, grid, None) is grid and grid_starts(model, grid, 50) is grid
    with pytest.raises(ValueError, match="n_starts"):
        grid_starts(model, grid, 0)

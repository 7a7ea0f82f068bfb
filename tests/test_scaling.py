"""Tests for utils.scaling and the modules it re-exports (fitting, chinchilla, isoflop, bootstrap, published):
every fitter recovers known parameters, refuses bad input, and is fast."""
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from utils import scaling
from utils.scaling import (BESIROGLU_2024, HOFFMANN_2022, KAPLAN_2020, ChinchillaFit, chinchilla_loss,
                           compute_optimal, fit_chinchilla, fit_power_law, fit_saturating_power_law,
                           isoflop_minima, kaplan_loss)


# ----------------------------------------------------------------------------- fit_power_law

def test_power_law_recovers_exact_parameters_to_rounding_error():
    x = np.logspace(0, 6, 25)
    fit = fit_power_law(x, 3.7 * x ** -0.42)
    assert fit.a == pytest.approx(3.7, rel=1e-10)
    assert fit.b == pytest.approx(-0.42, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(fit.predict([10.0, 1e3]), 3.7 * np.array([10.0, 1e3]) ** -0.42, rtol=1e-10)


def test_power_law_intervals_cover_truth_on_noisy_data():
    rng = np.random.default_rng(1)
    x = np.logspace(1, 5, 40)
    y = 2.0 * x ** 0.3 * np.exp(rng.normal(0, 0.05, x.size))
    fit = fit_power_law(x, y)
    assert fit.b_ci[0] < 0.3 < fit.b_ci[1]
    assert fit.a_ci[0] < 2.0 < fit.a_ci[1]
    assert abs(fit.b - 0.3) < 0.02
    assert fit.b_se > 0 and fit.a_se > 0
    lo, hi = fit.band(x)
    assert np.all(lo < fit.predict(x)) and np.all(fit.predict(x) < hi)


def test_power_law_interval_widens_with_lower_level_narrower():
    rng = np.random.default_rng(2)
    x = np.logspace(0, 3, 12)
    y = 5 * x ** -0.5 * np.exp(rng.normal(0, 0.1, x.size))
    f95, f50 = fit_power_law(x, y), fit_power_law(x, y, level=0.5)
    assert (f95.b_ci[1] - f95.b_ci[0]) > (f50.b_ci[1] - f50.b_ci[0])


@pytest.mark.parametrize("x, y, match", [
    ([1, 2, -3, 4], [1, 2, 3, 4], "positive"),
    ([1, 2, 3, 4], [1, 0, 3, 4], "positive"),
    ([1, 2, np.nan, 4], [1, 2, 3, 4], "positive and finite"),
    ([1, 2, 3, np.inf], [1, 2, 3, 4], "positive and finite"),
    ([1, 2, 3], [1, 2, 3, 4], "same length"),
    ([1, 2], [1, 2], "at least 3"),
    ([2, 2, 2], [1, 2, 3], "all x values are equal"),
])
def test_power_law_refuses_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y)


def test_power_law_refuses_non_numbers_and_bad_level():
    with pytest.raises(TypeError):
        fit_power_law(["a", "b", "c"], [1, 2, 3])
    with pytest.raises(ValueError, match="level"):
        fit_power_law([1, 2, 3], [1, 2, 3], level=95)
    with pytest.raises(ValueError, match="scalar"):
        fit_power_law(3.0, 2.0)


# ----------------------------------------------------------------------------- saturating power law

def test_saturating_fit_recovers_parameters_from_noisy_data():
    rng = np.random.default_rng(3)
    x = np.logspace(1, 5, 60)
    y = (1.5 + 40.0 * x ** -0.45) * np.exp(rng.normal(0, 0.005, x.size))
    fit = fit_saturating_power_law(x, y, n_bootstrap=20, seed=0)
    assert fit.E == pytest.approx(1.5, rel=0.03)
    assert fit.alpha == pytest.approx(0.45, abs=0.03)
    assert fit.A == pytest.approx(40.0, rel=0.25)
    assert fit.E_ci[0] <= fit.E <= fit.E_ci[1]
    assert fit.samples.shape == (20, 3)
    lo, hi = fit.band(np.array([1e2, 1e6]))
    assert np.all(lo <= hi)


def test_saturating_fit_on_exact_data_is_essentially_exact():
    x = np.logspace(0, 4, 30)
    fit = fit_saturating_power_law(x, 0.8 + 3.0 * x ** -0.7, n_bootstrap=0)
    assert fit.E == pytest.approx(0.8, rel=1e-4)
    assert fit.A == pytest.approx(3.0, rel=1e-4)
    assert fit.alpha == pytest.approx(0.7, rel=1e-4)
    assert all(math.isnan(v) for v in fit.alpha_ci)
    with pytest.raises(ValueError, match="bootstrap"):
        fit.band([1.0, 2.0])


def test_saturating_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 4"):
        fit_saturating_power_law([1, 2, 3], [3, 2, 1])
    with pytest.raises(ValueError, match="positive"):
        fit_saturating_power_law([1, 2, 3, 4], [3, 2, 1, -1])
    with pytest.raises(ValueError, match="same length"):
        fit_saturating_power_law([1, 2, 3, 4, 5], [3, 2, 1, 1])
    with pytest.raises(ValueError, match="n_bootstrap"):
        fit_saturating_power_law([1, 2, 3, 4], [4, 3, 2, 1.5], n_bootstrap=-1)
    with pytest.raises(ValueError, match="delta"):
        fit_saturating_power_law([1, 2, 3, 4], [4, 3, 2, 1.5], delta=0)


def test_saturating_fit_warns_when_the_data_show_no_floor():
    x = np.logspace(0, 4, 20)
    with pytest.warns(RuntimeWarning, match="no floor"):
        fit_saturating_power_law(x, 3 * x**-0.3, n_bootstrap=0)


def test_huber_is_quadratic_inside_and_linear_outside():
    d = 1e-3
    assert scaling.huber(0.5e-3, d) == pytest.approx(0.5 * 0.25e-6)
    assert scaling.huber(-2e-3, d) == pytest.approx(d * (2e-3 - 0.5e-3))


# ----------------------------------------------------------------------------- Chinchilla

def _chinchilla_grid(noise, seed=0):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.logspace(6, 10, 9), 9)
    D = np.tile(np.logspace(8, 12, 9), 9)
    L = chinchilla_loss(N, D, HOFFMANN_2022) * np.exp(rng.normal(0, noise, N.size))
    return N, D, L


def test_chinchilla_fit_recovers_hoffmann_constants_from_noisy_data():
    N, D, L = _chinchilla_grid(noise=0.005)
    fit = fit_chinchilla(N, D, L, n_bootstrap=8, seed=0)
    assert isinstance(fit, ChinchillaFit)
    assert fit.E == pytest.approx(1.69, rel=0.05)
    assert fit.alpha == pytest.approx(0.34, abs=0.03)
    assert fit.beta == pytest.approx(0.28, abs=0.03)
    assert fit.a_opt == pytest.approx(0.28 / 0.62, abs=0.04)
    assert fit.samples.shape == (8, 5)
    np.testing.assert_allclose(fit.predict(N, D), L, rtol=0.03)
    lo, hi = fit.band(1e9, 1e11)
    assert lo <= hi


def test_chinchilla_fit_on_exact_data_is_essentially_exact():
    N, D, L = _chinchilla_grid(noise=0.0)
    fit = fit_chinchilla(N, D, L, n_bootstrap=0)
    for key in ("E", "A", "B", "alpha", "beta"):
        assert fit[key] == pytest.approx(HOFFMANN_2022[key], rel=1e-3), key


def test_chinchilla_fit_is_fast_for_hundreds_of_points():
    rng = np.random.default_rng(4)
    N = 10 ** rng.uniform(6, 10, 300)
    D = 10 ** rng.uniform(8, 12, 300)
    L = chinchilla_loss(N, D) * np.exp(rng.normal(0, 0.01, 300))
    t0 = time.perf_counter()
    fit_chinchilla(N, D, L, n_bootstrap=0)
    assert time.perf_counter() - t0 < 20  # about 1-2 s on an idle laptop; generous for loaded CI


def test_chinchilla_fit_refuses_bad_input():
    N, D, L = _chinchilla_grid(noise=0.0)
    with pytest.raises(ValueError, match="at least 6"):
        fit_chinchilla(N[:5], D[:5], L[:5])
    with pytest.raises(ValueError, match="same length"):
        fit_chinchilla(N, D[:-1], L)
    with pytest.raises(ValueError, match="positive"):
        fit_chinchilla(N, D, np.where(np.arange(L.size) == 3, -1.0, L))
    with pytest.raises(ValueError, match="several values"):
        fit_chinchilla(np.full(10, 1e8), np.logspace(8, 10, 10), np.linspace(3, 2, 10))
    with pytest.raises(ValueError, match="grid needs keys"):
        fit_chinchilla(N, D, L, grid={"a": [1.0]})


# ----------------------------------------------------------------------------- compute_optimal

@pytest.mark.parametrize("constants", [HOFFMANN_2022, BESIROGLU_2024])
def test_compute_optimal_spends_exactly_the_budget(constants):
    C = np.logspace(18, 26, 9)
    N, D, ratio, loss = compute_optimal(C, constants)
    np.testing.assert_allclose(6 * N * D, C, rtol=1e-12)
    np.testing.assert_allclose(ratio, D / N, rtol=1e-12)
    np.testing.assert_allclose(loss, chinchilla_loss(N, D, constants), rtol=1e-12)


def test_compute_optimal_is_the_minimum_along_the_isoflop_line():
    C = 1e22
    N_opt, D_opt, _, L_opt = compute_optimal(C, HOFFMANN_2022)
    assert isinstance(N_opt, float)
    N = N_opt * np.logspace(-1, 1, 201)
    L = chinchilla_loss(N, C / (6 * N), HOFFMANN_2022)
    assert L.min() >= L_opt - 1e-12
    assert N[np.argmin(L)] == pytest.approx(N_opt, rel=0.03)


def test_compute_optimal_exponents_and_besiroglu_ratio():
    N1, D1, _, _ = compute_optimal(1e20, BESIROGLU_2024)
    N2, D2, _, _ = compute_optimal(1e24, BESIROGLU_2024)
    a = math.log(N2 / N1) / math.log(1e4)
    assert a == pytest.approx(0.3658 / (0.3478 + 0.3658), rel=1e-9)
    assert a + math.log(D2 / D1) / math.log(1e4) == pytest.approx(1.0)
    # Besiroglu et al.'s refit gives roughly Chinchilla's 20 tokens per parameter at Chinchilla's budget
    assert 10 < compute_optimal(5.76e23, BESIROGLU_2024).tokens_per_param < 30


def test_compute_optimal_accepts_a_fit_and_refuses_kaplan_constants():
    N, D, L = _chinchilla_grid(noise=0.0)
    fit = fit_chinchilla(N, D, L, n_bootstrap=0, n_starts=4)
    assert compute_optimal(1e21, fit).N_opt == pytest.approx(compute_optimal(1e21, HOFFMANN_2022).N_opt,
                                                            rel=0.02)
    with pytest.raises(ValueError, match="missing"):
        compute_optimal(1e21, KAPLAN_2020)
    with pytest.raises(TypeError):
        compute_optimal(1e21, [1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        compute_optimal(-1.0, HOFFMANN_2022)


# ----------------------------------------------------------------------------- constants

def test_published_constants_carry_citations_and_values():
    assert KAPLAN_2020["citation"] == "kaplan2020scaling"
    assert HOFFMANN_2022["citation"] == "hoffmann2022training"
    assert BESIROGLU_2024["citation"] == "besiroglu2024chinchilla"
    assert (KAPLAN_2020["alpha_N"], KAPLAN_2020["N_c"]) == (0.076, 8.8e13)
    assert (HOFFMANN_2022["E"], HOFFMANN_2022["A"], HOFFMANN_2022["B"]) == (1.69, 406.4, 410.7)


def test_kaplan_loss_forms_agree_in_their_limits():
    # with unlimited data the joint law reduces to (N_c/N)^alpha_N with the joint fit's constants
    j = KAPLAN_2020["joint"]
    assert kaplan_loss(1e9, 1e30) == pytest.approx((j["N_c"] / 1e9) ** j["alpha_N"], rel=1e-6)
    assert kaplan_loss(N=1e9) == pytest.approx((8.8e13 / 1e9) ** 0.076)
    assert kaplan_loss(D=1e10) == pytest.approx((5.4e13 / 1e10) ** 0.095)
    with pytest.raises(ValueError):
        kaplan_loss()


# ----------------------------------------------------------------------------- isoflop_minima

def _isoflop_runs(budgets, spread=1.0, n=7, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    runs = []
    for C in budgets:
        N_opt = compute_optimal(C, HOFFMANN_2022).N_opt
        for N in N_opt * np.logspace(-spread, spread, n):
            D = C / (6 * N)
            loss = float(chinchilla_loss(N, D) * math.exp(rng.normal(0, noise)))
            runs.append({"C": C, "N": N, "D": D, "loss": loss})
    return runs


def test_isoflop_minima_find_the_compute_optimal_sizes():
    budgets = np.logspace(18, 22, 5)
    mins = isoflop_minima(_isoflop_runs(budgets, spread=0.5, n=9))
    assert mins.valid.all()
    truth = compute_optimal(budgets, HOFFMANN_2022)
    np.testing.assert_allclose(mins.N_opt, truth.N_opt, rtol=0.05)
    np.testing.assert_allclose(6 * mins.N_opt * mins.D_opt, budgets, rtol=1e-9)
    fit_N, fit_D = mins.fit()
    assert fit_N.b == pytest.approx(0.28 / 0.62, abs=0.01)
    assert fit_D.b == pytest.approx(0.34 / 0.62, abs=0.01)
    assert mins.parabola(0, mins.N_opt[0]) == pytest.approx(mins.loss_opt[0])


def test_isoflop_minima_accepts_columns_and_alternative_keys():
    runs = _isoflop_runs([1e19, 1e20, 1e21], spread=0.5)
    cols = {"flops": [r["C"] for r in runs], "n_params": [r["N"] for r in runs],
            "final_val_loss": [r["loss"] for r in runs]}
    a, b = isoflop_minima(runs), isoflop_minima(cols)
    np.testing.assert_allclose(a.N_opt, b.N_opt, rtol=1e-9)


def test_isoflop_minima_groups_budgets_within_tolerance():
    runs = _isoflop_runs([1e20], spread=0.5)
    for k, r in enumerate(runs):
        r["C"] *= 1 + 0.001 * k  # measured FLOPs differ slightly from the nominal budget
    mins = isoflop_minima(runs)
    assert len(mins.C) == 1 and mins.n_runs[0] == len(runs)


def test_isoflop_minima_flags_too_few_sizes_and_minimum_outside_range():
    runs = _isoflop_runs([1e20], spread=0.5)[:2]                   # 2 sizes only
    n_opt = compute_optimal(1e21, HOFFMANN_2022).N_opt
    shifted = [r for r in _isoflop_runs([1e21], spread=1.0, n=9) if r["N"] > 2 * n_opt]  # right of the minimum
    ok = _isoflop_runs([1e19], spread=0.5)
    with pytest.warns(UserWarning):
        mins = isoflop_minima(runs + shifted + ok)
    assert list(mins.valid) == [True, False, False]
    assert "distinct model size" in mins.note[1]
    assert "outside the sampled sizes" in mins.note[2] or "opens downwards" in mins.note[2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        isoflop_minima(runs + ok, warn=False)
    with pytest.raises(ValueError, match="at least 3"):
        mins.fit()


def test_isoflop_minima_refuses_bad_input():
    with pytest.raises(ValueError, match="empty"):
        isoflop_minima([])
    with pytest.raises(ValueError, match="'loss'"):
        isoflop_minima([{"C": 1e20, "N": 1e8}])
    with pytest.raises(TypeError):
        isoflop_minima([1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        isoflop_minima([{"C": 1e20, "N": -1e8, "loss": 3.0}])


# ----------------------------------------------------------------------------- bootstrap protocol

def test_bootstrap_refits_use_the_point_fits_estimator(monkeypatch):
    # a "resample" that keeps every point once must reproduce the point fit exactly: same starts, same optimiser
    # (utils.fitting draws the resamples of both fitters, so that is where the draw is replaced)
    import utils.fitting
    import utils.scaling as S
    monkeypatch.setattr(utils.fitting, "resample_weights", lambda rng, n, groups: np.ones(n))
    x = np.geomspace(10, 1e4, 8)
    y = 0.8 + 3.0 * x ** -0.4 * (1 + 0.01 * np.sin(np.arange(8)))
    fit = S.fit_saturating_power_law(x, y, n_bootstrap=3)
    assert np.allclose(fit.samples, [[fit.E, fit.A, fit.alpha]] * 3, rtol=1e-12, atol=0)
    N = np.repeat(np.geomspace(1e3, 1e5, 5), 3)
    D = np.tile(np.geomspace(1e4, 1e6, 3), 5)
    L = S.chinchilla_loss(N, D, {"E": 1.0, "A": 20.0, "B": 50.0, "alpha": 0.4, "beta": 0.3})
    joint = S.fit_chinchilla(N, D, L, n_bootstrap=2, n_starts=2)
    assert np.allclose(joint.samples, [[joint.E, joint.A, joint.B, joint.alpha, joint.beta]] * 2, rtol=1e-12)


def test_bootstrap_is_refused_when_resamples_would_degenerate():
    x = np.geomspace(10, 1e4, 5)  # 5 distinct points < 2 x 3 parameters
    with pytest.warns(RuntimeWarning, match="distinct points"):
        fit = fit_saturating_power_law(x, 0.8 + 3.0 * x ** -0.4, n_bootstrap=50)
    assert len(fit.samples) == 0 and all(np.isnan(fit.alpha_ci))
    with pytest.raises(ValueError, match="no bootstrap samples"):
        fit.band(x)
    x = np.geomspace(10, 1e4, 8)
    with pytest.warns(RuntimeWarning, match="groups"):
        fit = fit_saturating_power_law(x, 0.8 + 3.0 * x ** -0.4, n_bootstrap=50, groups=[0, 0, 1, 1, 2, 2, 3, 3])
    assert len(fit.samples) == 0
    with pytest.raises(ValueError, match="one label per point"):
        fit_saturating_power_law(x, 0.8 + 3.0 * x ** -0.4, n_bootstrap=5, groups=[0, 1])


def test_group_bootstrap_draws_whole_groups():
    from utils.bootstrap import resample_weights
    rng = np.random.default_rng(0)
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 4])
    for _ in range(20):
        w = resample_weights(rng, len(groups), groups)
        for g in np.unique(groups):
            assert len(set(w[groups == g])) == 1  # every point of a group is drawn as often as the group
        assert w[[0, 3, 5, 6, 8]].sum() == 5     # five groups drawn in all


def test_monte_carlo_error_of_the_interval_shrinks_with_more_resamples():
    x = np.geomspace(10, 1e4, 8)
    rng = np.random.default_rng(1)
    y = (0.8 + 3.0 * x ** -0.4) * np.exp(rng.normal(0, 0.01, 8))
    few = fit_saturating_power_law(x, y, n_bootstrap=40, n_starts=2)
    many = fit_saturating_power_law(x, y, n_bootstrap=400, n_starts=2)
    assert few.mc_se.shape == (3, 2) and np.all(few.mc_se[2] > 0)
    assert many.mc_se[2].mean() < few.mc_se[2].mean()


def test_compute_optimal_with_six_n_flops_per_token_matches_the_closed_form():
    from utils.scaling import compute_optimal, HOFFMANN_2022
    C = np.array([1e18, 1e20, 1e22])
    closed = compute_optimal(C, HOFFMANN_2022)
    numeric = compute_optimal(C, HOFFMANN_2022, flops_per_token=lambda N: 6 * np.asarray(N, dtype=float))
    np.testing.assert_allclose(numeric.N_opt, closed.N_opt, rtol=1e-5)
    np.testing.assert_allclose(numeric.D_opt, closed.D_opt, rtol=1e-5)


def test_a_costlier_small_model_moves_the_optimum_to_larger_models():
    # an overhead per token that does not grow with N (attention, the head) makes small models dearer
    from utils.scaling import compute_optimal, optimal_size_exponent, HOFFMANN_2022
    plain = compute_optimal(1e12, HOFFMANN_2022)
    dear = compute_optimal(1e12, HOFFMANN_2022, flops_per_token=lambda N: 6 * np.asarray(N) + 3e5)
    assert dear.N_opt > plain.N_opt and dear.tokens_per_param < plain.tokens_per_param
    with pytest.raises(ValueError, match="positive, finite"):
        compute_optimal(1e12, HOFFMANN_2022, flops_per_token=lambda N: -np.asarray(N))
    N = np.repeat(np.geomspace(1e3, 1e5, 5), 3)
    D = np.tile(np.geomspace(1e4, 1e6, 3), 5)
    L = chinchilla_loss(N, D, {"E": 1.0, "A": 20.0, "B": 50.0, "alpha": 0.4, "beta": 0.3})
    fit = fit_chinchilla(N, D, L, n_bootstrap=0)
    a, ci = optimal_size_exponent(fit, 1e10, 1e12)
    assert a == pytest.approx(fit.a_opt, rel=1e-4) and np.isnan(ci[0])


def test_bootstrap_gives_the_same_refits_in_one_process_or_several():
    x = np.geomspace(10, 1e4, 8)
    rng = np.random.default_rng(2)
    y = (0.8 + 3.0 * x ** -0.4) * np.exp(rng.normal(0, 0.01, 8))
    one = fit_saturating_power_law(x, y, n_bootstrap=12, n_starts=2, workers=1)
    two = fit_saturating_power_law(x, y, n_bootstrap=12, n_starts=2, workers=2)
    np.testing.assert_array_equal(one.samples, two.samples)
    with pytest.raises(ValueError, match="workers"):
        fit_saturating_power_law(x, y, n_bootstrap=12, workers=0)


def test_a_script_without_a_main_guard_still_gets_its_bootstrap(tmp_path):
    # spawned workers cannot start from such a script; the fit must fall back to refitting in-process
    import subprocess
    import sys
    script = tmp_path / "noguard.py"
    script.write_text("import numpy as np\nfrom utils.scaling import fit_saturating_power_law\n"
                      "x = np.geomspace(10, 1e4, 8)\ny = 0.8 + 3.0 * x ** -0.4 * (1 + 0.01 * np.sin(np.arange(8)))\n"
                      "f = fit_saturating_power_law(x, y, n_bootstrap=70, n_starts=2, workers=2)\n"
                      "print('samples', len(f.samples))\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "samples 70" in out.stdout and "refitting in this process" in out.stderr


def test_percentile_interval_of_derived_values_with_its_monte_carlo_error():
    from utils.scaling import percentile_interval
    v = np.random.default_rng(0).normal(0.5, 0.1, 400)
    (lo, hi), (mc_lo, mc_hi) = percentile_interval(np.append(v, np.nan))  # non-finite values left out
    assert (lo, hi) == tuple(np.percentile(v, [2.5, 97.5]))
    assert 0 < mc_lo < 0.05 and 0 < mc_hi < 0.05
    with pytest.raises(ValueError, match="at least 2 finite"):
        percentile_interval([np.nan, 1.0])


def test_cluster_resamples_are_the_draws_fit_chinchilla_makes_itself():
    """Passing cluster_resamples(groups, B, seed) as resamples= refits exactly the fit's own resamples, so two
    estimators given the same rows are bootstrapped paired."""
    rng = np.random.default_rng(8)
    N = np.repeat(np.geomspace(1e5, 1e8, 6), 3)
    D = np.tile([2e7, 1e8, 5e8], 6) * rng.uniform(0.9, 1.1, N.size)
    L = chinchilla_loss(N, D, HOFFMANN_2022) * np.exp(rng.normal(0, 0.01, N.size))
    groups = np.repeat(np.arange(6), 3)
    W = scaling.cluster_resamples(groups, 5, seed=3)
    assert W.shape == (5, N.size)
    for row in W:   # whole groups, six draws
        assert all(len(set(row[groups == g])) == 1 for g in range(6)) and row[::3].sum() == 6
    own = fit_chinchilla(N, D, L, n_bootstrap=5, seed=3, groups=groups, n_starts=2, workers=1)
    given = fit_chinchilla(N, D, L, resamples=W, n_starts=2, workers=1)
    np.testing.assert_array_equal(own.samples, given.samples)
    other = fit_chinchilla(N, D, L, resamples=scaling.cluster_resamples(groups, 5, seed=4), n_starts=2, workers=1)
    assert not np.array_equal(other.samples, given.samples)


def test_resamples_must_be_counts_for_every_point():
    N, D = np.geomspace(1e5, 1e8, 8), np.geomspace(1e7, 1e9, 8)[::-1]
    L = chinchilla_loss(N, D, HOFFMANN_2022)
    with pytest.raises(ValueError, match="one column per point"):
        fit_chinchilla(N, D, L, resamples=np.ones((3, 7)))
    with pytest.raises(ValueError, match="whole counts"):
        fit_chinchilla(N, D, L, resamples=np.full((3, 8), 0.5))
    with pytest.raises(ValueError, match="n_bootstrap"):
        scaling.cluster_resamples(np.arange(8), 0)


# ----------------------------------------------------------------------------- graded cells' forbid

def test_forbidding_the_old_dotted_names_blocks_the_functions_in_their_new_modules():
    """Graded cells forbid 'utils.scaling.<name>'; the functions now live in utils.fitting, utils.chinchilla and
    utils.isoflop, and every way to reach them (the defining module, a name imported from it, a course function
    that calls it) must raise, while allow_if still lets the permitted calls through."""
    import utils.chinchilla
    import utils.fitting
    import utils.isoflop
    from utils.grading import ForbiddenHelperError, forbid

    x = np.geomspace(1, 100, 6)
    runs = [{"C": 1e12 * 10 ** k, "N": n, "loss": 2 + 0.1 * (math.log(n) - 9 - k) ** 2}
            for k in range(3) for n in np.geomspace(1e3, 1e6, 6)]
    minima = isoflop_minima(runs)
    notebook = {"fit_power_law": utils.fitting.fit_power_law}   # a notebook's `from utils.fitting import fit_power_law`
    calls = {
        "utils.scaling.fit_power_law": [lambda: scaling.fit_power_law(x, x ** 0.5),
                                         lambda: utils.fitting.fit_power_law(x, x ** 0.5),
                                         lambda: notebook["fit_power_law"](x, x ** 0.5), minima.fit],
        "utils.scaling.isoflop_minima": [lambda: scaling.isoflop_minima(runs), lambda: utils.isoflop.isoflop_minima(runs)],
        "utils.scaling.chinchilla_loss": [lambda: scaling.chinchilla_loss(1e8, 1e9),
                                          lambda: utils.chinchilla.chinchilla_loss(1e8, 1e9),
                                          lambda: utils.chinchilla.compute_optimal(1e20, HOFFMANN_2022)],
    }
    for name, reaches in calls.items():
        for reach in reaches:
            with pytest.raises(ForbiddenHelperError, match=name):
                with forbid(name, namespace=notebook):
                    reach()
        reaches[0]()  # restored afterwards
    one_fit = {"utils.scaling.fit_saturating_power_law": lambda args: args["n_bootstrap"] == 0}
    y = 1 + x ** -0.5
    with forbid(*one_fit, allow_if=one_fit) as guard:
        utils.fitting.fit_saturating_power_law(x, y, n_bootstrap=0)
        with pytest.raises(ForbiddenHelperError):
            utils.fitting.fit_saturating_power_law(x, y, n_bootstrap=5)
        guard.calls.clear()  # the refused call was expected here; leaving the block would raise it again
    assert guard.allowed_calls["utils.scaling.fit_saturating_power_law"] == 1

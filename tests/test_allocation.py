"""Tests for utils.allocation: the paired bootstraps (parametric and trunk) pair, the noise is split into its two
parts, failures are counted, the held-out IsoFLOP fit finds a known optimum and refuses bad profiles, and the whole
analysis recovers a known law with calibrated intervals (the parametric scheme; the trunk scheme's known defect is
a strict xfail)."""
import dataclasses
import math

import numpy as np
import pytest

from utils import allocation, allocation_core, chinchilla, noise, scaling
from utils.allocation import analyse, heldout_isoflop, sensitivity, split_noise, synthetic_runs

LAW = {"E": 1.3, "A": 30.0, "B": 60.0, "alpha": 0.35, "beta": 0.30}


def _records(widths=(8, 12, 16, 24, 32, 48, 64, 96), n_budgets=5, min_steps=100):
    """Planned points (records without losses) of a small sweep shaped like Chapter 6's: depth-2 models of the
    given widths, budgets sqrt(2) apart, each size trained on the tokens a budget buys, 512 tokens per step,
    priced with the course's FLOP count. Built here, so that the tests do not depend on the course's grids."""
    out = []
    for k in range(n_budgets):
        budget = 2.5e10 * 2 ** (k / 2)
        for d in widths:
            N = 2 * (12 * d * d + 13 * d) + 2 * d
            fpt = 6 * (12 * 2 * d * d + 76 * d) + 12 * 2 * 64 * d
            steps = round(budget / (fpt * 512))
            if steps >= min_steps:
                out.append({"run": f"C{budget:.3g}-d{d}", "trunk": f"L2-d{d}", "budget": budget, "N": N,
                            "N_total": N + 76 * d + 64 * d, "flops_per_token": fpt, "steps": steps, "D": steps * 512,
                            "C": float(fpt * steps * 512)})
    return out


@pytest.fixture(scope="module")
def plan():
    return _records()


@pytest.fixture(scope="module")
def shared_trunk_result(plan):
    """One analysis of data whose noise is mostly a shared offset per trunk (what pairing must cancel), with
    trunk resamples."""
    runs = synthetic_runs(plan, LAW, noise_sd=0.002, trunk_sd=0.02, seed=3)
    return analyse(runs, n_bootstrap=60, seed=1, n_starts=4, workers=1, resampling="trunks")


@pytest.fixture(scope="module")
def shared_parametric_result(plan):
    """The same data, analysed with parametric resamples (the default)."""
    runs = synthetic_runs(plan, LAW, noise_sd=0.002, trunk_sd=0.02, seed=3)
    return analyse(runs, n_bootstrap=60, seed=1, n_starts=4, workers=1)


# ----------------------------------------------------------------------------- synthetic_runs

def test_synthetic_runs_follow_the_law_and_keep_every_other_field(plan):
    runs = synthetic_runs(plan, LAW, noise_sd=0.0, trunk_sd=0.0)
    for p, r in zip(plan, runs):
        assert {k: v for k, v in r.items() if k not in ("final_val_loss", "final_val_bpc", "synthetic")} == p
        assert r["final_val_loss"] == pytest.approx(float(scaling.chinchilla_loss(p["N_total"], p["D"], LAW)))
        assert r["final_val_bpc"] == pytest.approx(r["final_val_loss"] / math.log(2))
    non_emb = synthetic_runs(plan, LAW, noise_sd=0.0, param_count="non_embedding")
    assert non_emb[0]["final_val_loss"] == pytest.approx(float(scaling.chinchilla_loss(plan[0]["N"], plan[0]["D"], LAW)))


def test_synthetic_trunk_offset_is_shared_by_a_trunks_points(plan):
    runs = synthetic_runs(plan, LAW, noise_sd=0.0, trunk_sd=0.05, seed=7)
    shift = {}
    for p, r in zip(plan, runs):
        shift.setdefault(p["trunk"], []).append(r["final_val_loss"] - float(scaling.chinchilla_loss(p["N_total"], p["D"], LAW)))
    for offsets in shift.values():
        assert np.ptp(offsets) < 1e-12
    assert np.std([v[0] for v in shift.values()]) > 0.01


def test_synthetic_runs_refuse_bad_noise_and_bad_law(plan):
    with pytest.raises(ValueError, match="noise_sd"):
        synthetic_runs(plan, LAW, noise_sd=-0.1)
    with pytest.raises(ValueError, match="missing"):
        synthetic_runs(plan, {"E": 1.0, "A": 1.0}, noise_sd=0.01)


# ----------------------------------------------------------------------------- split_noise

def test_split_noise_is_the_textbook_anova_estimate_when_the_fit_is_only_a_mean():
    """Balanced trunks, a 'law' that is one constant (Jacobian: a column of ones): the two moments must be the
    one-way ANOVA's, sigma² = MS_within and tau² = (MS_between - MS_within) / runs per trunk."""
    rng = np.random.default_rng(0)
    k, m = 12, 5
    trunk = np.repeat(np.arange(k), m)
    resid = rng.normal(0, 0.02, k)[trunk] + rng.normal(0, 0.005, k * m)
    resid -= resid.mean()
    means = resid.reshape(k, m).mean(axis=1)
    ms_within = ((resid.reshape(k, m) - means[:, None]) ** 2).sum() / (k * (m - 1))
    ms_between = m * ((means - means.mean()) ** 2).sum() / (k - 1)
    tau, sigma = split_noise(resid, trunk, np.ones((k * m, 1)))
    assert sigma == pytest.approx(math.sqrt(ms_within), rel=1e-9)
    assert tau == pytest.approx(math.sqrt((ms_between - ms_within) / m), rel=1e-9)
    tau_given, sigma_given = split_noise(resid, trunk, np.ones((k * m, 1)), noise_sd=0.01)
    assert sigma_given == 0.01 and tau_given == pytest.approx(math.sqrt((ms_between - 0.01 ** 2) / m), rel=1e-9)
    assert split_noise(resid, trunk, np.ones((k * m, 1)), trunk_sd=0.0, noise_sd=0.0) == (0.0, 0.0)


def test_split_noise_sets_a_negative_component_to_zero_and_refuses_one_run_per_trunk():
    rng = np.random.default_rng(1)
    trunk = np.repeat(np.arange(6), 4)
    resid = rng.normal(0, 0.01, 24)
    resid -= np.bincount(trunk, resid)[trunk] / 4     # every trunk's mean 0: less spread between trunks than noise
    tau, sigma = split_noise(resid, trunk, np.ones((24, 1)))
    assert tau == 0.0 and sigma == pytest.approx(float(np.sqrt(np.sum(resid ** 2) / 23)), rel=1e-9)
    with pytest.raises(ValueError, match="pass trunk_sd and noise_sd"):
        split_noise(resid[:6], np.arange(6), np.ones((6, 1)))


def test_split_noise_corrects_for_what_a_fit_absorbs():
    """Linear least squares whose regressors vary with the trunk (as a law in N does when each trunk is one size)
    absorbs part of the trunk offsets. Over 400 draws the corrected moments average to the variances put in
    (within 10 %; the Monte-Carlo SE of the trunk variance's mean is about 3 %), while a split that ignores the
    fit (intercept only) comes out more than 15 % low on the trunk variance (about 24 %)."""
    rng = np.random.default_rng(0)
    k, m = 9, 4
    trunk = np.repeat(np.arange(k), m)
    x, d = np.linspace(-1, 1, k)[trunk], np.tile(np.linspace(-1, 1, m), k)
    J = np.column_stack([np.ones(k * m), x, x ** 2, d])
    hat = J @ np.linalg.pinv(J)
    corrected, naive = [], []
    for _ in range(400):
        y = rng.normal(0, 0.01, k)[trunk] + rng.normal(0, 0.003, k * m)
        r = y - hat @ y
        corrected.append(np.square(split_noise(r, trunk, J)))
        naive.append(np.square(split_noise(r, trunk, np.ones((k * m, 1)))))
    tau2, sigma2 = np.mean(corrected, axis=0)
    assert abs(tau2 / 0.01 ** 2 - 1) < 0.1 and abs(sigma2 / 0.003 ** 2 - 1) < 0.1, (tau2, sigma2)
    assert np.mean(naive, axis=0)[0] < 0.85 * 0.01 ** 2


def test_split_noise_measures_both_parts_behind_a_fitted_law(recovered):
    """Over the recovery draws (trunk SD 0.01 and run SD 0.003 put in, the law fitted to each draw), the SDs the
    analysis measured average within 20 % of those put in (when written: 0.0105 and 0.0030)."""
    tau = np.mean([r.trunk_sd for r in recovered.results])
    sigma = np.mean([r.noise_sd for r in recovered.results])
    assert abs(tau / 0.01 - 1) < 0.2 and abs(sigma / 0.003 - 1) < 0.2, (tau, sigma)


# ----------------------------------------------------------------------------- analyse: input

def test_analyse_names_a_missing_field_and_bad_choices(plan):
    runs = synthetic_runs(plan, LAW, noise_sd=0.01)
    broken = [dict(r) for r in runs]
    del broken[3]["trunk"]
    with pytest.raises(ValueError, match="'trunk'"):
        analyse(broken, n_bootstrap=2)
    with pytest.raises(ValueError, match="param_count"):
        analyse(runs, param_count="embedding", n_bootstrap=2)
    with pytest.raises(ValueError, match="window"):
        analyse(runs, window=0, n_bootstrap=2)
    with pytest.raises(ValueError, match="at least 5"):
        analyse(runs, min_steps=10 ** 6, n_bootstrap=2)
    with pytest.raises(TypeError, match="list"):
        analyse({"N": [1, 2]}, n_bootstrap=2)
    with pytest.raises(ValueError, match="cost curve must take N counted as"):
        analyse(runs, cost=allocation.cost_curve(runs, "non_embedding"), n_bootstrap=2)
    bad = [dict(r) for r in runs]
    bad[0]["final_val_loss"] = float("nan")
    with pytest.raises(ValueError, match="final_val_loss"):
        analyse(bad, n_bootstrap=2)
    with pytest.raises(ValueError, match="resampling must be one of"):
        analyse(runs, resampling="points", n_bootstrap=2)
    with pytest.raises(ValueError, match="noise_sd must be a standard deviation"):
        analyse(runs, noise_sd=-0.01, n_bootstrap=2)
    with pytest.raises(ValueError, match="resampling='parametric' only"):
        analyse(runs, resampling="trunks", trunk_sd=0.01, n_bootstrap=2)


def test_cost_curve_passes_through_every_size_and_grows_beyond_the_ends(plan):
    cost = allocation.cost_curve(plan, "non_embedding")
    for p in plan:
        assert cost(p["N"]) == pytest.approx(p["flops_per_token"], rel=1e-12)
    lo, hi = min(p["N"] for p in plan), max(p["N"] for p in plan)
    assert cost(lo / 2) < cost(lo) and cost(hi * 2) > cost(hi)


def test_analyse_leaves_out_short_runs_and_counts_them(plan):
    runs = synthetic_runs(plan, LAW, noise_sd=0.005, seed=2)
    cut = sorted(r["steps"] for r in runs)[len(runs) // 5]
    res = analyse(runs, min_steps=int(cut), n_bootstrap=4, n_starts=2, workers=1)
    assert res.n_left_out == sum(r["steps"] < cut for r in runs) > 0
    assert res.n_runs + res.n_left_out == len(runs)


# ----------------------------------------------------------------------------- the paired bootstrap

def _pairing_check(res, seed=0):
    """``(correlation, gain)`` of the two estimates across resamples, where gain is the SD of their difference if
    the resamples were independent (one side shuffled) over the SD of the paired difference. Paired draws make
    the estimates move together (correlation well above 0) and the paired difference less variable (gain > 1)."""
    ok = np.isfinite(res.a2_samples) & np.isfinite(res.a_joint_samples)
    a2, aj = res.a2_samples[ok], res.a_joint_samples[ok]
    unpaired = a2 - np.random.default_rng(seed).permutation(aj)
    return float(np.corrcoef(a2, aj)[0, 1]), float(np.std(unpaired) / np.std(a2 - aj))


def _is_paired(res) -> bool:
    """With 60 resamples the correlation of unpaired estimates has an SD of about 1/sqrt(60) = 0.13 around 0:
    above 0.3 (2.3 SD) and with a gain above 1.1, the draws were shared."""
    corr, gain = _pairing_check(res)
    return corr > 0.3 and gain > 1.1


def test_both_estimates_of_a_resample_come_from_the_same_trunk_draw(plan, shared_trunk_result):
    """Redo resamples by hand from the documented draws (cluster_resamples with the analysis's seed): Approach 2
    and the joint fit of resample i must both be the estimates on draw i."""
    res = shared_trunk_result
    runs = synthetic_runs(plan, LAW, noise_sd=0.002, trunk_sd=0.02, seed=3)
    W = scaling.cluster_resamples([r["trunk"] for r in runs], 60, seed=1)
    col = {k: np.array([r[k] for r in runs], dtype=float) for k in ("budget", "N_total", "D", "final_val_loss")}
    for i in (0, 17, 42):
        k = np.repeat(np.arange(len(runs)), W[i])
        iso = scaling.isoflop_minima({"C": col["budget"][k], "N": col["N_total"][k], "D": col["D"][k],
                                      "loss": col["final_val_loss"][k]}, warn=False)
        a2 = iso.fit()[0].b if iso.valid.sum() >= 3 else np.nan
        assert res.a2_samples[i] == pytest.approx(a2, rel=1e-9, nan_ok=True)
        fit = scaling.fit_chinchilla(col["N_total"], col["D"], col["final_val_loss"], resamples=W[i:i + 1],
                                     n_starts=4, workers=1)
        consts = dict(zip(("E", "A", "B", "alpha", "beta"), fit.samples[0]))
        n_opt = scaling.compute_optimal(np.array(res.C_range), consts, allocation.cost_curve(runs)).N_opt
        a_i = math.log(n_opt[1] / n_opt[0]) / math.log(res.C_range[1] / res.C_range[0])
        assert res.a_joint_samples[i] == pytest.approx(a_i, rel=1e-6)
    ok = np.isfinite(res.a2_samples) & np.isfinite(res.a_joint_samples)
    assert res.diff_ci == pytest.approx(tuple(np.percentile(res.a2_samples[ok] - res.a_joint_samples[ok], [2.5, 97.5])))


def test_both_estimates_of_a_parametric_resample_come_from_the_same_simulated_losses(plan, shared_parametric_result):
    """Redo resamples by hand from the simulated losses the result keeps: on resample i, Approach 2 and the joint
    refit must both see losses i, and each sample must be that estimate's error taken off its own estimate (the
    basic interval's values, with the fitted law's a_joint as the simulations' truth)."""
    res = shared_parametric_result
    runs = synthetic_runs(plan, LAW, noise_sd=0.002, trunk_sd=0.02, seed=3)
    col = {k: np.array([r[k] for r in runs], dtype=float) for k in ("budget", "N_total", "D")}
    sims = res.resamples.losses
    assert sims.shape == (60, len(runs)) and np.all(res.resamples.weights == 1)
    for i in (0, 17, 42):
        iso = scaling.isoflop_minima({"C": col["budget"], "N": col["N_total"], "D": col["D"], "loss": sims[i]},
                                     warn=False)
        a2_sim = iso.fit()[0].b if iso.valid.sum() >= 3 else np.nan
        assert res.a2_samples[i] == pytest.approx(res.a2 - (a2_sim - res.a_joint), rel=1e-9, nan_ok=True)
        fit = scaling.fit_chinchilla(col["N_total"], col["D"], sims[i], n_bootstrap=0, n_starts=4)
        n_opt = scaling.compute_optimal(np.array(res.C_range), fit, allocation.cost_curve(runs)).N_opt
        aj_sim = math.log(n_opt[1] / n_opt[0]) / math.log(res.C_range[1] / res.C_range[0])
        assert res.a_joint_samples[i] == pytest.approx(2 * res.a_joint - aj_sim, rel=1e-6)
    ok = np.isfinite(res.a2_samples) & np.isfinite(res.a_joint_samples)
    assert res.diff_ci == pytest.approx(tuple(np.percentile(res.a2_samples[ok] - res.a_joint_samples[ok], [2.5, 97.5])))


def test_parametric_losses_are_the_fitted_law_plus_a_trunk_offset_plus_run_noise(shared_parametric_result):
    """Across the 60 simulated sets, each run's losses average to the fitted law, a trunk's runs share an offset
    of SD trunk_sd, and what is left has SD noise_sd (within sampling error)."""
    res = shared_parametric_result
    sims = res.resamples.losses
    runs = synthetic_runs(_records(), LAW, noise_sd=0.0)
    law = res.joint.predict(np.array([r["N_total"] for r in runs], float), np.array([r["D"] for r in runs], float))
    dev = sims - law
    sd = math.hypot(res.trunk_sd, res.noise_sd)
    assert np.all(np.abs(dev.mean(axis=0)) < 4 * sd / math.sqrt(len(sims)))
    trunk = np.array([r["trunk"] for r in runs])
    first = {t: np.flatnonzero(trunk == t)[0] for t in set(trunk)}
    within = dev - dev[:, [first[t] for t in trunk]]        # each run minus its trunk's first run: offset gone
    pairs = within[:, [i for i, t in enumerate(trunk) if i != first[t]]]
    assert np.std(pairs) / math.sqrt(2) == pytest.approx(res.noise_sd, rel=0.1)
    assert np.std(dev, axis=0).mean() == pytest.approx(sd, rel=0.1)
    assert res.resamples.noise_source == "both measured from the fit's residuals"


def test_the_point_estimates_are_the_slopes_of_their_own_fits(shared_trunk_result, shared_parametric_result):
    for res in (shared_trunk_result, shared_parametric_result):
        assert res.a2 == pytest.approx(res.iso.fit()[0].b, rel=1e-12)
        n_lo, n_hi = res.joint_N_opt(np.array(res.C_range))
        assert res.a_joint == pytest.approx(math.log(n_hi / n_lo) / math.log(res.C_range[1] / res.C_range[0]), rel=1e-9)
        assert res.diff == pytest.approx(res.a2 - res.a_joint)
        assert res.a_joint_ci[0] < res.a_joint < res.a_joint_ci[1]
    assert shared_trunk_result.a2_ci[0] < shared_trunk_result.a2 < shared_trunk_result.a2_ci[1]
    par = shared_parametric_result   # the joint fit finds its own noise-free law again
    assert par.a_joint_reference == pytest.approx(par.a_joint, abs=1e-4)
    assert "parametric resamples" in str(par) and "trunk resamples" in str(shared_trunk_result)


@pytest.mark.parametrize("fixture", ["shared_trunk_result", "shared_parametric_result"])
def test_the_paired_interval_of_the_difference_is_narrower_than_an_unpaired_one(fixture, request):
    """With a shared offset per trunk the two estimates move together across resamples, so the paired interval
    of their difference is narrower than the one independent bootstraps would give."""
    res = request.getfixturevalue(fixture)
    assert _is_paired(res), _pairing_check(res)


@pytest.mark.parametrize("resampling", ["trunks", "parametric"])
def test_an_unpaired_implementation_fails_the_pairing_check(plan, monkeypatch, resampling):
    """The check above is not vacuous: give Approach 2 other resamples than the joint fit's and it fails."""
    real = allocation_core._joint_part     # where analyse looks it up

    def unpaired(r, scheme, n_bootstrap, seed, given_sds, n_starts, workers):
        mine = real(r, scheme, n_bootstrap, seed, given_sds, n_starts, workers)
        draws = mine[2]
        if scheme == "trunks":
            other = dataclasses.replace(draws, weights=scaling.cluster_resamples(r.trunk, n_bootstrap, 12345))
        else:
            other = dataclasses.replace(draws, losses=noise.simulate(draws.law, r, draws.trunk_sd, draws.noise_sd,
                                                                     n_bootstrap, 12345))
        return mine[:2] + (other,) + mine[3:]     # Approach 2 gets draws of its own

    monkeypatch.setattr(allocation_core, "_joint_part", unpaired)
    runs = synthetic_runs(plan, LAW, noise_sd=0.002, trunk_sd=0.02, seed=3)
    res = analyse(runs, n_bootstrap=60, seed=1, n_starts=4, workers=1, resampling=resampling)
    assert not _is_paired(res), _pairing_check(res)


def test_a_failed_parametric_refit_is_counted_not_dropped(plan, monkeypatch):
    """A refit that raises (nan constants) is a failed resample of the joint fit: counted, left out of its
    interval, and of the paired difference."""
    real = noise.refit_rows                # where noise.refit_all looks it up

    def every_third_fails(N, D, losses, n_starts):
        out = real(N, D, losses, n_starts)
        out[2::3] = np.nan           # row 0 is the noise-free law; rows 1.. the resamples
        return out

    monkeypatch.setattr(noise, "refit_rows", every_third_fails)
    runs = synthetic_runs(plan, LAW, noise_sd=0.003, trunk_sd=0.005, seed=4)
    res = analyse(runs, n_bootstrap=30, seed=0, n_starts=2, workers=1)
    expected = len(range(2, 31, 3))
    assert res.a_joint_failed == expected == int(np.isnan(res.a_joint_samples).sum())
    assert np.all(np.isnan(res.a_joint_samples[1::3]))
    assert res.n_paired == int((np.isfinite(res.a2_samples) & np.isfinite(res.a_joint_samples)).sum()) <= 30 - expected
    assert f"failed resamples: {expected}" in str(res) and f"{30 - res.n_paired} of 30 resamples failed" in res.verdict()
    assert len(res.joint.samples) == 30 - expected


def test_failed_trunk_resamples_are_counted_not_dropped(plan, monkeypatch):
    runs = synthetic_runs(plan, LAW, noise_sd=0.005, seed=4)
    real = chinchilla.compute_optimal      # where allocation_core.joint_slope looks it up
    cutoff = {}

    def sometimes_fails(C, fit, flops_per_token=None):
        if "beta" in cutoff and fit["beta"] > cutoff["beta"]:
            raise ValueError("no optimum")
        return real(C, fit, flops_per_token)

    fit = scaling.fit_chinchilla(*(np.array([r[k] for r in runs], float) for k in ("N_total", "D", "final_val_loss")),
                                 n_starts=2, groups=[r["trunk"] for r in runs],
                                 resamples=scaling.cluster_resamples([r["trunk"] for r in runs], 30, seed=0))
    cutoff["beta"] = float(np.quantile(fit.samples[:, 4], 0.7))
    expected = int((fit.samples[:, 4] > cutoff["beta"]).sum())
    if fit.beta > cutoff["beta"]:   # the point fit itself must succeed
        cutoff["beta"] = fit.beta + 1e-9
        expected = int((fit.samples[:, 4] > cutoff["beta"]).sum())
    monkeypatch.setattr(chinchilla, "compute_optimal", sometimes_fails)
    res = analyse(runs, n_bootstrap=30, seed=0, n_starts=2, workers=1, resampling="trunks")
    assert expected > 0
    assert res.a_joint_failed == expected == int(np.isnan(res.a_joint_samples).sum())
    assert res.n_paired == int((np.isfinite(res.a2_samples) & np.isfinite(res.a_joint_samples)).sum())
    assert res.n_paired <= 30 - expected
    assert f"{30 - res.n_paired} of 30 resamples failed" in res.verdict()
    assert f"failed resamples: {expected}" in str(res)


def test_approach2_fails_a_resample_without_three_minima_and_says_so():
    """Profiles of three sizes: a resample that misses a profile's middle size has no minimum there."""
    pts = _records(widths=(12, 16, 24, 32, 48, 64), n_budgets=4)
    runs = synthetic_runs(pts, LAW, noise_sd=0.002, seed=5)
    res = analyse(runs, n_bootstrap=40, seed=0, n_starts=2, workers=1, window=1, resampling="trunks")
    assert res.a2_failed == int(np.isnan(res.a2_samples).sum()) > 0
    assert np.all(res.a2_budgets[np.isnan(res.a2_samples)] < 3)
    assert np.all(res.a2_budgets[np.isfinite(res.a2_samples)] >= 3)


# ----------------------------------------------------------------------------- the verdict

@pytest.mark.parametrize("ci, words, never", [
    ((0.12, 0.30), "differ", "agree"),
    ((-0.30, -0.02), "differ", "agree"),
    ((0.01, 0.04), "less than the margin", "agree"),
    ((-0.03, 0.04), "agree to within ±0.05", "differ"),
    ((-0.02, 0.40), "cannot be told apart at this precision — not the same as agreeing", "agree to"),
])
def test_verdict_is_chosen_from_the_paired_interval_and_the_margin(shared_trunk_result, ci, words, never):
    res = dataclasses.replace(shared_trunk_result, diff_ci=ci, diff=sum(ci) / 2, n_paired=60)
    text = res.verdict()
    assert words in text and never not in text.replace("not the same as agreeing", "")


# ----------------------------------------------------------------------------- sensitivity

def test_sensitivity_varies_one_choice_at_a_time_and_reports_failures(plan):
    runs = synthetic_runs(plan, LAW, noise_sd=0.003, trunk_sd=0.005, seed=6)
    table = sensitivity(runs, windows=(1, 2, None), min_steps=(None, 10 ** 6), n_bootstrap=6, n_starts=2, workers=1)
    varied = [r["varied"] for r in table.rows]
    assert varied == ["baseline", "IsoFLOP window", "IsoFLOP window", "shortest run kept", "parameter count"]
    too_short = table.rows[3]
    assert "at least 5" in too_short["note"] and math.isnan(too_short["a2"]) and "n/a" in str(table)
    base, all_points = table.rows[0], table.rows[2]
    assert base["a_joint"] == all_points["a_joint"] and base["a2"] != all_points["a2"]   # window: Approach 2 only
    assert table.rows[4]["a_joint"] != base["a_joint"]
    text, md = str(table), table.to_markdown()
    assert "failed" in text and md.count("\n") == len(table.rows) + 1 and md.startswith("| varied")
    mc = max(r["mc"] for r in table.rows if "mc" in r)  # the rows with numbers carry their Monte-Carlo error
    assert 0 < mc < 0.5 and f"up to ±{mc:.2f}" in text


def test_sensitivity_max_tokens_row_refits_without_the_runs_of_more_tokens(plan):
    runs = synthetic_runs(plan, LAW, noise_sd=0.003, trunk_sd=0.005, seed=6)
    D = np.array([r["D"] for r in runs])
    cap = int(np.quantile(D, 0.8))
    table = sensitivity(runs, windows=(2,), min_steps=(None,), param_counts=("total",), max_tokens=(cap, 1),
                        n_bootstrap=6, n_starts=2, workers=1)
    base, capped, none_left = table.rows
    assert capped["varied"] == "most tokens kept" and f"{cap:,} tokens or fewer" in capped["setting"]
    assert capped["n_runs"] == int((D <= cap).sum()) < base["n_runs"] == len(runs)
    assert capped["a_joint"] != base["a_joint"] and np.isfinite(capped["a_joint"])   # refitted on fewer runs
    assert "no run has 1 tokens or fewer" in none_left["note"] and math.isnan(none_left["a_joint"])
    for bad in (0, 2.5, "many"):
        with pytest.raises(ValueError, match="max_tokens"):
            sensitivity(runs, max_tokens=(bad,), n_bootstrap=6, n_starts=2, workers=1)


# ----------------------------------------------------------------------------- heldout_isoflop

def _profile(N0=3e4, curvature=0.05, n=5):
    N = N0 * 2.0 ** np.linspace(-2, 2, n)
    return N, 1.9 + curvature * (np.log(N) - np.log(N0)) ** 2


def test_heldout_isoflop_finds_a_known_optimum_and_scores_the_prediction():
    N, loss = _profile()
    predicted = loss + np.array([0.01, -0.02, 0.0, 0.03, 0.005])
    h = heldout_isoflop(N, loss, predicted_N_opt=1.5e4, predicted_losses=predicted, noise_sd=0.01, seed=1)
    assert h.N_opt == pytest.approx(3e4, rel=1e-9)
    assert h.ratio == pytest.approx(2.0, rel=1e-9)
    assert h.N_opt_ci[0] < 3e4 < h.N_opt_ci[1]
    assert h.ratio_ci == pytest.approx((h.N_opt_ci[0] / 1.5e4, h.N_opt_ci[1] / 1.5e4))
    np.testing.assert_allclose(h.residuals, loss - predicted)
    assert h.level_error == pytest.approx(np.mean(loss - predicted))
    assert h.level_error_se == pytest.approx(0.01 / math.sqrt(5))
    assert "parametric bootstrap" in h.method and "measured / predicted = 2.00" in str(h)


def test_heldout_interval_covers_the_true_optimum_at_about_its_level():
    """Repeated noisy profiles: the 90 % interval holds the true N_opt in about 90 % of 300 draws
    (binomial SD 1.7 %; we allow 3.5 SD, since the parametric bootstrap centres on the noisy fit)."""
    N, clean = _profile(curvature=0.03)
    rng = np.random.default_rng(0)
    hits, n = 0, 300
    for k in range(n):
        h = heldout_isoflop(N, clean + rng.normal(0, 0.01, len(N)), predicted_N_opt=3e4, noise_sd=0.01,
                            n_bootstrap=400, seed=k, level=0.9)
        hits += h.N_opt_ci[0] <= 3e4 <= h.N_opt_ci[1]
    assert abs(hits / n - 0.9) < 3.5 * math.sqrt(0.9 * 0.1 / n)


def test_heldout_interval_widens_with_the_noise():
    N, loss = _profile()
    narrow = heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=0.002)
    wide = heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=0.02)
    assert math.log(wide.N_opt_ci[1] / wide.N_opt_ci[0]) > 3 * math.log(narrow.N_opt_ci[1] / narrow.N_opt_ci[0])


def test_heldout_noise_per_size_enters_where_it_belongs():
    """One SD per size (runs of one budget differ in length, so in noise): the level's standard error adds the
    sizes' variances, and noise on the small-N side widens the interval's lower end, not its upper one."""
    N, loss = _profile()
    sd = np.array([0.04, 0.01, 0.003, 0.003, 0.003])
    h = heldout_isoflop(N, loss, predicted_N_opt=3e4, predicted_losses=loss, noise_sd=sd, n_bootstrap=4000)
    np.testing.assert_array_equal(h.noise_sd, sd)
    assert h.level_error_se == pytest.approx(math.sqrt(np.sum(sd ** 2)) / 5)
    assert h.noise_rms == pytest.approx(math.sqrt(np.mean(sd ** 2)))
    assert "0.0030 to 0.0400 nats by size" in h.method
    mirrored = heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=sd[::-1], n_bootstrap=4000)
    low_side = math.log(3e4 / h.N_opt_ci[0]) / math.log(h.N_opt_ci[1] / 3e4)
    assert low_side > 1.5 and math.log(3e4 / mirrored.N_opt_ci[0]) / math.log(mirrored.N_opt_ci[1] / 3e4) < 1 / 1.5
    # one number is the same as that number at every size
    same = heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=np.full(5, 0.01), seed=3)
    assert same.N_opt_ci == heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=0.01, seed=3).N_opt_ci
    for bad in (sd[:4], np.array([0.01, 0.01, 0.0, 0.01, 0.01]), np.array([0.01, np.nan, 0.01, 0.01, 0.01])):
        with pytest.raises(ValueError, match="noise_sd"):
            heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=bad)


def test_heldout_interval_ends_past_the_sizes_are_written_as_such():
    # so noisy a profile that some simulated parabolas are almost flat: their vertices land anywhere
    N, loss = _profile()
    wild = heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=0.2)
    tame = heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=0.002)
    assert wild.ratio_ci[1] > 100 * N.max() / 3e4 and "beyond" in wild.ratio_ci_text and "beyond" in str(wild)
    assert "beyond" not in tame.ratio_ci_text and f"{tame.ratio_ci[0]:.2f}" in tame.ratio_ci_text
    # a lower end at 0 (a simulated profile with no minimum on the small side) is not "beyond" anything
    object.__setattr__(wild, "ratio_ci", (0.0, wild.ratio_ci[1]))
    assert wild.ratio_ci_text.startswith("[below ") and "1/100 of the smallest size" in wild.ratio_ci_text


def test_heldout_isoflop_refuses_bad_profiles():
    N, loss = _profile()
    with pytest.raises(ValueError, match="at least 3 distinct sizes"):
        heldout_isoflop(N[:2], loss[:2], predicted_N_opt=3e4, noise_sd=0.01)
    with pytest.raises(ValueError, match="maximum, not a minimum"):
        heldout_isoflop(N, 4.0 - loss, predicted_N_opt=3e4, noise_sd=0.01)
    with pytest.raises(ValueError, match="extrapolation"):
        heldout_isoflop(N, 1.9 + 0.05 * (np.log(N) - np.log(3e5)) ** 2, predicted_N_opt=3e4, noise_sd=0.01)
    with pytest.raises(ValueError, match="noise_sd"):
        heldout_isoflop(N, loss, predicted_N_opt=3e4, noise_sd=0.0)
    with pytest.raises(ValueError, match="same length"):
        heldout_isoflop(N, loss, predicted_N_opt=3e4, predicted_losses=loss[:4], noise_sd=0.01)
    with pytest.raises(ValueError, match="predicted_N_opt"):
        heldout_isoflop(N, loss, predicted_N_opt=-1.0, noise_sd=0.01)


# ----------------------------------------------------------------------------- recovery with coverage

RECOVERY_DRAWS = 30


@pytest.fixture(scope="module")
def recovered():
    """Losses from a known L(N, D) on a small sweep (one trunk per model size, as in Chapter 6), with a shared
    offset per trunk and noise per run, put through analyse RECOVERY_DRAWS times with 30 paired parametric
    resamples (the default; the noise measured from each draw's residuals) and 80 % intervals. About 90 s of
    CPU (more on a loaded machine); the draws run on every core. 80 % rather than 95 %, because the ends of an
    80 % interval (the 10th and 90th percentiles) are stable with 30 resamples, where those of a 95 % interval
    are not."""
    return allocation.recovery(_recovery_grid(), LAW, noise_sd=0.003, trunk_sd=0.01, n_draws=RECOVERY_DRAWS,
                               n_bootstrap=30, seed=0, level=0.8, n_starts=2)


def _recovery_grid():
    return _records(widths=(6, 8, 12, 16, 24, 32, 48, 64, 96))


def _calibration(estimates, samples, true_a, level):
    """``(coverage, sd_ratio)`` of one estimator over repeated synthetic draws. ``coverage``: the fraction of draws
    whose ``level`` percentile interval (from that draw's bootstrap ``samples``) holds ``true_a``. ``sd_ratio``:
    the bootstrap SD, averaged over the draws, over the SD of the estimates across the draws (the spread the
    bootstrap claims to measure): 1 for a calibrated bootstrap, above 1 for intervals too wide."""
    ends = np.array([scaling.percentile_interval(s, level)[0] for s in samples])
    coverage = float(np.mean((ends[:, 0] <= true_a) & (true_a <= ends[:, 1])))
    boot_sd = np.mean([np.nanstd(s, ddof=1) for s in samples])
    return coverage, float(boot_sd / np.std(estimates, ddof=1))


def _calibration_bands(n_draws, level):
    """Two-sided acceptance bands for :func:`_calibration` over ``n_draws`` draws: coverage within 3 binomial SDs
    of ``level``, and the SD ratio within exp(±3 / sqrt(2 (n_draws - 1))), 3 SDs of the sampling error of an
    SD estimated from ``n_draws`` values (the bootstrap SD, averaged over the draws, varies much less)."""
    tol = 3 * math.sqrt(level * (1 - level) / n_draws)
    band = math.exp(3 / math.sqrt(2 * (n_draws - 1)))
    return (level - tol, level + tol), (1 / band, band)


@pytest.mark.parametrize("width, calibrated", [(1.0, True), (0.4, False), (2.5, False)])
def test_the_calibration_check_passes_a_calibrated_bootstrap_and_fails_too_narrow_or_too_wide_ones(width, calibrated):
    """The check's negative controls, on draws whose law we set: estimates scatter with SD 1 around the truth and
    each draw's bootstrap scatters with SD ``width`` around its estimate. 50 % intervals, where a two-sided
    coverage test has power on both sides (at 80 % with 30 draws, 3 binomial SDs reach 102 %)."""
    rng = np.random.default_rng(1)
    est = rng.normal(0.0, 1.0, RECOVERY_DRAWS)
    samples = [e + width * rng.normal(0.0, 1.0, 30) for e in est]
    coverage, ratio = _calibration(est, samples, 0.0, 0.5)
    (c_lo, c_hi), (r_lo, r_hi) = _calibration_bands(RECOVERY_DRAWS, 0.5)
    assert (c_lo <= coverage <= c_hi and r_lo <= ratio <= r_hi) is calibrated, (coverage, ratio)


def test_the_analysis_recovers_a_known_law_without_under_covering(recovered):
    """Both estimators find the true a (mean within 0.02, under half the chapter's 0.05 equivalence margin) and
    their 80 % intervals do not under-cover: coverage at least 80 % minus 3 binomial SDs (22 % with 30 draws).
    One-sided: with 30 draws an 80 % coverage test cannot fail on over-coverage (80 + 22 > 100); the two-sided
    check is test_the_parametric_bootstrap_is_calibrated_on_a_fixed_size_grid."""
    rec = recovered
    tolerance = 3 * math.sqrt(0.8 * 0.2 / RECOVERY_DRAWS)
    assert rec.coverage_se == pytest.approx(tolerance / 3)
    assert abs(np.mean(rec.a2) - rec.true_a) < 0.02 and abs(np.mean(rec.a_joint) - rec.true_a) < 0.02, str(rec)
    assert rec.coverage2 >= 0.8 - tolerance, str(rec)
    assert rec.coverage_joint >= 0.8 - tolerance, str(rec)
    assert rec.diff_coverage >= 0.8 - tolerance, str(rec)
    assert rec.failed_joint == sum(r.a_joint_failed for r in rec.results)
    assert rec.failed2 == sum(int(np.isnan(r.a2_samples).sum()) for r in rec.results)
    assert "true a" in str(rec) and "parametric resamples" in str(rec) and rec.resampling == "parametric"


#: Chapter 6's joint law and the two noise SDs measured from its residuals (its cold execution of 4 December,
#: quick grid 3c6d15996419): the recovery check on the chapter's own grid at the chapter's own noise.
CHAPTER6_LAW = {"E": 1.582, "A": 7.414, "B": 781.0, "alpha": 0.3463, "beta": 0.5786}
CHAPTER6_NOISE = {"noise_sd": 0.0391, "trunk_sd": 0.0187}


@pytest.fixture(scope="module")
def recovered_on_the_quick_grid():
    """60 synthetic sweeps on the quick grid's planned points (their losses from CHAPTER6_LAW with CHAPTER6_NOISE),
    each put through Chapter 6's analysis (±2 rungs, non-embedding N, the ladder's cost curve) with 30 paired
    parametric resamples and 80 % intervals. About 40 s on 2 cores."""
    from utils.grids import grid_for, plan
    points = plan(grid_for("quick"))
    return allocation.recovery(points, CHAPTER6_LAW, **CHAPTER6_NOISE, n_draws=60, n_bootstrap=30, seed=0, level=0.8,
                               n_starts=2, window=2, param_count="non_embedding",
                               cost=allocation.cost_curve(points, "non_embedding"))


def test_the_joint_fit_is_calibrated_on_the_chapters_grid_at_its_noise(recovered_on_the_quick_grid):
    """The joint fit finds the true a (mean within 0.02) and its 80 % intervals do not under-cover (at least 80 %
    minus 3 binomial SDs of 60 draws); its 50 % intervals pass the two-sided check. (Measured when written: mean
    error -0.003, 80 % coverage 73 %, 50 % coverage 50 %, SD ratio 0.96.)"""
    rec = recovered_on_the_quick_grid
    assert abs(np.mean(rec.a_joint) - rec.true_a) < 0.02, str(rec)
    assert rec.coverage_joint >= 0.8 - 3 * rec.coverage_se, str(rec)
    (c_lo, c_hi), (r_lo, r_hi) = _calibration_bands(len(rec.a_joint), 0.5)
    coverage, ratio = _calibration(rec.a_joint, [r.a_joint_samples for r in rec.results], rec.true_a, 0.5)
    assert c_lo <= coverage <= c_hi and r_lo <= ratio <= r_hi, (coverage, ratio)


def test_approach_2_on_the_chapters_grid_at_its_noise_reads_low_and_under_covers(recovered_on_the_quick_grid):
    """What Chapter 6 says of Approach 2 at its own noise: on average it reads a below the truth, by less than 0.1,
    and its 80 % intervals hold the truth less often than 80 % but in at least half the draws. (Measured when
    written: mean error -0.038 with SE 0.016, 80 % coverage 63 % of 60 draws; on 100 other draws -0.029 and 68 %.)
    If Approach 2 ever stops reading low, or reaches its nominal coverage, the chapter's sentence must change."""
    rec = recovered_on_the_quick_grid
    error = np.mean(rec.a2) - rec.true_a
    assert -0.1 < error < 0, str(rec)
    assert 0.5 <= rec.coverage2 < 0.8, str(rec)
    assert rec.failed2 == 0 and rec.failed_joint == 0, str(rec)


def test_recovery_with_known_noise_gives_the_analysis_the_generators_sds():
    rec = allocation.recovery(_recovery_grid(), LAW, noise_sd=0.003, trunk_sd=0.01, n_draws=2, n_bootstrap=4,
                              seed=0, n_starts=2, workers=1, known_noise=True)
    for res in rec.results:
        assert (res.trunk_sd, res.noise_sd) == (0.01, 0.003) and res.resamples.noise_source == "both given"


def _assert_calibrated(rec):
    """Two-sided: over the draws of ``rec``, each estimator's 50 % intervals hold the true a within 3 binomial
    SDs of 50 %, and its bootstrap SD is within the band of _calibration_bands of the estimates' spread across
    draws."""
    n = len(rec.a2)
    (c_lo, c_hi), (r_lo, r_hi) = _calibration_bands(n, 0.5)
    found = {}
    for name, est, samples in (("Approach 2", rec.a2, [r.a2_samples for r in rec.results]),
                               ("joint fit", rec.a_joint, [r.a_joint_samples for r in rec.results])):
        found[name] = _calibration(est, samples, rec.true_a, 0.5)
    for name, (coverage, ratio) in found.items():
        assert c_lo <= coverage <= c_hi and r_lo <= ratio <= r_hi, (
            f"{name}: 50 % intervals held the true a in {coverage:.0%} of {n} draws (allowed "
            f"{c_lo:.0%}-{c_hi:.0%}); bootstrap SD / spread across draws = {ratio:.2f} (allowed {r_lo:.2f}-{r_hi:.2f}); "
            f"all: {found}")


def test_the_parametric_bootstrap_is_calibrated_on_a_fixed_size_grid(recovered):
    """The parametric scheme keeps the design (every resample holds every run) and simulates the noise it
    measured, so its spread is the estimates' own spread across draws. (Measured when it was written, on these
    draws: SD ratios 1.15 and 1.11, 50 % coverage 37 % and 47 %, for Approach 2 and the joint fit. Broken on
    purpose, it fails: without the trunk offsets, or with both SDs times 0.4, the SD ratios fall below the band.)"""
    _assert_calibrated(recovered)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "known defect (issue 20), kept as a record of why the default is 'parametric': on a grid where every trunk "
    "is one model size, resampling trunks also resamples the design (a resample holds about 6 of the 9 sizes), "
    "and the bootstrap's tails are too heavy: in this test's run (20 draws, 20 resamples) its SD was 2.80x "
    "(Approach 2) and 1.99x (joint fit) the spread of the estimates, against a band of 0.61-1.63 (an earlier run "
    "of 30 draws with 30 resamples: 2.6x and 2.1x, 80 % intervals covering 90 % and 93 %). strict: if the trunk "
    "bootstrap ever passes, this marker must go."))
def test_the_trunk_bootstrap_is_calibrated_on_a_fixed_size_grid():
    """The same two-sided check for resampling='trunks', on fewer draws (20, 20 resamples each) to save time:
    the band for the SD ratio widens to 0.61-1.63, still far below what the trunk bootstrap gives (measured with
    --runxfail when written: 2.80 for Approach 2 and 1.99 for the joint fit; 50 % coverage 40 % and 75 %)."""
    rec = allocation.recovery(_recovery_grid(), LAW, noise_sd=0.003, trunk_sd=0.01, n_draws=20, n_bootstrap=20,
                              seed=0, level=0.8, n_starts=2, resampling="trunks")
    assert rec.resampling == "trunks"
    _assert_calibrated(rec)

"""Tests for utils.allocation: the paired bootstrap pairs, failures are counted, the held-out IsoFLOP fit finds a
known optimum and refuses bad profiles, and the whole analysis recovers a known law with honest intervals."""
import dataclasses
import math

import numpy as np
import pytest

from utils import allocation, scaling
from utils.allocation import analyse, heldout_isoflop, sensitivity, synthetic_runs

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
    """One analysis of data whose noise is mostly a shared offset per trunk (what pairing must cancel)."""
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
        assert res.a_joint_samples[i] == pytest.approx(math.log(n_opt[1] / n_opt[0]) / math.log(res.C_range[1] / res.C_range[0]), rel=1e-6)
    ok = np.isfinite(res.a2_samples) & np.isfinite(res.a_joint_samples)
    assert res.diff_ci == pytest.approx(tuple(np.percentile(res.a2_samples[ok] - res.a_joint_samples[ok], [2.5, 97.5])))


def test_the_point_estimates_are_the_slopes_of_their_own_fits(shared_trunk_result):
    res = shared_trunk_result
    assert res.a2 == pytest.approx(res.iso.fit()[0].b, rel=1e-12)
    n_lo, n_hi = res.joint_N_opt(np.array(res.C_range))
    assert res.a_joint == pytest.approx(math.log(n_hi / n_lo) / math.log(res.C_range[1] / res.C_range[0]), rel=1e-9)
    assert res.diff == pytest.approx(res.a2 - res.a_joint)
    assert res.a2_ci[0] < res.a2 < res.a2_ci[1] and res.a_joint_ci[0] < res.a_joint < res.a_joint_ci[1]


def test_the_paired_interval_of_the_difference_is_narrower_than_an_unpaired_one(shared_trunk_result):
    """With a shared offset per trunk the two estimates move together across resamples, so the paired interval
    of their difference is narrower than the one independent bootstraps would give."""
    assert _is_paired(shared_trunk_result), _pairing_check(shared_trunk_result)


def test_an_unpaired_implementation_fails_the_pairing_check(plan, monkeypatch):
    """The check above is not vacuous: give the joint fit its own trunk draws and it fails."""
    real = allocation._joint_part

    def unpaired(r, W, n_starts, workers):
        return real(r, scaling.cluster_resamples(r.trunk, len(W), seed=12345), n_starts, workers)

    monkeypatch.setattr(allocation, "_joint_part", unpaired)
    runs = synthetic_runs(plan, LAW, noise_sd=0.002, trunk_sd=0.02, seed=3)
    res = analyse(runs, n_bootstrap=60, seed=1, n_starts=4, workers=1)
    assert not _is_paired(res), _pairing_check(res)


def test_failed_resamples_are_counted_not_dropped(plan, monkeypatch):
    runs = synthetic_runs(plan, LAW, noise_sd=0.005, seed=4)
    real = scaling.compute_optimal
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
    monkeypatch.setattr(scaling, "compute_optimal", sometimes_fails)
    res = analyse(runs, n_bootstrap=30, seed=0, n_starts=2, workers=1)
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
    res = analyse(runs, n_bootstrap=40, seed=0, n_starts=2, workers=1, window=1)
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
    offset per trunk and noise per run, put through analyse RECOVERY_DRAWS times with 30 paired trunk resamples
    and 80 % intervals. About 100 s of CPU (more on a loaded machine); the draws run on every core. 80 % rather
    than 95 %, because the ends of an 80 % interval (the 10th and 90th percentiles) are stable with 30
    resamples, where those of a 95 % interval are not."""
    runs = _records(widths=(6, 8, 12, 16, 24, 32, 48, 64, 96))
    return allocation.recovery(runs, LAW, noise_sd=0.003, trunk_sd=0.01, n_draws=RECOVERY_DRAWS, n_bootstrap=30,
                               seed=0, level=0.8, n_starts=2)


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
    One-sided on purpose: with 30 draws a 80 % coverage test cannot fail on over-coverage (80 + 22 > 100);
    the two-sided check is test_the_trunk_bootstrap_is_calibrated_on_a_fixed_size_grid. Nor does it catch a
    point bootstrap (resampling runs, ignoring trunks): on this grid that covers 80 % or more too (issue 20)."""
    rec = recovered
    tolerance = 3 * math.sqrt(0.8 * 0.2 / RECOVERY_DRAWS)
    assert rec.coverage_se == pytest.approx(tolerance / 3)
    assert abs(np.mean(rec.a2) - rec.true_a) < 0.02 and abs(np.mean(rec.a_joint) - rec.true_a) < 0.02, str(rec)
    assert rec.coverage2 >= 0.8 - tolerance, str(rec)
    assert rec.coverage_joint >= 0.8 - tolerance, str(rec)
    assert rec.failed_joint == 0 and rec.failed2 == sum(int(np.isnan(r.a2_samples).sum()) for r in rec.results)
    assert "true a" in str(rec)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "known defect (issue 20): on a grid where every trunk is one model size, resampling trunks also resamples "
    "the design (a resample holds about 6 of the 9 sizes), and the bootstrap's tails are too heavy: over these "
    "draws its SD is 2.6x (Approach 2) and 2.1x (joint fit) the spread of the estimates, and its 80 % intervals "
    "cover 90 % and 93 %, while its 50 % intervals cover 47 % and 57 % (inside the band). strict: when the "
    "bootstrap is fixed this test passes, and the marker must go."))
def test_the_trunk_bootstrap_is_calibrated_on_a_fixed_size_grid(recovered):
    """Two-sided: over the same draws, each estimator's 50 % intervals hold the true a within 3 binomial SDs of
    50 %, and its bootstrap SD is within the band of _calibration_bands of the estimates' spread across draws."""
    rec = recovered
    (c_lo, c_hi), (r_lo, r_hi) = _calibration_bands(RECOVERY_DRAWS, 0.5)
    found = {}
    for name, est, samples in (("Approach 2", rec.a2, [r.a2_samples for r in rec.results]),
                               ("joint fit", rec.a_joint, [r.a_joint_samples for r in rec.results])):
        found[name] = _calibration(est, samples, rec.true_a, 0.5)
    for name, (coverage, ratio) in found.items():
        assert c_lo <= coverage <= c_hi and r_lo <= ratio <= r_hi, (
            f"{name}: 50 % intervals held the true a in {coverage:.0%} of {RECOVERY_DRAWS} draws (allowed "
            f"{c_lo:.0%}-{c_hi:.0%}); bootstrap SD / spread across draws = {ratio:.2f} (allowed {r_lo:.2f}-{r_hi:.2f}); "
            f"all: {found}")

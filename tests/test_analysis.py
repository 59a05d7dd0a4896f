"""Analysis on trajectories whose answers are known in closed form."""

import math

import numpy as np
import pytest

from engine import analysis
from engine.trajectory import Trajectory


def test_the_proxy_view_gives_rho_back_on_exact_geometric_decay():
    epochs = np.arange(0, 500)
    loss = 0.3 + 2.0 * 0.987 ** epochs
    subopt = analysis.suboptimality(loss, 0.3)
    rho, r2 = analysis.contraction_proxy(epochs, subopt)
    assert rho == pytest.approx(0.987, rel=1e-9) and r2 == pytest.approx(1.0)


def test_the_proxy_view_ignores_nonpositive_and_nan_points():
    epochs = np.arange(10.0)
    subopt = 0.5 ** epochs
    subopt[3], subopt[7] = 0.0, np.nan
    assert analysis.contraction_proxy(epochs, subopt)[0] == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(analysis.contraction_proxy(epochs[:2], subopt[:2])[0])


def test_pl_ratio_of_an_exact_quadratic_is_its_curvature():
    # L(θ) = (a/2)‖θ‖², L* = 0: ‖∇L‖² = a²‖θ‖², so ‖∇L‖² / (2 (L − L*)) = a exactly
    a = 3.7
    theta_sq = np.geomspace(10.0, 1e-6, 50)
    ratio = analysis.pl_ratio(a * a * theta_sq, 0.5 * a * theta_sq, 0.0)
    np.testing.assert_allclose(ratio, a, rtol=1e-12)


def test_pl_ratio_is_undefined_at_or_below_l_star():
    ratio = analysis.pl_ratio(np.array([1.0, 1.0, 1.0]), np.array([2.0, 1.0, 0.5]), 1.0)
    assert ratio[0] == pytest.approx(0.5)
    assert np.isnan(ratio[1]) and np.isnan(ratio[2])


def test_terminal_loss_is_final_or_provisional_running_minimum():
    loss = np.array([3.0, 1.0, 2.0, np.nan])
    assert analysis.terminal_loss(np.array([3.0, 1.0, 2.0]), final=True) == 2.0
    assert analysis.terminal_loss(np.array([3.0, 1.0, 2.0]), final=False) == 1.0
    assert analysis.terminal_loss(loss, final=True) == 1.0  # a non-finite end is no L*
    assert math.isnan(analysis.terminal_loss(np.array([np.inf]), final=True))


def test_stable_regime_is_the_middle_of_the_epochs():
    assert analysis.stable_regime(3000, 0.1, 0.9) == (300, 2700)
    mask = analysis.in_window(np.arange(11), (2, 5))
    assert mask.tolist() == [False, False, True, True, True, True] + [False] * 5


def test_ntk_drift_pct():
    assert analysis.ntk_drift_pct(1.62, 0.27) == pytest.approx(83.33, abs=0.01)
    assert math.isnan(analysis.ntk_drift_pct(0.0, 1.0))


def constructed(epochs: int = 100, rho: float = 0.97, l_star: float = 0.1) -> Trajectory:
    t = Trajectory()
    for e in range(epochs + 1):
        sub = rho**e
        t.epoch.append(e)
        t.loss.append(l_star + sub)
        t.grad_sq.append(2 * 4.0 * sub)  # PL ratio exactly 4 against the true L*
        if e % 10 == 0 or e == epochs:
            t.probe_epoch.append(e)
            t.drift.append(0.01 * e)
            t.ntk_lambda_min.append(2.0 - 0.01 * e)
    return t


def test_summary_of_a_constructed_run():
    t = constructed()
    s = analysis.summarize(t, params=42, stable_from=0.1, stable_to=0.9, final=False)
    # provisional L* = running minimum = the last loss here, so the ratio is 4 / (1 - ρ^(T-t))
    assert s["params"] == 42 and s["stable_from"] == 10 and s["stable_to"] == 90
    assert s["lambda_0"] == 2.0 and s["lambda_T"] == pytest.approx(1.0)
    assert s["ntk_drift_pct"] == pytest.approx(50.0)
    assert s["drift_final"] == pytest.approx(1.0)
    assert s["l_star_provisional"] is True
    # against the provisional proxy (the last loss) the ratio is 4 / (1 - ρ^(T-t)) ...
    assert s["pl_min_proxy"] == pytest.approx(4.0 / (1 - 0.97**90), rel=1e-9)
    assert s["contraction_proxy"] < 0.97  # ... and the proxy bends the tail down: faster than ρ
    # against L* = 0 the envelope is min 2·4·ρ^t / (2(0.1 + ρ^t)), at the window's end
    assert s["pl_min"] == pytest.approx(4.0 * 0.97**90 / (0.1 + 0.97**90), rel=1e-9)
    # the decay model finds the true ρ and L* = 0.1, whatever the proxy says
    assert s["decay_model"] == "geometric"
    assert s["contraction"] == pytest.approx(0.97, rel=1e-6) and s["decay_l_star"] == pytest.approx(0.1, rel=1e-4)


WINDOW = np.arange(300, 2701, dtype=float)
NOISE = np.exp(0.03 * np.random.default_rng(0).standard_normal(WINDOW.size))


@pytest.mark.parametrize("loss", [
    0.5 * 0.997**WINDOW,
    0.1 + 0.5 * 0.998**WINDOW,
    0.5 * 0.997**WINDOW * NOISE,
    0.05 + 0.5 * 0.998**WINDOW * NOISE,
], ids=["exact", "exact with L*", "noisy", "noisy with L*"])
def test_geometric_decay_is_recognised_with_and_without_noise(loss):
    fit = analysis.decay_model(WINDOW, loss, margin=10.0)
    assert fit["decay_model"] == "geometric", fit
    assert fit["decay_delta_bic"] >= 10.0


@pytest.mark.parametrize("loss,power", [(1 / WINDOW, 1.0), (1 / np.sqrt(WINDOW), 0.5), (1 / np.log(WINDOW), None), (0.01 + 5 / (WINDOW + 50), 1.0)],
                         ids=["1/t", "1/sqrt(t)", "1/log(t)", "L* + 1/t"])
def test_sublinear_decay_is_called_a_power_law(loss, power):
    fit = analysis.decay_model(WINDOW, loss, margin=10.0)
    assert fit["decay_model"] == "power-law", fit
    if power is not None:
        assert fit["decay_p"] == pytest.approx(power, rel=0.02)


def test_the_margin_decides_and_too_few_points_decide_nothing():
    loss = 0.5 * 0.997**WINDOW * NOISE
    delta = analysis.decay_model(WINDOW, loss, margin=10.0)["decay_delta_bic"]
    assert analysis.decay_model(WINDOW, loss, margin=delta + 1)["decay_model"] == "undecided"
    assert analysis.decay_model(WINDOW[:5], loss[:5], margin=10.0)["decay_model"] == "undecided"
    with_nan = loss.copy()
    with_nan[::7] = np.nan
    assert analysis.decay_model(WINDOW, with_nan, margin=10.0)["decay_model"] == "geometric"


def quadratic_gd(eta_a: float, epochs: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GD on L(θ) = (a/2)θ² with a = 1: θ_t+1 = (1 − ηa)θ_t, ‖∇L‖² = a²θ², PL ratio₀ = a."""
    theta = (1 - eta_a) ** np.arange(epochs + 1)
    return np.arange(epochs + 1.0), 0.5 * theta**2, theta**2


def test_sufficient_decrease_holds_exactly_when_the_step_is_inside_the_theorem():
    for eta_a, expected in [(0.5, True), (1.0, True), (1.5, False), (1.9, False)]:
        epochs, loss, grad_sq = quadratic_gd(eta_a)
        steps = analysis.consecutive_steps(epochs)
        holds = analysis.sufficient_decrease(loss, grad_sq, np.full(epochs.shape, eta_a), steps)
        assert holds.all() == expected and holds.any() == expected, eta_a


def test_pl_rate_and_how_much_of_the_speed_it_explains():
    epochs, loss, grad_sq = quadratic_gd(0.3)
    mu = analysis.nan_stat(np.min, analysis.pl_ratio(grad_sq, loss, 0.0))
    assert mu == pytest.approx(1.0)
    rho_pl = analysis.pl_rate(mu, 0.3)
    observed = analysis.observed_rate(epochs, loss)
    assert rho_pl == pytest.approx(0.7) and observed == pytest.approx(0.49)  # L contracts by (1 − ηa)²
    assert analysis.explained(rho_pl, observed) == pytest.approx(0.5)
    assert math.isnan(analysis.explained(1.2, observed)) and math.isnan(analysis.pl_rate(math.nan, 0.3))


def test_summary_of_gd_on_a_quadratic_inside_and_outside_the_theorem():
    for eta_a, decrease in [(0.3, 1.0), (1.5, 0.0)]:
        t = Trajectory()
        epochs, loss, grad_sq = quadratic_gd(eta_a, 100)
        t.epoch, t.loss, t.grad_sq = list(epochs.astype(int)), list(loss), list(grad_sq)
        s = analysis.summarize(t, 1, 0.1, 0.9, final=True, lr=eta_a)
        assert s["sufficient_decrease_frac"] == decrease
        assert (s["rho_observed"] <= s["rho_pl"]) == (decrease == 1.0)
        sgd = analysis.summarize(t, 1, 0.1, 0.9, final=True, lr=eta_a, gd=False)
        assert math.isnan(sgd["sufficient_decrease_frac"]) and math.isnan(sgd["rho_pl"])


def test_step_class_boundaries():
    assert [analysis.step_class(x) for x in (0.2, 1.0, 1.0001, 1.99, 2.0, 5.0)] == [
        analysis.INSIDE, analysis.INSIDE, analysis.OUTSIDE, analysis.OUTSIDE, analysis.UNSTABLE, analysis.UNSTABLE]
    assert analysis.step_class(math.nan) == "unknown"


def test_step_sizes_follow_the_schedule():
    epochs = np.array([0, 50, 100])
    assert analysis.step_sizes(epochs, 0.1).tolist() == [0.1, 0.1, 0.1]
    np.testing.assert_allclose(analysis.step_sizes(epochs, 0.1, "cosine", 100), [0.1, 0.05, 0.0], atol=1e-15)


def test_eta_beta_along_the_run_names_the_crossings():
    t = constructed()
    t.theory_epoch, t.sharpness = [0, 50, 100], [800.0, 1500.0, 2100.0]
    s = analysis.summarize(t, 1, 0.1, 0.9, final=True, lr=1e-3)
    assert s["eta_beta_0"] == pytest.approx(0.8) and s["eta_beta_max"] == pytest.approx(2.1)
    assert (s["eta_beta_above_1"], s["eta_beta_above_2"], s["eta_beta_max_epoch"]) == (50.0, 100.0, 100.0)
    assert (s["step_class_0"], s["step_class_max"]) == (analysis.INSIDE, analysis.UNSTABLE)


def test_drift_speedup_sees_a_catapult_from_theta_0():
    epochs = np.array([0, 1, 2, 3, 5, 7, 10, 20, 30])
    settling = 0.3 * (1 - np.exp(-epochs / 20))
    assert analysis.drift_speedup(epochs, settling) == pytest.approx(1.0)
    catapult = np.array([0, 0.01, 0.03, 0.09, 0.5, 0.9, 1.0, 1.05, 1.07])
    assert analysis.drift_speedup(epochs, catapult) == pytest.approx(0.205 / 0.01)
    assert math.isnan(analysis.drift_speedup(epochs[:2], catapult[:2]))


def test_loss_spike_is_the_largest_rise_over_the_running_minimum():
    assert analysis.loss_spike(np.array([5.0, 4.0, 3.0, 2.0])) == 1.0
    assert analysis.loss_spike(np.array([5.6, 4.0, 124.0, 3.0, 2.0])) == pytest.approx(31.0)
    assert math.isnan(analysis.loss_spike(np.array([np.nan])))


def local(lam, top, change):
    return analysis.local_regime({"probe_epoch": np.arange(len(lam)) * 10.0, "ntk_lambda_min": np.array(lam, float),
                                  "ntk_lambda_max": np.array(top, float), "ntk_change": np.array(change, float)})


def test_local_regime_measures_both_directions_and_the_weyl_certificate():
    quiet = local([1.0, 0.9, 1.1], [100.0, 100, 100], [0.0, 0.2, 0.4])
    assert quiet["kernel_change_rel_max"] == pytest.approx(0.004)
    assert quiet["lambda_rise_pct"] == pytest.approx(10) and quiet["lambda_fall_pct"] == pytest.approx(10)
    assert quiet["weyl_min"] == pytest.approx(0.6) and math.isnan(quiet["weyl_negative_epoch"])
    tripled = local([1.0, 2.0, 3.0], [100.0, 200, 300], [0.0, 100, 200])  # K_t = t·K_0
    assert tripled["kernel_change_rel_max"] == pytest.approx(2.0) and tripled["lambda_rise_pct"] == pytest.approx(200)
    assert tripled["lambda_fall_pct"] == 0 and tripled["weyl_min"] == pytest.approx(-199)
    assert tripled["weyl_negative_epoch"] == 10.0 and tripled["weyl_min_epoch"] == 20.0


def test_table2_mean_row_takes_the_minimum_envelope_and_the_pooled_median():
    runs = []
    for scale in (1.0, 2.0, 4.0):
        t = constructed()
        t.grad_sq = [g * scale for g in t.grad_sq]
        runs.append((analysis.summarize(t, 7, 0.1, 0.9, final=True), t))
    mean = analysis.mean_summary([s for s, _ in runs], [t for _, t in runs])
    assert mean["pl_min"] == min(s["pl_min"] for s, _ in runs)
    pooled = np.concatenate([analysis.stable_pl0(t, s) for s, t in runs])
    assert mean["pl_median"] == pytest.approx(np.median(pooled)) and mean["params"] == 7
    assert mean["pl_median"] != pytest.approx(np.mean([s["pl_median"] for s, _ in runs]))


def test_trajectories_compare_bit_for_bit_with_nan_at_the_same_places():
    from engine.trajectory import Trajectory

    def made(beta: float) -> Trajectory:
        return Trajectory(epoch=[0, 1], loss=[1.0, 0.5], grad_sq=[2.0, 1.0],
                          theory_epoch=[0], sharpness=[beta], ntk_full_lambda_min=[math.nan], ntk_full_lambda_max=[math.nan])

    assert made(3.0) == made(3.0)  # NaN where K_N was not due, in both
    assert made(math.nan) == made(math.nan)
    assert made(3.0) != made(math.nan) and made(math.nan) != made(3.0) and made(3.0) != made(3.5)
    longer = made(3.0)
    longer.loss.append(0.25)
    assert longer != made(3.0) and made(3.0) != "a trajectory"


def test_band_is_the_mean_min_and_max_of_the_finite_values_on_the_union_of_epochs():
    xs = [np.array([0, 1, 2]), np.array([0, 2, 3]), np.array([0, 1, 2, 3])]
    ys = [np.array([1.0, 2.0, np.nan]), np.array([3.0, 6.0, 8.0]), np.array([2.0, np.inf, 4.0, np.nan])]
    x, mean, low, high = analysis.band(xs, ys)
    assert list(x) == [0, 1, 2, 3]
    assert list(mean) == [2.0, 2.0, 5.0, 8.0]  # inf and NaN are not averaged in
    assert list(low) == [1.0, 2.0, 4.0, 8.0] and list(high) == [3.0, 2.0, 6.0, 8.0]
    x, mean, low, high = analysis.band([np.array([0, 1])], [np.array([np.nan, 1.0])])
    assert math.isnan(mean[0]) and math.isnan(low[0]) and math.isnan(high[0]) and mean[1] == low[1] == high[1] == 1.0


def test_figure_series_uses_the_chosen_view_of_l_star():
    traj = Trajectory(epoch=[0, 1, 2], loss=[4.0, 2.0, 1.0], grad_sq=[8.0, 4.0, 2.0],
                      probe_epoch=[0, 2], drift=[0.0, 1.0], ntk_lambda_min=[2.0, 3.0], ntk_lambda_max=[10.0, 12.0], ntk_change=[0.0, 5.0])
    proxy = analysis.figure_series(traj, {"decay_l_star": 0.5}, True)
    assert proxy["l_star"] == 1.0 and list(proxy["subopt"]) == [3.0, 1.0, 0.0] and proxy["l_star_view"] == "proxy"
    assert list(analysis.figure_series(traj, {}, True, l_star="zero")["subopt"]) == [4.0, 2.0, 1.0]
    fitted = analysis.figure_series(traj, {"decay_l_star": 0.5}, True, l_star="fitted")
    assert fitted["l_star"] == 0.5 and list(fitted["subopt"]) == [3.5, 1.5, 0.5]
    assert math.isnan(analysis.figure_series(traj, {}, True, l_star="fitted")["l_star"])  # not fitted: undefined, not 0
    live = analysis.figure_series(traj, {}, False)  # a run not finished: the running minimum, provisional
    assert live["l_star"] == 1.0 and live["l_star_provisional"]
    assert list(proxy["weyl"]) == [2.0, -3.0] and list(proxy["kernel_change_rel"]) == [0.0, 0.5]
    assert list(proxy["lambda_change_pct"]) == [0.0, 50.0]


def test_band_of_no_runs_is_empty():
    x, mean, low, high = analysis.band([], [])
    assert x.size == mean.size == low.size == high.size == 0


def test_figure_series_takes_the_runs_end_and_schedule_as_given():
    traj = Trajectory(epoch=[0, 1, 2], loss=[4.0, 1.0, 2.0], grad_sq=[8.0, 4.0, 2.0], theory_epoch=[0, 2], sharpness=[10.0, 10.0])
    assert analysis.figure_series(traj, {}, True)["l_star"] == 2.0  # finished: its last loss, though it rose
    assert analysis.figure_series(traj, {}, False)["l_star"] == 1.0  # not finished: the running minimum
    cosine = analysis.figure_series(traj, {}, True, lr=0.1, schedule="cosine", total=4)
    assert np.allclose(cosine["eta_beta"], [1.0, 0.1 * 0.5 * (1 + math.cos(math.pi / 2)) * 10])
    assert np.allclose(analysis.figure_series(traj, {}, True, lr=0.1)["eta_beta"], [1.0, 1.0])


def test_local_series_has_no_relative_change_without_a_positive_lambda_0():
    def a(lam0):
        return {"ntk_lambda_min": np.array([lam0, 1.0]), "ntk_lambda_max": np.array([10.0, 10.0]),
                "ntk_change": np.array([0.0, 1.0]), "probe_epoch": np.array([0.0, 5.0])}

    for lam0 in (-1.0, 0.0, float("nan")):
        assert np.isnan(analysis.local_series(a(lam0))["lambda_change_pct"]).all()
    assert list(analysis.local_series(a(0.5))["lambda_change_pct"]) == [0.0, 100.0]
    small = analysis.local_regime({**a(100.0), "ntk_lambda_min": np.array([100.0, 100.5])})
    assert small["lambda_rise_pct"] == pytest.approx(0.5) and math.copysign(1, small["lambda_fall_pct"]) == 1.0

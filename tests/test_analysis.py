"""Analysis on trajectories whose answers are known in closed form."""

import math

import numpy as np
import pytest

from engine import analysis
from engine.trajectory import Trajectory


def test_geometric_decay_gives_its_rho_back():
    epochs = np.arange(0, 500)
    loss = 0.3 + 2.0 * 0.987 ** epochs
    subopt = analysis.suboptimality(loss, 0.3)
    assert analysis.contraction(epochs, subopt) == pytest.approx(0.987, rel=1e-9)


def test_contraction_ignores_nonpositive_and_nan_points():
    epochs = np.arange(10.0)
    subopt = 0.5 ** epochs
    subopt[3], subopt[7] = 0.0, np.nan
    assert analysis.contraction(epochs, subopt) == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(analysis.contraction(epochs[:1], subopt[:1]))


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


def test_lower_envelope_is_the_running_minimum_skipping_nan():
    env = analysis.lower_envelope(np.array([np.nan, 5.0, 7.0, np.nan, 2.0, 3.0]))
    assert np.isnan(env[0])
    assert env[1:].tolist() == [5.0, 5.0, 5.0, 2.0, 2.0]


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
    assert s["pl_min"] == pytest.approx(4.0 / (1 - 0.97**90), rel=1e-9)
    assert s["contraction"] < 0.97  # the L* proxy bends the tail down: faster than ρ

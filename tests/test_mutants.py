"""Behaviour the mutation run (mutmut, pyproject's [tool.mutmut]) showed the rest of the suite
left unpinned: thresholds at their boundary, texts that name the right epoch or number, NaN
handling. Each test is fast (pure functions or a tiny float64 model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import analysis


def test_terminal_loss_of_a_run_without_a_finite_loss_is_undefined():
    assert math.isnan(analysis.terminal_loss(np.array([np.nan, np.inf]), final=False))


# ---------------------------------------------------------------- live annotations

from engine.annotations import Annotator  # noqa: E402
from engine.config import GuideSpec  # noqa: E402
from engine.events import EpochMeasured, ProbeMeasured  # noqa: E402


def said(steps, lr=lambda epoch: 1e-3, run: int = 0) -> list:
    """Replays (epoch, loss or None, probe values or None) through an Annotator of `run`."""
    note = Annotator(run, GuideSpec(), lr)
    out = []
    for epoch, loss, values in steps:
        if loss is not None:
            out += note.see(EpochMeasured(run, epoch, loss, 1.0))
        if values is not None:
            out += note.see(ProbeMeasured(run, epoch, values))
    return out


def kernel(lam, change=0.0, top=10.0):
    return {"ntk_lambda_min": lam, "ntk_lambda_max": top, "ntk_change": change}


def kinds(annotations) -> list[tuple[int, str]]:
    return [(a.epoch, a.kind) for a in annotations]


def text(annotations, kind: str) -> str:
    return next(a.text for a in annotations if a.kind == kind)


def test_another_runs_events_are_not_annotated_and_a_runs_annotations_carry_its_number():
    note = Annotator(0)
    assert note.see(EpochMeasured(1, 0, 1.0, 1.0)) == [] and note.see(ProbeMeasured(1, 0, kernel(1.0))) == []
    assert note.see(ProbeMeasured(1, 1, kernel(-1.0, change=9.0))) == []  # run 1's collapse is not run 0's
    out = said([(0, 1.0, kernel(1.0)), (1, 1.0, kernel(0.2))], run=3)
    assert kinds(out) == [(1, "lambda_fell")] and all(a.run == 3 for a in out)


def test_a_probe_of_the_kernel_alone_or_of_the_drift_alone_is_annotated():
    lam_only = said([(0, 1.0, kernel(1.0)), (1, 1.0, kernel(0.9)), (2, 1.0, kernel(0.4))])
    assert kinds(lam_only) == [(2, "lambda_fell")]
    drift_only = said([(e, 1.0, {"drift": d}) for e, d in [(0, 0.0), (1, 0.01), (2, 0.02), (3, 0.1)]])
    assert kinds(drift_only) == [(3, "drift_jumped")]


def test_a_probe_with_the_sharpness_and_the_kernel_says_both():
    out = said([(0, 1.0, {"sharpness": 500.0, **kernel(1.0)}), (1, 1.0, {"sharpness": 1200.0, **kernel(0.4)})])
    assert sorted(k for _, k in kinds(out)) == ["lambda_fell", "step_size"]


def test_kernel_thresholds_are_strict_and_weyl_includes_zero():
    # exactly at each threshold (λ_0 = 1, ‖K_0‖₂ = 10, drop = rise = kernel_change = 0.5): nothing said
    assert said([(0, 1.0, kernel(1.0)), (1, 1.0, kernel(0.5)), (2, 1.0, kernel(1.5))]) == []
    assert said([(0, 1.0, kernel(6.0, top=10.0)), (1, 1.0, kernel(6.0, change=5.0))]) == []
    # λ_min = 0 is non-positive; λ_0 − ‖K_t − K_0‖₂ = 0 leaves nothing guaranteed
    assert (1, "lambda_nonpositive") in kinds(said([(0, 1.0, kernel(1.0)), (1, 1.0, kernel(0.0))]))
    assert kinds(said([(0, 1.0, kernel(1.0)), (1, 1.0, kernel(1.0, change=1.0))])) == [(1, "weyl_negative")]


def test_kernel_annotations_state_the_right_numbers():
    out = said([(0, 1.0, kernel(2.0, top=100.0)), (1, 1.0, kernel(0.8)), (2, 1.0, kernel(-0.1, change=60.0))])
    assert "fell by 60% since initialisation: 2 → 0.8" in text(out, "lambda_fell")
    assert text(out, "lambda_nonpositive") == "λ_min became non-positive: -0.1 (λ_0 = 2)"
    assert "‖K_t − K_0‖₂ = 60, 0.60 × ‖K_0‖₂" in text(out, "kernel_moved")
    assert "= 2 − 60 = -58 ≤ 0" in text(out, "weyl_negative") and "vacuous" in text(out, "weyl_negative")
    rose = text(said([(0, 1.0, kernel(2.0)), (1, 1.0, kernel(3.5))]), "lambda_rose")
    assert "rose by 75% since initialisation: 2 → 3.5" in rose and "not frozen" in rose


def test_the_loss_spike_is_strictly_above_its_multiple_and_says_the_factor():
    assert said([(0, 1.0, None), (1, 0.5, None), (2, 1.0, None)]) == []  # exactly 2 × the running minimum
    out = said([(0, 1.0, None), (1, 0.5, None), (2, 1.5, None)])
    assert kinds(out) == [(2, "loss_spike")]
    assert text(out, "loss_spike").startswith("the loss spiked to 1.5, ×3 its lowest so far (0.5)")


def test_loss_rose_compares_the_losses_at_the_probes_epochs():
    out = said([(0, 1.0, {"drift": 0.0}), (1, 1.5, {"drift": 0.01})])  # the very first interval rises
    assert (1, "loss_rose") in kinds(out)
    assert text(out, "loss_rose").startswith("loss rose between probes: 1 at epoch 0 → 1.5") and "stability edge" in text(out, "loss_rose")
    assert said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": 0.01})]) == []  # a flat loss did not rise
    # a probe whose epoch's loss was not measured compares nothing (here epoch 1's loss is not epoch 2's)
    assert said([(0, 1.0, {"drift": 0.0}), (1, 1.5, None), (2, None, {"drift": 0.02})]) == []
    assert said([(0, None, {"drift": 0.0}), (1, None, {"drift": 0.01})]) == []  # probes before any loss


def test_the_drift_speed_is_per_epoch_and_judged_against_a_positive_first_speed():
    # first interval: 0.25 per epoch; exactly 3 × that is not a jump, more is
    assert said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": 0.25}), (2, 1.0, {"drift": 1.0})]) == []
    # a slow interval of 10 epochs (0.005 per epoch) after a fast one is no jump
    assert said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": 0.01}), (11, 1.0, {"drift": 0.06})]) == []
    # late probes: 0.08 per epoch over one epoch is a jump over 0.01 per epoch
    jumped = said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": 0.01}), (10, 1.0, {"drift": 0.02}), (11, 1.0, {"drift": 0.1})])
    assert kinds(jumped) == [(11, "drift_jumped")]
    # no positive first speed, no judgement (as analysis.drift_speedup)
    for first in (0.0, -0.01):
        assert said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": first}), (2, 1.0, {"drift": 1.0})]) == []
    # a missing drift does not become the reference interval
    gap = [(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": math.nan}), (2, 1.0, {"drift": 0.02}), (3, 1.0, {"drift": 0.03}),
           (4, 1.0, {"drift": 0.2})]
    assert kinds(said(gap)) == [(4, "drift_jumped")]
    # a probe repeated at the same epoch is no interval
    assert said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": 0.01}), (1, None, {"drift": 0.01})]) == []


def test_the_drift_jump_says_its_speed_and_factor():
    out = said([(0, 1.0, {"drift": 0.0}), (1, 1.0, {"drift": 0.01}), (2, 1.0, {"drift": 0.3})])
    assert text(out, "drift_jumped").startswith("the drift accelerated: 0.29 per epoch, ×29.0 its first step's, now 0.3")


def test_step_size_crossings_use_the_epochs_step_and_survive_a_missing_sharpness():
    schedule = lambda epoch: 1e-3 if epoch < 5 else 2e-3  # noqa: E731
    out = said([(0, 1.0, {"sharpness": 600.0}), (5, 1.0, {"sharpness": 600.0})], lr=schedule)
    assert [a.text for a in out] == [
        "η·β rose above 1: η·β = 1.2 (β = λ_max(∇²L) = 600); the step is now stable, outside the theorem"]
    gap = said([(0, 1.0, {"sharpness": 500.0}), (1, 1.0, {"sharpness": math.nan}), (2, 1.0, {"sharpness": 1200.0})])
    assert kinds(gap) == [(2, "step_size")]


# ---------------------------------------------------------------- verdicts on summaries

from engine import verdicts as V  # noqa: E402

GUIDE = GuideSpec()  # decay_margin 10, sufficient_decrease 0.99, kernel_change / lambda_drop / lambda_rise 0.5,
# drift_jump 3, uphill 0.5, saturation 0.2, loss_spike 2, doubling_tolerance 0.25


def test_fmt_and_known_treat_missing_numbers_alike():
    assert V.fmt(1234.5678) == "1235" and V.fmt(2, ".1f") == "2.0"
    assert V.fmt(math.nan) == V.fmt(None) == V.fmt(math.inf) == V.fmt("3") == "—"
    assert V.known(1.0, 2) and V.known()
    assert not V.known(1.0, math.nan) and not V.known(None) and not V.known(math.inf, 1.0) and not V.known("1")


def test_a_verdict_is_a_plain_dict_for_the_record():
    v = V.Verdict("x", True, 1.5, 2.0, "why")
    assert v.to_dict() == {"name": "x", "passed": True, "measured": 1.5, "threshold": 2.0, "text": "why"}


def test_geometric_decay_names_the_winning_model_and_its_parameters():
    geo = V.geometric_decay({"decay_model": "geometric", "decay_delta_bic": 25.0, "contraction": 0.987654321, "decay_l_star": 0.1234}, GUIDE)
    assert geo.passed and (geo.measured, geo.threshold) == (25.0, 10.0)
    assert "geometric (ρ = 0.987654; L* = 0.123)" in geo.text and "= 25.0 (≥ 10 for geometric)" in geo.text
    power = V.geometric_decay({"decay_model": "power-law", "decay_delta_bic": -30.0, "decay_p": 1.0234, "decay_t0": 55.55,
                               "contraction": 0.9, "decay_l_star": 0.0}, GUIDE)
    assert not power.passed and "power-law (p = 1.02, t₀ = 55.55; L* = 0)" in power.text and "= -30.0 (" in power.text
    undecided = V.geometric_decay({"decay_model": "undecided", "decay_delta_bic": 25.0}, GUIDE)
    assert not undecided.passed and "undecided (neither model wins" in undecided.text  # the model decides, not the number
    empty = V.geometric_decay({}, GUIDE)
    assert not empty.passed and "undecided (neither model wins; L* = —)" in empty.text and math.isnan(empty.measured)


def test_sufficient_decrease_needs_its_share_of_steps():
    at = V.sufficient_decrease({"sufficient_decrease_frac": 0.99}, GUIDE)
    assert at.passed and (at.measured, at.threshold) == (0.99, 0.99)
    assert "at 99.0% of the stable regime's steps (≥ 99%)" in at.text
    assert not V.sufficient_decrease({"sufficient_decrease_frac": 0.9899}, GUIDE).passed
    assert not V.sufficient_decrease({}, GUIDE).passed


def test_pl_rate_holds_up_to_rounding_and_says_how_much_it_explains():
    s = {"rho_pl": 0.7, "rho_observed": 0.49, "pl_min": 1.0, "pl_explains": 0.5}
    v = V.pl_rate(s, GUIDE)
    assert v.passed and (v.measured, v.threshold) == (0.49, 0.7)
    assert "ρ = 0.490000 per epoch" in v.text and "ρ_PL = 1 − η·μ̂ = 0.700000 (μ̂ = 1)" in v.text
    assert v.text.endswith("; PL explains 50% of the observed speed")
    assert V.pl_rate({"rho_pl": 0.7, "rho_observed": 0.7}, GUIDE).passed  # tight on an exact geometric decay
    assert V.pl_rate({"rho_pl": 0.7, "rho_observed": 0.7 * (1 + 1e-10)}, GUIDE).passed
    assert not V.pl_rate({"rho_pl": 0.7, "rho_observed": 0.7 * (1 + 1e-8)}, GUIDE).passed
    for missing in ({"rho_observed": 0.5}, {"rho_pl": 0.7}):
        assert not V.pl_rate(missing, GUIDE).passed
    assert V.pl_rate({"rho_pl": 0.7, "rho_observed": 0.49, "pl_min": 1.0}, GUIDE).text.endswith("(μ̂ = 1)")  # no share, no words
    assert V.pl_rate({**s, "pl_explains": 0.12345}, GUIDE).text.endswith("; PL explains 12.3% of the observed speed")


def test_step_size_passes_at_one_and_names_the_epochs():
    s = {"eta_beta_0": 0.8, "eta_beta_max": 1.0, "eta_beta_final": 0.9, "eta_beta_max_epoch": 300.0,
         "step_class_0": "inside the theorem", "step_class_max": "inside the theorem"}
    v = V.step_size(s, GUIDE)
    assert v.passed and (v.measured, v.threshold) == (1.0, 1.0) and "first above" not in v.text
    assert v.text == ("step size: η·β = 0.8 at initialisation (inside the theorem), max 1 at epoch 300 (inside the theorem), "
                      "final 0.9")
    above = V.step_size({**s, "eta_beta_max": 1.4, "eta_beta_above_1": 150.0, "step_class_max": "stable, outside the theorem"}, GUIDE)
    assert not above.passed and above.text.endswith("final 0.9, first above 1 at epoch 150")
    assert not V.step_size({**s, "eta_beta_max": 1.0000001}, GUIDE).passed and not V.step_size({}, GUIDE).passed
    assert V.step_size({}, GUIDE).text.count("(unknown)") == 2  # no class measured, at initialisation nor at the peak
    precise = V.step_size({"eta_beta_0": 0.8125, "eta_beta_max": 1.2345, "eta_beta_final": 0.9876, "eta_beta_max_epoch": 12345.0,
                           "eta_beta_above_1": 10234.0}, GUIDE)
    assert precise.text == ("step size: η·β = 0.812 at initialisation (unknown), max 1.23 at epoch 12345 (unknown), final 0.988, "
                            "first above 1 at epoch 10234")


def test_weyl_certificate_fails_at_zero_and_says_from_when():
    ok = V.weyl_certificate({"weyl_min": 0.5, "weyl_min_epoch": 20.0, "lambda_0": 1.0}, GUIDE)
    assert ok.passed and (ok.measured, ok.threshold) == (0.5, 0.0)
    assert ok.text == "Weyl certificate λ_0 − ‖K_t − K_0‖₂: min 0.5 at epoch 20 (λ_0 = 1): λ_min > 0 guaranteed at every probe"
    zero = V.weyl_certificate({"weyl_min": 0.0, "weyl_min_epoch": 20.0, "weyl_negative_epoch": 20.0, "lambda_0": 1.0}, GUIDE)
    assert not zero.passed and zero.text.endswith(": ≤ 0 from epoch 20 on: the theorem's guarantee is vacuous on this run")
    assert V.weyl_certificate({"weyl_min": 1e-12}, GUIDE).passed and not V.weyl_certificate({}, GUIDE).passed


def test_stays_lazy_thresholds_each_measure_against_its_own_field():
    guide = GuideSpec(kernel_change=0.4, lambda_rise=0.3, lambda_drop=0.6)
    edge = {"kernel_change_rel_max": 0.4, "lambda_rise_pct": 30.0, "lambda_fall_pct": 60.0}
    v = V.stays_lazy(edge, guide)
    assert v.passed and (v.measured, v.threshold) == (0.4, 0.4)
    assert v.text == "kernel: ‖K_t − K_0‖₂/‖K_0‖₂ up to 0.4 (≤ 0.4); λ_min rose up to 30% (≤ 30%) and fell up to 60% (≤ 60%)"
    for key, above in (("kernel_change_rel_max", 0.41), ("lambda_rise_pct", 30.2), ("lambda_fall_pct", 60.5)):
        assert not V.stays_lazy({**edge, key: above}, guide).passed, key
        assert not V.stays_lazy({**edge, key: math.nan}, guide).passed, key


def test_drift_contained_thresholds_and_text():
    edge = {"drift_speedup": 3.0, "drift_uphill": 0.5, "drift_late_growth": 0.1, "drift_final": 0.3}
    v = V.drift_contained(edge, GUIDE)
    assert v.passed and (v.measured, v.threshold) == (3.0, 3.0)
    assert v.text == ("drift: fastest ×3.00 its first step's speed (≤ ×3), 50% of it travelled while the loss rose (≤ 50%), "
                      "last 20% of epochs added 10% of it (< 20%), final 0.3")
    for key, beyond in (("drift_speedup", 3.01), ("drift_uphill", 0.51), ("drift_late_growth", 0.2)):
        assert not V.drift_contained({**edge, key: beyond}, GUIDE).passed, key
        assert not V.drift_contained({**edge, key: math.nan}, GUIDE).passed, key


def test_no_loss_spike_passes_at_its_multiple():
    v = V.no_loss_spike({"loss_spike": 2.0, "loss_rise_frac": 0.125}, GUIDE)
    assert v.passed and (v.measured, v.threshold) == (2.0, 2.0)
    assert v.text == "loss: at most ×2.00 its running minimum (≤ ×2); the loss rose at 12.5% of the stable regime's steps"
    assert not V.no_loss_spike({"loss_spike": 2.01}, GUIDE).passed and not V.no_loss_spike({}, GUIDE).passed
    assert V.no_loss_spike({"loss_spike": 1.0}, GUIDE).text.endswith("(≤ ×2)")
    assert V.no_loss_spike({"loss_spike": 1.0, "loss_rise_frac": 0.12345}, GUIDE).text.endswith("rose at 12.3% of the stable regime's steps")


def test_run_verdicts_are_given_exactly_when_measured():
    assert [v.name for v in V.run_verdicts({})] == ["geometric_decay", "no_loss_spike"]
    for name, need in V.NEEDS.items():
        names = [v.name for v in V.run_verdicts({need: 1.0})]
        assert names == [f.__name__ for f in V.RUN_VERDICTS if f.__name__ in ("geometric_decay", "no_loss_spike", name)], name
        assert name not in [v.name for v in V.run_verdicts({need: math.nan})]
    # the default guide is the preset's default
    assert V.run_verdicts({"loss_spike": 2.0})[-1].passed and not V.run_verdicts({"loss_spike": 2.5})[-1].passed


def test_left_local_regime_lists_only_failed_local_verdicts():
    verdicts = [{"name": "stays_lazy", "passed": True}, {"name": "drift_contained", "passed": False},
                {"name": "step_size", "passed": False}, {"name": "no_loss_spike", "passed": False}]
    assert V.left_local_regime(verdicts) == ["drift_contained", "no_loss_spike"]


def test_per_doubling_is_undefined_outside_growing_widths_and_positive_lambdas():
    assert V.per_doubling(128, 1.0, 256, 2.0) == pytest.approx(2.0) and V.per_doubling(128, 1.0, 512, 9.0) == pytest.approx(3.0)
    for args in ((128, 0.0, 256, 1.0), (128, 1.0, 256, 0.0), (128, -1.0, 256, -2.0), (256, 1.0, 256, 2.0), (256, 1.0, 128, 2.0),
                 (0, 1.0, 128, 2.0), (-128, 1.0, 128, 2.0), (128, math.nan, 256, 2.0), (128, 1.0, 256, math.inf), (128, math.inf, 256, 2.0)):
        assert math.isnan(V.per_doubling(*args)), args


def plan_run(label, width, lr=1e-3, seed=0, lam0=1.0, left=(), decays=True):
    verdicts = [{"name": "geometric_decay", "passed": decays}] + [{"name": n, "passed": n not in left} for n in V.LOCAL]
    return {"label": label, "width": width, "lr": lr, "seed": seed, "summary": {"lambda_0": lam0}, "verdicts": verdicts}


def test_lambda0_doubling_band_edges_and_the_worst_factor():
    edges = [plan_run("a", 1, lam0=1.0), plan_run("b", 2, lam0=1.6), plan_run("c", 4, lam0=4.0)]  # ×1.6, ×2.5: the band's edges
    v = V.lambda0_doubles(edges, GUIDE)
    assert v.passed and v.threshold == 2.0
    assert v.text == "λ_0 per doubling of width in [×1.60, ×2.50] (the paper: it approximately doubles): m=1→2: ×1.6, m=2→4: ×2.5"
    worst = V.lambda0_doubles([plan_run("a", 1, lam0=1.0), plan_run("b", 2, lam0=1.5), plan_run("c", 4, lam0=3.9)], GUIDE)
    assert not worst.passed and worst.measured == pytest.approx(1.5)  # ×1.5 is further from ×2 than ×2.6, as ratios
    high = V.lambda0_doubles([plan_run("a", 1, lam0=1.0), plan_run("b", 2, lam0=1.7), plan_run("c", 4, lam0=1.7 * 2.6)], GUIDE)
    assert high.measured == pytest.approx(2.6)
    halving = V.lambda0_doubles([plan_run("a", 1, lam0=1.0), plan_run("b", 2, lam0=0.9), plan_run("c", 4, lam0=18.0)], GUIDE)
    assert halving.measured == pytest.approx(20.0)  # ×20 is further from ×2 than ×0.9
    gap = V.lambda0_doubles([plan_run("a", 1, lam0=1.0), plan_run("b", 2, lam0=2.0), plan_run("c", 4, lam0=math.nan)], GUIDE)
    assert math.isnan(gap.measured) and "m=2→4: ×—" in gap.text  # an unmeasured step is the worst
    assert V.lambda0_doubles([plan_run("a", 1), plan_run("b", 2, lam0=2.1234)], GUIDE).text.endswith("m=1→2: ×2.12")
    assert not V.lambda0_doubles([plan_run("a", 1), plan_run("b", 2, lam0=2.0 * 2.5 * 1.001)], GUIDE).passed
    assert not V.lambda0_doubles([plan_run("a", 1), plan_run("b", 2, lam0=1.6 * 0.999)], GUIDE).passed
    unknown = V.lambda0_doubles([plan_run("a", 1), plan_run("b", 2, lam0=math.nan)], GUIDE)
    assert not unknown.passed and math.isnan(unknown.measured)
    # the first run of each width gives its λ_0; one width gives no verdict
    assert V.lambda0_doubles([plan_run("a", 1), plan_run("a'", 1, lam0=9.0), plan_run("b", 2, lam0=2.0)], GUIDE).passed
    assert V.lambda0_doubles([plan_run("a", 1), plan_run("b", 1, seed=1)], GUIDE) is None


def test_plan_verdicts_pair_a_run_with_its_reduced_step_only():
    assert V.plan_verdicts([]) == []
    quiet = {v.name: v for v in V.plan_verdicts([plan_run("a", 16)])}
    assert set(quiet) == {"all_stay_local"} and quiet["all_stay_local"].passed
    assert quiet["all_stay_local"].text == "runs that left the local regime: none"
    assert (quiet["all_stay_local"].measured, quiet["all_stay_local"].threshold) == (0.0, 0.0)
    left = plan_run("fast", 16, lr=1e-2, left=("drift_contained",))
    others = [plan_run("other seed", 16, lr=1e-3, seed=1), plan_run("other width", 32, lr=1e-3),
              plan_run("faster", 16, lr=1e-1), plan_run("same", 16, lr=1e-2, seed=2)]
    out = V.plan_verdicts([left, *others])
    assert [v.name for v in out if v.name == "reduced_step_restores"] == []
    restores = V.plan_verdicts([left, plan_run("slow", 16, lr=1e-3), plan_run("slower", 16, lr=1e-4, left=("no_loss_spike",))])
    fixes = [v for v in restores if v.name == "reduced_step_restores"]
    assert [(v.passed, v.measured, v.threshold) for v in fixes] == [(True, 1e-3, 1e-2), (False, 1e-4, 1e-2)]
    assert fixes[0].text == "slow restores the local regime that fast left"
    assert fixes[1].text == "slower does not restore the local regime that fast left"
    stay = next(v for v in restores if v.name == "all_stay_local")
    assert stay.measured == 2.0 and stay.text.endswith(": fast (drift_contained); slower (no_loss_spike)")


def test_seed_verdicts_only_for_seeds_of_one_configuration():
    seeds = [plan_run("s0", 16, seed=0), plan_run("s1", 16, seed=1, decays=False, left=("drift_contained",)), plan_run("s2", 16, seed=2)]
    out = {v.name: v for v in V.plan_verdicts(seeds)}
    geo, contained = out["geometric_every_seed"], out["contained_every_seed"]
    assert not geo.passed and (geo.measured, geo.threshold) == (2.0, 3.0)
    assert geo.text == "geometric_decay on 2 of 3 seeds; not on s1" and not contained.passed
    passing = {v.name: v for v in V.seed_verdicts([plan_run("s0", 16), plan_run("s1", 16, seed=1)])}
    assert passing["geometric_every_seed"].passed and passing["geometric_every_seed"].text == "geometric_decay on 2 of 2 seeds"
    missing = V.seed_verdicts([{**plan_run("s0", 16), "verdicts": []}])
    assert not missing[0].passed  # a seed without the verdict did not pass it
    assert "all_stay_local" in out  # the seed verdicts come on top of the plan's
    two = {v.name: v for v in V.plan_verdicts([plan_run("s0", 16, decays=False), plan_run("s1", 16, seed=1, decays=False)])}
    assert two["geometric_every_seed"].text == "geometric_decay on 0 of 2 seeds; not on s0, s1"
    two_widths = [plan_run("a", 16, seed=0), plan_run("b", 32, seed=1)]
    assert "geometric_every_seed" not in {v.name for v in V.plan_verdicts(two_widths)}
    one_seed = [plan_run("a", 16, lr=1e-3), plan_run("b", 16, lr=1e-2)]
    assert "geometric_every_seed" not in {v.name for v in V.plan_verdicts(one_seed)}


def test_drift_uphill_is_announced_strictly_above_its_share():
    # the loss rose over the second interval, which moved 0.5 of the drift's 1.0: exactly `uphill`, not above
    edge = said([(0, 1.0, {"drift": 0.0}), (1, 0.9, {"drift": 0.5}), (2, 1.2, {"drift": 1.0})])
    assert "drift_uphill" not in [k for _, k in kinds(edge)]
    out = said([(0, 1.0, {"drift": 0.0}), (1, 0.9, {"drift": 0.3}), (2, 1.2, {"drift": 1.0}), (3, 1.5, {"drift": 1.5})])
    assert [(e, k) for e, k in kinds(out) if k == "drift_uphill"] == [(2, "drift_uphill")]  # once
    assert text(out, "drift_uphill") == "70% of the drift so far (0.7 of 1) was travelled while the loss rose: a catapult?"
    # uphill distance adds up over separate rises: 0.3 + 0.25
    added = said([(0, 1.0, {"drift": 0.0}), (1, 0.9, {"drift": 0.4}), (2, 1.0, {"drift": 0.7}), (3, 0.9, {"drift": 0.8}),
                  (4, 1.0, {"drift": 1.05})])
    assert [(e, k) for e, k in kinds(added) if k == "drift_uphill"] == [(4, "drift_uphill")]  # 0.55 of 1.05
    # a drift that went back while the loss rose travelled no distance uphill
    back = said([(0, 1.0, {"drift": 0.0}), (1, 0.9, {"drift": 1.0}), (2, 1.2, {"drift": 0.4})])
    assert "drift_uphill" not in [k for _, k in kinds(back)]


# ---------------------------------------------------------------- analysis: the theory columns and the live series

from engine.trajectory import Trajectory  # noqa: E402


def theory_run() -> Trajectory:
    """Losses at epochs 0-40 (every 10), theory probes at 0-40 and at 50, which has no loss."""
    t = Trajectory()
    t.epoch, t.loss = [0, 10, 20, 30, 40], [1.0, 1.0, 1.0, 2.0, 1.0]
    # PL ratio g/(2L) against the bound λ_min(K_N)/N = 10/10 = 1: equal, short by 1e-7 (rounding), short by half, above
    t.grad_sq = [2.0, 2.0 * (1 - 1e-7), 1.0, 8.0, 2.0]
    t.theory_epoch, t.sharpness = [0, 10, 20, 30, 40, 50], [0.5, 1.0, 1.5, 2.0, 1.2, math.nan]
    t.ntk_full_lambda_min, t.ntk_full_lambda_max = [10.0] * 6, [20.0] * 6
    t.probe_epoch, t.drift, t.ntk_lambda_min, t.ntk_lambda_max = [0, 20, 40], [0.0, 0.5, 1.0], [1.0, 0.9, 0.8], [5.0] * 3
    t.ntk_change = [0.0, 0.2, 0.6]
    return t


def test_theory_summary_names_the_crossings_and_the_compatibility_margin():
    s = analysis.theory_summary(theory_run().arrays(), n_train=10, lr=1.0, ntk_subset=10)
    assert (s["sharpness_0"], s["sharpness_max"]) == (0.5, 2.0)
    assert (s["eta_beta_0"], s["eta_beta_max"], s["eta_beta_max_epoch"]) == (0.5, 2.0, 30.0)
    assert math.isnan(s["eta_beta_final"])  # the last theory probe has no sharpness
    # η·β = 1 is inside the theorem, η·β = 2 is at the stability edge
    assert (s["eta_beta_above_1"], s["eta_beta_above_2"]) == (20.0, 30.0)
    assert (s["step_class_0"], s["step_class_max"], s["step_class_final"]) == (analysis.INSIDE, analysis.UNSTABLE, "unknown")
    # the bound holds at 0 (equal), 10 (within rounding), 30 and 40, fails at 20; epoch 50 has no loss
    assert s["pl_bound_holds_frac"] == pytest.approx(4 / 5)
    # Lipschitz constant of K along the path: max ‖K_t − K_0‖₂ / drift = 0.6; radius 1; margin λ_0 − 0.6·1
    assert s["lipschitz_K"] == pytest.approx(0.6) and s["drift_max"] == 1.0 and s["compat_margin"] == pytest.approx(0.4)
    assert s["pl_mu"] == pytest.approx(0.04)
    assert math.isnan(analysis.theory_summary(theory_run().arrays(), 10, 1.0, ntk_subset=0)["pl_mu"])
    far = theory_run()
    far.ntk_change = [0.0, 0.5, 1.0]  # margin 1 − 1·1 = 0: no μ
    assert math.isnan(analysis.theory_summary(far.arrays(), 10, 1.0, ntk_subset=10)["pl_mu"])


def test_the_compatibility_margin_scales_with_the_radius():
    wide = theory_run()
    wide.drift, wide.ntk_change = [0.0, 1.0, 2.0], [0.0, 0.4, 1.2]  # L = max(0.4/1, 1.2/2) = 0.6, radius 2
    s = analysis.theory_summary(wide.arrays(), n_train=10, lr=1.0, ntk_subset=10)
    assert s["compat_margin"] == pytest.approx(1.0 - 0.6 * 2.0) and math.isnan(s["pl_mu"])  # negative: no μ


def test_undefined_ratios_are_nan_without_numpy_warnings():
    """0/0 and x/0 are NaN and inf by design here (a drift of 0 at θ_0, L = L*): the analysis
    must not spray RuntimeWarnings over a user's terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ratio = analysis.pl_ratio(np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0]), 0.0)
        s = analysis.theory_summary(theory_run().arrays(), n_train=10, lr=1.0, ntk_subset=10)
        zero = theory_run()
        zero.loss = [0.0] * 5  # L = L* = 0 at every theory epoch: the bound's L/(L − L*) is 0/0
        analysis.pl_bound(zero.arrays(), 0.0, 10)
    assert math.isnan(ratio[0]) and ratio[2] == 1.0 and s["lipschitz_K"] == pytest.approx(0.6)


def test_a_geometric_fit_never_grows():
    s = np.arange(50.0)
    rising = np.log(np.exp(0.01 * s))  # log L rising: the geometric model's ρ stops at 1
    for free in (False, True):
        fit = analysis.fit_geometric(s, rising, free)
        assert fit is None or fit["rho"] <= 1.0, free


def test_theory_summary_without_theory_probes_is_undefined_not_an_error():
    t = Trajectory()
    t.epoch, t.loss, t.grad_sq = [0, 1], [1.0, 0.5], [1.0, 0.5]
    s = analysis.theory_summary(t.arrays(), n_train=10, lr=1e-3)
    for key in ("sharpness_0", "eta_beta_max", "eta_beta_max_epoch", "eta_beta_above_1", "pl_bound_holds_frac", "lipschitz_K", "pl_mu"):
        assert math.isnan(s[key]), key
    assert s["step_class_0"] == "unknown"


def test_the_eta_beta_of_a_cosine_schedule_follows_the_schedule():
    a = theory_run().arrays()
    eb = analysis.eta_beta(a, 1.0, "cosine", total=40)
    np.testing.assert_allclose(eb[:5], [0.5, 1.0 * (1 + math.cos(math.pi / 4)) / 2, 0.75, 2.0 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0],
                               atol=1e-12)
    s = analysis.theory_summary(a, 10, 1.0, "cosine", 40)
    assert s["eta_beta_max"] == pytest.approx(1.0 * (1 + math.cos(math.pi / 4)) / 2)


def test_pl_bound_is_the_kernel_bound_at_the_theory_epochs():
    ratio, bound = analysis.pl_bound(theory_run().arrays(), 0.0, 10)
    np.testing.assert_allclose(ratio[:5], [1.0, 1 - 1e-7, 0.5, 2.0, 1.0])
    np.testing.assert_allclose(bound[:5], 1.0)
    assert np.isnan(ratio[5]) and np.isnan(bound[5])
    # against L* = 0.5 the bound grows by L/(L − L*)
    _, shifted = analysis.pl_bound(theory_run().arrays(), 0.5, 10)
    assert shifted[0] == pytest.approx(2.0) and shifted[3] == pytest.approx(2.0 / 1.5)
    # no training set size: N is taken as 1, never a division by zero
    assert analysis.pl_bound(theory_run().arrays(), 0.0, 0)[1][0] == pytest.approx(10.0)


def test_live_series_is_what_the_dashboard_draws():
    t = theory_run()
    live = analysis.live_series(t, final=True, n_train=10, lr=1.0)
    assert live["l_star"] == 1.0 and live["l_star_provisional"] is False
    np.testing.assert_allclose(live["subopt"], [0.0, 0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(live["pl_ratio0"], [1.0, 1 - 1e-7, 0.5, 2.0, 1.0])
    np.testing.assert_allclose(live["eta_beta"][:5], [0.5, 1.0, 1.5, 2.0, 1.2])
    assert live["step_class_now"] == "unknown"  # the last theory probe measured no sharpness
    np.testing.assert_allclose(live["pl_bound"][:5], 1.0)
    np.testing.assert_allclose(live["pl_ratio_theory"][:5], [1.0, 1 - 1e-7, 0.5, 2.0, 1.0])
    for key in ("epoch", "loss", "probe_epoch", "drift", "ntk_lambda_min", "theory_epoch"):
        np.testing.assert_array_equal(live[key], t.arrays()[key])
    t.loss[-1] = 3.0
    assert analysis.live_series(t, final=True, lr=1.0)["l_star"] == 3.0  # a run that ended: its last loss
    provisional = analysis.live_series(t, final=False, lr=1.0)
    assert provisional["l_star"] == 1.0 and provisional["l_star_provisional"] is True  # the running minimum, not the last loss
    t.theory_epoch, t.sharpness = t.theory_epoch[:5], t.sharpness[:5]
    t.ntk_full_lambda_min, t.ntk_full_lambda_max = t.ntk_full_lambda_min[:5], t.ntk_full_lambda_max[:5]
    assert analysis.live_series(t, final=True, lr=1.0)["step_class_now"] == analysis.OUTSIDE  # η·β = 1.2 now
    cosine = analysis.live_series(t, final=True, lr=1.0, schedule="cosine", total=40)
    assert cosine["eta_beta"][2] == pytest.approx(0.75)


def test_at_epochs_and_drift_uphill():
    a = theory_run().arrays()
    np.testing.assert_array_equal(analysis.at_epochs(a, "loss", np.array([0.0, 30.0, 35.0])), [1.0, 2.0, np.nan])
    assert np.isnan(analysis.at_epochs(Trajectory().arrays(), "loss", np.array([0.0]))).all()
    drift, loss = np.array([0.0, 0.1, 0.5, 0.6]), np.array([1.0, 0.9, 2.0, 1.5])
    assert analysis.drift_uphill(drift, loss) == pytest.approx(0.4 / 0.6)
    assert analysis.drift_uphill(drift, np.array([1.0, 0.9, 0.8, 0.7])) == 0.0  # downhill all the way
    assert analysis.drift_uphill(np.array([0.0, 0.5, 0.2]), np.array([1.0, 0.9, 2.0])) == 0.0  # went back while rising
    assert analysis.drift_uphill(np.array([0.0, np.nan, 0.5]), np.array([1.0, 5.0, 2.0])) == 1.0  # NaN probes are skipped
    assert math.isnan(analysis.drift_uphill(np.array([0.5]), np.array([1.0])))
    assert math.isnan(analysis.drift_uphill(np.array([0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0])))
    assert analysis.drift_uphill(np.array([0.0, 0.4]), np.array([1.0, 1.0])) == 0.0  # a flat loss did not rise


# ---------------------------------------------------------------- theory: spectra, power iteration, advice

import dataclasses  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

import engine  # noqa: E402
from engine import theory  # noqa: E402
from engine.data import Dataset  # noqa: E402
from engine.ntk import empirical_ntk, input_gram  # noqa: E402


def linear_problem(eigenvalues=(4.0, 1.0, 0.25)) -> tuple[nn.Module, Dataset]:
    """A linear model on inputs with X^T X / N = diag(eigenvalues): the Hessian of the squared loss."""
    n = len(eigenvalues)
    model = nn.Linear(n, 1, bias=False).double()
    x = torch.diag(torch.tensor(eigenvalues, dtype=torch.float64).sqrt() * math.sqrt(n))
    return model, Dataset(x, torch.zeros(n, 1, dtype=torch.float64), "synthetic", "")


def test_spectrum_ends_are_the_smallest_and_largest_eigenvalue():
    kernel = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, -0.5]], dtype=torch.float32)
    low, high = theory.spectrum_ends(kernel)
    assert (low, high) == (pytest.approx(-0.5), pytest.approx(3.0))
    nan = kernel.clone()
    nan[0, 0] = math.nan  # a diverged model's kernel: no spectrum, not a LAPACK error
    assert all(math.isnan(v) for v in theory.spectrum_ends(nan))


def test_full_ntk_ends_with_or_without_the_input_gram():
    torch.manual_seed(0)
    model = engine.models.MLP(5, 4, 1, 1).double()
    data = Dataset(torch.randn(6, 5, dtype=torch.float64), torch.zeros(6, 1, dtype=torch.float64), "synthetic", "")
    eig = torch.linalg.eigvalsh(empirical_ntk(model, data.x))
    ends = theory.full_ntk_ends(model, data)
    assert ends == (pytest.approx(eig[0].item()), pytest.approx(eig[-1].item()))
    assert theory.full_ntk_ends(model, data, input_gram(data.x)) == (pytest.approx(ends[0]), pytest.approx(ends[1]))


def count_products(monkeypatch, calls: list) -> None:
    """Count the Hessian-vector products PowerIteration asks for."""
    real = theory.hessian

    def counted(*args, **kw):
        product = real(*args, **kw)
        return lambda vector: calls.append(1) or product(vector)

    monkeypatch.setattr(theory, "hessian", counted)


def test_power_iteration_finds_the_top_curvature_and_warm_starts(monkeypatch):
    model, data = linear_problem()
    calls = []
    count_products(monkeypatch, calls)
    cold = theory.PowerIteration()
    assert cold.iterations == 3 and cold.vector is None
    first = cold(model, data)
    assert len(calls) == 3 and first < 4.0  # three products from a random start: not there yet
    # more iterations converge; the converged vector is kept for the next call
    estimate = cold(model, data, iterations=200)
    assert estimate == pytest.approx(4.0, rel=1e-4) and len(calls) < 3 + 200  # stopped at the tolerance
    calls.clear()
    assert cold(model, data, iterations=1) == pytest.approx(4.0, rel=1e-4) and len(calls) == 1  # warm: one product suffices
    assert cold.vector[0].shape == model.weight.shape and not cold.vector[0].requires_grad
    # the same random start every time a fresh one begins: a run's probes are reproducible
    assert theory.PowerIteration()(model, data) == first


def test_every_power_iteration_estimate_lies_in_the_spectrum():
    model, data = linear_problem()
    for seed_vector in (None, [torch.tensor([[3.0, -2.0, 5.0]], dtype=torch.float64)]):
        once = theory.PowerIteration(iterations=1, vector=seed_vector)(model, data)  # a Rayleigh quotient
        assert 0.25 <= once <= 4.0, seed_vector


def test_the_tolerance_is_relative_to_the_curvature(monkeypatch):
    calls = []
    count_products(monkeypatch, calls)
    counts = []
    for scale in (1.0, 1e4):
        model, data = linear_problem((4.0 * scale, 1.0 * scale, 0.25 * scale))
        calls.clear()
        estimate = theory.PowerIteration(iterations=500, tolerance=1e-6)(model, data)
        assert estimate == pytest.approx(4.0 * scale, rel=1e-5)
        counts.append(len(calls))
    assert counts[0] == counts[1] < 500  # the same number of products whatever the loss's scale


def test_power_iteration_with_micro_batches_equals_the_full_batch(monkeypatch):
    model, data = linear_problem((9.0, 1.0, 0.5, 0.1))
    whole_set = []  # micro-batches go through hvp, one micro-batch's graph at a time
    real = theory.hvp
    monkeypatch.setattr(theory, "hvp", lambda model, data, v, micro_batch=0: whole_set.append(micro_batch) or real(model, data, v, micro_batch))
    whole = theory.PowerIteration(iterations=50, tolerance=1e-12)(model, data)
    split = theory.PowerIteration(iterations=50, tolerance=1e-12)(model, data, micro_batch=1)
    assert whole == pytest.approx(9.0, rel=1e-6) and split == pytest.approx(whole, rel=1e-9)
    assert whole_set and set(whole_set) == {1}  # the whole set at once reuses one graph instead


def test_the_reused_graph_gives_the_products_hvp_gives(monkeypatch):
    model, data = linear_problem((9.0, 1.0, 0.5, 0.1))
    vectors = [[torch.randn(1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(i))] for i in range(3)]
    expected = [theory.hvp(model, data, v)[0] for v in vectors]
    calls = []
    real = theory.hvp
    monkeypatch.setattr(theory, "hvp", lambda model, data, v, micro_batch=0: calls.append(micro_batch) or real(model, data, v, micro_batch))
    for micro_batch in (0, 4, 1):  # 4 = N: the whole set at once, so the graph is reused too
        product = theory.hessian(model, data, micro_batch)
        for v, hv in zip(vectors, expected):  # the same graph, product after product
            assert torch.allclose(product(v)[0], hv, rtol=1e-12), micro_batch
    assert calls == [1, 1, 1]  # only the micro-batched products went through hvp


def test_power_iteration_stops_when_two_estimates_agree_exactly(monkeypatch):
    calls = []
    count_products(monkeypatch, calls)
    model, data = linear_problem((4.0,))  # one direction: every estimate is exactly 4
    assert theory.PowerIteration(iterations=10, tolerance=0.0)(model, data) == 4.0
    assert len(calls) == 2  # a change of 0 is within a tolerance of 0


def test_power_iteration_of_a_zero_hessian_is_zero():
    model, data = linear_problem((1.0, 1.0))
    data = Dataset(torch.zeros_like(data.x), data.y, "synthetic", "")  # the loss does not depend on θ
    assert theory.PowerIteration()(model, data) == 0.0


def test_advice_classes_at_the_boundaries():
    at_edge = theory.Advice("a", lr=0.002, sharpness=1000.0, gauss_newton=math.nan)
    assert at_edge.unstable and at_edge.step_class == analysis.UNSTABLE  # η = 2/β is not stable
    inside = theory.Advice("b", lr=0.001, sharpness=1000.0, gauss_newton=math.nan)
    assert not inside.unstable and inside.step_class == analysis.INSIDE  # η = 1/β is inside the theorem


def test_advice_with_momentum_uses_heavy_balls_edge_and_never_claims_the_theorem():
    # heavy ball with μ = 0.9 is stable on a quadratic of curvature β while η·β < 2(1 + μ) = 3.8
    below = theory.Advice("a", lr=0.0037, sharpness=1000.0, gauss_newton=math.nan, momentum=0.9)
    assert below.max_stable_lr == pytest.approx(0.0038) and not below.unstable and below.step_class == analysis.OUTSIDE
    at_edge = theory.Advice("b", lr=0.0038, sharpness=1000.0, gauss_newton=math.nan, momentum=0.9)
    assert at_edge.unstable and at_edge.step_class == analysis.UNSTABLE
    small = theory.Advice("c", lr=0.0005, sharpness=1000.0, gauss_newton=math.nan, momentum=0.9)
    assert small.step_class == analysis.OUTSIDE  # η ≤ 1/β, but the theorem covers plain GD only
    assert small.effective_lr == pytest.approx(0.005)  # η/(1 − μ)


def tiny_run(label: str, lr: float = 1e-3, seed: int = 0, n_train: int = 100, preset: str = "mnist", micro_batch: int = 0):
    spec = engine.load_spec(preset, {"model.width": 4, "model.depth": 1, "train.seeds": [seed], "data.n_train": n_train,
                                     "probes.micro_batch": micro_batch})
    return dataclasses.replace(spec, label=label, optim=dataclasses.replace(spec.optim, lr=lr))


class CountedSharpness:
    """Stands in for the 100-step power iteration: a number that depends on θ_0 and the data."""

    calls: list = []

    def __init__(self, **settings):
        self.settings = settings

    def __call__(self, model, data, micro_batch=0):
        CountedSharpness.calls.append(micro_batch)
        return float(sum(p.detach().abs().sum() for p in model.parameters()) + data.x.abs().sum())


def test_advise_shares_only_what_shares_an_initialisation(monkeypatch):
    monkeypatch.setattr(theory, "PowerIteration", CountedSharpness)
    CountedSharpness.calls = []
    torch.manual_seed(0)
    data, other = Dataset(torch.randn(6, 784), torch.randn(6, 1), "synthetic", ""), Dataset(torch.randn(6, 784), torch.randn(6, 1), "synthetic", "")
    runs = [(tiny_run("a"), data), (tiny_run("a slow", lr=1e-4), data), (tiny_run("seed 1", seed=1), data),
            (tiny_run("more data", n_train=200, micro_batch=3), other)]
    a, slow, seed1, more = theory.advise(runs, torch.device("cpu"))
    assert CountedSharpness.calls == [0, 0, 3]  # "a slow" shares θ_0 and the data of "a"; the run's micro-batches
    assert (a.label, a.lr, slow.label, slow.lr) == ("a", 1e-3, "a slow", 1e-4)
    assert slow.sharpness == a.sharpness and slow.gauss_newton == a.gauss_newton
    assert len({a.sharpness, seed1.sharpness, more.sharpness}) == 3
    model = engine.build_model(runs[0][0])
    assert a.sharpness == CountedSharpness()(model, data) and a.max_stable_lr == pytest.approx(2.0 / a.sharpness)
    assert a.gauss_newton == pytest.approx(theory.full_ntk_ends(model, data)[1] / 6, rel=1e-6)


def test_advise_without_curvature_has_no_step_limit_and_no_gauss_newton_off_the_mlp(monkeypatch):
    monkeypatch.setattr(theory, "PowerIteration", lambda **settings: lambda model, data, micro_batch=0: 0.0)
    data = Dataset(torch.zeros(2, 784), torch.zeros(2, 1), "synthetic", "")
    (flat,) = theory.advise([(tiny_run("flat"), data)], torch.device("cpu"))
    assert flat.max_stable_lr == math.inf and not flat.unstable
    monkeypatch.setattr(theory, "PowerIteration", lambda **settings: lambda model, data, micro_batch=0: 4.0)
    monkeypatch.setattr(theory, "full_ntk_ends", lambda *args: pytest.fail("no kernel off the MLP"))
    (resnet,) = theory.advise([(tiny_run("resnet", preset="cifar"), data)], torch.device("cpu"))
    assert math.isnan(resnet.gauss_newton) and resnet.max_stable_lr == pytest.approx(2 * 1.9 / 4)  # the preset's momentum 0.9


# ---------------------------------------------------------------- analysis: small pure functions at their edges


def test_the_stable_regime_rounds_to_the_nearest_epoch():
    assert analysis.stable_regime(9, 0.25, 0.95) == (2, 9)  # 2.25 -> 2, 8.55 -> 9
    assert analysis.stable_regime(0, 0.1, 0.9) == (0, 0)


def test_the_proxy_view_needs_three_points_and_calls_a_flat_tail_a_perfect_fit():
    epochs = np.arange(3.0)
    assert analysis.contraction_proxy(epochs, 0.5**epochs)[0] == pytest.approx(0.5)
    assert analysis.contraction_proxy(epochs, np.array([0.5, 0.5, 0.5])) == (pytest.approx(1.0), 1.0)
    rho, r2 = analysis.contraction_proxy(np.arange(4.0), np.array([1.0, 0.5, 0.5, 0.125]))
    assert 0 < r2 < 1 and rho == pytest.approx(math.exp(np.polyfit(np.arange(4.0), np.log([1.0, 0.5, 0.5, 0.125]), 1)[0]))


def test_ntk_drift_pct_signs_and_undefined_starts():
    assert analysis.ntk_drift_pct(2.0, 3.0) == pytest.approx(-50.0)  # λ_min rose
    assert analysis.ntk_drift_pct(-2.0, -1.0) == pytest.approx(50.0)
    assert math.isnan(analysis.ntk_drift_pct(math.nan, 1.0)) and math.isnan(analysis.ntk_drift_pct(math.inf, 1.0))


def test_small_helpers_say_nan_for_nothing():
    assert math.isnan(analysis.nan_stat(np.max, np.array([np.nan, np.inf]))) and analysis.nan_stat(np.max, [1.0, np.nan, 3.0]) == 3.0
    assert math.isnan(analysis.first([])) and math.isnan(analysis.last([])) and (analysis.first([2, 3]), analysis.last([2, 3])) == (2.0, 3.0)
    epochs = np.array([5.0, 6.0, 7.0])
    assert analysis.first_epoch(epochs, np.array([False, True, True])) == 6.0
    assert math.isnan(analysis.first_epoch(epochs, np.array([False, False, False])))
    assert analysis.step_class(math.inf) == "unknown" and analysis.step_class(-1.0) == analysis.INSIDE


def test_step_sizes_are_constant_unless_a_cosine_has_a_length():
    epochs = np.array([0.0, 50.0, 100.0])
    assert analysis.step_sizes(epochs, 0.1, "cosine", 0).tolist() == [0.1, 0.1, 0.1]
    assert analysis.step_sizes(epochs, 0.1, "linear", 100).tolist() == [0.1, 0.1, 0.1]
    np.testing.assert_allclose(analysis.step_sizes(np.array([25.0]), 0.1, "cosine", 100), [0.1 * (1 + math.cos(math.pi / 4)) / 2])


def test_bic_of_known_residuals():
    assert analysis.bic(np.array([1.0, -1.0, 1.0, -1.0]), 2) == pytest.approx(2 * math.log(4))
    assert analysis.bic(np.array([2.0, 2.0]), 1) == pytest.approx(2 * math.log(4.0) + math.log(2))
    assert math.isfinite(analysis.bic(np.zeros(4), 2))  # a perfect fit has a finite criterion
    assert analysis.bic(np.zeros(4), 3) - analysis.bic(np.zeros(4), 2) == pytest.approx(math.log(4))


def test_inside_moves_finite_bounds_a_hair_into_the_feasible_set():
    bounds = np.array([0.0, 1.0, -5.0, -np.inf, np.inf])
    up, down = analysis.inside(bounds, +1), analysis.inside(bounds, -1)
    assert (up[:3] > bounds[:3]).all() and (down[:3] < bounds[:3]).all()
    assert (up[3], up[4], down[3], down[4]) == (-np.inf, np.inf, -np.inf, np.inf)
    np.testing.assert_allclose(up[:3] - bounds[:3], [1e-21, 1e-9, 5e-9], rtol=1e-3)  # relative to the bound: a hair


def test_consecutive_steps_need_two_epochs_one_apart():
    assert analysis.consecutive_steps(np.array([3.0])).tolist() == []
    assert analysis.consecutive_steps(np.array([0, 1, 2, 4, 5, 7])).tolist() == [0, 1, 3]


def test_sufficient_decrease_at_its_edge_and_within_float32_slack():
    loss, grad_sq, eta = np.array([1.0, 0.5]), np.array([2.0, 0.0]), np.array([0.5, 0.5])
    steps = np.array([0])
    assert analysis.sufficient_decrease(loss, grad_sq, eta, steps).tolist() == [True]  # 0.5 = 1 − (0.5/2)·2 exactly
    assert analysis.sufficient_decrease(np.array([1.0, 0.5 + 0.5e-6]), grad_sq, eta, steps).tolist() == [True]
    assert analysis.sufficient_decrease(np.array([1.0, 0.5 + 2e-6]), grad_sq, eta, steps).tolist() == [False]
    # the slack is relative to |L_t|: a negative loss (a shifted objective) has the same slack
    assert analysis.sufficient_decrease(np.array([-1.0, -1.5 + 0.5e-6]), grad_sq, eta, steps).tolist() == [True]


def test_observed_rate_needs_two_positive_losses_at_increasing_epochs():
    assert analysis.observed_rate(np.array([0.0, 2.0]), np.array([1.0, 0.25])) == pytest.approx(0.5)
    assert analysis.observed_rate(np.array([0.0, 1.0, 2.0]), np.array([1.0, np.nan, 0.25])) == pytest.approx(0.5)
    assert analysis.observed_rate(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)  # 0 is no loss to log
    assert math.isnan(analysis.observed_rate(np.array([0.0, 1.0]), np.array([1.0, np.nan])))
    assert math.isnan(analysis.observed_rate(np.array([3.0, 3.0]), np.array([1.0, 0.5])))
    assert math.isnan(analysis.observed_rate(np.array([3.0, 2.0]), np.array([1.0, 0.5])))


def test_pl_rate_and_explained_at_their_edges():
    assert math.isnan(analysis.pl_rate(1.0, math.nan)) and analysis.pl_rate(2.0, 0.1) == pytest.approx(0.8)
    assert analysis.explained(0.5, 0.25) == pytest.approx(0.5)
    for rho_pl, rho_obs in ((0.0, 0.5), (1.0, 0.5), (0.5, 0.0), (0.5, 1.0), (-0.5, 0.5), (0.5, 1.5)):
        assert math.isnan(analysis.explained(rho_pl, rho_obs)), (rho_pl, rho_obs)


def test_drift_speedup_needs_a_positive_first_step():
    epochs = np.array([0.0, 1.0, 2.0, 4.0])
    assert analysis.drift_speedup(epochs, np.array([0.0, 0.1, 0.2, 0.8])) == pytest.approx(3.0)  # 0.3 per epoch over 2 epochs
    assert math.isnan(analysis.drift_speedup(epochs, np.array([0.0, 0.0, 0.2, 0.8])))
    assert math.isnan(analysis.drift_speedup(epochs, np.array([0.1, 0.0, 0.2, 0.8])))
    assert analysis.drift_speedup(epochs, np.array([0.0, 0.1, np.nan, 0.8])) == pytest.approx(0.7 / 3 / 0.1)
    assert math.isnan(analysis.drift_speedup(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.1, 0.2])))  # no time for a speed


def test_late_growth_is_the_last_fifth_of_the_epochs():
    epochs = np.array([0.0, 50.0, 100.0])
    assert analysis.late_growth(epochs, np.array([0.0, 0.5, 1.0])) == pytest.approx(0.2)  # linear growth
    assert analysis.late_growth(np.array([0.0, 10.0, 20.0, 100.0]), np.array([0.0, 0.9, 1.0, 1.0])) == 0.0
    assert math.isnan(analysis.late_growth(epochs, np.array([0.0, 0.0, 0.0])))
    assert math.isnan(analysis.late_growth(epochs[:2], np.array([0.0, 1.0])))
    assert analysis.late_growth(np.array([0.0, 50.0, 90.0, 100.0]), np.array([0.0, 0.5, np.nan, 1.0])) == pytest.approx(0.2)


def test_loss_spike_skips_undefined_losses():
    assert analysis.loss_spike(np.array([2.0, np.nan, 1.0, 0.0, 3.0])) == pytest.approx(3.0)
    assert math.isnan(analysis.loss_spike(np.array([1.0, 0.0])))


def test_local_regime_with_a_non_positive_or_missing_lambda_0():
    out = local_probe([0.0, 0.5], [1.0, 1.0], [0.0, 0.5])
    assert math.isnan(out["lambda_rise_pct"]) and math.isnan(out["lambda_fall_pct"])
    assert out["weyl_min"] == pytest.approx(-0.5) and out["weyl_negative_epoch"] == 0.0 and out["weyl_min_epoch"] == 10.0
    assert local_probe([-1.0, 0.5], [1.0, 1.0], [0.0, 0.5])["weyl_negative_epoch"] == 0.0
    none = local_probe([np.nan, 1.0], [np.nan, 1.0], [np.nan, 0.5])
    assert math.isnan(none["weyl_min_epoch"]) and math.isnan(none["kernel_change_rel_max"]) and math.isnan(none["lambda_rise_pct"])
    flat = local_probe([1.0, 1.0], [2.0, 2.0], [0.0, 0.0])
    assert math.copysign(1.0, flat["lambda_rise_pct"]) == 1.0 and math.copysign(1.0, flat["lambda_fall_pct"]) == 1.0  # no −0 %
    assert flat["weyl_min_epoch"] == 0.0  # the first probe where the minimum is reached


def local_probe(lam, top, change):
    return analysis.local_regime({"probe_epoch": np.arange(len(lam)) * 10.0, "ntk_lambda_min": np.array(lam, float),
                                  "ntk_lambda_max": np.array(top, float), "ntk_change": np.array(change, float)})


# ---------------------------------------------------------------- analysis: the decay model's parameters

DECAY_WINDOW = np.arange(100, 301, dtype=float)


def test_a_power_law_reports_its_power_offset_and_floor_in_absolute_epochs():
    fit = analysis.decay_model(DECAY_WINDOW, 0.01 + 5 / (DECAY_WINDOW + 50), margin=10.0)
    assert fit["decay_model"] == "power-law"
    assert fit["decay_p"] == pytest.approx(1.0, rel=1e-6) and fit["decay_t0"] == pytest.approx(50.0, rel=1e-4)
    assert fit["decay_l_star"] == pytest.approx(0.01, rel=1e-4)  # the power law's L*, not the geometric one's
    assert fit["decay_delta_bic"] == pytest.approx(fit["bic_power"] - fit["bic_geometric"])


def test_a_power_law_without_a_floor_reports_l_star_zero():
    square = analysis.decay_model(DECAY_WINDOW, 5 / (DECAY_WINDOW + 50) ** 2, margin=10.0)
    assert square["decay_p"] == pytest.approx(2.0, rel=1e-6) and square["decay_t0"] == pytest.approx(50.0, rel=1e-4)
    assert square["decay_l_star"] == pytest.approx(0.0, abs=1e-9)


def test_the_margin_is_inclusive_for_geometric_decay():
    noisy = 0.5 * 0.98**DECAY_WINDOW * np.exp(0.03 * np.sin(DECAY_WINDOW))
    geo = analysis.decay_model(DECAY_WINDOW, noisy, margin=10.0)
    assert geo["decay_model"] == "geometric"
    assert analysis.decay_model(DECAY_WINDOW, noisy, margin=geo["decay_delta_bic"])["decay_model"] == "geometric"


def test_the_margin_is_inclusive_for_a_power_law():
    loss = 1 / np.sqrt(DECAY_WINDOW)
    delta = analysis.decay_model(DECAY_WINDOW, loss, margin=10.0)["decay_delta_bic"]
    assert delta < 0 and analysis.decay_model(DECAY_WINDOW, loss, margin=-delta)["decay_model"] == "power-law"


def test_eight_usable_points_are_enough_and_unusable_ones_do_not_count():
    epochs = np.arange(8.0)
    fit = analysis.decay_model(epochs, 0.5**epochs, margin=10.0)
    assert fit["decay_model"] == "geometric" and fit["contraction"] == pytest.approx(0.5, rel=1e-9)
    assert fit["decay_l_star"] == pytest.approx(0.0, abs=1e-12)
    spoiled = 0.5**np.arange(9.0)
    spoiled[4] = 0.0  # a zero loss has no logarithm: 8 usable points remain
    assert analysis.decay_model(np.arange(9.0), spoiled, margin=10.0)["decay_model"] == "geometric"
    spoiled[5] = np.nan  # 7 remain
    empty = analysis.decay_model(np.arange(9.0), spoiled, margin=10.0)
    assert empty["decay_model"] == "undecided" and all(math.isnan(v) for k, v in empty.items() if k != "decay_model")
    unknown_epochs = np.arange(9.0)
    unknown_epochs[0] = np.nan
    assert analysis.decay_model(unknown_epochs, 0.5 ** np.arange(9.0), margin=10.0)["decay_model"] == "geometric"
    unknown_epochs[1] = np.nan
    assert analysis.decay_model(unknown_epochs, 0.5 ** np.arange(9.0), margin=10.0)["decay_model"] == "undecided"


def test_the_two_families_fitted_alone():
    s = np.arange(8.0)
    free = analysis.fit_geometric(s, np.log(0.1 + 0.5**s), l_star_free=True)
    assert free["rho"] == pytest.approx(0.5, rel=1e-6) and free["l_star"] == pytest.approx(0.1, rel=1e-6)
    fixed = analysis.fit_geometric(s, np.log(0.1 + 0.5**s), l_star_free=False)
    assert fixed["l_star"] == 0.0 and fixed["bic"] > free["bic"] + 10  # L* = 0 cannot bend to the floor
    power = analysis.fit_power(s, np.log(0.2 + 3 / (s + 2) ** 2), l_star_free=True)
    assert power["p"] == pytest.approx(2.0, rel=1e-6) and power["u"] == pytest.approx(2.0, rel=1e-6)
    assert power["l_star"] == pytest.approx(0.2, rel=1e-6)
    bare = analysis.fit_power(s, np.log(3 / (s + 2) ** 2), l_star_free=False)
    assert bare["l_star"] == 0.0 and bare["p"] == pytest.approx(2.0, rel=1e-6) and bare["u"] == pytest.approx(2.0, rel=1e-6)
    # the power is bounded by MAX_POWER: a geometric decay is not a power law with a huge p
    steep = analysis.fit_power(np.arange(50.0), np.log(0.5 ** np.arange(50.0)), l_star_free=False)
    assert steep["p"] <= analysis.MAX_POWER + 1e-9


def test_fit_keeps_the_best_start_and_skips_failures():
    calls = []

    def residual(p):
        calls.append(p.copy())
        return p - np.array([3.0])

    fit = analysis._fit(residual, [np.array([0.0]), np.array([10.0])], np.array([-5.0]), np.array([5.0]))
    assert fit.x == pytest.approx([3.0]) and fit.cost == pytest.approx(0.0)
    assert calls[0][0] <= 5.0  # a start outside the bounds is clipped into them
    assert analysis._fit(lambda p: np.array([np.nan]), [np.array([0.0])], np.array([-1.0]), np.array([1.0])) is None
    assert analysis._fit(residual, [np.array([0.0])], np.array([1.0]), np.array([-1.0])) is None  # infeasible: skipped


# ---------------------------------------------------------------- analysis: the summary row and the mean row


def short_run() -> Trajectory:
    """Eleven epochs: a geometric loss with one rise at the step 7 → 8 (above epoch 6's), probes every 2 epochs."""
    t = Trajectory()
    t.epoch = list(range(11))
    t.loss = [0.5**e for e in range(11)]
    t.loss[8] = t.loss[6] * 1.5
    t.grad_sq = [2.0 * 0.5 * l for l in t.loss]  # PL ratio₀ = 0.5 everywhere
    t.probe_epoch, t.drift = [0, 2, 4, 6, 8, 10], [0.0, 0.2, 0.3, 0.35, 0.9, 1.0]
    t.ntk_lambda_min, t.ntk_lambda_max, t.ntk_change = [1.0] * 6, [4.0] * 6, [0.0] * 6
    return t


def test_the_summary_row_of_a_short_run():
    t = short_run()
    s = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=0.5)
    assert (s["stable_from"], s["stable_to"]) == (2, 8)
    assert s["loss_final"] == t.loss[-1] and s["l_star"] == t.loss[-1] and s["l_star_provisional"] is False
    assert s["pl_min"] == pytest.approx(0.5) and s["pl_median"] == pytest.approx(0.5)
    # the steps 2→3 … 7→8 of the stable regime: one of six rose, and it is the one without sufficient decrease
    assert s["loss_rise_frac"] == pytest.approx(1 / 6) and s["sufficient_decrease_frac"] == pytest.approx(5 / 6)
    assert s["rho_pl"] == pytest.approx(1 - 0.5 * 0.5)
    assert s["rho_observed"] == pytest.approx((t.loss[8] / t.loss[2]) ** (1 / 6))
    assert s["pl_explains"] == pytest.approx(math.log(0.75) / math.log(s["rho_observed"]))
    assert s["loss_spike"] == pytest.approx(3.0)
    assert s["drift_speedup"] == pytest.approx((0.55 / 2) / (0.2 / 2))
    assert s["drift_uphill"] == pytest.approx(0.55 / 1.0)  # the loss rose from epoch 6 to 8: 0.55 of the drift
    assert s["drift_late_growth"] == pytest.approx((1.0 - 0.9) / 1.0)
    cosine = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=0.5, schedule="cosine", total=10)
    assert math.isnan(cosine["rho_pl"]) and math.isnan(cosine["pl_explains"])  # ρ_PL needs a constant step
    sgd = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=0.5, gd=False)
    assert math.isnan(sgd["loss_rise_frac"]) and math.isnan(sgd["sufficient_decrease_frac"]) and math.isnan(sgd["rho_pl"])


def test_the_summary_of_a_run_with_gaps_in_its_epochs():
    t = short_run()
    keep = [0, 1, 2, 3, 5, 6, 9, 10]  # steps only where epochs are consecutive: 2→3 and 5→6 in the regime
    t.epoch, t.loss, t.grad_sq = [t.epoch[i] for i in keep], [t.loss[i] for i in keep], [t.grad_sq[i] for i in keep]
    s = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=0.5)
    assert s["sufficient_decrease_frac"] == 1.0 and s["loss_rise_frac"] == 0.0


def test_the_summary_of_an_empty_run_is_undefined_not_an_error():
    s = analysis.summarize(Trajectory(), 3, 0.1, 0.9, final=False, lr=1e-3)
    assert s["params"] == 3 and (s["stable_from"], s["stable_to"]) == (0, 0) and s["decay_model"] == "undecided"
    for key in ("l_star", "pl_min", "loss_final", "sufficient_decrease_frac", "loss_rise_frac", "rho_observed", "lambda_0"):
        assert math.isnan(s[key]), key


def test_the_mean_row_averages_what_is_defined_and_keeps_shared_params():
    rows = [{"lambda_0": 1.0, "l_star": 0.1, "pl_min": 0.3, "params": 7, "contraction": 0.9},
            {"lambda_0": 3.0, "l_star": math.nan, "pl_min": 0.2, "params": 7},
            {"lambda_0": math.nan, "l_star": 0.3, "pl_min": math.nan, "params": 7, "contraction": 0.8}]
    mean = analysis.mean_summary(rows)
    assert mean["lambda_0"] == 2.0 and mean["l_star"] == pytest.approx(0.2) and mean["contraction"] == pytest.approx(0.85)
    assert mean["pl_min"] == 0.2 and mean["params"] == 7 and math.isnan(mean["pl_median"])  # no trajectories, no pooled median
    assert math.isnan(mean["loss_final"])
    assert "params" not in analysis.mean_summary([{"params": 7}, {"params": 8}])


def test_stable_pl0_reads_the_window_from_the_summary():
    t = short_run()
    np.testing.assert_allclose(analysis.stable_pl0(t, {"stable_from": 3, "stable_to": 5}), [0.5, 0.5, 0.5])
    assert analysis.stable_pl0(t, {}).size == 1  # no window known: epoch 0 alone


def test_advise_converges_beta(monkeypatch):
    """advise's own power iteration on a linear model whose Hessian is diag(4, 3.6, 1): a slow
    spectral gap, so a loose tolerance or a few iterations would miss β = 4 by more than 1e-5."""
    model, data = linear_problem((4.0, 3.6, 1.0))
    monkeypatch.setattr(engine.models, "build_model", lambda run, outputs=None: model)
    monkeypatch.setattr(theory, "full_ntk_ends", lambda model, data: (1.0, 12.0))  # the kernel is not under test here
    (advice,) = theory.advise([(tiny_run("linear"), data)], torch.device("cpu"))
    assert advice.sharpness == pytest.approx(4.0, rel=1e-5) and advice.max_stable_lr == pytest.approx(0.5, rel=1e-5)
    assert advice.gauss_newton == 12.0 / 3


def test_advise_keeps_runs_of_other_architectures_apart(monkeypatch):
    monkeypatch.setattr(theory, "PowerIteration", CountedSharpness)
    CountedSharpness.calls = []
    data = Dataset(torch.ones(2, 784), torch.zeros(2, 1), "synthetic", "")
    narrow, wide = tiny_run("narrow"), tiny_run("wide")
    wide = dataclasses.replace(wide, model=dataclasses.replace(wide.model, width=8))
    a, b = theory.advise([(narrow, data), (wide, data)], torch.device("cpu"))
    assert len(CountedSharpness.calls) == 2 and a.sharpness != b.sharpness


def test_a_flat_but_positive_curvature_still_limits_the_step(monkeypatch):
    monkeypatch.setattr(theory, "PowerIteration", lambda **settings: lambda model, data, micro_batch=0: 0.5)
    (advice,) = theory.advise([(tiny_run("flat"), Dataset(torch.zeros(2, 784), torch.zeros(2, 1), "synthetic", ""))], torch.device("cpu"))
    assert advice.max_stable_lr == 4.0


def test_the_proxy_fit_reports_its_r_squared():
    x, y = np.arange(4.0), np.log([1.0, 0.5, 0.5, 0.125])
    slope, intercept = np.polyfit(x, y, 1)
    expected = 1 - ((y - (slope * x + intercept)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert analysis.contraction_proxy(x, np.exp(y))[1] == pytest.approx(expected, rel=1e-12)


def test_the_summary_passes_the_theory_settings_through():
    t = theory_run()
    s = analysis.summarize(t, 1, 0.0, 1.0, final=True, n_train=10, lr=1.0, ntk_subset=10)
    assert s["pl_bound_holds_frac"] == pytest.approx(0.8) and s["pl_mu"] == pytest.approx(0.04)
    assert (s["eta_beta_above_1"], s["eta_beta_above_2"]) == (20.0, 30.0)
    cosine = analysis.summarize(t, 1, 0.0, 1.0, final=True, n_train=10, lr=1.0, schedule="cosine", total=40)
    assert cosine["eta_beta_max"] == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_verdict_texts_round_their_numbers_as_documented():
    lazy = V.stays_lazy({"kernel_change_rel_max": 0.41234, "lambda_rise_pct": 30.4, "lambda_fall_pct": 12.6}, GUIDE)
    assert lazy.text == "kernel: ‖K_t − K_0‖₂/‖K_0‖₂ up to 0.412 (≤ 0.5); λ_min rose up to 30% (≤ 50%) and fell up to 13% (≤ 50%)"
    drift = V.drift_contained({"drift_speedup": 1.5, "drift_uphill": 0.1, "drift_late_growth": 0.194, "drift_final": 0.3},
                              GuideSpec(saturation=0.6))
    assert "last 20% of epochs added 19% of it (< 60%)" in drift.text
    weyl = V.weyl_certificate({"weyl_min": -0.5, "weyl_min_epoch": 12345.0, "weyl_negative_epoch": 10234.0, "lambda_0": 1.0}, GUIDE)
    assert "min -0.5 at epoch 12345 (λ_0 = 1)" in weyl.text and "≤ 0 from epoch 10234 on" in weyl.text


def test_summary_steps_start_at_the_windows_first_epoch_and_a_flat_step_is_no_rise():
    t = short_run()
    t.loss = [0.5**e for e in range(11)]
    t.loss[3] = t.loss[2] * 1.5  # the window [2, 8]'s first step rises
    t.loss[6] = t.loss[5]  # a flat step
    s = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=0.5)
    assert s["loss_rise_frac"] == pytest.approx(1 / 6)
    assert "r2_proxy" in s and 0.0 <= s["r2_proxy"] <= 1.0
    t.loss[-1] = 1.0  # a run that ended above its minimum: L* is its last loss all the same
    assert analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=0.5)["l_star"] == 1.0


def test_summary_sufficient_decrease_uses_the_scheduled_step():
    t = short_run()
    t.loss = [0.5**e for e in range(11)]
    t.grad_sq = list(t.loss)  # (η/2)‖∇L‖² = (η/2)·L: halving the loss needs η ≤ 1
    constant = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=1.8)
    assert constant["sufficient_decrease_frac"] == 0.0
    cosine = analysis.summarize(t, 5, 0.2, 0.8, final=True, lr=1.8, schedule="cosine", total=10)
    eta = [1.8 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(2, 8)]
    assert cosine["sufficient_decrease_frac"] == pytest.approx(sum(0.5 <= 1 - h / 2 for h in eta) / 6)
    assert 0 < cosine["sufficient_decrease_frac"] < 1
    assert math.isnan(analysis.pl_rate(math.inf, 0.1))


def test_late_growth_and_loss_spike_edges():
    epochs = np.array([100.0, 150.0, 200.0])  # the cut is at 80% of the span from the first probe: epoch 180
    assert analysis.late_growth(epochs, np.array([0.0, 0.5, 1.0])) == pytest.approx(0.2)
    assert analysis.late_growth(epochs, np.array([0.0, 0.0, 1.0])) == pytest.approx(0.4)  # a drift that started late
    assert math.isnan(analysis.late_growth(epochs, np.array([0.0, 0.5, 0.0])))  # back at θ_0: no share of nothing
    assert analysis.loss_spike(np.array([2.0, 3.0])) == pytest.approx(1.5)  # two losses are enough


def test_a_provisional_summary_takes_the_running_minimum_as_l_star():
    t = short_run()
    t.loss[-1] = 1.0  # still running, and the loss just rose: L* is provisional, the lowest so far
    s = analysis.summarize(t, 5, 0.2, 0.8, final=False, lr=0.5)
    assert s["l_star"] == min(t.loss) and s["l_star_provisional"] is True


class Tiny(dict):
    """A summary in which every measure is 1.234567e-7 unless given: verdict texts then print
    numbers in exponent notation."""

    def get(self, key, default=None):
        return super().get(key, 1.234567e-7)

    def __getitem__(self, key):
        return self.get(key)


def test_verdict_texts_write_small_numbers_with_a_lower_case_exponent():
    import re

    summary = Tiny(decay_model="geometric", step_class_0="inside the theorem", step_class_max="inside the theorem")
    texts = [judge(summary, GuideSpec()).text for judge in V.RUN_VERDICTS]
    assert not any(re.search(r"\dE[-+]\d|INF|NAN", text) for text in texts), texts
    assert sum(bool(re.search(r"\de-0\d", text)) for text in texts) >= 6  # most verdicts print such a number


def test_every_kind_of_annotation_is_said_once_whatever_came_before():
    """Each kind has its own once-key: a run that shows every kind gets every one, once."""
    steps = [
        (0, 1.0, {**kernel(1.0, top=2.0), "drift": 0.0}),
        (1, 1.0, {**kernel(2.0, change=0.2, top=2.0), "drift": 1.0}),  # λ_min rose 100 %
        (2, 5.0, {**kernel(0.4, change=1.5, top=2.0), "drift": 10.0}),  # spike, fell, moved, Weyl ≤ 0, jumped, uphill
        (3, 1.0, {**kernel(-0.1, change=3.0, top=2.0), "drift": 11.0}),  # non-positive
        (4, 9.0, {**kernel(-0.2, change=4.0, top=2.0), "drift": 40.0}),  # all of it again: nothing new
    ]
    out = said(steps)
    seen = [kind for _, kind in kinds(out) if kind != "loss_rose"]  # a rise between probes is said at each one
    assert sorted(seen) == sorted(set(seen)), seen  # none twice
    assert {"lambda_rose", "loss_spike", "lambda_fell", "kernel_moved", "weyl_negative", "drift_jumped",
            "drift_uphill", "lambda_nonpositive"} <= set(seen), seen

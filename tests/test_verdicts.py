"""Verdicts and live annotations on constructed trajectories whose outcomes are known."""

from __future__ import annotations

import math

import engine
from engine import analysis
from engine.annotations import Annotator
from engine.events import EpochMeasured, ProbeMeasured
from engine.record import find_records, read_record
from engine.trajectory import Trajectory
from engine.verdicts import plan_verdicts, run_verdicts


def build(epochs=300, rho=0.98, drift=lambda e: 0.3 * (1 - math.exp(-e / 50)), lam=lambda e: 1.0, jitter=0.0) -> Trajectory:
    t = Trajectory()
    for e in range(epochs + 1):
        sub = rho**e * (1 + jitter * math.sin(e))
        t.add(EpochMeasured(0, e, 0.1 + sub, 2 * 2.0 * sub))
        if e % 10 == 0:
            t.add(ProbeMeasured(0, e, {"drift": drift(e), "ntk_lambda_min": lam(e)}))
    return t


def judged(t: Trajectory) -> dict:
    summary = analysis.summarize(t, 1, 0.1, 0.9, final=True)
    return {v.name: v for v in run_verdicts(t, summary, final=True)}, summary


def test_a_clean_geometric_decay_passes_everything():
    verdicts, _ = judged(build())
    assert all(v.passed for v in verdicts.values()), [v.text for v in verdicts.values() if not v.passed]
    assert verdicts["geometric_decay"].measured > 0.99


def test_a_catapult_fails_containment():
    catapult = build(drift=lambda e: 0.02 * e / 10 if e < 100 else 0.2 + 1.5 * min(1, (e - 100) / 10))
    verdicts, _ = judged(catapult)
    assert not verdicts["drift_contained"].passed and verdicts["drift_contained"].measured > 3


def test_a_lambda_crossing_zero_fails_positivity():
    verdicts, _ = judged(build(lam=lambda e: 1.0 - e / 200))
    assert not verdicts["ntk_positive"].passed and verdicts["ntk_positive"].measured < 0


def test_noisy_decay_fails_geometric_decay():
    verdicts, _ = judged(build(rho=0.999, jitter=0.9))
    assert not verdicts["geometric_decay"].passed


def test_cross_run_verdicts_name_the_run_that_left_and_the_one_that_restored():
    def run(label, width, lr, lam0, lam_t):
        t = build(lam=lambda e: lam0 + (lam_t - lam0) * e / 300)
        verdicts, summary = judged(t)
        return {"label": label, "width": width, "lr": lr, "seed": 0, "summary": summary,
                "verdicts": [v.to_dict() for v in verdicts.values()]}

    runs = [run("m=128", 128, 1e-3, 0.5, 0.6), run("m=1024", 1024, 1e-3, 1.7, 0.5), run("m=1024 slow", 1024, 2.5e-4, 1.7, 1.8)]
    verdicts = {v.name: v for v in plan_verdicts(runs)}
    assert verdicts["lambda0_rises_with_width"].passed
    assert verdicts["left_local_regime"].text.endswith(": m=1024") and not verdicts["left_local_regime"].passed
    assert verdicts["reduced_step_restores"].passed and "m=1024 slow restores" in verdicts["reduced_step_restores"].text


def test_annotations_say_what_happened_with_the_numbers():
    note = Annotator(0, lambda_drop=0.5, drift_jump=3.0, drift_window=3)
    said = []
    for e, loss, drift, lam in [(0, 1.0, 0.0, 2.0), (10, 0.9, 0.1, 1.9), (20, 1.5, 0.12, 0.8), (30, 1.2, 0.9, -0.1)]:
        note.see(EpochMeasured(0, e, loss, 1.0))
        said += note.see(ProbeMeasured(0, e, {"drift": drift, "ntk_lambda_min": lam}))
    kinds = [(a.epoch, a.kind) for a in said]
    assert (20, "loss_rose") in kinds and (20, "lambda_fell") in kinds
    assert (30, "drift_jumped") in kinds and (30, "lambda_nonpositive") in kinds
    fell = next(a for a in said if a.kind == "lambda_fell")
    assert "60%" in fell.text and "2 → 0.8" in fell.text


def test_a_record_keeps_verdicts_and_annotations(make_spec, tmp_path):
    spec = make_spec(train__epochs=60, probes__every=5, probes__ntk_subset=10, optim__lr=4e-3, model__width=1024, data__n_train=200)
    list(engine.run(spec, tmp_path))
    record = read_record(find_records([tmp_path])[0])
    assert set(record.verdict) == {"ntk_positive", "pl_envelope", "geometric_decay", "drift_contained"}
    assert all({"passed", "measured", "threshold", "text"} <= set(v) for v in record.verdict.values())
    assert record.annotations and all({"epoch", "kind", "text"} <= set(a) for a in record.annotations)

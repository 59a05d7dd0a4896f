"""The map of where the local regime ends: each run a cell (stayed local or left, and why), and
the advisor's prediction from η·β₀ counted against what the runs did."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

import engine
from engine.analysis import INSIDE, OUTSIDE, UNSTABLE
from engine.config import Plan
from engine.edge import cell_of, edge_map
from lplr_tui.cli import app
from made_records import trajectory, write_record

LOCAL = [{"name": n, "passed": True} for n in ("stays_lazy", "drift_contained", "no_loss_spike")]


def verdicts(failed: tuple = ()) -> list[dict]:
    return [{"name": v["name"], "passed": v["name"] not in failed} for v in LOCAL]


def entry(width: int, scale: float, failed: tuple = (), state: str = "finished", eta_beta_max: float = math.nan):
    spec = {"model": {"kind": "mlp", "width": width}, "optim": {"lr_scale": scale}}
    summary = {"kernel_change_rel_max": 0.1, "lambda_rise_pct": 30.0, "lambda_fall_pct": 78.0, "decay_model": "geometric",
               "eta_beta_max": eta_beta_max}
    return (f"m={width} η·β₀={scale}", spec, summary, verdicts(failed), state)


def test_a_cell_says_whether_the_run_stayed_and_why_not():
    stayed = cell_of(*entry(128, 0.5))
    assert stayed.left == () and stayed.predicted == INSIDE and stayed.width == 128 and stayed.scale == 0.5
    assert stayed.lambda_change == -78.0  # the larger move, signed: λ_min fell by 78 %
    left = cell_of(*entry(1024, 3.0, ("stays_lazy", "no_loss_spike")))
    assert left.left == ("stays_lazy", "no_loss_spike") and left.predicted == UNSTABLE
    assert cell_of(*entry(256, 1.5, state="interrupted")).left is None  # not finished: not judged


def test_the_prediction_is_counted_against_what_the_runs_did():
    edge = edge_map([entry(128, 0.5), entry(256, 0.5), entry(128, 1.5, ("drift_contained",), eta_beta_max=2.1),
                     entry(256, 1.5, eta_beta_max=1.7), entry(128, 3.0, ("stays_lazy",)), entry(256, 3.0),
                     entry(512, 3.0, state="failed")])
    assert edge.widths == [128, 256, 512] and edge.scales == [0.5, 1.5, 3.0] and edge.is_a_map
    assert edge.tally() == {INSIDE: (2, 2), OUTSIDE: (1, 2), UNSTABLE: (1, 2)}  # the failed run is not judged
    assert edge.tally("reached") == {INSIDE: (0, 0), OUTSIDE: (1, 1), UNSTABLE: (0, 1)}  # measured along the run where it was
    assert [c.label for c in edge.at(128, 1.5)] == ["m=128 η·β₀=1.5"]


def test_a_plan_without_steps_set_against_its_edge_is_not_a_map():
    plain = [(label, {**spec, "optim": {"lr": 1e-3}}, {**summary, "eta_beta_0": 0.65}, v, s)
             for label, spec, summary, v, s in (entry(128, 0.5), entry(256, 1.0))]
    assert not edge_map(plain).is_a_map
    assert not edge_map([entry(128, 0.5), entry(128, 1.0)]).is_a_map  # one width: a line, not a map


def test_the_edge_preset_is_the_map_the_issue_asks_for():
    plan = Plan.of(engine.load_spec("edge"))
    assert {(r.model.width, r.optim.lr_scale) for r in plan.runs} == {
        (w, s) for w in (128, 256, 512, 1024) for s in (0.25, 0.5, 1, 1.5, 2, 3)}
    assert all(r.train.epochs == 300 and r.data.source == "mnist-3v8" and r.probes.theory_every > 0 for r in plan.runs)


def test_summary_prints_the_map_of_a_sweep(tmp_path):
    results = tmp_path / "results"
    moved = trajectory(lam=10.0)
    moved.ntk_change = [c * 1000 for c in moved.ntk_change]  # the kernel moved: ‖K_t − K_0‖/‖K_0‖ up to 1
    for width in (128, 256):
        for scale in (0.5, 3.0):
            write_record(results, f"m{width}-{scale}", label=f"m={width} η·β₀={scale:g}",
                         overrides={"model.width": width, "optim.lr_scale": scale},
                         traj=moved if (width, scale) == (256, 3.0) else trajectory(lam=10.0))
    result = CliRunner().invoke(app, ["summary", str(results)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "where the local regime ends" in " ".join(text.split()) and "m=128" in text and "m=256" in text
    assert text.count("✓ local") == 3 and text.count("✗ not lazy") == 1
    assert "unstable (η·β ≥ 2): 1 of 2 stayed local" in " ".join(text.split())
    assert "inside the theorem (η·β ≤ 1): 2 of 2 stayed local" in " ".join(text.split())


def test_plot_draws_the_map_and_refuses_runs_that_are_not_one(tmp_path):
    from lplr_tui import figures
    from lplr_tui.tables import edge_of
    from lplr_tui.cli import load_records

    results = tmp_path / "results"
    moved = trajectory(lam=10.0)
    moved.ntk_change = [c * 1000 for c in moved.ntk_change]
    for width in (128, 256):
        for scale in (0.5, 3.0):
            write_record(results, f"m{width}-{scale}", label=f"m={width} η·β₀={scale:g}", overrides={"model.width": width, "optim.lr_scale": scale},
                         traj=moved if (width, scale) == (256, 3.0) else trajectory(lam=10.0))
    out = tmp_path / "map.pdf"
    result = CliRunner().invoke(app, ["plot", str(results), "--map", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-") and f"map: {out}" in result.output.replace("\n", "")
    fig = figures.draw_map(edge_of(load_records([results])))
    cells = sorted(p.get_gid() for p in fig.axes[0].patches)
    assert cells == ["128:0.5:local", "128:3:local", "256:0.5:local", "256:3:left"]
    assert [l.get_xdata()[0] for l in fig.axes[0].get_lines()] == [0.5]  # η·β₀ = 1 and 2 both fall between 0.5 and 3
    write_record(tmp_path / "plain", "a")
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "plain"), "--map", "--out", str(tmp_path / "m.pdf")])
    assert result.exit_code == 2 and "--map: these runs are not a map" in result.output


def test_a_cell_keeps_every_measure_and_places_a_plain_step_by_its_measured_edge():
    from engine.edge import number

    label, spec, summary, v, state = entry(512, 1.5)
    summary = {**summary, "lambda_rise_pct": 30.0, "lambda_fall_pct": 5.0, "kernel_change_rel_max": 0.25, "decay_model": "power-law"}
    c = cell_of(label, spec, summary, v, state)
    assert (c.state, c.kernel_change, c.lambda_change, c.decay, c.asked) == ("finished", 0.25, 30.0, "power-law", True)
    plain = cell_of("m=128 η=1e-3", {"model": {"kind": "mlp", "width": 128}, "optim": {"lr": 1e-3}}, {"eta_beta_0": 0.6543}, v, "finished")
    assert plain.scale == 0.65 and not plain.asked and plain.predicted == INSIDE  # measured, to two figures
    odd = cell_of("x", {"model": {"kind": "mlp", "width": 64}, "optim": "fast"}, {"eta_beta_0": 2.5}, v, "finished")
    assert odd.scale == 2.5 and not odd.asked  # another tool's spec: no lr_scale to read
    assert math.isnan(number(True)) and math.isnan(number("3")) and number(2) == 2.0
    assert cell_of("x", spec, {}, v, "finished").decay == ""  # no decay model measured: nothing, not "None"


def test_advise_measures_each_initialisation_once_across_calls(make_spec):
    from engine.data import load_data
    from engine.theory import advise
    import torch

    spec = engine.Plan.of(make_spec(data__source="synthetic", data__n_train=32, probes__ntk_subset=16, model__width=16,
                                    optim__lr_scale=0.5)).runs[0]
    data = load_data(spec.data, spec.model.kind)
    seen: dict = {}
    (first,) = advise([(spec, data)], torch.device("cpu"), seen)
    assert len(seen) == 1 and first.lr == 0.5 / first.sharpness
    seen[next(iter(seen))] = (100.0, float("nan"))  # the cache is what a second call reads
    (second,) = advise([(spec, data)], torch.device("cpu"), seen)
    assert second.sharpness == 100.0 and second.lr == 0.005
    seen[next(iter(seen))] = (0.5, float("nan"))  # a flat start (β₀ < 1) still sets the step from it
    assert advise([(spec, data)], torch.device("cpu"), seen)[0].lr == 1.0


def test_a_run_without_the_local_regime_verdicts_is_not_judged_and_seeds_share_a_cell():
    from lplr_tui import figures
    from lplr_tui.tables import edge_cell

    label, spec, summary, _, state = entry(128, 0.5)
    assert cell_of(label, spec, summary, [{"name": "stays_lazy", "passed": True}], state).left is None  # probes off: no drift verdict
    edge = edge_map([entry(128, 0.5), entry(128, 0.5, ("stays_lazy",)), entry(256, 0.5), entry(128, 3.0), entry(256, 3.0)])
    assert len(edge.at(128, 0.5)) == 2 and edge.tally()[INSIDE] == (2, 3)
    text = edge_cell(edge.at(128, 0.5)).plain
    assert text.count("m=128 η·β₀=0.5") == 2 and "✓ local" in text and "✗ not lazy" in text
    fig = figures.draw_map(edge)
    assert "128:0.5:mixed" in [p.get_gid() for p in fig.axes[0].patches]
    assert "1/2 local" in [t.get_text() for t in fig.axes[0].texts]

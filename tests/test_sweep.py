"""A preset's [sweep]: the plan is the product of its lists (with [[runs]], widths and seeds);
`optim.lr_scale` sets each run's step from its own edge at initialisation, η = scale/β₀."""

from __future__ import annotations

import math
import sys

import pytest
from typer.testing import CliRunner

import engine
from engine.config import Plan, validate
from engine.errors import ConfigError
from engine.record import read_record
from lplr_tui.cli import app

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TINY = {"data.source": "synthetic", "data.n_train": 32, "probes.ntk_subset": 16, "train.epochs": 4, "train.device": "cpu",
        "probes.every": 2, "probes.theory_every": 2, "probes.ntk_full_every": 0, "model.width": 32}


def test_the_plan_is_the_product_of_the_sweep_with_runs_widths_and_seeds():
    spec = engine.load_spec("mnist", {"sweep.data.n_train": [100, 200], "sweep.optim.momentum": [0.0, 0.5],
                                      "model.widths": [64, 128], "train.seeds": [0, 1], "probes.ntk_subset": 50})
    runs = Plan.of(spec).runs
    assert len(runs) == 2 * 2 * 2 * 2
    assert runs[0].label == "m=64 η=1e-3 n_train=100 momentum=0 seed=0"
    assert runs[-1].label == "m=128 η=1e-3 n_train=200 momentum=0.5 seed=1"
    assert {(r.data.n_train, r.optim.momentum, r.model.width, r.train.seeds[0]) for r in runs} == {
        (n, m, w, s) for n in (100, 200) for m in (0.0, 0.5) for w in (64, 128) for s in (0, 1)}
    assert all(not r.sweep for r in runs)  # each run is one point: its spec carries no sweep
    assert len({r.label for r in runs}) == len(runs)


def test_a_sweep_reads_as_toml_writes_it_and_round_trips():
    text = 'name = "s"\n[data]\nsource = "synthetic"\n[sweep]\noptim.lr_scale = [0.5, 1.0]\n"model.width" = [16, 32]\n'
    spec = validate(tomllib.loads(text))
    assert spec.sweep == (("optim.lr_scale", (0.5, 1.0)), ("model.width", (16, 32)))
    again = validate(spec.to_dict())
    assert again.sweep == spec.sweep and [r.label for r in Plan.of(again).runs] == [r.label for r in Plan.of(spec).runs]
    assert [r.label for r in Plan.of(spec).runs] == ["m=16 η·β₀=0.5", "m=32 η·β₀=0.5", "m=16 η·β₀=1", "m=32 η·β₀=1"]


@pytest.mark.parametrize("sweep, says", [
    ({"optim.lrr": [1e-3]}, 'unknown key (did you mean "optim.lr"?)'),
    ({"optim.lr": 1e-3}, "sweep.optim.lr = 0.001: must be a non-empty list of the values to try"),
    ({"optim.lr": []}, "sweep.optim.lr = []: must be a non-empty list"),
    ({"optim.lr": [1e-3, 1e-3]}, "must list each value once"),
    ({"train.seeds": [0, 1]}, "sweep.train.seeds = [0, 1]: cannot be swept (a plan over seeds: train.seeds = [0, 1, 2])"),
    ({"model.widths": [1, 2]}, "cannot be swept (give model.widths = [...] instead)"),
    ({"optim.lr": [1e-3, -1.0]}, "--set: optim.lr = -1.0: must be > 0"),  # blamed on the override that swept it
    ({"data.n_train": [1000, 50]}, "[sweep]: probes.ntk_subset = 100: must be <= data.n_train (50)"),
])
def test_a_bad_sweep_names_the_key_the_value_and_what_is_allowed(sweep, says):
    with pytest.raises(ConfigError) as caught:
        engine.load_spec("mnist", {f"sweep.{k}": v for k, v in sweep.items()})
    assert says in str(caught.value)


def test_a_bad_sweep_on_the_command_line_is_one_line_and_exit_2():
    result = CliRunner().invoke(app, ["run", "--preset", "mnist", "--set", "sweep.optim.lr=[1e-3,-1.0]"])
    assert result.exit_code == 2 and "optim.lr = -1.0: must be > 0" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_runs_a_label_cannot_tell_apart_are_refused():
    """With optim.lr_scale, a [[runs]] entry's optim.lr is not used: the ablation's last two runs
    would be the same run twice."""
    with pytest.raises(ConfigError, match='label = "m=1024 η·β₀=0.5": is the label of 2 runs of the plan'):
        Plan.of(engine.load_spec("ablation", {"optim.lr_scale": 0.5}))


def test_lr_scale_sets_each_runs_step_from_its_own_edge_and_the_record_keeps_both(tmp_path):
    spec = engine.load_spec("mnist", {**TINY, "sweep.optim.lr_scale": [0.5, 1.5]})
    runner = engine.Runner(spec)
    runner.preflight()
    advice = runner.advise()
    beta_0 = advice[0].sharpness
    assert advice[0].sharpness == advice[1].sharpness  # one initialisation: measured once, shared
    assert [a.lr for a in advice] == [0.5 / beta_0, 1.5 / beta_0]
    list(engine.run(spec, tmp_path))
    records = [read_record(p) for p in sorted(tmp_path.glob("*/record.toml"))]
    assert [r.spec["optim"]["lr_scale"] for r in records] == [0.5, 1.5]
    assert [r.spec["optim"]["lr"] for r in records] == [0.5 / beta_0, 1.5 / beta_0]
    assert [r.environment["beta_0"] for r in records] == [beta_0, beta_0]
    # the theory probe's own β at epoch 0 agrees: η·β₀ is the scale asked for
    assert [r.summary["eta_beta_0"] for r in records] == pytest.approx([0.5, 1.5], rel=1e-3)
    assert [r.label for r in records] == ["m=32 η·β₀=0.5", "m=32 η·β₀=1.5"] and "lr_scale=0.5" in records[0].path.parent.name


def test_without_lr_scale_the_step_is_optim_lr(tmp_path):
    spec = engine.load_spec("mnist", {**TINY, "optim.lr": 2e-3})
    runner = engine.Runner(spec)
    runner.preflight()
    (advice,) = runner.advise()
    assert advice.lr == 2e-3 and math.isfinite(advice.sharpness)


def test_set_replaces_a_key_the_preset_sweeps_already():
    spec = engine.load_spec("edge", {"sweep.optim.lr_scale": [1.0], "model.widths": [128, 256]})
    assert spec.sweep == (("optim.lr_scale", (1.0,)),)
    assert [r.label for r in Plan.of(spec).runs] == ["m=128 η·β₀=1", "m=256 η·β₀=1"]


def test_a_key_swept_twice_and_labels_the_records_would_refuse_are_refused():
    raw = {"name": "s", "sweep": {"optim": {"lr": [1e-3]}, "optim.lr": [2e-3]}}
    with pytest.raises(ConfigError, match="sweep.optim.lr = \\[0.002\\]: is given twice"):
        validate(raw)
    many = {f"sweep.{k}": v for k, v in {"optim.momentum": [0.0], "optim.schedule": ["constant"], "train.diverge_factor": [1e6],
                                          "train.checkpoint_every": [500], "probes.ntk_seed": [0], "analysis.stable_from": [0.1],
                                          "record.write_interval": [5.0]}.items()}
    with pytest.raises(ConfigError, match="must be 1-80 characters"):
        Plan.of(engine.load_spec("mnist", many))


def test_a_runs_entry_keeps_its_label_at_each_width():
    raw = {"name": "s", "model": {"widths": [16, 32]}, "runs": [{"label": "plain"}, {"label": "mom", "optim": {"momentum": 0.5}}]}
    assert [r.label for r in Plan.of(validate(raw)).runs] == ["plain m=16", "plain m=32", "mom m=16", "mom m=32"]


def test_a_resumed_lr_scale_run_keeps_its_step_and_its_beta_0(make_spec, tmp_path):
    from test_untrusted import cancelled_at

    spec = engine.load_spec("mnist", {**TINY, "train.epochs": 40, "train.checkpoint_every": 5, "optim.lr_scale": 0.5})
    run_dir = cancelled_at(spec, tmp_path, 12)
    before = read_record(run_dir)
    runner = engine.Runner.resume(run_dir)
    runner.preflight()
    runner.start()
    list(runner.iter_events())
    runner.join()
    after = read_record(run_dir)
    assert after.state == "finished" and after.spec["optim"]["lr"] == before.spec["optim"]["lr"]
    assert after.environment["beta_0"] == before.environment["beta_0"] > 0


def test_a_step_set_against_a_non_positive_beta_0_is_refused_at_preflight(monkeypatch):
    """β₀ ≤ 0 (a start at a saddle or a maximum) gives no step: refused before any run starts."""
    import engine.runner
    from engine.theory import Advice

    monkeypatch.setattr(engine.runner, "advise", lambda runs, device, seen=None: [Advice(r.label, float("nan"), 0.0, float("nan")) for r, _ in runs])
    runner = engine.Runner(engine.load_spec("mnist", {**TINY, "optim.lr_scale": 0.5}))
    with pytest.raises(engine.LplrError, match="optim.lr_scale = 0.5 needs β₀ = λ_max\\(∇²L\\) > 0 at θ_0; it measured 0: give optim.lr instead"):
        runner.preflight()
    engine.Runner(engine.load_spec("mnist", TINY)).preflight()  # without lr_scale, β₀ is not asked for

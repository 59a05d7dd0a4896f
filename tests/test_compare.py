"""`lplr-tui compare`: runs of two plans (made here) in one table, with each run's plan and
start, and a flag on runs whose specs differ beyond the keys their plans vary."""

from __future__ import annotations

from typer.testing import CliRunner

from engine.compare import experiment_of, flags
from lplr_tui.cli import app
from made_records import trajectory, write_record

runner = CliRunner()


def two_plans(tmp_path, monday_overrides: dict | None = None):
    """The same width ablation on two days: m=128 and m=256 each time (pid: one worker a plan)."""
    monday, friday = tmp_path / "monday", tmp_path / "friday"
    for results, started, pid, extra in ((monday, "2026-12-01T09:00:00+00:00", 11, monday_overrides or {}), (friday, "2026-12-05T09:00:00+00:00", 22, {})):
        write_record(results, "a", label="m=128 η=1e-3", started=started, pid=pid, overrides=extra)
        write_record(results, "b", label="m=256 η=1e-3", started=started, pid=pid, overrides={"model.width": 256, **extra},
                     traj=trajectory(lam=20.0), index=2)
    return monday, friday


def test_two_plans_in_one_table_with_plan_and_date(tmp_path):
    monday, friday = two_plans(tmp_path)
    result = runner.invoke(app, ["compare", str(monday), str(friday)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "compare (Table 1 columns)" in text and "plan" in text and "started" in text
    # the same labels on two days: told apart by their plan's start
    assert text.count("2026-12-01 09:00") == 2 and text.count("2026-12-05 09:00") == 2
    assert "the runs' specs differ in: model.width (varied by their plans: model.width)" in text
    assert "flagged" not in text and "differs beyond" not in text


def test_a_run_whose_spec_differs_beyond_the_varied_keys_is_flagged(tmp_path):
    monday, friday = two_plans(tmp_path, {"data.n_train": 500})
    result = runner.invoke(app, ["compare", str(monday), str(friday)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "flagged, not a controlled comparison" in text
    assert "differ in data.n_train, which no plan here varies" in text
    # a tie (two runs each way): the first run's value is the reference, Friday's runs are flagged
    assert "flagged, not a controlled comparison: m=128 η=1e-3 · ablation 2026-12-05 09:00, m=256 η=1e-3 · ablation 2026-12-05 09:00" in text
    assert text.count("data.n_train = 1000") == 2  # the last column: the key and the run's own value


def test_flags_come_from_the_specs_not_from_labels():
    base = {"model": {"width": 128}, "optim": {"lr": 1e-3}, "data": {"n_train": 1000, "root": "/a"}, "train": {"seeds": [0], "device": "cpu"}}

    def with_(**changes):
        spec = {k: dict(v) for k, v in base.items()}
        for dotted, value in changes.items():
            table, key = dotted.split("__")
            spec[table][key] = value
        return experiment_of(spec, {"data_sha256": "f" * 64})

    # one plan varying the width; another run of another plan with other data root and device: not the experiment
    runs = [with_(model__width=128), with_(model__width=256), with_(data__root="/b", train__device="cuda")]
    keys, varied, beyond = flags(runs, ["p1", "p1", "p2"])
    assert keys == ["model.width"] and varied == ["model.width"] and beyond == [[], [], []]
    # a step size no plan varies: the run that differs from the most common value is flagged
    runs = [with_(), with_(model__width=256), with_(optim__lr=5e-4)]
    keys, varied, beyond = flags(runs, ["p1", "p1", "p2"])
    assert keys == ["model.width", "optim.lr"] and beyond == [[], [], ["optim.lr"]]
    # other data under the same spec: flagged by its checksum
    other = {**with_(), "data (sha256)": "0" * 64}
    assert flags([with_(), with_(), other], ["p1", "p1", "p2"])[2] == [[], [], ["data (sha256)"]]
    # seeds are varied by design
    assert flags([with_(), with_(train__seeds=[1])], ["p1", "p2"])[2] == [[], []]


def test_compare_refuses_the_app_without_a_terminal(tmp_path):
    monday, _ = two_plans(tmp_path)
    result = runner.invoke(app, ["compare", str(monday), "--app"])
    assert result.exit_code == 2 and "--app: needs a terminal" in result.output


def test_compare_checks_the_figure_suffix_before_reading(tmp_path):
    monday, _ = two_plans(tmp_path)
    result = runner.invoke(app, ["compare", str(monday), "--plot", str(tmp_path / "f.gif")])
    assert result.exit_code == 2 and "the suffix must be .png, .svg or .pdf" in result.output


def test_compare_source_marks_only_the_lost_run_lost_and_ends_once(tmp_path):
    """Each run's log ends on its own: a lost worker loses its run, not the others'; a resumed
    run's log (two sessions, two ends) ends the comparison once."""
    from engine.events import EpochMeasured, Lost, PlanFinished
    from lplr_tui.cli import load_records
    from lplr_tui.plan_view import PlanView
    from lplr_tui.sources import CompareSource

    monday, friday = two_plans(tmp_path)
    records = load_records([monday, friday])[:3]
    source = CompareSource(records, ["a", "b", "c"])
    source.parts[0] = [EpochMeasured(0, 0, 1.0, 1.0), Lost("the worker is gone", 0, "/somewhere")]
    source.parts[2] = source.parts[2] + [EpochMeasured(0, 61, 0.1, 0.1), PlanFinished("finished")]  # a second session's end
    events = source.poll(10_000)
    plan = PlanView()
    for event in events:
        plan.handle(event)
    assert [r.state for r in plan.runs] == ["lost", "finished", "finished"]
    assert plan.runs[0].reason == "the worker is gone" and plan.state == "finished"
    assert sum(isinstance(e, PlanFinished) for e in events) == 1
    assert plan.runs[2].trajectory.epoch[-1] == 61  # renumbered as the comparison's third run

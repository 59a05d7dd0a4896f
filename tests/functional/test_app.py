"""The app driven as a user would, with App.run_test(): keys in, screens and records out."""

from __future__ import annotations


import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from engine.record import find_records, read_record
from lplr_tui.app import LplrApp
from lplr_tui.components.chart import DiagnosticChart
from lplr_tui.screens.dashboard import CHARTS, DashboardScreen
from lplr_tui.screens.modals import ConfirmQuit
from lplr_tui.screens.picker import PickerScreen, field_id
from lplr_tui.screens.summary import SummaryScreen


@pytest.fixture
def app(tmp_path, data_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./presets of the developer's
    return LplrApp(tmp_path / "results", {"data.root": data_root, "train.device": "cpu", "probes.ntk_subset": 10}, detach=False)


async def until(pilot, condition, timeout: float = 60.0) -> None:
    """Let the app run until condition() holds."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the app")


def charts(app) -> list[DiagnosticChart]:
    return [app.screen.query_one("#" + chart_id, DiagnosticChart) for chart_id, *_ in CHARTS]


async def start(pilot, app, preset: str, **fields: str) -> None:
    picker = app.screen
    assert isinstance(picker, PickerScreen)
    names = list(picker.presets)
    picker.query_one("#presets").index = names.index(preset)
    await pilot.pause()
    for key, value in fields.items():
        picker.query_one("#" + field_id(key.replace("__", ".")), expect_type=None).value = value
    await pilot.pause()
    picker.query_one("#presets").focus()
    await pilot.press("s")
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


def all_charts_have_points(app) -> bool:
    return all(chart.points > 0 for chart in charts(app))


async def test_pick_start_watch_all_four_charts_cancel_export(app, tmp_path):
    async with app.run_test(size=(100, 32)) as pilot:
        await start(pilot, app, "mnist", train__epochs="100000")
        await until(pilot, lambda: all_charts_have_points(app) and app.plan.runs[0].epoch >= 25)
        assert "epoch" in str(app.screen.query_one("#status").render())
        await pilot.press("c", "y")
        await until(pilot, lambda: not app.live)
        assert app.plan.state == "interrupted"
        await pilot.press("e")
        summary, text = app.exported
        assert summary.is_file() and "m=128 η=1e-3" in text.read_text()
        await pilot.press("t")
        assert isinstance(app.screen, SummaryScreen)
        assert app.screen.query_one("#summary").row_count == 1
        await pilot.press("escape", "q")
    (path,) = find_records([tmp_path / "results"])
    record = read_record(path)
    assert record.state == "interrupted" and record.status["epochs_done"] >= 25
    assert len(record.trajectory.ntk_lambda_min) >= 3


async def test_switch_runs_and_overlay_in_a_plan(app):
    async with app.run_test(size=(100, 32)) as pilot:
        await start(pilot, app, "ablation", train__epochs="100000")
        dashboard = app.screen
        await until(pilot, lambda: app.plan.runs and app.plan.runs[0].epoch >= 5 and all_charts_have_points(app))
        assert len(dashboard.query_one("#runs").children) == 5
        await pilot.press("n")
        await pilot.pause(0.3)
        assert dashboard.selected == 1 and charts(app)[0].points == 0  # run 2 has not started
        await pilot.press("o")
        await pilot.pause(0.3)
        assert dashboard.overlay and [s.label for s in charts(app)[0].series] == ["m=128 η=1e-3"]
        await pilot.press("c", "y")
        await until(pilot, lambda: not app.live)
        assert [r.state for r in app.plan.runs] == ["interrupted"] + ["waiting"] * 4


async def test_quit_mid_run_asks_and_leaves_an_intact_record(app, tmp_path):
    async with app.run_test(size=(100, 32)) as pilot:
        await start(pilot, app, "mnist", train__epochs="100000")
        await until(pilot, lambda: app.plan.runs[0].epoch >= 10)
        await pilot.press("q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DashboardScreen) and app.live
        await pilot.press("q")
        await pilot.pause(0.2)
        await pilot.press("y")
    record = read_record(find_records([tmp_path / "results"])[0])
    assert record.state == "interrupted" and record.status["epochs_done"] >= 10


async def test_invalid_field_is_shown_inline_and_nothing_starts(app, tmp_path):
    async with app.run_test(size=(100, 32)) as pilot:
        picker = app.screen
        picker.query_one("#" + field_id("optim.lr")).value = "-1"
        await pilot.pause()
        error = picker.query_one("#" + field_id("optim.lr") + "-error")
        assert error.display and "optim.lr = -1: must be > 0" in str(error.render())
        picker.query_one("#presets").focus()
        await pilot.press("s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PickerScreen) and app.runner is None
        picker.query_one("#presets").index = 1  # the ablation: widths, one per run
        await pilot.pause()
        picker.query_one("#" + field_id("model.width")).value = "64, 128"
        await pilot.pause()
        error = picker.query_one("#" + field_id("model.width") + "-error")
        assert "must list 5 widths" in str(error.render())
    assert not (tmp_path / "results").exists()


async def test_resizing_during_a_run_keeps_drawing(app):
    async with app.run_test(size=(120, 40)) as pilot:
        await start(pilot, app, "mnist", train__epochs="100000")
        await until(pilot, lambda: all_charts_have_points(app))
        for size in [(80, 24), (60, 20), (140, 45), (80, 24)]:
            await pilot.resize_terminal(*size)
            await pilot.pause(0.3)
        assert app.live and all_charts_have_points(app)
        await pilot.press("c", "y")
        await until(pilot, lambda: not app.live)


async def test_theory_view_and_step_size_advice(app):
    async with app.run_test(size=(120, 40)) as pilot:
        picker = app.screen
        picker.query_one("#presets").index = 1  # the ablation
        await pilot.pause()
        await pilot.press("a")
        advice = picker.query_one("#advice")
        await until(pilot, lambda: "inside" in str(advice.render()), timeout=120)
        lines = str(advice.render()).splitlines()
        assert [line.split("  ")[0] for line in lines if line.endswith("unstable")] == ["m=1024 η=1e-3"]
        assert [line.split("  ")[0] for line in lines if line.endswith("outside")] == ["m=512 η=1e-3"]
        assert max(len(line) for line in lines) <= 54  # the picker's pane at 80 columns
        picker.query_one("#presets").index = 0  # mnist
        await pilot.pause()
        await start(pilot, app, "mnist", train__epochs="100000", probes__every="5")
        await until(pilot, lambda: app.plan.runs and len(app.plan.runs[0].trajectory.theory_epoch) >= 1)
        await pilot.press("x")
        await pilot.pause(0.5)
        eta_beta, pl = charts(app)[0], charts(app)[2]
        assert eta_beta.base_title.startswith("step size η·β") and eta_beta.levels == [1.0, 2.0] and eta_beta.points >= 1
        assert [s.label for s in pl.series] == ["m=128 η=1e-3 ratio", "m=128 η=1e-3 bound"]
        await pilot.press("c", "y")
        await until(pilot, lambda: not app.live)


async def test_guide_in_picker_and_dashboard_verdicts_on_the_summary(app):
    async with app.run_test(size=(130, 40)) as pilot:
        picker = app.screen
        for index in range(3):
            picker.query_one("#presets").index = index
            await pilot.pause()
            assert "What it reproduces: paper §6." in str(picker.query_one("#guide").render())
        picker.query_one("#presets").index = 0
        await start(pilot, app, "mnist", train__epochs="40")
        dashboard = app.screen
        assert dashboard.query_one("#guide-pane").display  # wide enough: shown
        assert "Lemma 5.3" in str(dashboard.query_one("#guide-text").render())
        await pilot.press("g")
        assert not dashboard.query_one("#guide-pane").display
        await until(pilot, lambda: app.plan.state == "finished")
        await pilot.press("t")
        await pilot.pause(0.3)
        verdicts = str(app.screen.query_one("#verdicts").render())
        assert "decay on the stable regime:" in verdicts and "sufficient decrease" in verdicts and "Weyl certificate" in verdicts
        await pilot.press("e")  # the exported summary keeps the plan's verdicts, as the CLI's does
        exported = tomllib.loads(app.exported[0].read_text())
        assert [v["name"] for v in exported["verdicts"]] == [v["name"] for v in app.plan.verdicts]


async def test_help_shows_the_keys_in_a_readable_box(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        text = app.screen.query_one("#help-box Static")
        assert text.region.width >= 60 and text.region.height >= 20  # every line of the key list
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)


async def test_the_quit_question_is_readable(app):
    async with app.run_test(size=(120, 36)) as pilot:
        await start(pilot, app, "mnist", train__epochs="100000")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmQuit))
        await pilot.pause()
        text = app.screen.query_one("#confirm-box Static")
        assert text.region.width >= 40 and text.region.height >= 3
        await pilot.press("n")
        await pilot.pause()
        app.cancel_plan()
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: not app.live)

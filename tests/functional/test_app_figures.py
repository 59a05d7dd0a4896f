"""The app's figures and comparisons: `P` writes the current view with the figures' code and an
SVG screenshot beside the run directories; `lplr-tui compare --app` opens the overlay on runs
read back from their records."""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the record maker

from engine.config import validate
from engine.eventlog import EventLog
from engine.events import EpochMeasured, Heartbeat, RunFinished, RunStarted
from engine.liveness import worker_fields
from engine.record import RECORD_NAME, Record, write_atomic
from engine.times import iso_time
from lplr_tui import figures
from lplr_tui.app import LplrApp
from lplr_tui.cli import load_records
from lplr_tui.components.chart import DiagnosticChart
from lplr_tui.screens.dashboard import CHARTS, DashboardScreen
from functional.test_app import until
from made_records import trajectory, write_record


@pytest.fixture
def two_days(tmp_path):
    """m=128 on Monday, m=128 and m=256 on Friday: two plans, two results directories."""
    monday = write_record(tmp_path / "monday", "a", label="m=128 η=1e-3", started="2026-12-01T09:00:00+00:00", pid=1)
    write_record(tmp_path / "friday", "a", label="m=128 η=1e-3", started="2026-12-05T09:00:00+00:00", pid=2)
    write_record(tmp_path / "friday", "b", label="m=256 η=1e-3", started="2026-12-05T09:00:00+00:00", pid=2,
                 overrides={"model.width": 256}, traj=trajectory(lam=20.0))
    return load_records([monday, tmp_path / "friday"])


@pytest.fixture
def drawn(monkeypatch):
    """What the app asked the figures' code to draw (it still draws)."""
    calls = []
    real = figures.write

    def spy(runs, out, panels, size, l_star="proxy", group=True):
        calls.append({"labels": [r.label for r in runs], "panels": panels, "group": group, "epochs": [list(r.trajectory.epoch) for r in runs]})
        return real(runs, out, panels, size, l_star, group)

    monkeypatch.setattr(figures, "write", spy)
    return calls


async def test_compare_opens_the_overlay_on_runs_read_from_their_records(two_days, tmp_path):
    app = LplrApp(tmp_path / "friday", compare=two_days)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.drawn_version >= 0)
        dashboard = app.screen
        assert dashboard.overlay and not app.live
        lam = dashboard.query_one("#" + CHARTS[0][0], DiagnosticChart)
        await until(pilot, lambda: len(lam.series) == 3)
        assert [s.label for s in lam.series] == [
            "m=128 η=1e-3 · ablation 2026-12-01 09:00", "m=128 η=1e-3 · ablation 2026-12-05 09:00", "m=256 η=1e-3",
        ]
        assert list(lam.series[2].y) == two_days[2].trajectory.ntk_lambda_min
        assert [r.state for r in app.plan.runs] == ["finished"] * 3


async def test_P_writes_the_overlay_as_a_figure_and_the_dashboard_as_svg(two_days, tmp_path, drawn):
    app = LplrApp(tmp_path / "friday", compare=two_days)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and len(app.screen.query_one("#runs").children) == 3)
        await pilot.pause(0.3)  # the run list drawn: it is in the screenshot
        await pilot.press("P")
        await until(pilot, lambda: list((tmp_path / "friday").glob("*.pdf")), timeout=60)
    (pdf,) = (tmp_path / "friday").glob("*-compare-overlay.pdf")  # in the app's results directory
    (svg,) = (tmp_path / "friday").glob("*-compare-overlay-screen.svg")
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert ET.fromstring(svg.read_bytes()).tag.endswith("svg") and "m=256&#160;η=1e-3" in svg.read_text()
    (call,) = drawn
    assert call["panels"] == figures.DEFAULT_PANELS and not call["group"]
    assert call["labels"] == ["m=128 η=1e-3 · ablation 2026-12-01 09:00", "m=128 η=1e-3 · ablation 2026-12-05 09:00", "m=256 η=1e-3"]


async def test_P_in_the_theory_view_of_one_run_draws_that_run_with_the_theory_panels(two_days, tmp_path, drawn):
    app = LplrApp(tmp_path / "friday", compare=two_days)
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await pilot.press("o", "x")  # overlay off (the last run shows), the theory view
        await pilot.pause(0.3)
        await pilot.press("P")
        await until(pilot, lambda: drawn and list((tmp_path / "friday").glob("*.pdf")), timeout=60)
    (pdf,) = (tmp_path / "friday").glob("*-compare-m=256_lr=1e-3-theory.pdf")
    assert pdf.stat().st_size > 1000
    (call,) = drawn
    assert call["labels"] == ["m=256 η=1e-3"] and call["panels"] == figures.DEFAULT_PANELS + figures.THEORY_PANELS
    assert call["epochs"] == [two_days[2].trajectory.epoch]


async def test_compare_follows_a_live_run_through_its_log_as_watch_does(two_days, tmp_path):
    """A run still going, compared with finished ones: its log is followed, so it keeps moving;
    its end ends the comparison's plan."""
    run_dir = tmp_path / "today" / "live"
    run_dir.mkdir(parents=True)
    spec, worker = validate({"train": {"epochs": 10}}), {"device": "cpu", **worker_fields()}
    write_atomic(run_dir / RECORD_NAME, Record(run={"plan": "today", "label": "m=512 η=1e-3"}, spec=spec.to_dict(), environment=worker,
                                               status={"state": "running", "heartbeat": iso_time(time.time())}).to_dict())
    log = EventLog(run_dir / "events.jsonl")
    log.handle(RunStarted(0, 1, "m=512 η=1e-3", spec, 1, worker, str(run_dir), plan="today"))
    log.handle(EpochMeasured(0, 0, 1.0, 1.0))
    log.handle(Heartbeat(0, time.time()))
    records = two_days + load_records([run_dir])
    assert records[-1].state == "running"
    app = LplrApp(tmp_path / "friday", compare=records)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: len(app.plan.runs) == 4 and app.plan.runs[3].epoch == 0 and app.plan.runs[3].state == "running")
            assert app.live and [r.state for r in app.plan.runs[:3]] == ["finished"] * 3
            log.handle(EpochMeasured(0, 1, 0.5, 0.5))
            log.handle(EpochMeasured(0, 2, 0.25, 0.25))
            await until(pilot, lambda: app.plan.runs[3].epoch == 2)
            assert app.plan.runs[3].trajectory.loss == [1.0, 0.5, 0.25]
            log.handle(RunFinished(0, "finished", "", 2, {}, ""))
            await until(pilot, lambda: app.plan.state == "finished" and not app.live)
    finally:
        log.close()


def text_of(renderable) -> str:
    import io

    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def test_m_shows_the_map_of_a_sweep_as_runs_finish(tmp_path):
    moved = trajectory(lam=10.0)
    moved.ntk_change = [c * 1000 for c in moved.ntk_change]  # the kernel moved: this run left
    for width in (128, 256):
        for scale in (0.5, 3.0):
            write_record(tmp_path / "sweep", f"m{width}-{scale}", label=f"m={width} η·β₀={scale:g}",
                         overrides={"model.width": width, "optim.lr_scale": scale},
                         traj=moved if (width, scale) == (256, 3.0) else trajectory(lam=10.0))
    app = LplrApp(tmp_path / "sweep", compare=load_records([tmp_path / "sweep"]))
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and len(app.plan.runs) == 4)
        await pilot.press("m")
        await until(pilot, lambda: "local" in text_of(getattr(app.screen, "drawn", "")))
        shown = text_of(app.screen.drawn)
        assert shown.count("✓ local") == 3 and shown.count("✗ not lazy") == 1
        assert "unstable (η·β ≥ 2): 1 of 2 stayed local" in " ".join(shown.split())
        await pilot.press("m")
        assert isinstance(app.screen, DashboardScreen)

"""The app over detached workers: it starts plans detached, follows them through their logs
(the same screens as for a run in its own process), asks on quit, lists live and lost plans,
and follows the run in progress."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from textual.css.query import NoMatches

from engine.config import validate
from engine.eventlog import EventLog
from engine.events import EpochMeasured, Heartbeat, PlanFinished, PlanStarted, RunFinished, RunStarted
from engine.liveness import worker_fields
from engine.record import find_records, read_record
from lplr_tui.app import LplrApp
from lplr_tui.plan_view import PlanView
from lplr_tui.screens.dashboard import DashboardScreen
from lplr_tui.screens.modals import LeaveOrStop
from lplr_tui.screens.picker import PickerScreen
from lplr_tui.sources import TailSource
from functional.test_app import all_charts_have_points, start, until
from test_detach import alive, detach, log_epochs, run_dir_of, wait


@pytest.fixture
def app(tmp_path, data_root, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return LplrApp(tmp_path / "results", {"data.root": data_root, "train.device": "cpu", "probes.ntk_subset": 10})


def plan_pid(app) -> int:
    return app.source.pid


def charted(app, epochs: int) -> bool:
    """Every chart has points and the run has reached `epochs` (False while the dashboard is
    still being composed)."""
    try:
        return all_charts_have_points(app) and app.plan.runs[0].epoch >= epochs
    except NoMatches:
        return False


@pytest.mark.parametrize("choice", ["l", "s"])
async def test_the_app_starts_plans_detached_and_asks_on_quit(app, tmp_path, choice):
    async with app.run_test(size=(120, 36)) as pilot:
        await start(pilot, app, "mnist", train__epochs="100000")
        assert isinstance(app.source, TailSource)  # the dashboard follows the worker's logs
        await until(pilot, lambda: charted(app, 10))
        pid = plan_pid(app)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, LeaveOrStop))
        await pilot.press(choice)
    try:
        (path,) = find_records([tmp_path / "results"])
        if choice == "l":  # left running: it goes on without the app
            before = log_epochs(path.parent)
            wait(lambda: log_epochs(path.parent) > before + 5, what="more epochs")
            assert alive(pid)
        else:  # stopped: at the end of its epoch, record interrupted and why
            wait(lambda: not alive(pid), timeout=60, what="the worker to stop")
            record = read_record(path)
            assert record.state == "interrupted" and record.status["reason"].startswith("stopped by the user on quitting the app")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_reattached_the_charts_hold_every_measured_epoch(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    workers: list[int] = []
    plan_log, pid, _ = detach(data_root, tmp_path / "results", workers, "train.epochs=300")
    try:
        wait(lambda: log_epochs(run_dir_of(plan_log)) >= 60, what="epochs")
        app = LplrApp(tmp_path / "results", watch=plan_log)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and charted(app, 1))
            await until(pilot, lambda: app.plan.state == "finished", timeout=120)
            record = read_record(run_dir_of(plan_log))
            assert app.plan.runs[0].trajectory == record.trajectory  # every epoch, none twice
            assert app.plan.runs[0].trajectory.epoch == list(range(301))
            await until(pilot, lambda: "finished" in str(app.screen.query_one("#status").render()))
            assert app.plan.guide and "(this preset has no guide)" not in str(app.screen.query_one("#guide-text").render())
    finally:
        for p in workers:
            if alive(p):
                os.kill(p, signal.SIGKILL)


def write_plan(results, name: str, worker: dict, beat: float | None, finished: bool = False) -> None:
    results.mkdir(exist_ok=True)
    run_dir = results / f"{name}-run"
    run_dir.mkdir()
    log = EventLog(results / f"{name}.plan.jsonl")
    spec = validate({"train": {"epochs": 10}})
    log.handle(PlanStarted(name, ("m=1",), (10,), worker))
    log.handle(RunStarted(0, 1, "m=1", spec, 1, {"device": "cpu", **worker}, str(run_dir), plan=name))
    log.handle(EpochMeasured(0, 0, 1.0, 1.0))
    if beat is not None:
        log.handle(Heartbeat(0, beat))
    if finished:
        log.handle(RunFinished(0, "finished", "", 10, {}, ""))
        log.handle(PlanFinished("finished"))
    log.close()


async def test_the_picker_lists_live_and_lost_plans_to_attach_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = {**worker_fields(), "pid": gone.pid}
    write_plan(results, "20260101-000001-lostplan", dead, time.time())
    write_plan(results, "20260101-000002-liveplan", worker_fields(), time.time())
    write_plan(results, "20260101-000003-doneplan", dead, time.time(), finished=True)
    app = LplrApp(results)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.5)
        plans = app.screen.query_one("#plans")
        lines = [str(item.query_one("Label").render()) for item in plans.children]
        assert lines == ["▶ 20260101-000002-liveplan (running)\n  20260101-000002-liveplan", "? 20260101-000001-lostplan (lost)\n  20260101-000001-lostplan"]  # newest first; the finished one is not listed
        plans.focus()
        plans.index = 1
        await pilot.pause()
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
        await until(pilot, lambda: app.plan.state == "lost")
        status = app.screen.query_one("#status")
        await until(pilot, lambda: "lost" in str(status.render()))  # the screen's first redraw may come after the drain
        assert "--resume" in str(status.render())


async def test_the_dashboard_follows_the_run_in_progress_until_another_is_chosen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = PlanView()
    spec = validate({"train": {"epochs": 10}})
    labels = ("a", "b", "c")
    plan.handle(PlanStarted("p", labels, (10, 10, 10)))

    def run(index: int) -> None:
        plan.handle(RunStarted(index, 3, labels[index], spec, 1, {"device": "cpu"}, ""))
        plan.handle(EpochMeasured(index, 0, 1.0, 1.0))

    app = LplrApp(tmp_path / "results")
    async with app.run_test(size=(120, 36)) as pilot:
        app.watch_plan(plan)
        run(0)
        await pilot.pause(0.5)
        dashboard = app.screen
        plan.handle(RunFinished(0, "finished", "", 10, {}, ""))
        run(1)
        await pilot.pause(0.5)
        assert dashboard.selected == 1  # followed run 2 when it started
        await pilot.press("p")
        await pilot.pause(0.3)
        plan.handle(RunFinished(1, "finished", "", 10, {}, ""))
        run(2)
        await pilot.pause(0.5)
        assert dashboard.selected == 0 and not dashboard.follow  # the user's choice holds
        await pilot.press("f")
        await pilot.pause(0.5)
        assert dashboard.selected == 2 and dashboard.query_one("#runs").index == 2

"""The app with text from elsewhere (labels, names, reasons with markup) and the app's process
ended by a signal, as a person's terminal would end it: on a real subprocess under tmux."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from engine.config import validate
from engine.events import EpochMeasured, PlanFinished, PlanStarted, ProbeMeasured, RunFinished, RunStarted
from engine.record import find_records, read_current, read_record
from engine.tail import Tail
from lplr_tui.app import LplrApp
from lplr_tui.plan_view import PlanView
from lplr_tui.screens.dashboard import DashboardScreen
from lplr_tui.screens.summary import SummaryScreen
from lplr_tui.sources import QueueSource
from test_nothing_lost import COMMAND

MARKUP = ["[/]", "[link=http://evil.example]click[/link]", "[bold]loud"]


def fed_plan(name: str) -> PlanView:
    """A finished plan whose labels, name and reasons are markup, as a tampered record holds."""
    plan = PlanView()
    spec = validate({"data": {"n_train": 10}, "optim": {"lr": 0.1}, "train": {"epochs": 3}, "probes": {"ntk_subset": 10}})
    plan.handle(PlanStarted(name, tuple(MARKUP), (3, 3, 3)))
    for run, label in enumerate(MARKUP):
        plan.handle(RunStarted(run, 3, label, spec, 10, {"device": "cpu"}, "/tmp/x"))
        for epoch in range(4):
            plan.handle(EpochMeasured(run, epoch, 1.0 / (epoch + 1), 0.5 / (epoch + 1)))
            plan.handle(ProbeMeasured(run, epoch, {"drift": 0.1 * epoch, "ntk_lambda_min": 1.0}))
        plan.handle(RunFinished(run, "failed", label, 3, {"params": 10}, "", [{"name": "x", "passed": False, "text": label}]))
    plan.handle(PlanFinished("failed", MARKUP[0]))
    return plan


async def test_markup_from_a_record_is_shown_as_text_on_every_screen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LplrApp(tmp_path / "results")
    async with app.run_test(size=(140, 40)) as pilot:
        app.watch_plan(fed_plan("[bold]plan"))

        def screen_text() -> str:
            return " ".join(str(w.render()) for w in app.screen.query("Label, Static"))

        for _ in range(100):  # the run list is filled at the dashboard's first redraws
            await pilot.pause(0.1)
            if isinstance(app.screen, DashboardScreen) and all(text in screen_text() for text in MARKUP):
                break
        assert isinstance(app.screen, DashboardScreen)
        assert all(text in screen_text() for text in MARKUP), screen_text()
        for key in ("n", "o", "x", "g"):
            await pilot.press(key)
            await pilot.pause(0.1)
        app.source = QueueSource(type("Fed", (), {"events": queue.Queue()})())  # the app's own drain, fed a markup reason
        app.source.runner.events.put(PlanFinished("failed", "[/] a [bold]reason"))
        app.drain()
        await pilot.pause(0.2)
        assert app.is_running and any("[/] a [bold]reason" in n.message for n in app._notifications)
        app.source = None
        await pilot.press("t")
        await pilot.pause(0.5)
        assert isinstance(app.screen, SummaryScreen)
        table = app.screen.query_one("#summary")
        cells = [str(table.get_cell_at((row, 0))) for row in range(table.row_count)]
        assert cells == MARKUP
        assert "[bold]plan" in str(app.screen.query_one("#summary-title").render())
        assert "[link=http://evil.example]click[/link]" in str(app.screen.query_one("#verdicts").render())
        await pilot.press("e")  # the export writes the tables with the labels as text
        await pilot.pause(0.5)
        assert app.is_running and [p.suffix for p in app.exported] == [".toml", ".txt"]
        assert "[bold]plan" in app.exported[1].read_text()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30).stdout


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


def app_in_tmux(tmp_path: Path, data_root: str) -> tuple[str, int]:
    """The app started in a detached tmux session of its own, a plan running: (session, pid)."""
    session = f"lplr-test-{uuid.uuid4().hex[:8]}"
    command = " ".join(COMMAND + ["--results", str(tmp_path / "results"), "--data-dir", data_root, "--device", "cpu"])
    pid_file = tmp_path / "pid"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "36", f"echo $$ > {pid_file}; exec {command}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "experiments" not in tmux("capture-pane", "-t", session, "-p"):
        time.sleep(0.2)
    tmux("send-keys", "-t", session, "s")
    while time.monotonic() < deadline and epochs_recorded(tmp_path / "results") < 5:
        time.sleep(0.2)
    while time.monotonic() < deadline and "epoch" not in tmux("capture-pane", "-t", session, "-p"):
        time.sleep(0.2)  # the dashboard follows the worker's log
    return session, int(pid_file.read_text())


def epochs_recorded(results: Path) -> int:
    try:
        return read_current(find_records([results])[0])[0].status["epochs_done"]
    except Exception:  # not written yet
        return 0


def gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def worker_pid(results: Path) -> int:
    (log,) = results.glob("*.plan.jsonl")
    return next(e.worker["pid"] for e in Tail(log).poll() if isinstance(e, PlanStarted))


@needs_tmux
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "the terminal closes"])
def test_the_plan_goes_on_when_the_app_that_started_it_is_ended(tmp_path, data_root, how):
    """The SSH drop: the app ends, its detached worker does not; the record keeps growing, and
    says interrupted once the worker itself is asked to stop."""
    session, pid = app_in_tmux(tmp_path, data_root)
    worker = worker_pid(tmp_path / "results")
    try:
        if how == "the terminal closes":
            tmux("kill-session", "-t", session)  # the pane's terminal goes away: the kernel sends SIGHUP
        else:
            os.kill(pid, getattr(signal, how))
        assert gone(pid), "the app did not exit"
        before = epochs_recorded(tmp_path / "results")
        time.sleep(2)
        assert not gone(worker, timeout=0) and epochs_recorded(tmp_path / "results") > before
    finally:
        tmux("kill-session", "-t", session)
        os.kill(worker, signal.SIGTERM)
    assert gone(worker), "the worker did not stop on SIGTERM"
    record = read_record(find_records([tmp_path / "results"])[0])
    assert record.state == "interrupted", record.status
    assert record.status["reason"].startswith("SIGTERM: asked to terminate") and record.status["epochs_done"] > before

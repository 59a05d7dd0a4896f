"""Snapshots of the picker and of a finished dashboard fed with deterministic events.

Update after a deliberate change of the screens: pytest tests/functional --snapshot-update
"""

from __future__ import annotations

import math

import pytest

from engine import analysis
from engine.config import validate
from engine.events import EpochMeasured, PlanFinished, PlanStarted, ProbeMeasured, RunFinished, RunStarted
from engine.trajectory import Trajectory
from lplr_tui.app import LplrApp
from lplr_tui.plan_view import PlanView

EPOCHS = 300


def deterministic_events() -> list:
    """A two-run plan whose numbers are closed forms: geometric decay, a falling λ_min."""
    labels = ("m=128 η=1e-3", "m=1024 η=1e-3")
    events: list = [PlanStarted("demo", labels, (EPOCHS, EPOCHS))]
    for run, label in enumerate(labels):
        rho, l_star, lam0 = (0.985, 0.3, 0.5) if run == 0 else (0.99, 0.25, 1.7)
        spec = validate({"model": {"width": 128 if run == 0 else 1024}, "train": {"epochs": EPOCHS}})
        events.append(RunStarted(run, 2, label, spec, 150_145 if run == 0 else 3_953_665, {"device": "cpu"}, f"/results/run{run}"))
        trajectory = Trajectory()
        for epoch in range(EPOCHS + 1):
            sub = math.exp(-0.02 * epoch) if run == 0 else rho**epoch
            event = EpochMeasured(run, epoch, l_star + sub, 2 * 3.0 * sub * (1 + 0.1 * math.sin(epoch / 9)))
            events.append(event)
            trajectory.add(event)
            if epoch % 10 == 0:
                probe = ProbeMeasured(run, epoch, {"drift": 0.3 * (1 - math.exp(-epoch / 60)), "ntk_lambda_min": lam0 * (1 - 0.4 * epoch / EPOCHS)})
                events.append(probe)
                trajectory.add(probe)
        summary = analysis.summarize(trajectory, 0, 0.1, 0.9, final=True)
        events.append(RunFinished(run, "finished", "", EPOCHS, summary, "2026-01-01T00:00:00"))
    events.append(PlanFinished("finished"))
    return events


@pytest.fixture
def quiet_app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return LplrApp(tmp_path / "results", {"data.root": "/data"}, clock=lambda: 0.0)


def test_picker(snap_compare, quiet_app):
    assert snap_compare(quiet_app, terminal_size=(100, 30))


def replaying(app: LplrApp, *keys: str):
    """run_before for snap_compare: feed the deterministic events, then press `keys`."""

    async def replay(pilot):
        plan = PlanView(app.clock)
        for event in deterministic_events():
            plan.handle(event)
        app.watch_plan(plan)
        await pilot.pause(0.3)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.3)

    return replay


def test_finished_dashboard(snap_compare, quiet_app):
    assert snap_compare(quiet_app, terminal_size=(120, 36), run_before=replaying(quiet_app))


def test_finished_dashboard_overlay(snap_compare, quiet_app):
    assert snap_compare(quiet_app, terminal_size=(120, 36), run_before=replaying(quiet_app, "o"))

"""What the app knows about a plan: the engine's events, gathered per run. No diagnostics are
computed here; the charts' series come from `engine.analysis.live_series`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from engine.analysis import live_series
from engine.config import Spec
from engine.times import unix_time
from engine.events import (
    FINISHED, LOST, RUNNING, Annotation, DevicesMeasured, EpochMeasured, Lost, PlanFinished, PlanStarted, ProbeMeasured, RunFinished, RunStarted,
)
from engine.trajectory import Trajectory

WAITING = "waiting"


@dataclass
class RunView:
    index: int
    label: str
    epochs: int
    state: str = WAITING
    reason: str = ""
    device: str = ""
    run_dir: str = ""
    summary: dict = field(default_factory=dict)
    spec: Spec | None = None  # the run's resolved spec, from its RunStarted
    trajectory: Trajectory = field(default_factory=Trajectory)
    started: float | None = None  # Unix time, the worker's clock (a viewer's clock when it names none)
    resumed_from: int = 0
    annotations: list = field(default_factory=list)  # engine Annotation events
    verdicts: list = field(default_factory=list)  # dicts: name, passed, measured, threshold, text

    @property
    def epoch(self) -> int:
        return self.trajectory.epoch[-1] if self.trajectory.epoch else 0

    @property
    def loss(self) -> float | None:
        return self.trajectory.loss[-1] if self.trajectory.loss else None

    @property
    def final(self) -> bool:
        return self.state == FINISHED

    def series(self) -> dict:
        spec = self.spec
        if spec is None:  # not started: nothing measured
            return live_series(self.trajectory, False, 0, float("nan"), "constant", self.epochs)
        return live_series(self.trajectory, self.final, spec.data.n_train, spec.optim.lr, spec.optim.schedule, spec.train.epochs)


class PlanView:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.name = ""
        self.runs: list[RunView] = []
        self.state = WAITING
        self.started: float | None = None
        self.ended: float | None = None
        self.version = 0  # bumped by every event: the charts redraw when it moved
        self.verdicts: list = []  # the cross-run verdicts, once the plan has ended
        self.lost: Lost | None = None
        self.last_end: float | None = None  # when the last run ended, the worker's clock
        self.started_text = ""
        self.guide = ""  # the preset's guide, from the first run's spec
        self.devices: tuple = ()  # how busy the GPUs are, the newest DevicesMeasured

    def handle(self, event: object) -> None:
        self.version += 1
        if not isinstance(event, PlanStarted) and not 0 <= getattr(event, "run", 0) < max(len(self.runs), 1):
            return  # a run the plan does not have (a log that was tampered with)
        if isinstance(event, PlanStarted):
            self.name, self.state, self.started = event.name, RUNNING, when(event.started, self.clock)
            self.started_text = event.started
            self.runs = [RunView(i, label, epochs) for i, (label, epochs) in enumerate(zip(event.labels, event.epochs))]
        elif isinstance(event, RunStarted):
            run = self.runs[event.run]
            run.state, run.device, run.run_dir = RUNNING, event.environment.get("device", ""), event.run_dir
            run.started, run.resumed_from = when(event.environment.get("started", ""), self.clock), event.resumed_from
            run.spec = event.spec
            self.guide = self.guide or (event.spec.guide.text.strip() if event.spec is not None else "")
            run.trajectory = Trajectory.from_dict(event.trajectory)  # a resumed run's past
        elif isinstance(event, (EpochMeasured, ProbeMeasured)):
            run = self.runs[event.run]
            run.trajectory.add(event)
            if run.state == LOST:  # it spoke again: not lost after all (a lagging clock elsewhere)
                run.state, run.reason, self.state = RUNNING, "", RUNNING
        elif isinstance(event, Annotation):
            self.runs[event.run].annotations.append(event)
        elif isinstance(event, RunFinished):
            run = self.runs[event.run]
            run.state, run.reason, run.summary = event.state, event.reason, event.summary
            run.verdicts = list(event.verdicts)
            self.last_end = when(event.finished, self.clock)
        elif isinstance(event, PlanFinished):
            # the worker's time, right in a replay too, when the plan's start was the worker's too
            worker_times = self.started is not None and unix_time(self.started_text) is not None
            self.state, self.ended = event.state, (self.last_end if worker_times and self.last_end else self.clock())
            self.verdicts = list(event.verdicts)
        elif isinstance(event, DevicesMeasured):
            self.devices = event.devices
        elif isinstance(event, Lost):  # only a tailed log says so: the worker is gone or silent
            self.state, self.lost = LOST, event
            for run in self.runs:
                if run.state == RUNNING:
                    run.state, run.reason = LOST, event.reason

    @property
    def live(self) -> bool:
        return self.state == RUNNING

    @property
    def current(self) -> RunView | None:
        """The run in progress, else the last one that started."""
        started = [r for r in self.runs if r.state != WAITING]
        running = [r for r in started if r.state == RUNNING]
        return (running or started or self.runs or [None])[-1]

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else self.clock()) - self.started

    def eta(self) -> float | None:
        """Seconds left in the current run, from its own pace so far."""
        run = self.current
        if run is None or run.state != RUNNING or run.started is None or run.epoch == 0:
            return None
        if run.epoch <= run.resumed_from:
            return None
        pace = (self.clock() - run.started) / (run.epoch - run.resumed_from)  # this session's pace
        return pace * (run.epochs - run.epoch)



def when(iso: str, clock: Callable[[], float]) -> float:
    """An event's ISO time as Unix time; the viewer's clock when it has none (or an unreadable one)."""
    at = unix_time(iso)
    return clock() if at is None else at

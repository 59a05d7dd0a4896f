"""What the app knows about a plan: the engine's events, gathered per run. No diagnostics are
computed here; the charts' series come from `engine.analysis.live_series`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from engine.analysis import live_series
from engine.events import (
    FINISHED, RUNNING, Annotation, EpochMeasured, PlanFinished, PlanStarted, ProbeMeasured, RunFinished, RunStarted,
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
    spec: dict = field(default_factory=dict)
    trajectory: Trajectory = field(default_factory=Trajectory)
    started: float | None = None
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
        optim = self.spec.get("optim", {})
        return live_series(self.trajectory, self.final, self.spec.get("data", {}).get("n_train", 0), optim.get("lr", float("nan")),
                           optim.get("schedule", "constant"), self.spec.get("train", {}).get("epochs", 0))


class PlanView:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.name = ""
        self.runs: list[RunView] = []
        self.state = WAITING
        self.started: float | None = None
        self.ended: float | None = None
        self.version = 0  # bumped by every event: the charts redraw when it moved
        self.verdicts: list = []  # the cross-run verdicts, once the plan has ended

    def handle(self, event: object) -> None:
        self.version += 1
        if isinstance(event, PlanStarted):
            self.name, self.state, self.started = event.name, RUNNING, self.clock()
            self.runs = [RunView(i, label, epochs) for i, (label, epochs) in enumerate(zip(event.labels, event.epochs))]
        elif isinstance(event, RunStarted):
            run = self.runs[event.run]
            run.state, run.started, run.device, run.run_dir = RUNNING, self.clock(), event.environment["device"], event.run_dir
            run.spec = event.spec
            run.trajectory = Trajectory.from_dict(event.trajectory)  # a resumed run's past
        elif isinstance(event, (EpochMeasured, ProbeMeasured)):
            self.runs[event.run].trajectory.add(event)
        elif isinstance(event, Annotation):
            self.runs[event.run].annotations.append(event)
        elif isinstance(event, RunFinished):
            run = self.runs[event.run]
            run.state, run.reason, run.summary = event.state, event.reason, event.summary
            run.verdicts = list(event.verdicts)
        elif isinstance(event, PlanFinished):
            self.state, self.ended = event.state, self.clock()
            self.verdicts = list(event.verdicts)

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
        pace = (self.clock() - run.started) / run.epoch
        return pace * (run.epochs - run.epoch)

"""What the runner tells its consumers (record writer, progress bar, TUI), in order:

PlanStarted, then per run RunStarted, EpochMeasured / ProbeMeasured / Notice ..., RunFinished,
and last PlanFinished. Values are plain Python numbers; NaN and inf are data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import Spec

# a run's state, as the record's [status] says it
RUNNING, FINISHED, DIVERGED, INTERRUPTED, FAILED = "running", "finished", "diverged", "interrupted", "failed"
# what a reader concludes for a record or log that says running while its process is gone or
# its heartbeat is stale (engine.liveness); never written by the process itself
LOST = "lost"


@dataclass(frozen=True)
class PlanStarted:
    name: str
    labels: tuple[str, ...]
    epochs: tuple[int, ...]
    worker: dict = field(default_factory=dict)  # host, pid, process_start of the process that runs it
    started: str = ""  # ISO time, the worker's clock
    jobs: int = 1  # runs at once: above 1, its runs' events interleave, each run in a worker of its own


@dataclass(frozen=True)
class RunStarted:
    run: int  # 0-based index in the plan
    of: int
    label: str
    spec: "Spec"  # the run's resolved spec
    params: int
    environment: dict  # versions, device, data, and the worker: host, pid, process_start
    run_dir: str  # "" when no records are written
    resumed_from: int = 0  # the checkpoint's epoch when the run is resumed
    trajectory: dict = field(default_factory=dict)  # what was measured before the resume
    plan: str = ""  # the plan's name
    plan_log: str = ""  # the plan's event log, where a viewer asks the plan to stop ("" when none)


@dataclass(frozen=True)
class EpochMeasured:
    run: int
    epoch: int
    loss: float
    grad_sq: float


@dataclass(frozen=True)
class ProbeMeasured:
    run: int
    epoch: int
    values: dict = field(default_factory=dict)  # drift, ntk_lambda_min


@dataclass(frozen=True)
class Notice:
    """Something the record should say about a run at an epoch (a probe retried, failed...)."""

    run: int
    epoch: int
    text: str


@dataclass(frozen=True)
class Annotation:
    """What the engine's analysis noticed live, with the numbers (kept in the record)."""

    run: int
    epoch: int
    kind: str  # lambda_fell | lambda_nonpositive | loss_rose | drift_jumped
    text: str


@dataclass(frozen=True)
class RunFinished:
    run: int
    state: str
    reason: str
    epochs_done: int
    summary: dict
    finished: str  # ISO time
    verdicts: list = field(default_factory=list)  # engine.verdicts.Verdict as dicts
    resources: dict = field(default_factory=dict)  # what the run used: peak_device_memory (bytes, CUDA runs)


@dataclass(frozen=True)
class Heartbeat:
    """The worker process is alive: written to the logs every HEARTBEAT_EVERY seconds, from a
    thread of its own, whatever the training thread is doing."""

    run: int  # the run in progress, -1 between runs
    at: float  # Unix time on the worker's clock


@dataclass(frozen=True)
class DevicesMeasured:
    """How busy the plan's GPUs are (engine.devices.device_use), every few seconds, in the
    plan's log: for people watching, never part of a record."""

    at: float  # Unix time
    devices: tuple = ()  # per device: device, name, busy (% , NaN unknown), used and total (bytes)


@dataclass(frozen=True)
class RunPlaced:
    """In a plan's log: where run `run`'s directory (and its events.jsonl) is."""

    run: int
    run_dir: str
    offset: int = 0  # where this plan's part of that log starts (a resumed run's log holds earlier parts)


@dataclass(frozen=True)
class Lost:
    """What a reader of logs concludes (never written): the worker is gone, or silent."""

    reason: str
    epochs_done: int  # of the run that was in progress
    run_dir: str  # where `lplr-tui run --resume` continues it ("" when no run had started)


@dataclass(frozen=True)
class PlanFinished:
    state: str  # finished | interrupted | failed
    reason: str = ""
    verdicts: tuple = ()  # the cross-run verdicts, as dicts

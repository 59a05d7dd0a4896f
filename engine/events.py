"""What the runner tells its consumers (record writer, progress bar, TUI), in order:

PlanStarted, then per run RunStarted, EpochMeasured / ProbeMeasured / Notice ..., RunFinished,
and last PlanFinished. Values are plain Python numbers; NaN and inf are data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# a run's state, as the record's [status] says it
RUNNING, FINISHED, DIVERGED, INTERRUPTED, FAILED = "running", "finished", "diverged", "interrupted", "failed"


@dataclass(frozen=True)
class PlanStarted:
    name: str
    labels: tuple[str, ...]
    epochs: tuple[int, ...]


@dataclass(frozen=True)
class RunStarted:
    run: int  # 0-based index in the plan
    of: int
    label: str
    spec: dict
    params: int
    environment: dict
    run_dir: str  # "" when no records are written
    resumed_from: int = 0  # the checkpoint's epoch when the run is resumed
    trajectory: dict = field(default_factory=dict)  # what was measured before the resume


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


@dataclass(frozen=True)
class PlanFinished:
    state: str  # finished | interrupted | failed
    reason: str = ""
    verdicts: tuple = ()  # the cross-run verdicts, as dicts

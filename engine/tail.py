"""Following a plan or a run through its logs, as another process appends to them.

`Tail(target)` takes a plan's log (`<stamp>-<plan>.plan.jsonl`) or a run directory. Each
`poll()` reads only the bytes appended since the last one and returns the same events, in the
same order, that the runner put on its in-process queue: PlanStarted, each run's events, then
PlanFinished. A viewer cannot tell the two sources apart. While the plan is live, the worker's
liveness is checked at most once a second; a worker that is gone or silent yields one `Lost`.

A run directory alone reads as a plan of that one run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import events as ev
from engine import liveness
from engine.errors import LplrError, printable
from engine.eventlog import LOG_NAME, PLAN_SUFFIX, read_events
from engine.times import unix_time

CHECK_EVERY = 1.0  # seconds between liveness checks of a live plan
END_GRACE = 2.0  # seconds a plan's end waits for a run's log that has not caught up with it
NO_START_AFTER = 60.0  # seconds after which a plan's log without PlanStarted is a plan that never started


# a viewer asks a worker to stop with a file, <plan id>.stop beside the plan's log, holding the
# reason; the worker looks for it every STOP_POLL seconds and stops at the end of its epoch
STOP_SUFFIX = ".stop"
STOP_POLL = 0.5  # seconds between a worker's looks for a stop request


def read_stop_request(path: Path | None) -> str:
    """A viewer's stop request: the reason it wrote ("" when there is none)."""
    if path is None:
        return ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"a stop was requested ({path.name} could not be read: {exc.strerror})"
    try:  # a regular file's first bytes (a FIFO planted there must not block the worker)
        text = os.read(fd, 400).decode("utf-8", "replace") if stat.S_ISREG(os.fstat(fd).st_mode) else ""
    except OSError:
        text = ""
    finally:
        os.close(fd)
    return printable(" ".join(text.split()))[:200] or "a stop was requested"


def request_stop(stop_file: Path, reason: str) -> None:
    from engine.atomic import write_text_atomic

    write_text_atomic(stop_file, reason + "\n")


def stop_file_of(plan_log: Path) -> Path:
    return plan_log.with_name(plan_log.name.removesuffix(PLAN_SUFFIX) + STOP_SUFFIX)


@dataclass
class Followed:
    """One log being read: where the next read starts."""

    path: Path
    offset: int = 0
    lines: int = 0
    size: int = -1  # the size at the last read: an unchanged file is not reopened

    def read(self) -> tuple[list, list[str]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            raise LplrError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        if size == self.size:
            return [], []
        got = read_events(self.path, self.offset, self.lines)
        self.offset, self.lines, self.size = got.offset, got.lines, size
        return got.events, [f"{self.path}: {p}" for p in got.problems]


@dataclass
class RunPart:
    """A plan's part of a run's log: from where the plan placed it, to the run's end."""

    followed: Followed
    done: bool = False
    started: bool = False


@dataclass
class Tail:
    target: Path
    clock: object = time.time
    plan: Followed | None = None  # None when a run directory is followed alone
    runs: list = field(default_factory=list)  # RunPart, in the plan's order
    held: ev.PlanFinished | None = None  # the plan's end, passed on once every run's events are
    held_at: float = 0.0
    ended: bool = False
    worker: dict = field(default_factory=dict)
    heartbeat: float | None = None
    lost: ev.Lost | None = None
    checked: float = 0.0
    problems: list = field(default_factory=list)  # corrupt lines, with where; the caller shows them
    epochs_done: int = 0
    run_dir: str = ""
    plan_log_of_run: str = ""  # a run followed alone: its plan's log, named in its RunStarted
    jobs: int = 1  # the plan's runs at once (its PlanStarted): above 1, every placed run's log is read at each poll

    def __post_init__(self) -> None:
        self.target = Path(self.target)
        if self.target.is_dir():
            self.runs.append(RunPart(Followed(self.target / LOG_NAME)))
        else:
            self.plan = Followed(self.target)

    @property
    def stop_file(self) -> Path | None:
        """Where to ask the worker to stop: beside the plan's log (None when it names none)."""
        if self.plan is not None:
            return stop_file_of(self.plan.path)
        if child_name(self.plan_log_of_run):
            return stop_file_of(self.target.parent / child_name(self.plan_log_of_run))
        return None

    def poll(self) -> list:
        out: list = []
        if self.plan is not None:
            events, problems = self.plan.read()
            self.problems += problems
            for event in events:
                self.see(event)
                if isinstance(event, ev.RunPlaced):
                    name = child_name(event.run_dir)  # wherever the results directory is now, and inside it
                    if name:
                        self.runs.append(RunPart(Followed(self.plan.path.parent / name / LOG_NAME, event.offset)))
                    else:
                        self.problems.append(f"{self.plan.path}: a run directory that is not a child of it: {printable(event.run_dir)[:80]!r}")
                elif isinstance(event, ev.PlanFinished):
                    self.held, self.held_at = event, self.clock()
                elif not isinstance(event, ev.Heartbeat):
                    out.append(event)
        # The plan's end is written after every event of its runs. A run that has not finished
        # when the end is read gets END_GRACE seconds (a shared file system may show the plan's
        # log first); then its log is read to its end and the plan ends (a sink failed mid-run).
        ending = self.held is not None and self.clock() - self.held_at >= END_GRACE
        for part in self.runs:
            if not part.done:
                events, problems = part.followed.read()
                self.problems += problems
                for event in events:
                    if self.plan is not None and isinstance(event, ev.RunStarted) and part.started:
                        part.done = True  # a later resume's part of this log (this plan's worker died)
                    if part.done and self.plan is not None:
                        break
                    out += self.from_run(part, event)
            if not part.done and not ending and self.jobs <= 1:
                break  # the later runs have not started, or wait for this one's events
        if self.held is not None and not self.ended and (ending or all(part.done for part in self.runs)):
            out.append(self.held)
            self.ended = True
        out += self.check_liveness()
        return out

    def from_run(self, part: "RunPart", event: object) -> list:
        self.see(event)
        if isinstance(event, ev.Heartbeat):
            return []  # for liveness only: the in-process queue carries none either
        out = []
        if isinstance(event, ev.RunStarted):
            part.started = True
        if self.plan is None:  # a run alone: a plan of one, whatever its index was
            if isinstance(event, ev.RunStarted):
                self.ended, self.lost = False, None
                epochs = event.spec.train.epochs
                out.append(ev.PlanStarted(event.plan or event.label, (event.label,), (epochs,), liveness.worker_of(event.environment)))
            if hasattr(event, "run"):
                event = dataclasses.replace(event, run=0)
        out.append(event)
        if isinstance(event, ev.RunFinished):
            if self.plan is None:  # a resume may append to it: keep reading
                state = event.state if event.state in (ev.INTERRUPTED, ev.FAILED) else ev.FINISHED
                out.append(ev.PlanFinished(state, event.reason))
                self.ended = True
            else:
                part.done = True
        return out

    def see(self, event: object) -> None:
        """What liveness needs: the worker, its newest heartbeat, the run in progress."""
        if isinstance(event, ev.PlanStarted):
            self.worker, self.jobs = dict(event.worker), event.jobs
            self.heartbeat = unix_time(event.started)  # its start is its first sign of life
        elif isinstance(event, ev.RunStarted):
            if self.plan is None or self.jobs <= 1:  # with runs at once, the plan's process is the one to watch
                self.worker = liveness.worker_of(event.environment) or self.worker
            self.run_dir, self.epochs_done, self.plan_log_of_run = event.run_dir, event.resumed_from, event.plan_log
            if self.plan is None:  # a resume is a new worker: its start is its first sign of life
                self.heartbeat = unix_time(event.environment.get("started", ""))
        elif isinstance(event, ev.EpochMeasured):
            self.epochs_done = event.epoch
        elif isinstance(event, ev.RunFinished):
            self.run_dir = ""  # between runs: nothing to resume
        elif isinstance(event, ev.Heartbeat):
            self.heartbeat = max(self.heartbeat or 0.0, event.at)
            if self.lost is not None:
                self.lost = None  # it spoke again (a clock that lagged, a paused process)

    def check_liveness(self) -> list:
        if self.ended or self.held is not None or self.lost is not None:
            return []
        now = self.clock()
        if now - self.checked < CHECK_EVERY:
            return []
        self.checked = now
        if not self.worker:  # no PlanStarted (yet): a worker that died before writing it is lost
            if self.plan is None or not self.plan.path.is_file() or now - self.plan.path.stat().st_mtime < NO_START_AFTER:
                return []
            verdict = liveness.Verdict(True, f"its log names no worker {NO_START_AFTER:g} s after it was made (the plan never started)")
        else:
            verdict = liveness.check(self.worker, self.heartbeat, now)
        if not verdict.lost:
            return []
        run_dir = str(self.target) if self.plan is None else ""
        if self.plan is not None and child_name(self.run_dir):
            run_dir = str(self.plan.path.parent / child_name(self.run_dir))
        self.lost = ev.Lost(f"the worker is lost: {verdict.reason}", self.epochs_done, run_dir)
        return [self.lost]


def child_name(path: str) -> str:
    """The last part of a path from a log, when it can name a file in the results directory
    ("" when it cannot: empty, ".", ".." or not a name this program makes)."""
    name = Path(path).name if path else ""
    return name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=-]*", name) and name not in (".", "..") else ""


def plan_logs(results_dir: Path) -> list[Path]:
    """The plans' logs under a results directory, oldest first (their names start with the time)."""
    return sorted(Path(results_dir).glob(f"*{PLAN_SUFFIX}"))


def resolve(target: Path) -> Path:
    """What `watch TARGET` follows: a plan's log, a run directory, or the newest live plan of a
    results directory (else its newest plan)."""
    target = Path(target)
    if target.is_file() and target.name.endswith(PLAN_SUFFIX):
        return target
    if target.is_dir() and (target / LOG_NAME).is_file():
        return target
    if target.is_dir():
        logs = plan_logs(target)
        if not logs:
            raise LplrError(f"watch {target}: no runs there (no *{PLAN_SUFFIX} plan logs, and not a run directory with {LOG_NAME})")
        live = [p for p in logs if plan_state(p).live]
        return (live or logs)[-1]
    if target.is_file():
        raise LplrError(f"watch {target}: give a plan's log (*{PLAN_SUFFIX}), a run directory or a results directory")
    raise LplrError(f"watch {target}: no such file or directory")


@dataclass(frozen=True)
class PlanState:
    path: Path
    name: str
    state: str  # running, lost, or how it ended
    runs: int
    reason: str = ""
    lost: ev.Lost | None = None
    worker: dict = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state == ev.RUNNING


class PlanWatch:
    """A plan's state kept current from its logs, each look reading only what was appended."""

    def __init__(self, path: Path):
        self.tail = Tail(path)
        self.name, self.runs = path.name.removesuffix(PLAN_SUFFIX), 0

    def state(self) -> PlanState:
        for event in self.tail.poll():
            if isinstance(event, ev.PlanStarted):
                self.name, self.runs = event.name, len(event.labels)
        tail, state, reason = self.tail, ev.RUNNING, ""
        if tail.held is not None:  # its end is written: how it ended (its runs' logs may lag)
            state, reason = tail.held.state, tail.held.reason
        elif tail.lost is not None:
            state, reason = ev.LOST, tail.lost.reason
        return PlanState(tail.target, self.name, state, self.runs, reason, tail.lost, tail.worker)


def plan_state(path: Path) -> PlanState:
    """A plan's state from its logs: how it ended, running, or lost."""
    return PlanWatch(path).state()

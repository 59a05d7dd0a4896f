"""TOML records: one directory per run, `record.toml` rewritten atomically while the run is
live and final at its end; read back; found again under a results directory.

Tables (DESIGN.md §5): [run] [spec] [environment] [status] [summary] [trajectory].
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from engine.atomic import write_text_atomic
from engine.times import iso_time, unix_time
from engine.errors import CONTROL, ConfigError, LplrError, show_value
from engine.events import (
    INTERRUPTED, LOST, RUNNING, Annotation, EpochMeasured, Heartbeat, Notice, ProbeMeasured, RunFinished, RunStarted,
)
from engine.trajectory import Trajectory

RECORD_NAME = "record.toml"
# the record's layout: a reader refuses a newer one rather than misread it (none written before
# this key existed: they read as 1)
RECORD_VERSION = 1


@dataclass
class Record:
    run: dict = field(default_factory=dict)  # plan, index, of, label
    spec: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)  # state, reason, epochs_done
    summary: dict = field(default_factory=dict)
    trajectory: Trajectory = field(default_factory=Trajectory)
    verdict: dict = field(default_factory=dict)  # name -> passed, measured, threshold, text
    annotations: list = field(default_factory=list)  # epoch, kind, text
    path: Path | None = None

    def to_dict(self) -> dict:
        return {
            "format_version": RECORD_VERSION,
            "run": self.run,
            "spec": self.spec,
            "environment": self.environment,
            "status": self.status,
            "summary": self.summary,
            "verdict": self.verdict,
            "annotations": self.annotations,
            "trajectory": self.trajectory.to_dict(),
        }

    @property
    def state(self) -> str:
        return self.status.get("state", "")

    @property
    def label(self) -> str:
        """The run's label; a record without one (another tool's) goes by its directory."""
        return str(self.run.get("label", "") or (self.path.parent.name if self.path else ""))

    def reanalyse(self) -> tuple[dict, list[dict]]:
        """(summary, verdicts) recomputed from the stored spec and trajectory with today's
        analysis; what the record's own [summary] and [verdict] say is not consulted (but
        params, which no trajectory holds)."""
        from engine.judge import judge

        return judge(self.trajectory, self.spec, int(self.summary.get("params", 0) or 0), self.state)


# ---------------------------------------------------------------- files


def write_atomic(path: Path, data: dict) -> None:
    """Write TOML so that a reader (or a kill -9) only ever sees a whole file."""
    write_text_atomic(path, dumps(data))


def dumps(data: dict) -> str:
    """TOML text; the trajectory's long arrays go several values to a line, not one."""
    head = {k: v for k, v in data.items() if k != "trajectory"}
    text = tomli_w.dumps(plain(head))
    if "trajectory" in data:
        lines = [f"{name} = {toml_array(values)}" for name, values in data["trajectory"].items()]
        text += "\n[trajectory]\n" + "\n".join(lines) + "\n"
    return text


def toml_array(values: list, per_line: int = 8) -> str:
    items = [toml_number(v) for v in values]
    rows = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    if len(rows) <= 1:
        return "[" + "".join(rows) + "]"
    return "[\n    " + ",\n    ".join(rows) + ",\n]"


def toml_number(value: object) -> str:
    value = plain(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # repr: exact round trip, inf -> inf
    return str(value)


def plain(value: object) -> object:
    """Only what tomli-w can write: str keys, Python numbers, no None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or isinstance(value, (str, int)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return plain(value.item())
    if isinstance(value, float):
        return float(value)
    return str(value)


def read_record(path: str | Path) -> Record:
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LplrError(f"no record at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LplrError(f"{path} is not a valid record: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LplrError(f"{path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    problem = shape_problem(raw)
    if problem:
        raise LplrError(f"{path} is not a valid record: {problem}")
    if raw.get("format_version", 1) > RECORD_VERSION:
        raise LplrError(
            f"{path}: written by a newer lplr-tui (record format {raw['format_version']}; this version reads format "
            f"{RECORD_VERSION} and older): upgrade lplr-tui to read it"
        )
    return Record(
        run=raw.get("run", {}),
        spec=raw.get("spec", {}),
        environment=raw.get("environment", {}),
        status=raw.get("status", {}),
        summary=raw.get("summary", {}),
        trajectory=Trajectory.from_dict(raw.get("trajectory", {})),
        verdict=raw.get("verdict", {}),
        annotations=raw.get("annotations", []),
        path=path,
    )


TABLE_NAMES = ("run", "spec", "environment", "status", "summary", "verdict", "trajectory")


def shape_problem(raw: dict) -> str:
    """What makes parsed TOML unusable as a record ("" when nothing): the tables this program
    reads must be tables, the trajectory's series lists of numbers, the annotations tables."""
    version = raw.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"format_version must be a whole number >= 1, not {show_value(version)}"
    for name in TABLE_NAMES:
        if not isinstance(raw.get(name, {}), dict):
            return f"[{name}] must be a table, not {show_value(raw[name])}"
    for name, values in raw.get("trajectory", {}).items():
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return f"trajectory.{name} must be a list of numbers"
    for name in ("state", "reason"):
        if not isinstance(raw.get("status", {}).get(name, ""), str):
            return f"status.{name} must be a string"
    for name in ("plan", "label", "plan_id"):
        if not isinstance(raw.get("run", {}).get(name, ""), str):
            return f"run.{name} must be a string"
    for name, verdict in raw.get("verdict", {}).items():
        if not isinstance(verdict, dict):
            return f"verdict.{name} must be a table"
    annotations = raw.get("annotations", [])
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        return "annotations must be an array of tables"
    for where, text in strings({k: v for k, v in raw.items() if k != "trajectory"}):
        if CONTROL.search(text):
            return f"{where} holds control characters"
    return ""


def strings(value: object, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a parsed TOML value, its tables' keys included, with where it sits
    (run.label, status.notes[0]...)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield (f"a key of {where}" if where else "a key"), str(k)
            yield from strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{where}[{i}]")


def find_records(paths: list[str | Path]) -> list[Path]:
    """record.toml files named directly or found under the given directories, oldest first."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif (p / RECORD_NAME).is_file():
            found.append(p / RECORD_NAME)
        elif p.is_dir():
            found += sorted(p.glob(f"*/{RECORD_NAME}"))
        else:
            raise LplrError(f"no record at {p}: give a record.toml, a run directory or a results directory")
    return found


def check_writable(results_dir: Path) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=results_dir):
            pass
    except OSError as exc:
        raise ConfigError("--results", str(results_dir), f"must be a writable directory ({exc.strerror})") from None


def slug(text: str, limit: int = 120) -> str:
    """A file-name part made of text from presets and records: [A-Za-z0-9.=-_] only, no
    leading dot, bounded; every path built from a name or label goes through here."""
    safe = re.sub(r"[^A-Za-z0-9.=-]+", "_", text.replace("η·β₀", "lr_scale").replace("η", "lr")).strip("_.")[:limit]
    return safe or "unnamed"


def new_run_dir(results_dir: Path, plan: str, index: int, label: str) -> Path:
    """A fresh directory that sorts by start time; an existing one is never reused."""
    slug_ = slug(f"{plan}-{index + 1:02d}-{label}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = results_dir / (f"{stamp}-{slug_}" + (f"-{attempt + 1}" if attempt else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise LplrError(f"cannot make a new run directory under {results_dir}")


def plan_id_of(plan_log: str) -> str:
    """The plan's id (<start time>-<plan>) from its log's path; "" when it has none."""
    from engine.eventlog import PLAN_SUFFIX

    name = Path(plan_log).name if plan_log else ""
    return name[: -len(PLAN_SUFFIX)] if name.endswith(PLAN_SUFFIX) else ""


def new_plan_id(results_dir: Path, name: str) -> str:
    """<start time>-<plan>, unique in the results directory."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(name)}"
    for attempt in range(1, 1000):
        plan_id = stamp + (f"-{attempt}" if attempt > 1 else "")
        if not any(results_dir.glob(plan_id + ".*")):  # a slug holds no glob characters
            return plan_id
    raise LplrError(f"cannot name a new plan under {results_dir}")


def claim(path: Path) -> None:
    """The plan's log is new: a plan id already in use is refused, not appended to."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666))
    except FileExistsError:
        raise LplrError(f"{path}: a plan with this id exists already") from None


# ---------------------------------------------------------------- the writer


class RecordWriter:
    """A consumer of the event stream that keeps each run's record.toml current.

    In a worker, the runner owns the trajectory and passes `trajectory_of` (run -> its
    Trajectory): the writer folds no events itself. Without it (rebuilding a record from a
    log) the writer folds them. With `dry`, nothing is written to disk."""

    def __init__(self, plan: str, write_interval: float = 5.0, trajectory_of: Callable[[int], Trajectory] | None = None, dry: bool = False):
        self.plan = plan
        self.write_interval = write_interval
        self.trajectory_of = trajectory_of
        self.dry = dry
        self.before: dict[int, Record] = {}  # a resumed run's record as it was: its place, notes, start
        self.records: dict[int, Record] = {}
        self.last_write: dict[int, float] = {}
        self.paths: list[Path] = []
        self.lock = threading.Lock()
        self.closed = False  # after abandon(): the process is about to end, nothing more is written

    def handle(self, event: object) -> None:
        if isinstance(event, RunStarted) and event.run_dir:
            self.start(event)
        elif isinstance(event, (EpochMeasured, ProbeMeasured)) and event.run in self.records:
            if self.trajectory_of is None:
                self.records[event.run].trajectory.add(event)
            if time.monotonic() - self.last_write[event.run] >= self.write_interval:
                self.write(event.run)
        elif isinstance(event, Annotation) and event.run in self.records:
            self.records[event.run].annotations.append({"epoch": event.epoch, "kind": event.kind, "text": event.text})
        elif isinstance(event, Notice) and event.run in self.records:
            self.records[event.run].status.setdefault("notes", []).append(f"epoch {event.epoch}: {event.text}")
            self.write(event.run)
        elif isinstance(event, RunFinished) and event.run in self.records:
            self.finish(event)
        elif isinstance(event, Heartbeat) and event.run in self.records:
            self.records[event.run].status["heartbeat"] = iso_time(event.at)

    def start(self, event: RunStarted) -> None:
        trajectory = self.trajectory_of(event.run) if self.trajectory_of else Trajectory.from_dict(event.trajectory)
        record = Record(
            run={"plan": event.plan or self.plan, "index": event.run + 1, "of": event.of, "label": event.label,
                 "plan_id": plan_id_of(event.plan_log)},
            spec=event.spec.to_dict(),
            environment=dict(event.environment),
            status={"state": RUNNING, "reason": "", "epochs_done": event.resumed_from},
            summary={"params": event.params},
            trajectory=trajectory,
            path=Path(event.run_dir) / RECORD_NAME,
        )
        if event.resumed_from:
            before = self.records.get(event.run) or self.before.get(event.run) or read_record(record.path)
            self.carry_over(record, before)
        self.records[event.run] = record
        self.paths.append(record.path)
        self.write(event.run)

    @staticmethod
    def carry_over(record: Record, before: Record) -> None:
        """A resumed run keeps its place in the plan, its start time and its notes."""
        record.run = before.run
        resumed_at = record.environment["started"]
        record.environment["started"] = before.environment.get("started", resumed_at)
        record.environment["resumed"] = before.environment.get("resumed", []) + [resumed_at]
        for key in ("beta_0", "peak_device_memory"):  # β₀ its step was set from (optim.lr_scale); the peak so far
            if key in before.environment:
                record.environment[key] = before.environment[key]
        if before.status.get("notes"):
            record.status["notes"] = list(before.status["notes"])
        record.annotations = [a for a in before.annotations if a["epoch"] < record.status["epochs_done"]]

    def finish(self, event: RunFinished) -> None:
        record = self.records[event.run]
        record.status.update(state=event.state, reason=event.reason, epochs_done=event.epochs_done)
        record.summary = dict(event.summary)
        record.verdict = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in event.verdicts}
        record.environment["finished"] = event.finished
        for key, value in event.resources.items():  # a peak: a resumed run's is the larger of its parts'
            before = record.environment.get(key)
            record.environment[key] = max(value, before) if isinstance(before, (int, float)) and isinstance(value, (int, float)) else value
        self.write(event.run)

    def write(self, run: int) -> None:
        with self.lock:
            if self.closed:
                return
            record = self.records[run]
            if record.status["state"] == RUNNING and not self.dry:
                record.status["heartbeat"] = iso_time(time.time())  # the record's own sign of life
                if record.trajectory.epoch:
                    record.status["epochs_done"] = record.trajectory.epoch[-1]
            if not self.dry:
                write_atomic(record.path, record.to_dict())
            self.last_write[run] = time.monotonic()

    def abandon(self, reason: str, state: str = INTERRUPTED) -> None:
        """The process ends now, or the runner broke: mark live records `state` (interrupted or
        failed) with the reason and what they hold, and write no more."""
        with self.lock:
            self.closed = True
            for record in self.records.values():
                if record.status["state"] == RUNNING:
                    record.status.update(state=state, reason=reason)
                    if record.trajectory.epoch:
                        record.status["epochs_done"] = record.trajectory.epoch[-1]
                    write_atomic(record.path, record.to_dict())


def same_summary(a: dict, b: dict, rel: float = 1e-12) -> bool:
    """Summaries equal up to float rounding, NaN equal to NaN."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if math.isnan(x) and math.isnan(y):
                continue
            if not math.isclose(x, y, rel_tol=rel, abs_tol=0.0):
                return False
        elif x != y:
            return False
    return True


def write_plan_summary(results_dir: Path, plan: str, rows: list[dict], mean: dict | None = None, verdicts: list | None = None) -> Path:
    """The plan's summary rows (label, state, record, summary), and a mean row when the plan
    reports one (Table 2), in one TOML file of its own."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    path = Path(results_dir) / f"{stamp}-{slug(plan)}-summary.toml"
    for attempt in range(2, 1000):
        if not os.path.lexists(path) and not os.path.lexists(path.with_suffix(".txt")):
            break
        path = Path(results_dir) / f"{stamp}-{slug(plan)}-summary-{attempt}.toml"
    extra = {"mean": mean} if mean is not None else {}
    write_atomic(path, {"plan": plan, **extra, "verdicts": verdicts or [], "runs": rows})
    return path


# ---------------------------------------------------------------- from the log


def record_from_log(run_dir: str | Path) -> tuple[Record, list[str]]:
    """The record rebuilt from the run's events.jsonl (every session of it: a resumed run's log
    holds each), and the log's corrupt lines. The record's heartbeat is the log's newest."""
    from engine.eventlog import LOG_NAME, read_events

    run_dir = Path(run_dir)
    path = run_dir / LOG_NAME
    try:
        got = read_events(path)
    except FileNotFoundError:
        raise LplrError(f"no event log at {path}") from None
    except OSError as exc:
        raise LplrError(f"{path} cannot be read: {exc.strerror or exc}") from None
    writer = RecordWriter("", float("inf"), dry=True)
    for event in got.events:
        if hasattr(event, "run"):  # one run, whatever its index in the plans that ran it
            event = dataclasses.replace(event, run=0)
        if isinstance(event, RunStarted):
            event = dataclasses.replace(event, run_dir=str(run_dir))
        writer.handle(event)
    if 0 not in writer.records:
        raise LplrError(f"{path}: the log holds no RunStarted event")
    record = writer.records[0]
    if record.state == RUNNING and record.trajectory.epoch:
        record.status["epochs_done"] = record.trajectory.epoch[-1]
    # its sign of life: the newest Heartbeat, else its (last) start; never the reader's clock
    resumed = record.environment.get("resumed")
    last_start = resumed[-1] if isinstance(resumed, list) and resumed else record.environment.get("started", "")
    record.status.setdefault("heartbeat", str(last_start))
    problem = shape_problem(record.to_dict())
    if problem:  # what the log says goes where a record's text goes: the same checks
        raise LplrError(f"{path}: cannot stand for a record: {problem}")
    return record, [f"{path}: {p}" for p in got.problems]


def read_current(run_dir: str | Path) -> tuple[Record, list[str]]:
    """The run as far as it is known: its record, or the record rebuilt from its log when the
    log holds more (epochs measured after the record's last write, or an end the record missed).
    Also the log's problems (corrupt lines), to be shown."""
    from engine.eventlog import LOG_NAME

    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    if not (run_dir / LOG_NAME).is_file():
        return read_record(run_dir), []
    # a record never written (a worker killed at once) is rebuilt; one that is there but invalid
    # (tampered with) is refused as it is, not papered over with the log
    record = read_record(run_dir) if (run_dir / RECORD_NAME).exists() else None
    try:
        rebuilt, problems = record_from_log(run_dir)
    except LplrError:
        if record is None:
            raise
        return record, []
    if record is None or ahead(rebuilt, record):
        rebuilt.status["rebuilt"] = f"from {LOG_NAME}: the record was behind it"
        return rebuilt, problems
    heartbeat = rebuilt.status.get("heartbeat")
    if heartbeat and (unix_time(heartbeat) or 0) > (unix_time(record.status.get("heartbeat")) or 0):
        record.status["heartbeat"] = heartbeat
    return record, problems


def ahead(log: Record, record: Record) -> bool:
    """The log knows more than the record: more epochs, or an end."""
    return len(log.trajectory.epoch) > len(record.trajectory.epoch) or (log.state != RUNNING and record.state == RUNNING)


def with_liveness(record: Record) -> Record:
    """A record that says running, marked `lost` (in memory: readers never write) when its
    worker is gone or its heartbeat is stale; the reason says how to continue it."""
    from engine.liveness import check, worker_of

    if record.state != RUNNING:
        return record
    verdict = check(worker_of(record.environment), unix_time(record.status.get("heartbeat")))
    if verdict.lost:
        where = record.path.parent if record.path else "RUN_DIR"
        record.status.update(state=LOST, reason=(
            f"the worker is lost: {verdict.reason}; `lplr-tui run --resume {where}` continues it from its last checkpoint"
        ))
    return record

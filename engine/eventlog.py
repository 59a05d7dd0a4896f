"""`events.jsonl`: a run's events, appended one JSON object a line as they happen.

The first line names the format and its version. Every later line is one engine event:
{"type": "EpochMeasured", "run": 0, "epoch": 12, ...}. JSON has no NaN or infinity, so a
float that is not finite is written {"float": "nan"}, {"float": "inf"} or {"float": "-inf"}.

Each line is flushed when written; the file is fsync'ed at every probe and when the run ends,
so a `kill -9` loses at most the line being written. A reader takes whole lines only: a torn
last line is left for a later read, and a corrupt line in the middle is reported with its
number while the rest is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import threading
from pathlib import Path

from engine import events as ev
from engine.errors import LplrError, printable

LOG_NAME = "events.jsonl"
FORMAT = "lplr-events"
VERSION = 1
PLAN_SUFFIX = ".plan.jsonl"  # a plan's own log, beside its run directories: <stamp>-<plan>.plan.jsonl
TYPES = {cls.__name__: cls for cls in (
    ev.PlanStarted, ev.RunStarted, ev.EpochMeasured, ev.ProbeMeasured, ev.Notice, ev.Annotation, ev.RunFinished,
    ev.PlanFinished, ev.Heartbeat, ev.RunPlaced, ev.DevicesMeasured,
)}
SYNC_ON = (ev.ProbeMeasured, ev.RunFinished, ev.PlanFinished, ev.RunPlaced, ev.PlanStarted)


def encode(value: object) -> object:
    """Plain JSON: non-finite floats as {"float": ...}; tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy / torch scalars
        return encode(value.item())
    if hasattr(value, "to_dict"):  # a Spec
        return encode(value.to_dict())
    return value


def decode(value: object) -> object:
    if isinstance(value, dict):
        if value.keys() == {"float"} and value["float"] in ("nan", "inf", "-inf"):
            return float(value["float"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def event_line(event: object) -> str:
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return json.dumps({"type": type(event).__name__, **encode(fields)}, ensure_ascii=False, allow_nan=False) + "\n"


# what each field of a logged event must hold (a log is untrusted input: a wrong type is a
# bad line, reported, not a crash of whoever reads it)
KINDS = {"str": (str,), "int": (int,), "float": (int, float), "dict": (dict,), "list": (list,)}


def field_kinds(cls: type) -> dict[str, str]:
    """Each field of an event type and the kind of value it holds: str, int, float, dict, list, tuple..."""
    return {f.name: str(f.type).split("[")[0].split(" ")[0].strip("'\"") for f in dataclasses.fields(cls)}


KINDS_OF = {name: field_kinds(cls) for name, cls in TYPES.items()}


def event_from(raw: dict) -> object:
    cls = TYPES[raw["type"]]
    names = KINDS_OF[raw["type"]]
    values = {k: v for k, v in decode(raw).items() if k in names}
    for name, kind in names.items():
        if name not in values:
            continue
        value = values[name]
        if kind == "tuple":  # tuples come back as lists
            if not isinstance(value, list) or not all(isinstance(v, (str, int, float, dict)) for v in value):
                raise ValueError(f"{name}: not a list of plain values")
            values[name] = tuple(value)
        elif kind in KINDS and (not isinstance(value, KINDS[kind]) or isinstance(value, bool)):
            raise ValueError(f"{name}: not {'a number' if kind == 'float' else 'an integer' if kind == 'int' else 'a ' + kind}")
    if isinstance(values.get("run"), int) and values["run"] < -1 or isinstance(values.get("offset"), int) and values["offset"] < 0:
        raise ValueError("run or offset: negative")
    if cls is ev.RunStarted:  # the spec comes back typed, checked like a preset
        from engine.config import known_guide, validate

        if not isinstance(values.get("spec"), dict):
            raise ValueError("spec: not a table")
        values["spec"] = validate(known_guide(values["spec"]), "the log's RunStarted")
        for series in values.get("trajectory", {}).values():
            if not isinstance(series, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in series):
                raise ValueError("trajectory: a series that is not a list of numbers")
    return cls(**values)


def last_byte(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


class LogFile:
    """One append-only log: its header first, one event a line, flushed per line."""

    def __init__(self, path: Path):
        self.path = path
        torn = path.is_file() and path.stat().st_size and last_byte(path) != b"\n"
        self.fh = open(path, "a", encoding="utf-8")
        if self.fh.tell() == 0:
            self.fh.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
        elif torn:  # a kill -9 cut the last line: end it, so it stays one bad line, not two
            self.fh.write("\n")

    def write(self, event: object) -> None:
        self.fh.write(event_line(event))
        self.fh.flush()
        if isinstance(event, SYNC_ON):
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


class EventLog:
    """A consumer of the event stream: each run's events into its directory's events.jsonl,
    and the plan's own events (its start, where each run is, heartbeats, its end) into the
    plan's log. Thread-safe: the runner's heartbeat thread writes here too."""

    def __init__(self, plan_path: Path | None = None) -> None:
        self.plan_path = plan_path
        self.plan: LogFile | None = None
        self.files: dict[int, LogFile] = {}
        self.lock = threading.Lock()

    def handle(self, event: object) -> None:
        with self.lock:
            if isinstance(event, ev.PlanStarted) and self.plan_path is not None:
                self.plan = LogFile(self.plan_path)
            if isinstance(event, ev.RunStarted) and event.run_dir:
                self.close_run(event.run)
                self.files[event.run] = LogFile(Path(event.run_dir) / LOG_NAME)
                if self.plan is not None:
                    self.plan.write(ev.RunPlaced(event.run, event.run_dir, self.files[event.run].fh.tell()))
            run = self.files.get(getattr(event, "run", -1))
            if run is not None:
                run.write(event)
            if self.plan is not None and isinstance(event, (ev.PlanStarted, ev.Heartbeat, ev.PlanFinished, ev.DevicesMeasured)):
                self.plan.write(event)
            if isinstance(event, ev.RunFinished):
                self.close_run(event.run)
            if isinstance(event, ev.PlanFinished):
                self.close_all()

    def close_run(self, run: int) -> None:
        log = self.files.pop(run, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        with self.lock:
            self.close_all()

    def close_all(self) -> None:
        for run in list(self.files):
            self.close_run(run)
        if self.plan is not None:
            self.plan.close()
            self.plan = None


@dataclasses.dataclass
class Read:
    events: list
    offset: int  # where the next read starts: after the last whole line
    problems: list  # "line N: what is wrong"
    lines: int  # whole lines read so far


def read_events(path: str | Path, offset: int = 0, lines: int = 0) -> Read:
    """The events in the whole lines from `offset` on (0: the start, with the header checked).
    Pass back `offset` and `lines` to read only what was appended since."""
    path = Path(path)
    with open_regular(path) as fh:
        if offset and not lines:  # a first read from the middle: the header is checked all the same
            head = fh.read(offset)
            check_header(path, head.split(b"\n", 1)[0])
            lines = head.count(b"\n")
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1  # a torn last line waits for its newline
    out = Read([], offset + end, [], lines)
    for raw_line in data[:end].splitlines():
        out.lines += 1
        if out.lines == 1:
            check_header(path, raw_line)
            continue
        try:
            raw = json.loads(raw_line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            out.problems.append(f"line {out.lines}: not JSON ({exc.msg if hasattr(exc, 'msg') else type(exc).__name__})")
            continue
        try:
            out.events.append(event_from(raw))
        except (KeyError, TypeError, ValueError, LplrError, RecursionError) as exc:
            out.problems.append(f"line {out.lines}: not an event ({type(exc).__name__}: {exc})")
    return out


def check_header(path: Path, line: bytes | None = None) -> None:
    """The first line (read from `path` when not given) names this format and a version this
    program reads."""
    if line is None:
        try:
            with open_regular(path) as fh:
                line = fh.readline(4096)
        except FileNotFoundError:
            raise LplrError(f"{path}: no such file") from None
    try:
        raw = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raw = None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise LplrError(f"{path}: not an lplr-tui event log (its first line names no format {FORMAT!r})")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION or version < 1:
        raise LplrError(
            f"{path}: event log version {printable(str(version))[:40]}; this lplr-tui reads version {VERSION} and older: upgrade it"
        )


def open_regular(path: Path):
    """A log opened for reading: a regular file only (a FIFO planted in a shared directory
    would block its reader), unreadable ones as one clear error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LplrError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LplrError(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")

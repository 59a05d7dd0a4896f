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
from pathlib import Path

from engine import events as ev
from engine.errors import LplrError

LOG_NAME = "events.jsonl"
FORMAT = "lplr-events"
VERSION = 1
TYPES = {cls.__name__: cls for cls in (
    ev.PlanStarted, ev.RunStarted, ev.EpochMeasured, ev.ProbeMeasured, ev.Notice, ev.Annotation, ev.RunFinished, ev.PlanFinished,
)}
SYNC_ON = (ev.ProbeMeasured, ev.RunFinished, ev.PlanFinished)


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


def event_from(raw: dict) -> object:
    cls = TYPES[raw["type"]]
    names = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in decode(raw).items() if k in names}
    for name, f in names.items():  # tuples come back as lists
        if name in values and isinstance(values[name], list) and "tuple" in str(f.type):
            values[name] = tuple(values[name])
    return cls(**values)


def last_byte(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


class EventLog:
    """A consumer of the event stream: each run's events into its directory's events.jsonl."""

    def __init__(self) -> None:
        self.files: dict[int, object] = {}

    def handle(self, event: object) -> None:
        if isinstance(event, ev.RunStarted) and event.run_dir:
            self.close(event.run)
            path = Path(event.run_dir) / LOG_NAME
            torn = path.is_file() and path.stat().st_size and last_byte(path) != b"\n"
            fh = open(path, "a", encoding="utf-8")
            if fh.tell() == 0:
                fh.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
            elif torn:  # a kill -9 cut the last line: end it, so it stays one bad line, not two
                fh.write("\n")
            self.files[event.run] = fh
        fh = self.files.get(getattr(event, "run", -1))
        if fh is None:
            return
        fh.write(event_line(event))
        fh.flush()
        if isinstance(event, SYNC_ON):
            os.fsync(fh.fileno())
        if isinstance(event, ev.RunFinished):
            self.close(event.run)

    def close(self, run: int | None = None) -> None:
        for index in [run] if run is not None else list(self.files):
            fh = self.files.pop(index, None)
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()


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
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1  # a torn last line waits for its newline
    out = Read([], offset + end, [], lines)
    for raw_line in data[:end].splitlines():
        out.lines += 1
        try:
            raw = json.loads(raw_line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.problems.append(f"line {out.lines}: not JSON ({exc.msg if hasattr(exc, 'msg') else exc})")
            continue
        if out.lines == 1:
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise LplrError(f"{path}: not an lplr-tui event log (its first line names no format {FORMAT!r})")
            if not isinstance(raw.get("version"), int) or raw["version"] > VERSION:
                raise LplrError(f"{path}: event log version {raw.get('version')}; this lplr-tui reads version {VERSION} and older: upgrade it")
            continue
        try:
            out.events.append(event_from(raw))
        except (KeyError, TypeError, ValueError) as exc:
            out.problems.append(f"line {out.lines}: not an event ({type(exc).__name__}: {exc})")
    return out

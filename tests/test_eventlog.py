"""events.jsonl: every event of a run, one JSON line each, readable while it grows."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine
from engine.config import validate
from engine.eventlog import LOG_NAME, EventLog, event_line, read_events
from engine.events import EpochMeasured, ProbeMeasured, RunFinished, RunStarted
from engine.record import read_record
from engine.trajectory import Trajectory


def trajectory_of(events: list) -> Trajectory:
    out = Trajectory()
    for event in events:
        if isinstance(event, (EpochMeasured, ProbeMeasured)):
            out.add(event)
    return out


def test_a_runs_log_holds_every_event_and_rebuilds_its_trajectory(make_spec, tmp_path):
    spec = make_spec(train__epochs=30, probes__ntk_subset=10, data__n_train=100, probes__theory_every=10, probes__ntk_full_every=15)
    list(engine.run(spec, tmp_path))
    run_dir = next(tmp_path.glob("*/"))
    first = json.loads((run_dir / LOG_NAME).read_text().splitlines()[0])
    assert first == {"format": "lplr-events", "version": 1}
    log = read_events(run_dir / LOG_NAME)
    assert log.problems == [] and isinstance(log.events[0], RunStarted) and isinstance(log.events[-1], RunFinished)
    assert trajectory_of(log.events) == read_record(run_dir).trajectory
    assert log.events[-1].state == read_record(run_dir).state == "finished"


def test_nan_and_infinity_are_written_explicitly_and_read_back():
    line = event_line(EpochMeasured(0, 3, float("nan"), float("inf")))
    raw = json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in the log"))
    assert raw["loss"] == {"float": "nan"} and raw["grad_sq"] == {"float": "inf"}
    assert "-inf" in event_line(ProbeMeasured(0, 3, {"drift": -math.inf}))


def write_log(path: Path, events: list) -> None:
    log = EventLog()
    log.handle(RunStarted(0, 1, "m", validate({}), 1, {}, str(path.parent)))
    for event in events:
        log.handle(event)
    log.close()


def test_a_torn_last_line_waits_and_nothing_is_lost_or_read_twice(tmp_path):
    path = tmp_path / LOG_NAME
    write_log(path, [EpochMeasured(0, e, 1.0 / (e + 1), 0.5) for e in range(5)])
    whole = event_line(EpochMeasured(0, 5, 0.1, 0.2))
    with open(path, "a") as fh:
        fh.write(whole[:10])  # a kill -9 mid-line
    first = read_events(path)
    assert [e.epoch for e in first.events[1:]] == [0, 1, 2, 3, 4] and first.problems == []
    with open(path, "a") as fh:
        fh.write(whole[10:])
    more = read_events(path, first.offset, first.lines)
    assert [e.epoch for e in more.events] == [5] and more.problems == []


def test_a_corrupt_middle_line_is_reported_by_number_and_the_rest_read(tmp_path):
    path = tmp_path / LOG_NAME
    write_log(path, [EpochMeasured(0, e, 1.0, 0.5) for e in range(4)])
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = '{"type": "EpochMeasured", "run": 0, "ep\n'
    lines.insert(4, '{"type": "NoSuchEvent"}\n')
    path.write_text("".join(lines))
    log = read_events(path)
    assert [e.epoch for e in log.events if isinstance(e, EpochMeasured)] == [0, 2, 3]
    assert [p.split(":")[0] for p in log.problems] == ["line 4", "line 5"]


def test_a_log_from_a_newer_version_is_refused_in_one_line(tmp_path):
    path = tmp_path / LOG_NAME
    path.write_text('{"format": "lplr-events", "version": 99}\n')
    with pytest.raises(engine.LplrError, match="version 99; this lplr-tui reads version 1"):
        read_events(path)


def test_a_resumed_run_appends_and_ends_a_torn_line_first(tmp_path):
    path = tmp_path / LOG_NAME
    write_log(path, [EpochMeasured(0, 0, 1.0, 0.5)])
    with open(path, "a") as fh:
        fh.write('{"type": "Epoch')  # cut by a kill -9
    write_log(path, [EpochMeasured(0, 1, 0.9, 0.4)])
    log = read_events(path)
    assert [e.epoch for e in log.events if isinstance(e, EpochMeasured)] == [0, 1] and len(log.problems) == 1


WRITER = """
import sys, time
from engine.config import validate
from engine.eventlog import EventLog
from engine.events import EpochMeasured, RunStarted, RunFinished
log = EventLog()
log.handle(RunStarted(0, 1, "m", validate({}), 1, {}, sys.argv[1]))
for e in range(300):
    log.handle(EpochMeasured(0, e, 1.0 / (e + 1), float(e)))
    time.sleep(0.002)
log.handle(RunFinished(0, "finished", "", 300, {}, ""))
"""


def test_tailing_a_log_another_process_appends_to_loses_and_duplicates_nothing(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    path, seen, offset, lines = tmp_path / LOG_NAME, [], 0, 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (seen and isinstance(seen[-1], RunFinished)):
        if path.exists():
            read = read_events(path, offset, lines)
            seen += read.events
            offset, lines = read.offset, read.lines
            assert read.problems == []
        time.sleep(0.003)
    writer.wait(timeout=60)
    assert [e.epoch for e in seen if isinstance(e, EpochMeasured)] == list(range(300))

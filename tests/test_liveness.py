"""Who is still writing a run, and what a viewer reads while it writes: liveness verdicts, the
Tail that follows a plan's logs (or a run directory alone), which plan `watch` picks, records
rebuilt from their logs, and the stop request a viewer leaves for a worker.

Worker processes are stood in for by this process (alive), by a child that has exited (gone),
or by a made-up host (not visible from here); time is passed in, never waited for."""

from __future__ import annotations

import json
import itertools
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from engine import events as ev
from engine import liveness, tail
from engine.config import validate
from engine.errors import LplrError
from engine.eventlog import LOG_NAME, PLAN_SUFFIX, EventLog, event_line
from engine.lock import process_start
from engine.lock import process_state as lock_state
from engine.record import (
    RECORD_NAME, Record, RecordWriter, iso_time, read_current, read_record, record_from_log, unix_time, with_liveness,
    write_atomic,
)
from engine.tail import Tail

HOST = socket.gethostname()
LIMIT = liveness.LOST_AFTER * liveness.HEARTBEAT_EVERY  # seconds of silence before any reader calls a worker lost
SPEC = validate({"train": {"epochs": 7}})


# ---------------------------------------------------------------- workers and events


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped: no process has it now."""
    for _ in range(20):
        child = subprocess.Popen(["true"])
        child.wait()
        try:
            os.kill(child.pid, 0)
        except ProcessLookupError:
            return child.pid
    pytest.skip("every exited child's pid was reused at once")


def this_worker() -> dict:
    return {"host": HOST, "pid": os.getpid(), "process_start": process_start(os.getpid())}


def dead_worker() -> dict:
    return {"host": HOST, "pid": dead_pid(), "process_start": "123456"}


def far_worker() -> dict:
    return {"host": "no-such-host.example.invalid", "pid": 4242, "process_start": "99"}


def environment(worker: dict) -> dict:
    return {"started": iso_time(time.time()), "finished": "", "device": "cpu", **worker}


def started(run: int, run_dir: Path, worker: dict, *, of: int = 2, label: str = "", resumed_from: int = 0,
            plan: str = "plan", plan_log: Path | str = "", trajectory: dict | None = None) -> ev.RunStarted:
    return ev.RunStarted(
        run, of, label or f"run{run}", SPEC, 100, environment(worker), str(run_dir), resumed_from=resumed_from,
        trajectory=trajectory or {}, plan=plan, plan_log=str(plan_log),
    )


def epochs(run: int, numbers) -> list:
    return [ev.EpochMeasured(run, e, 1.0 / (e + 1), 0.5 * e) for e in numbers]


def finished(run: int, epochs_done: int, state: str = ev.FINISHED, reason: str = "") -> ev.RunFinished:
    return ev.RunFinished(run, state, reason, epochs_done, {"params": 100}, iso_time(time.time()))


def plan_started(worker: dict, labels=("run0", "run1")) -> ev.PlanStarted:
    return ev.PlanStarted("plan", tuple(labels), tuple(7 for _ in labels), worker, iso_time(time.time()))


def write(events: list, plan_log: Path | None = None) -> None:
    """Events through an EventLog, as the runner writes them (plan log and run logs)."""
    log = EventLog(plan_log)
    for event in events:
        log.handle(event)
    log.close()


def two_run_plan(results: Path, worker: dict, at: float) -> tuple[Path, list]:
    """A finished plan of two runs, heartbeats among its events; (its plan log, its events)."""
    a, b = results / "20240101-000000-plan-01-run0", results / "20240101-000001-plan-02-run1"
    a.mkdir(parents=True)
    b.mkdir()
    plan_log = results / f"20240101-000000-plan{PLAN_SUFFIX}"
    events = [
        plan_started(worker),
        ev.Heartbeat(-1, at),
        started(0, a, worker, plan_log=plan_log),
        *epochs(0, range(0, 3)),
        ev.Heartbeat(0, at + 1),
        *epochs(0, range(3, 5)),
        finished(0, 4),
        ev.Heartbeat(-1, at + 2),
        started(1, b, worker, plan_log=plan_log),
        *epochs(1, range(0, 2)),
        ev.Heartbeat(1, at + 3),
        *epochs(1, range(2, 4)),
        finished(1, 3),
        ev.PlanFinished(ev.FINISHED),
    ]
    return plan_log, events


def shown(events: list) -> list:
    """What a viewer is given: every event but heartbeats (and the plan log's RunPlaced)."""
    return [e for e in events if not isinstance(e, (ev.Heartbeat, ev.RunPlaced))]


def kinds(events: list) -> list:
    return [(type(e).__name__, getattr(e, "run", None), getattr(e, "epoch", None)) for e in events]


def drain(t: Tail) -> list:
    out = []
    for _ in range(5):  # a finished plan's events come in one poll; later polls add nothing
        out += t.poll()
    return out


# ---------------------------------------------------------------- liveness.check


def test_a_worker_on_this_host_whose_process_is_gone_is_lost_even_with_a_fresh_heartbeat():
    now = time.time()
    verdict = liveness.check(dead_worker(), now, now)
    assert verdict.lost and "is gone" in verdict.reason


def test_this_live_process_with_a_fresh_heartbeat_is_not_lost():
    now = time.time()
    verdict = liveness.check(this_worker(), now - 1, now)
    assert verdict == liveness.Verdict(False, "")


def test_this_live_process_is_lost_once_its_heartbeat_is_older_than_the_limit():
    now = time.time()
    assert not liveness.check(this_worker(), now - LIMIT + 1, now).lost
    verdict = liveness.check(this_worker(), now - LIMIT - 1, now)
    assert verdict.lost and "no heartbeat" in verdict.reason


def test_a_live_pid_whose_process_start_differs_is_a_reused_pid_and_lost():
    now = time.time()
    worker = {**this_worker(), "process_start": str(int(process_start(os.getpid())) + 1)}
    verdict = liveness.check(worker, now, now)
    assert verdict.lost and str(os.getpid()) in verdict.reason


def test_a_worker_on_another_host_is_judged_by_its_heartbeat_alone():
    now = time.time()
    assert not liveness.check(far_worker(), now - 2, now).lost
    stale = liveness.check(far_worker(), now - LIMIT - 5, now)
    assert stale.lost and "no heartbeat" in stale.reason


def test_no_worker_and_no_heartbeat_is_lost_but_a_heartbeat_alone_keeps_it_alive():
    now = time.time()
    nothing = liveness.check({}, None, now)
    assert nothing.lost and "no worker" in nothing.reason
    assert not liveness.check({}, now - 1, now).lost


def test_worker_fields_name_this_process_and_worker_of_reads_them_back_from_an_environment():
    assert liveness.worker_fields() == this_worker()
    assert liveness.worker_of(environment(this_worker())) == this_worker()
    assert liveness.worker_of({"device": "cpu"}) == {}


# ---------------------------------------------------------------- Tail over a plan's logs


def test_tailing_a_finished_plan_yields_exactly_the_runners_events_without_heartbeats(tmp_path):
    now = time.time()
    plan_log, events = two_run_plan(tmp_path, this_worker(), now)
    write(events, plan_log)
    t = Tail(plan_log, clock=lambda: now)
    got = t.poll()
    assert kinds(got) == kinds(shown(events))
    assert got == shown(events)
    assert isinstance(got[0], ev.PlanStarted) and isinstance(got[-1], ev.PlanFinished)
    assert not any(isinstance(e, (ev.Heartbeat, ev.Lost)) for e in got)
    assert t.poll() == [] and t.problems == []


@pytest.mark.parametrize("every", [1, 2, 5])
def test_polling_while_the_plan_is_written_loses_and_duplicates_nothing(tmp_path, every):
    now = time.time()
    plan_log, events = two_run_plan(tmp_path, this_worker(), now)
    t = Tail(plan_log, clock=lambda: now)
    log = EventLog(plan_log)
    got = []
    for i, event in enumerate(events, 1):
        log.handle(event)
        if i % every == 0:
            got += t.poll()
    log.close()
    got += t.poll()
    assert kinds(got) == kinds(shown(events))
    assert got == shown(events)
    assert t.poll() == []


def test_the_plans_end_waits_for_the_last_runs_events(tmp_path):
    now = time.time()
    plan_log, events = two_run_plan(tmp_path, this_worker(), now)
    write(events, plan_log)
    run1_log = tmp_path / "20240101-000001-plan-02-run1" / LOG_NAME
    whole = run1_log.read_bytes()
    run1_log.write_bytes(whole[: whole.index(b'"RunFinished"')].rsplit(b"\n", 1)[0] + b"\n")  # its end not yet there
    t = Tail(plan_log, clock=lambda: now)
    first = t.poll()
    assert not any(isinstance(e, ev.PlanFinished) for e in first)
    with open(run1_log, "ab") as fh:
        fh.write(whole[len(run1_log.read_bytes()):])
    rest = t.poll()
    assert kinds(rest) == [("RunFinished", 1, None), ("PlanFinished", None, None)]


def session_one_and_two(results: Path, first_worker: dict, second_worker: dict, at: float, first_ends: bool = True):
    """Session 1 runs a run's epochs 0-2 (then is interrupted, or killed without an end when
    not `first_ends`); session 2, a resume with a plan log of its own, appends epochs 3-5."""
    run_dir = results / "20240101-000000-plan-01-run0"
    run_dir.mkdir(parents=True)
    plan1 = results / f"20240101-000000-plan{PLAN_SUFFIX}"
    plan2 = results / f"20240102-000000-plan{PLAN_SUFFIX}"
    one = [plan_started(first_worker, ["run0"]), started(0, run_dir, first_worker, of=1, plan_log=plan1),
           *epochs(0, range(3)), ev.Heartbeat(0, at)]
    if first_ends:
        one += [finished(0, 3, ev.INTERRUPTED, "stopped"), ev.PlanFinished(ev.INTERRUPTED, "stopped")]
    two = [plan_started(second_worker, ["run0"]), started(0, run_dir, second_worker, of=1, resumed_from=3, plan_log=plan2),
           *epochs(0, range(3, 6)), ev.Heartbeat(0, at + 1), finished(0, 6), ev.PlanFinished(ev.FINISHED)]
    return run_dir, plan1, one, plan2, two


def test_a_plan_ignores_what_a_later_resume_appended_to_its_runs_log(tmp_path):
    now = time.time()
    run_dir, plan1, one, plan2, two = session_one_and_two(tmp_path, this_worker(), this_worker(), now)
    write(one, plan1)
    early = Tail(plan1, clock=lambda: now)
    before = early.poll()
    write(two, plan2)
    assert early.poll() == []  # polled before and after the resume
    late = drain(Tail(plan1, clock=lambda: now))  # read only after the resume was appended
    assert kinds(before) == kinds(late) == kinds(shown(one))
    assert late[-1] == ev.PlanFinished(ev.INTERRUPTED, "stopped")


def test_a_resumes_plan_reads_only_its_own_part_of_the_runs_log(tmp_path):
    now = time.time()
    run_dir, plan1, one, plan2, two = session_one_and_two(tmp_path, this_worker(), this_worker(), now)
    write(one, plan1)
    write(two, plan2)
    got = drain(Tail(plan2, clock=lambda: now))
    assert kinds(got) == kinds(shown(two))
    assert got[1].resumed_from == 3
    assert [e.epoch for e in got if isinstance(e, ev.EpochMeasured)] == [3, 4, 5]


def test_a_killed_plan_does_not_read_a_later_resumes_part_of_its_runs_log(tmp_path):
    now = time.time()
    run_dir, plan1, one, plan2, two = session_one_and_two(tmp_path, dead_worker(), this_worker(), now, first_ends=False)
    write(one, plan1)
    write(two[:-2], plan2)  # the resume is still running
    assert tail.plan_state(plan1).state == ev.LOST
    got = drain(Tail(plan1, clock=lambda: now + 2))
    assert [e.epoch for e in got if isinstance(e, ev.EpochMeasured)] == [0, 1, 2]
    assert sum(isinstance(e, ev.RunStarted) for e in got) == 1
    assert isinstance(got[-1], ev.Lost) and got[-1].epochs_done == 2


def test_a_tail_polls_the_plan_log_it_was_given_wherever_the_results_directory_moved(tmp_path):
    now = time.time()
    plan_log, events = two_run_plan(tmp_path / "old", this_worker(), now)
    write(events, plan_log)
    (tmp_path / "old").rename(tmp_path / "new")
    got = Tail(tmp_path / "new" / plan_log.name, clock=lambda: now).poll()
    assert got == shown(events)


# ---------------------------------------------------------------- Tail of a run directory alone


def test_a_run_directory_alone_reads_as_a_plan_of_that_one_run(tmp_path):
    now = time.time()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    worker = this_worker()
    write([started(3, run_dir, worker, of=5, label="lr=0.1", plan="sweep"), *epochs(3, range(3)),
           ev.Heartbeat(3, now), finished(3, 2)])
    got = Tail(run_dir, clock=lambda: now).poll()
    assert got[0] == ev.PlanStarted("sweep", ("lr=0.1",), (7,), worker)
    assert kinds(got[1:]) == [("RunStarted", 0, None), ("EpochMeasured", 0, 0), ("EpochMeasured", 0, 1),
                              ("EpochMeasured", 0, 2), ("RunFinished", 0, None), ("PlanFinished", None, None)]
    assert got[1].label == "lr=0.1" and got[1].of == 5
    assert got[-1] == ev.PlanFinished(ev.FINISHED, "")


def test_a_run_alone_that_was_interrupted_ends_its_plan_interrupted_and_without_a_plan_name_takes_its_label(tmp_path):
    now = time.time()
    write([started(0, tmp_path, this_worker(), of=1, label="solo", plan=""), *epochs(0, range(2)),
           finished(0, 1, ev.INTERRUPTED, "Ctrl-C")])
    got = Tail(tmp_path, clock=lambda: now).poll()
    assert got[0].name == "solo"
    assert got[-1] == ev.PlanFinished(ev.INTERRUPTED, "Ctrl-C")


def test_a_run_alone_names_its_plans_stop_file_once_its_start_is_read(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan_log = Path("/elsewhere/20240101-000000-plan.plan.jsonl")  # where it was written; the run sits beside it now
    write([started(0, run_dir, this_worker(), of=1, plan_log=plan_log)])
    t = Tail(run_dir, clock=time.time)
    assert t.stop_file is None
    t.poll()
    assert t.stop_file == tmp_path / "20240101-000000-plan.stop"


def test_a_plan_tails_stop_file_sits_beside_its_log(tmp_path):
    plan_log = tmp_path / f"20240101-000000-plan{PLAN_SUFFIX}"
    assert Tail(plan_log).stop_file == tail.stop_file_of(plan_log) == tmp_path / "20240101-000000-plan.stop"


# ---------------------------------------------------------------- damaged and foreign logs


def test_a_corrupt_middle_line_is_reported_by_number_and_the_events_after_it_still_come(tmp_path):
    now = time.time()
    plan_log, events = two_run_plan(tmp_path, this_worker(), now)
    write(events, plan_log)
    clean = Tail(plan_log, clock=lambda: now)
    clean.poll()
    assert clean.problems == []
    run0_log = tmp_path / "20240101-000000-plan-01-run0" / LOG_NAME
    lines = run0_log.read_text().splitlines(keepends=True)
    assert json.loads(lines[3])["epoch"] == 1  # header, RunStarted, epoch 0, epoch 1
    lines[3] = '{"type": "EpochMeasured", "run": 0, "ep\n'
    run0_log.write_text("".join(lines))
    t = Tail(plan_log, clock=lambda: now)
    got = t.poll()
    assert [e.epoch for e in got if isinstance(e, ev.EpochMeasured) and e.run == 0] == [0, 2, 3, 4]
    assert isinstance(got[-1], ev.PlanFinished)
    assert len(t.problems) == 1 and "line 4" in t.problems[0] and str(run0_log) in t.problems[0]


def test_a_torn_last_line_is_not_read_until_it_is_whole(tmp_path):
    now = time.time()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    log = EventLog(plan_log)
    for event in [plan_started(this_worker(), ["run0"]), started(0, run_dir, this_worker(), of=1), *epochs(0, range(2))]:
        log.handle(event)
    t = Tail(plan_log, clock=lambda: now)
    assert [e.epoch for e in t.poll() if isinstance(e, ev.EpochMeasured)] == [0, 1]
    line = event_line(ev.EpochMeasured(0, 2, 0.25, 1.0))
    with open(run_dir / LOG_NAME, "a") as fh:
        fh.write(line[:15])
    assert t.poll() == []
    with open(run_dir / LOG_NAME, "a") as fh:
        fh.write(line[15:])
    assert t.poll() == [ev.EpochMeasured(0, 2, 0.25, 1.0)]
    assert t.problems == []
    log.close()


@pytest.mark.parametrize("as_run_dir", [False, True])
def test_a_log_from_a_newer_version_is_refused(tmp_path, as_run_dir):
    path = tmp_path / LOG_NAME if as_run_dir else tmp_path / f"p{PLAN_SUFFIX}"
    path.write_text('{"format": "lplr-events", "version": 99}\n')
    with pytest.raises(LplrError, match="version 99"):
        Tail(tmp_path if as_run_dir else path).poll()


def test_a_log_of_this_version_is_read(tmp_path):
    path = tmp_path / f"p{PLAN_SUFFIX}"
    path.write_text('{"format": "lplr-events", "version": 1}\n' + event_line(plan_started(this_worker())))
    assert [type(e) for e in Tail(path, clock=time.time).poll()] == [ev.PlanStarted]


# ---------------------------------------------------------------- Tail's liveness


def dead_plan(results: Path) -> tuple[Path, Path]:
    """A plan whose worker (a gone process on this host) died in its first run after epoch 4."""
    worker = dead_worker()
    run_dir = results / "20240101-000000-plan-01-run0"
    run_dir.mkdir(parents=True)
    plan_log = results / f"20240101-000000-plan{PLAN_SUFFIX}"
    write([plan_started(worker), started(0, run_dir, worker, plan_log=plan_log), *epochs(0, range(5))], plan_log)
    return plan_log, run_dir


def test_a_plan_whose_worker_is_gone_yields_one_lost_naming_where_to_resume(tmp_path):
    plan_log, run_dir = dead_plan(tmp_path / "old")
    (tmp_path / "old").rename(tmp_path / "new")  # the results directory moved since
    clock = [time.time()]
    t = Tail(tmp_path / "new" / plan_log.name, clock=lambda: clock[0])
    got = t.poll()
    lost = [e for e in got if isinstance(e, ev.Lost)]
    assert len(lost) == 1 and got[-1] is lost[0]
    assert lost[0].epochs_done == 4
    assert lost[0].run_dir == str(tmp_path / "new" / run_dir.name)
    assert "gone" in lost[0].reason
    for _ in range(3):  # later checks, each due, say it no more
        clock[0] += 2 * tail.CHECK_EVERY
        assert t.poll() == []


def test_a_run_directory_alone_whose_worker_is_gone_is_lost_at_that_directory(tmp_path):
    worker = dead_worker()
    write([started(2, tmp_path, worker, of=3), *epochs(2, range(4))])
    got = Tail(tmp_path, clock=time.time).poll()
    assert got[-1] == ev.Lost(got[-1].reason, 3, str(tmp_path))


def test_a_plan_whose_worker_is_this_process_with_a_fresh_heartbeat_is_not_lost_until_it_falls_silent(tmp_path):
    now = time.time()
    clock = [now + 1]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    write([plan_started(this_worker(), ["run0"]), ev.Heartbeat(-1, now), started(0, run_dir, this_worker(), of=1),
           *epochs(0, range(3)), ev.Heartbeat(0, now)], plan_log)
    t = Tail(plan_log, clock=lambda: clock[0])
    assert not any(isinstance(e, ev.Lost) for e in t.poll())
    clock[0] = now + LIMIT + 5
    assert [e.epochs_done for e in t.poll() if isinstance(e, ev.Lost)] == [2]


def test_liveness_is_checked_at_most_once_per_check_interval(tmp_path):
    now = time.time()
    clock = [now + LIMIT - 0.1]
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    write([plan_started(this_worker(), ["run0"]), ev.Heartbeat(-1, now)], plan_log)
    t = Tail(plan_log, clock=lambda: clock[0])
    assert [type(e) for e in t.poll()] == [ev.PlanStarted]  # checked now: fresh
    clock[0] = now + LIMIT + tail.CHECK_EVERY * 0.5  # stale, but the last check was under CHECK_EVERY ago
    assert t.poll() == []
    clock[0] = now + LIMIT + tail.CHECK_EVERY * 1.5
    assert [type(e) for e in t.poll()] == [ev.Lost]


def test_a_finished_plan_is_never_lost_though_its_worker_is_gone(tmp_path):
    worker = dead_worker()
    plan_log, events = two_run_plan(tmp_path, worker, time.time() - 3600)
    write(events, plan_log)
    t = Tail(plan_log, clock=time.time)
    got = t.poll() + t.poll()
    assert isinstance(got[-1], ev.PlanFinished)
    assert not any(isinstance(e, ev.Lost) for e in got)


def test_a_plan_that_failed_mid_run_ends_failed_and_is_not_lost(tmp_path):
    worker = dead_worker()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    write([plan_started(worker, ["run0"]), started(0, run_dir, worker, of=1), *epochs(0, range(3)),
           ev.PlanFinished(ev.FAILED, "OSError: disk full")], plan_log)
    ticks = itertools.count(time.time(), 1.0)  # a second a poll: past the end's grace for a run that never ends
    got = drain(Tail(plan_log, clock=lambda: next(ticks)))
    assert got[-1] == ev.PlanFinished(ev.FAILED, "OSError: disk full")
    assert not any(isinstance(e, ev.Lost) for e in got)
    assert tail.plan_state(plan_log).state == ev.FAILED


# ---------------------------------------------------------------- which plan `watch` follows


def live_plan(results: Path, name: str) -> Path:
    path = results / f"{name}{PLAN_SUFFIX}"
    write([plan_started(this_worker(), ["run0"]), ev.Heartbeat(-1, time.time())], path)
    return path


def ended_plan(results: Path, name: str, state: str = ev.FINISHED, reason: str = "") -> Path:
    path = results / f"{name}{PLAN_SUFFIX}"
    write([plan_started(dead_worker(), []), ev.PlanFinished(state, reason)], path)
    return path


def test_resolve_refuses_a_results_directory_without_plans(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(LplrError, match="no runs"):
        tail.resolve(tmp_path)


def test_resolve_refuses_a_missing_path_and_a_file_that_is_no_plan_log(tmp_path):
    with pytest.raises(LplrError, match="no such file"):
        tail.resolve(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LplrError, match="plan's log"):
        tail.resolve(tmp_path / "notes.txt")


def test_resolve_follows_the_newest_live_plan_before_a_newer_finished_one(tmp_path):
    live = live_plan(tmp_path, "20240101-000000-a")
    ended_plan(tmp_path, "20240102-000000-b")
    assert tail.resolve(tmp_path) == live


def test_resolve_follows_the_newest_plan_when_none_is_live(tmp_path):
    ended_plan(tmp_path, "20240101-000000-a")
    newest = ended_plan(tmp_path, "20240102-000000-b", ev.INTERRUPTED)
    assert tail.resolve(tmp_path) == newest


def test_resolve_takes_a_plan_log_and_a_run_directory_as_they_are(tmp_path):
    plan_log = ended_plan(tmp_path, "20240101-000000-a")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write([started(0, run_dir, this_worker(), of=1)])
    assert tail.resolve(plan_log) == plan_log
    assert tail.resolve(run_dir) == run_dir


def test_plan_state_says_running_lost_or_how_the_plan_ended(tmp_path):
    running = tail.plan_state(live_plan(tmp_path, "20240101-000000-a"))
    assert (running.state, running.live, running.name, running.runs) == (ev.RUNNING, True, "plan", 1)
    lost_path, _ = dead_plan(tmp_path / "dead")
    lost = tail.plan_state(lost_path)
    assert (lost.state, lost.live, lost.runs) == (ev.LOST, False, 2)
    assert "gone" in lost.reason and lost.lost is not None and lost.lost.epochs_done == 4
    done = tail.plan_state(ended_plan(tmp_path, "20240102-000000-b"))
    assert (done.state, done.live, done.lost) == (ev.FINISHED, False, None)
    stopped = tail.plan_state(ended_plan(tmp_path, "20240103-000000-c", ev.INTERRUPTED, "stopped from the viewer"))
    assert (stopped.state, stopped.reason) == (ev.INTERRUPTED, "stopped from the viewer")


# ---------------------------------------------------------------- records and their logs


def write_run(run_dir: Path, events: list, write_interval: float = float("inf")) -> None:
    """The run's record and its log from the same events, as a worker writes them."""
    writer, log = RecordWriter("plan", write_interval=write_interval), EventLog()
    for event in events:
        writer.handle(event)
        log.handle(event)
    log.close()


def test_a_record_behind_its_log_is_read_from_the_log(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1), *epochs(0, range(6))])  # the record: written at start only
    assert read_record(tmp_path).trajectory.epoch == []
    record, problems = read_current(tmp_path)
    assert record.trajectory.epoch == [0, 1, 2, 3, 4, 5]
    assert record.status["epochs_done"] == 5 and record.state == ev.RUNNING
    assert "behind" in record.status["rebuilt"] and problems == []


def test_a_record_that_missed_its_runs_end_is_read_from_the_log(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1), *epochs(0, range(3))])
    with open(tmp_path / LOG_NAME, "a") as fh:  # the end reached the log, not the record
        fh.write(event_line(finished(0, 2)))
    record, _ = read_current(tmp_path)
    assert record.state == ev.FINISHED and "rebuilt" in record.status


def test_a_current_record_is_returned_as_it_is(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1), *epochs(0, range(4)), finished(0, 3)])
    on_disk = read_record(tmp_path)
    on_disk.status["notes"] = ["only the record says this"]
    write_atomic(on_disk.path, on_disk.to_dict())
    record, problems = read_current(tmp_path)
    assert "rebuilt" not in record.status
    assert record.status["notes"] == ["only the record says this"]
    assert record.trajectory.epoch == [0, 1, 2, 3] and record.state == ev.FINISHED and problems == []


def test_a_record_that_is_not_valid_is_refused_not_replaced_by_its_log(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1), *epochs(0, range(3)), finished(0, 2)])
    (tmp_path / RECORD_NAME).write_text("[run\nlabel = ")  # records are written atomically: this one was altered
    with pytest.raises(LplrError, match="is not a valid record"):
        read_current(tmp_path)


def test_a_missing_record_is_rebuilt_from_its_log(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1), *epochs(0, range(3)), finished(0, 2)])
    (tmp_path / RECORD_NAME).unlink()
    record, _ = read_current(tmp_path)
    assert record.trajectory.epoch == [0, 1, 2] and "rebuilt" in record.status and record.state == "finished"


def test_a_log_whose_text_holds_control_characters_cannot_stand_for_a_record(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1, label="m=1\x1b[2J"), *epochs(0, range(3))])
    (tmp_path / RECORD_NAME).unlink()
    with pytest.raises(LplrError, match="control characters"):
        read_current(tmp_path)


def test_a_current_record_takes_the_logs_newer_heartbeat(tmp_path):
    write_run(tmp_path, [started(0, tmp_path, this_worker(), of=1), *epochs(0, range(2))], write_interval=0.0)
    later = time.time() + 120
    with open(tmp_path / LOG_NAME, "a") as fh:
        fh.write(event_line(ev.Heartbeat(0, later)))
    record, _ = read_current(tmp_path)
    assert "rebuilt" not in record.status
    assert unix_time(record.status["heartbeat"]) == pytest.approx(later, abs=1)


def test_record_from_log_holds_every_session_of_a_resumed_run(tmp_path):
    first = started(0, tmp_path, this_worker(), of=1)
    write([first, *epochs(0, range(3)), finished(0, 3, ev.INTERRUPTED, "stopped")])
    before = {"epoch": [0, 1, 2], "loss": [1.0, 0.5, 1 / 3], "grad_sq": [0.0, 0.5, 1.0]}  # what the runner hands a resume
    write([started(0, tmp_path, this_worker(), of=1, resumed_from=3, trajectory=before), *epochs(0, range(3, 5)),
           finished(0, 5)])
    record, problems = record_from_log(tmp_path)
    assert record.trajectory.epoch == [0, 1, 2, 3, 4] and record.state == ev.FINISHED and problems == []


def test_record_from_log_refuses_a_log_without_a_run_start(tmp_path):
    (tmp_path / LOG_NAME).write_text('{"format": "lplr-events", "version": 1}\n')
    with pytest.raises(LplrError, match="no RunStarted"):
        record_from_log(tmp_path)


def running_record(tmp_path: Path, worker: dict, heartbeat: float) -> Record:
    return Record(
        run={"plan": "plan", "label": "run0"}, environment=environment(worker),
        status={"state": ev.RUNNING, "reason": "", "epochs_done": 3, "heartbeat": iso_time(heartbeat)},
        path=tmp_path / RECORD_NAME,
    )


def test_a_running_record_whose_worker_is_gone_is_lost_and_says_how_to_resume(tmp_path):
    record = with_liveness(running_record(tmp_path, dead_worker(), time.time()))
    assert record.state == ev.LOST
    assert "--resume" in record.status["reason"] and str(tmp_path) in record.status["reason"]


def test_a_running_record_of_this_live_process_stays_running(tmp_path):
    record = with_liveness(running_record(tmp_path, this_worker(), time.time()))
    assert record.state == ev.RUNNING and record.status["reason"] == ""


def test_a_running_record_whose_heartbeat_is_stale_is_lost(tmp_path):
    record = with_liveness(running_record(tmp_path, far_worker(), time.time() - LIMIT - 60))
    assert record.state == ev.LOST and "no heartbeat" in record.status["reason"]


def test_a_finished_record_is_never_marked_lost(tmp_path):
    record = running_record(tmp_path, dead_worker(), time.time() - 3600)
    record.status.update(state=ev.FINISHED, reason="done")
    before = dict(record.status)
    assert with_liveness(record).status == before


# ---------------------------------------------------------------- stop requests


def test_no_stop_request_reads_as_empty(tmp_path):
    assert tail.read_stop_request(None) == ""
    assert tail.read_stop_request(tmp_path / "p.stop") == ""


def test_a_stop_request_reads_as_one_printable_line(tmp_path):
    stop = tmp_path / "p.stop"
    stop.write_text("  please\n\tstop \x1b[31mnow  \n")
    assert tail.read_stop_request(stop) == "please stop \\x1b[31mnow"
    stop.write_text(" \n")
    assert tail.read_stop_request(stop) == "a stop was requested"


def test_request_stop_leaves_the_reason_where_the_worker_looks(tmp_path):
    plan_log = tmp_path / f"20240101-000000-plan{PLAN_SUFFIX}"
    stop = tail.stop_file_of(plan_log)
    assert stop == tmp_path / "20240101-000000-plan.stop"
    tail.request_stop(stop, "stopped from the viewer")
    assert tail.read_stop_request(stop) == "stopped from the viewer"


# ---------------------------------------------------------------- logs as untrusted input


@pytest.mark.parametrize("line", [
    {"type": "Heartbeat", "run": 0, "at": "x"},
    {"type": "RunPlaced", "run": 0, "run_dir": "r", "offset": -5},
    {"type": "EpochMeasured", "run": -7, "epoch": 1, "loss": 1.0, "grad_sq": 1.0},
    {"type": "EpochMeasured", "run": 0, "epoch": True, "loss": 1.0, "grad_sq": 1.0},
    {"type": "PlanStarted", "name": "p", "labels": "abc", "epochs": [1]},
])
def test_a_logged_event_of_the_wrong_shape_is_a_reported_line_not_a_crash(tmp_path, line):
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    write([plan_started(this_worker(), ["run0"])], plan_log)
    with open(plan_log, "a") as fh:
        fh.write(json.dumps(line) + "\n" + "[" * 100_000 + "\n")
    t = Tail(plan_log, clock=time.time)
    t.poll()
    assert [p.split(": ")[1] for p in t.problems] == ["line 3", "line 4"]


def test_a_run_directory_a_log_places_outside_its_results_directory_is_not_followed(tmp_path):
    plan_log = tmp_path / "results" / f"p{PLAN_SUFFIX}"
    plan_log.parent.mkdir()
    write([plan_started(this_worker(), ["run0"])], plan_log)
    with open(plan_log, "a") as fh:
        fh.write(event_line(ev.RunPlaced(0, "..", 0)))
    t = Tail(plan_log, clock=time.time)
    t.poll()
    assert t.runs == [] and "not a child of it" in t.problems[0]
    assert tail.child_name("results/20240101-000000-plan-01-run0") == "20240101-000000-plan-01-run0"
    assert tail.child_name("..") == tail.child_name(".") == tail.child_name("") == ""


def test_a_fifo_in_place_of_a_log_or_a_stop_request_blocks_no_reader(tmp_path):
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    os.mkfifo(plan_log)
    with pytest.raises(LplrError, match="not a regular file"):
        Tail(plan_log).poll()
    stop = tmp_path / "p.stop"
    os.mkfifo(stop)
    assert tail.read_stop_request(stop) == "a stop was requested"


def test_a_worker_on_another_host_that_never_beat_is_lost_from_its_start(tmp_path):
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    start = ev.PlanStarted("plan", ("run0",), (7,), far_worker(), iso_time(time.time() - 2 * LIMIT))
    write([start], plan_log)
    lost = [e for e in Tail(plan_log, clock=time.time).poll() if isinstance(e, ev.Lost)]
    assert len(lost) == 1 and "no heartbeat" in lost[0].reason
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    write([plan_started(far_worker(), ["run0"])], fresh / f"p{PLAN_SUFFIX}")
    assert not any(isinstance(e, ev.Lost) for e in Tail(fresh / f"p{PLAN_SUFFIX}", clock=time.time).poll())


def test_a_rebuilt_record_beats_when_its_worker_last_did_never_at_the_readers_time(tmp_path):
    run = started(0, tmp_path, far_worker(), of=1)
    run = ev.RunStarted(**{**run.__dict__, "environment": {**run.environment, "started": iso_time(time.time() - 2 * LIMIT)}})
    write_run(tmp_path, [run, *epochs(0, range(3))])
    (tmp_path / RECORD_NAME).unlink()
    record, _ = read_current(tmp_path)
    assert record.status["heartbeat"] == run.environment["started"]
    assert with_liveness(record).state == ev.LOST


def test_a_worker_lost_between_runs_names_no_run_to_resume(tmp_path):
    results = tmp_path / "results"
    plan_log, events = two_run_plan(results, dead_worker(), time.time())
    write(events[:10], plan_log)  # the first run finished; the second not started
    lost = [e for e in Tail(plan_log, clock=time.time).poll() if isinstance(e, ev.Lost)]
    assert len(lost) == 1 and lost[0].run_dir == ""


def test_a_plan_log_that_never_got_its_start_is_lost_after_a_minute(tmp_path):
    plan_log = tmp_path / f"p{PLAN_SUFFIX}"
    plan_log.write_text('{"format": "lplr-events", "version": 1}\n')
    assert not any(isinstance(e, ev.Lost) for e in Tail(plan_log, clock=time.time).poll())
    os.utime(plan_log, (time.time() - 2 * tail.NO_START_AFTER,) * 2)
    lost = [e for e in Tail(plan_log, clock=time.time).poll() if isinstance(e, ev.Lost)]
    assert len(lost) == 1 and "never started" in lost[0].reason


def test_an_exited_worker_not_yet_reaped_is_lost():
    child = subprocess.Popen(["true"])
    deadline = time.time() + 10
    while time.time() < deadline and lock_state(child.pid) != "Z":
        time.sleep(0.01)
    assert lock_state(child.pid) == "Z"  # exited, its parent (this test) has not waited for it
    worker = {"host": HOST, "pid": child.pid, "process_start": process_start(child.pid)}
    assert liveness.check(worker, time.time()).lost
    child.wait()

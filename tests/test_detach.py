"""Runs that outlive the terminal, on real subprocesses: `run --detach`, `watch` (lines, and the
app's screens fed from the logs), `lost` after kill -9, and `--resume` continuing it."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.eventlog import PLAN_SUFFIX
from engine.events import PlanFinished, PlanStarted
from engine.liveness import HEARTBEAT_EVERY, LOST_AFTER
from engine.record import find_records, read_current, read_record, same_summary
from engine.tail import Tail
from lplr_tui.cli import app
from test_nothing_lost import COMMAND, SHORT, start_run, wait_for_epochs


@pytest.fixture
def workers():
    """The pids of workers a test starts: killed at its end, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def detach(data_root: str, results: Path, workers: list, *sets: str) -> tuple[Path, int, str]:
    args = ["run", "--detach", "--preset", "mnist", "--data-dir", data_root, "--results", str(results), *SHORT]
    for s in sets:
        args += ["--set", s]
    started = subprocess.run(COMMAND + args, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    pid = int(re.search(r"as pid (\d+)", started.stdout).group(1))
    workers.append(pid)
    plan_log = Path(re.search(r"watch: +lplr-tui watch (\S+)", started.stdout).group(1))
    return plan_log, pid, started.stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def log_epochs(run_dir: Path) -> int:
    try:
        return read_current(run_dir)[0].status["epochs_done"]
    except Exception:
        return 0


def run_dir_of(plan_log: Path) -> Path:
    return next(plan_log.parent.glob("*/events.jsonl")).parent


def watch_lines(target: Path) -> subprocess.Popen:
    """A viewer without a terminal: it prints lines and exits when the plan ends (0) or is lost (1)."""
    return subprocess.Popen(COMMAND + ["watch", str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- detached plans


def test_detach_says_where_everything_is_and_the_worker_has_a_session_of_its_own(data_root, tmp_path, workers):
    plan_log, pid, said = detach(data_root, tmp_path / "results", workers, "train.epochs=100000")
    output = plan_log.with_name(plan_log.name.removesuffix(PLAN_SUFFIX) + ".log")
    assert f"records: {tmp_path / 'results'}/" in said and f"output:  {output}" in said
    assert f"stop:    kill -TERM {pid}" in said and plan_log.is_file()
    assert os.getsid(pid) == pid != os.getsid(0)  # no controlling terminal's hang-up reaches it
    wait(lambda: log_epochs(run_dir_of(plan_log)) >= 5, what="epochs")
    os.kill(pid, signal.SIGTERM)
    wait(lambda: not alive(pid), what="the worker to stop")
    record = read_record(run_dir_of(plan_log))
    assert record.state == "interrupted" and record.status["reason"].startswith("SIGTERM")
    assert "run 1/1" in output.read_text()  # its output went to the log


def test_a_stop_request_from_a_viewer_is_honoured_at_the_next_epoch(data_root, tmp_path, workers):
    from engine.tail import request_stop

    plan_log, pid, _ = detach(data_root, tmp_path / "results", workers, "train.epochs=100000")
    wait(lambda: log_epochs(run_dir_of(plan_log)) >= 5, what="epochs")
    tail = Tail(plan_log)
    tail.poll()
    request_stop(tail.stop_file, "cancelled by the user")
    wait(lambda: not alive(pid), timeout=30, what="the worker to stop")
    record = read_record(run_dir_of(plan_log))
    assert record.state == "interrupted" and record.status["reason"].startswith("cancelled by the user: stopped at epoch")
    assert (run_dir_of(plan_log) / "checkpoint.pt").is_file() and not tail.stop_file.exists()
    events = Tail(plan_log).poll()
    assert isinstance(events[-1], PlanFinished) and events[-1].state == "interrupted"


def test_two_viewers_at_once_and_a_viewer_killed_and_replaced(data_root, tmp_path, workers):
    plan_log, pid, _ = detach(data_root, tmp_path / "results", workers, "train.epochs=400")
    first, second = watch_lines(plan_log), watch_lines(plan_log)
    wait(lambda: log_epochs(run_dir_of(plan_log)) >= 50, what="epochs")
    first.kill()  # the viewer goes; the plan does not
    first.communicate(timeout=30)
    third = watch_lines(plan_log)
    outputs = [viewer.communicate(timeout=300) for viewer in (second, third)]
    for viewer, (text, errors) in zip((second, third), outputs):
        assert viewer.returncode == 0, errors
        assert "finished after 400 epochs" in text and text.rstrip().endswith("plan finished")
    wait(lambda: not alive(pid), timeout=60, what="the worker to end after its plan")
    assert read_record(run_dir_of(plan_log)).state == "finished"


def test_kill_9_the_worker_is_lost_within_three_heartbeats_and_resume_continues_bit_for_bit(data_root, tmp_path, workers):
    sets = ["train.epochs=400", "train.checkpoint_every=10", "record.write_interval=0.2"]
    whole = start_run(data_root, tmp_path / "whole", *sets)
    whole.communicate(timeout=300)
    assert whole.returncode == 0
    plan_log, pid, _ = detach(data_root, tmp_path / "results", workers, *sets)
    viewer = watch_lines(plan_log)
    run_dir = run_dir_of(plan_log)
    wait(lambda: log_epochs(run_dir) >= 35, what="epochs")
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    text, _ = viewer.communicate(timeout=60)
    detected = time.monotonic() - killed
    assert viewer.returncode == 1 and "lost at epoch" in text and f"--resume {run_dir}" in text
    assert detected < LOST_AFTER * HEARTBEAT_EVERY  # within three heartbeats (on this host: at once)
    summary = subprocess.run(COMMAND + ["summary", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0 and "lost" in summary.stdout and f"run --resume {run_dir}" in summary.stdout
    assert read_record(run_dir).state == "running"  # what the file says; readers conclude lost
    resumed = subprocess.run(COMMAND + ["run", "--resume", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_record(find_records([tmp_path / "whole"])[0]), read_record(run_dir)
    assert b.state == "finished" and a.trajectory == b.trajectory  # bit for bit on the CPU
    assert same_summary(a.summary, b.summary, rel=0)


def test_detach_resume_of_a_live_run_is_refused(data_root, tmp_path, workers):
    plan_log, pid, _ = detach(data_root, tmp_path / "results", workers, "train.epochs=100000")
    run_dir = run_dir_of(plan_log)
    result = CliRunner().invoke(app, ["run", "--detach", "--resume", str(run_dir)])
    assert result.exit_code == 2 and f"locked by pid {pid}" in result.stderr and "still running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and alive(pid)


def test_detach_with_input_the_worker_refuses_is_one_line_exit_2(data_root, tmp_path):
    """What only the worker's preflight finds (here: CUDA asked for on a machine without it, or
    a memory need) comes back to the starting terminal as the worker's one line."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run(
        COMMAND + ["run", "--detach", "--preset", "mnist", "--data-dir", data_root, "--results", str(tmp_path / "r"), "--device", "cuda"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "CUDA is not available" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "r").glob(f"*{PLAN_SUFFIX}"))  # no plan left to list


# ---------------------------------------------------------------- bad input


def test_watch_on_a_directory_with_no_runs(tmp_path):
    result = CliRunner().invoke(app, ["watch", str(tmp_path)])
    assert result.exit_code == 2 and "no runs there" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such file or directory" in result.stderr


def test_watch_a_log_of_a_newer_format_version(tmp_path):
    log = tmp_path / f"20260101-000000-x{PLAN_SUFFIX}"
    log.write_text('{"format": "lplr-events", "version": 99}\n')
    result = CliRunner().invoke(app, ["watch", str(log)])
    assert result.exit_code == 2 and "event log version 99" in result.stderr and "upgrade" in result.stderr


@pytest.mark.parametrize("detached", [False, True])
def test_a_read_only_results_directory(tmp_path, monkeypatch, detached):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    args = ["run", "--preset", "mnist", "--results", str(tmp_path)] + (["--detach"] if detached else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f'--results = "{tmp_path}"' in result.stderr and "Read-only file system" in result.stderr
    assert not list(tmp_path.iterdir())


def test_watching_writes_nothing(data_root, tmp_path):
    proc = start_run(data_root, tmp_path, "train.epochs=20")
    proc.communicate(timeout=300)
    before = sorted(p for p in tmp_path.rglob("*"))
    viewer = watch_lines(tmp_path)
    text, _ = viewer.communicate(timeout=60)
    assert viewer.returncode == 0 and "finished after 20 epochs" in text
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_summary_reads_the_log_when_the_record_is_behind(data_root, tmp_path):
    proc = start_run(data_root, tmp_path, "train.epochs=300", "record.write_interval=1000")
    path = wait_for_epochs(tmp_path, 0)  # the record as RunStarted wrote it: no epochs
    wait(lambda: log_epochs(path.parent) >= 100, what="epochs in the log")
    proc.kill()
    proc.communicate(timeout=60)
    assert len(read_record(path).trajectory.epoch) < 100
    result = subprocess.run(COMMAND + ["summary", str(path.parent)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "the record was behind it" in result.stderr and "lost" in result.stdout
    record, _ = read_current(path.parent)
    assert len(record.trajectory.epoch) >= 100 and record.trajectory.epoch == list(range(len(record.trajectory.epoch)))


def test_a_plan_log_names_its_worker_and_beats(data_root, tmp_path):
    proc = start_run(data_root, tmp_path, "train.epochs=100000")
    try:
        wait(lambda: list(tmp_path.glob(f"*{PLAN_SUFFIX}")), what="the plan log")
        (plan_log,) = tmp_path.glob(f"*{PLAN_SUFFIX}")
        tail, events = Tail(plan_log), []
        wait(lambda: events.extend(tail.poll()) or any(isinstance(e, PlanStarted) for e in events), what="PlanStarted")
        started = next(e for e in events if isinstance(e, PlanStarted))
        assert started.worker["pid"] == proc.pid and started.worker["host"] and started.worker["process_start"]
        first = tail.heartbeat  # the plan's start, its first sign of life
        wait(lambda: tail.poll() is not None and tail.heartbeat != first, timeout=3 * HEARTBEAT_EVERY, what="a heartbeat")
        wait(lambda: list(tmp_path.glob("*/record.toml")), what="the record")
        record = read_record(run_dir_of(plan_log))
        assert record.environment["pid"] == proc.pid and record.status["heartbeat"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)

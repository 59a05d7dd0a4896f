"""A plan's runs at once (engine.fanout): records bit for bit those of a serial plan at the same
thread count, on worker processes and on a local Ray instance; a worker that dies fails its run
and the others go on; a stop reaches every worker; a worker honours its directory's lock and
stops when the plan's process is gone; a tail reads the runs' logs side by side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine
from engine import events as ev
from engine.checkpoint import CHECKPOINT_NAME
from engine.eventlog import LOG_NAME, LogFile
from engine.fanout import FanOut, Job, make_runner, worker_runner
from engine.lock import LockedError, RunLock
from engine.record import dumps, read_record
from engine.runner import Runner
from engine.tail import Tail

VOLATILE = {"started", "finished", "pid", "process_start", "heartbeat", "plan_id"}  # when and who: never the same twice
PLAN = {"data.source": "synthetic", "data.n_train": 64, "probes.ntk_subset": 16, "train.epochs": 30, "model.widths": [16, 32],
        "probes.every": 5, "probes.theory_every": 10, "probes.ntk_full_every": 10, "train.threads": 1, "record.write_interval": 0.2}


def drain(runner) -> list:
    runner.preflight()
    runner.start()
    seen = list(runner.iter_events())
    runner.join()
    return seen


def what_it_says(path: Path) -> str:
    """A record as text, without when and by whom it was written."""

    def clean(value):
        return {k: clean(v) for k, v in value.items() if k not in VOLATILE} if isinstance(value, dict) else value

    return dumps(clean(read_record(path).to_dict()))


def same_records(a: list[Path], b: list[Path]) -> None:
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert what_it_says(x) == what_it_says(y), f"{x} differs from {y}"


@pytest.fixture(scope="module")
def serial(tmp_path_factory, data_root) -> tuple[list[Path], ev.PlanFinished]:
    spec = engine.load_spec("mnist", {**PLAN, "data.root": data_root, "train.device": "cpu"})
    runner = Runner(spec, tmp_path_factory.mktemp("serial"))
    final = drain(runner)[-1]
    return runner.record_paths, final


def test_jobs_2_writes_the_records_of_a_serial_plan_bit_for_bit(serial, make_spec, tmp_path):
    runner = FanOut(make_spec(**{k.replace(".", "__"): v for k, v in PLAN.items()}), tmp_path, jobs=2)
    seen = drain(runner)
    final = seen[-1]
    assert final.state == ev.FINISHED and final.verdicts == serial[1].verdicts  # the cross-run verdicts too
    same_records(runner.record_paths, serial[0])
    pids = {read_record(p).environment["pid"] for p in runner.record_paths}
    assert len(pids) == 2 and os.getpid() not in pids  # each run in a process of its own
    started = [e for e in seen if isinstance(e, ev.RunStarted)]
    assert [e.run for e in seen if isinstance(e, ev.RunFinished)] and len(started) == 2
    assert isinstance(seen[0], ev.PlanStarted) and seen[0].jobs == 2


def test_a_different_thread_count_is_a_different_computation(serial, make_spec, tmp_path):
    """The identity holds at the same thread count: the check above would see two threads."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: two threads cannot differ from one")
    runner = Runner(make_spec(**{k.replace(".", "__"): v for k, v in {**PLAN, "train.threads": 2}.items()}), tmp_path)
    drain(runner)
    assert read_record(runner.record_paths[0]).environment["threads"] == 2
    records = [read_record(p) for p in runner.record_paths]
    theirs = [read_record(p) for p in serial[0]]
    assert any(a.trajectory.to_dict() != b.trajectory.to_dict() for a, b in zip(records, theirs))


def test_a_worker_that_dies_fails_its_run_and_the_others_go_on(make_spec, tmp_path):
    spec = make_spec(data__source="synthetic", data__n_train=64, probes__ntk_subset=16, train__epochs=100_000,
                     model__widths=[16, 32], train__checkpoint_every=20, record__write_interval=0.2)
    runner = FanOut(spec, tmp_path, jobs=2)
    runner.preflight()
    runner.start()
    killed, dead, after = None, None, 0
    for event in runner.iter_events():
        if isinstance(event, ev.EpochMeasured) and event.run == 0 and event.epoch >= 30 and killed is None:
            killed = next(read_record(p).environment["pid"] for p in runner.record_paths if "-01-" in p.parent.name)
            os.kill(killed, signal.SIGKILL)
        if isinstance(event, ev.RunFinished) and event.run == 0:
            assert event.state == ev.FAILED and "SIGKILL" in event.reason and "--resume" in event.reason
            dead = event
        if dead is not None and isinstance(event, ev.EpochMeasured) and event.run == 1:
            after += 1
            if after == 20:  # the other run went on after the death: stop the plan
                runner.cancel("the test has seen enough")
        if isinstance(event, ev.PlanFinished):
            break
    runner.join(60)
    assert event.state == ev.INTERRUPTED and event.reason == "the test has seen enough"
    first, second = (read_record(p) for p in runner.record_paths)
    assert first.state == ev.FAILED and first.status["reason"] == dead.reason
    assert first.status["epochs_done"] >= 30 and len(first.trajectory.epoch) >= 30  # what it measured is kept
    assert second.state == ev.INTERRUPTED and second.status["reason"].startswith("the test has seen enough")
    assert (runner.record_paths[1].parent / CHECKPOINT_NAME).is_file()
    assert not (tmp_path / f"{runner.plan_id}.stop").exists()  # the plan's stop request is gone with it
    # its resume computes with the threads it had (its share of the cores), so it goes on with the same numbers
    resumed = Runner.resume(runner.record_paths[0].parent)
    assert resumed.threads_of(resumed.runs[0]) == first.environment["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    first.environment["threads"] = 10**9  # a record that says something no run could have had: every core
    from engine.record import write_atomic
    write_atomic(first.path, first.to_dict())
    assert Runner.resume(runner.record_paths[0].parent).threads == 0


def test_a_stop_before_the_workers_begin_leaves_no_failed_runs(make_spec, tmp_path):
    """Stopped at once: a worker that had not begun its run leaves no run, as in a serial plan."""
    runner = FanOut(make_spec(data__source="synthetic", data__n_train=32, probes__ntk_subset=16, train__epochs=100_000,
                              model__widths=[16, 32, 64]), tmp_path, jobs=2)
    runner.preflight()
    runner.start()
    runner.cancel("stopped at once")
    seen = list(runner.iter_events())
    runner.join(60)
    assert seen[-1].state == ev.INTERRUPTED
    assert all(e.state == ev.INTERRUPTED for e in seen if isinstance(e, ev.RunFinished))  # none failed
    assert runner._order == [2, 1, 0]  # the largest first
    assert not any(isinstance(e, ev.RunStarted) and e.run == 0 for e in seen)  # the third to start never started
    assert sorted(p.parent for p in runner.record_paths) == sorted(p.parent for p in tmp_path.glob("*/record.toml"))
    assert all((d / "record.toml").is_file() for d in tmp_path.iterdir() if d.is_dir())  # no empty run directory left


def job_for(spec, tmp_path: Path, **changes) -> Job:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return Job(**{**dict(preset=spec.to_dict(), index=0, results_dir=str(tmp_path), plan_id="p", run_dir=str(run_dir),
                        device="cpu", threads=1), **changes})


def test_a_worker_writes_nothing_beside_the_live_holder_of_its_directory(make_spec, tmp_path):
    job = job_for(make_spec(data__source="synthetic", data__n_train=32, train__epochs=3, probes__ntk_subset=16), tmp_path)
    holder, _ = RunLock.acquire(job.run_dir)  # a first attempt, alive (this process)
    with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        worker_runner(job).preflight()
    assert sorted(p.name for p in Path(job.run_dir).iterdir()) == ["run.lock"]
    holder.release()
    runner = worker_runner(job)
    drain(runner)
    assert read_record(Path(job.run_dir) / "record.toml").state == ev.FINISHED


def test_a_worker_whose_plan_process_is_gone_stops_and_says_so(make_spec, tmp_path):
    spec = make_spec(data__source="synthetic", data__n_train=32, train__epochs=100_000, probes__ntk_subset=16, record__write_interval=0.2)
    job_file = tmp_path / "job.json"
    # the plan's process: a shell that starts the worker once its job is written, then waits for it
    plan = subprocess.Popen(["sh", "-c", f'while [ ! -s "{job_file}" ]; do sleep 0.05; done; '
                                         f'"{sys.executable}" -m lplr_tui.worker < "{job_file}" & wait'],
                            start_new_session=True)
    job = job_for(spec, tmp_path, parent=plan.pid)
    job_file.write_text(json.dumps(job.to_dict()))
    record_path, deadline = Path(job.run_dir) / "record.toml", time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # under way
            if record_path.is_file() and len(read_record(record_path).trajectory.epoch) >= 20:
                break
            time.sleep(0.1)
        plan.kill()  # kill -9 of the plan's process: nothing of its own can tell the worker
        plan.wait()
        while time.monotonic() < deadline and read_record(record_path).state == ev.RUNNING:
            time.sleep(0.1)
    finally:
        try:  # the worker too, should it still run (it shares the shell's process group)
            os.killpg(plan.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    record = read_record(record_path)
    assert record.state == ev.INTERRUPTED and f"the plan's process (pid {plan.pid}) ended" in record.status["reason"]
    assert (Path(job.run_dir) / CHECKPOINT_NAME).is_file()


def test_a_bad_job_is_one_error_line(tmp_path):
    worker = subprocess.run([sys.executable, "-m", "lplr_tui.worker"], input='{"preset": {}, "index": 0}', text=True,
                            capture_output=True, timeout=120)
    assert worker.returncode == 2 and worker.stderr.startswith("error:") and "Traceback" not in worker.stderr


def placed_logs(tmp_path: Path, spec, jobs: int) -> Path:
    """A plan's log with two runs placed, each run's log with its start and one epoch, neither finished."""
    plan_log = tmp_path / "p.plan.jsonl"
    log = LogFile(plan_log)
    log.write(ev.PlanStarted("p", ("a", "b"), (9, 9), {"host": "h", "pid": os.getpid(), "process_start": ""}, "", jobs))
    for run in (0, 1):
        run_dir = tmp_path / f"r{run}"
        run_dir.mkdir()
        log.write(ev.RunPlaced(run, str(run_dir), 0))
        own = LogFile(run_dir / LOG_NAME)
        own.write(ev.RunStarted(run, 2, "ab"[run], spec, 1, {}, str(run_dir)))
        own.write(ev.EpochMeasured(run, 1, 0.5, 1.0))
        own.close()
    log.close()
    return plan_log


@pytest.mark.parametrize("jobs, runs_read", [(2, {0, 1}), (1, {0})])
def test_a_tail_reads_the_logs_of_runs_at_once_side_by_side(make_spec, tmp_path, jobs, runs_read):
    """With runs at once, run 2's epochs show while run 1 is still going; a serial plan's tail
    keeps its order and waits for run 1's end."""
    tail = Tail(placed_logs(tmp_path, make_spec(), jobs), clock=lambda: 0.0)
    seen = tail.poll()
    assert {e.run for e in seen if isinstance(e, ev.EpochMeasured)} == runs_read
    assert tail.worker["pid"] == os.getpid()  # the plan's process is the one whose liveness counts


def test_the_largest_runs_start_first(make_spec, tmp_path):
    """Parameters × inputs × epochs: a long run started last would leave the other workers idle at the end."""
    runner = FanOut(make_spec(data__source="synthetic", data__n_train=32, probes__ntk_subset=16, model__widths=[16, 64, 32]),
                    tmp_path, jobs=2)
    assert runner._order == [0, 1, 2]  # before preflight: the plan's order
    runner.preflight()
    assert runner._order == [1, 2, 0]


def test_make_runner_runs_serially_unless_asked(make_spec, tmp_path):
    spec = make_spec(model__widths=[16, 32])
    assert isinstance(make_runner(spec, tmp_path), Runner)
    assert isinstance(make_runner(spec, tmp_path, jobs=2), FanOut)
    assert isinstance(make_runner(make_spec(model__widths=[16, 32], train__jobs=2), tmp_path), FanOut)  # train.jobs
    assert isinstance(make_runner(make_spec(model__widths=[16, 32], train__jobs=2), None), Runner)  # no records: no logs to follow
    assert make_runner(spec, tmp_path, jobs=8).jobs == 2  # never more workers than runs


@pytest.mark.slow
def test_a_local_ray_instance_writes_the_records_of_a_serial_plan(serial, make_spec, tmp_path):
    pytest.importorskip("ray")
    from engine.ray_backend import RayTasks

    backend = RayTasks.connect("local", tmp_path, num_cpus=2)
    try:
        runner = make_runner(make_spec(**{k.replace(".", "__"): v for k, v in PLAN.items()}), tmp_path, backend=backend)
        assert isinstance(runner, FanOut) and runner.jobs == 2
        final = drain(runner)[-1]
    finally:
        backend.close()
    assert final.state == ev.FINISHED and final.verdicts == serial[1].verdicts
    same_records(runner.record_paths, serial[0])
    assert not list(tmp_path.glob(".ray-storage-check-*"))  # the storage probes cleaned up after themselves


def test_ctrl_c_stops_every_worker_with_its_checkpoint_and_an_interrupted_record(data_root, tmp_path):
    from test_nothing_lost import COMMAND

    results = tmp_path / "results"
    args = ["run", "--preset", "mnist", "--data-dir", data_root, "--results", str(results), "--device", "cpu", "--jobs", "2",
            "--set", "data.source=synthetic", "--set", "data.n_train=64", "--set", "probes.ntk_subset=16",
            "--set", "train.epochs=100000", "--set", "model.widths=[16,32]", "--set", "record.write_interval=0.2"]
    plan = subprocess.Popen(COMMAND + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both runs under way
            records = list(results.glob("*/record.toml"))
            if len(records) == 2 and all(len(read_record(p).trajectory.epoch) >= 20 for p in records):
                break
            time.sleep(0.2)
        plan.send_signal(signal.SIGINT)  # what a terminal sends to the plan's process on Ctrl-C
        out, err = plan.communicate(timeout=60)
    finally:
        plan.kill()
    assert plan.returncode == 130, err
    for path in sorted(results.glob("*/record.toml")):
        record = read_record(path)
        assert record.state == ev.INTERRUPTED and record.status["reason"].startswith("SIGINT: interrupted (Ctrl-C)")
        assert (path.parent / CHECKPOINT_NAME).is_file()
    assert "2 runs at a time" in err  # it said how it shares the machine

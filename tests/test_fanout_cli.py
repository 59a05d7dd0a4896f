"""`lplr-tui run --jobs / --devices / --ray` as a user meets them: bad values are one message
naming the option, the value and what is allowed, exit code 2, no traceback; good values run a
plan's runs at once in worker processes; the Ray backend's storage check says which node cannot
write; the line display keeps the interleaved runs of a plan apart."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import engine
from engine import events as ev
from engine.config import MAX_JOBS, Plan
from engine.errors import LplrError
from engine.fanout import WORKER_LOG, parse_devices
from engine.record import read_record
from engine.tail import Tail
from lplr_tui.cli import LOCAL_RAY, app, fan_options, main, ray_address_optional
from lplr_tui.progress import LineDisplay

TINY = ["--set", "data.source=synthetic", "--set", "data.n_train=32", "--set", "train.epochs=5",
        "--set", "probes.ntk_subset=16", "--set", "model.widths=[16,32]", "--device", "cpu"]


def invoke(*args: str):
    """As `lplr-tui ARGS` would: main() writes the missing address of a bare --ray in first."""
    return CliRunner().invoke(app, ray_address_optional(list(args)))


def a_user_error(result, *words: str) -> str:
    """Exit 2, one message on stderr that holds every word, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == ""
    return lines[0]


def tiny_run(data_root: str, results: Path, *more: str) -> list[str]:
    return ["run", "--preset", "mnist", "--data-dir", data_root, "--results", str(results), *TINY, *more]


def listed_records(stdout: str) -> list[Path]:
    """The record paths `run` prints under "records:"."""
    after = stdout.split("records:", 1)[1]
    return [Path(line.strip()) for line in after.splitlines() if line.strip()]


# ------------------------------------------------------------------ --jobs


@pytest.mark.parametrize("value", ["0", "300", "257", "-1"])
def test_jobs_out_of_range_is_one_message_naming_jobs_the_value_and_the_range(value, data_root, tmp_path):
    result = invoke(*tiny_run(data_root, tmp_path / "results", f"--jobs={value}"))
    line = a_user_error(result, "--jobs", value, "between 1 and 256")
    assert line.startswith("error:")
    assert not (tmp_path / "results").exists()  # refused before anything is written


@pytest.mark.parametrize("value", [1, 2, MAX_JOBS])
def test_jobs_within_the_range_passes_the_check(value):
    assert fan_options(value, None, None, None) == ["--jobs", str(value)]


def test_jobs_at_the_top_of_the_range_reaches_the_next_check(tmp_path):
    """--jobs 256 is not refused: the error a user sees is the next one (the missing preset)."""
    result = invoke("run", "--jobs", str(MAX_JOBS), "--results", str(tmp_path))
    line = a_user_error(result, "--preset")
    assert "--jobs" not in line


def test_jobs_that_is_not_a_number_is_refused_by_the_parser(tmp_path):
    result = invoke("run", "--preset", "mnist", "--jobs", "two", "--results", str(tmp_path))
    assert result.exit_code == 2 and "--jobs" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ --resume with fan-out options


@pytest.mark.parametrize("extra", [["--jobs", "2"], ["--devices", "cpu"], ["--ray"], ["--ray", "auto"]])
def test_resume_with_jobs_devices_or_ray_is_refused_before_the_directory_is_read(extra, tmp_path):
    """cli.run calls fan_options (which refuses the mix) before resumed_runner reads the directory:
    an empty directory gives the --resume/--jobs message, not a missing-record one."""
    run_dir = tmp_path / "some-run"
    run_dir.mkdir()
    line = a_user_error(invoke("run", "--resume", str(run_dir), *extra), "--resume", "--jobs", "--devices", "--ray")
    assert "record" not in line
    assert list(run_dir.iterdir()) == []  # nothing read into, nothing written


def test_resume_alone_goes_on_to_read_the_directory(tmp_path):
    """The same empty directory without --jobs: the check above passes and the directory is read."""
    run_dir = tmp_path / "some-run"
    run_dir.mkdir()
    result = invoke("run", "--resume", str(run_dir))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--jobs" not in result.stderr and str(run_dir) in result.stderr


# ------------------------------------------------------------------ --devices


@pytest.mark.parametrize(
    "value, words",
    [
        ("foo", ["'foo' is not a device", '"auto"']),
        ("cuda:7", ["CUDA is not available"]),
        (",", ['"auto"', "cuda:0,cuda:1"]),
        ("cpu,", ['"auto"']),
        ("cuda:x", ["'cuda:x' is not a device"]),
    ],
)
def test_a_bad_devices_list_is_one_message_naming_devices_and_the_value(value, words, data_root, tmp_path):
    if value == "cuda:7":
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
        if torch.cuda.is_available():
            words = [f"this machine has {torch.cuda.device_count()} CUDA device(s)"]
    result = invoke(*tiny_run(data_root, tmp_path / "results", "--devices", value))
    a_user_error(result, "--devices", f'"{value}"', *words)
    assert not list((tmp_path / "results").glob("*/record.toml"))


def test_devices_auto_without_a_gpu_is_the_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert parse_devices("auto") == ["cpu"]
    assert parse_devices(" cpu , cpu ") == ["cpu", "cpu"]


def test_devices_cpu_runs_each_run_in_a_worker_process_on_the_cpu(data_root, tmp_path):
    result = invoke(*tiny_run(data_root, tmp_path / "results", "--set", "model.widths=[16]", "--devices", "cpu"))
    assert result.exit_code == 0, (result.output, result.exception)
    (path,) = listed_records(result.stdout)
    record = read_record(path)
    assert record.state == "finished"
    assert record.environment["device"] == "cpu"
    assert record.environment["pid"] != os.getpid()  # a worker process, not this one
    assert (path.parent / WORKER_LOG).is_file()


# ------------------------------------------------------------------ --ray


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--ray"], ["run", "--ray", LOCAL_RAY]),
        (["run", "--ray", "--jobs", "2"], ["run", "--ray", LOCAL_RAY, "--jobs", "2"]),
        (["run", "--ray", "-j", "2"], ["run", "--ray", LOCAL_RAY, "-j", "2"]),
        (["run", "--ray", "auto"], ["run", "--ray", "auto"]),
        (["run", "--ray", "10.0.0.1:6379", "--jobs", "2"], ["run", "--ray", "10.0.0.1:6379", "--jobs", "2"]),
        (["run", "--", "--ray"], ["run", "--", "--ray"]),
    ],
)
def test_a_bare_ray_means_a_local_instance_and_an_address_is_kept(args, expected):
    assert ray_address_optional(args) == expected


def test_a_bare_ray_through_the_real_entry_point_reaches_ray(data_root, tmp_path, monkeypatch, capsys):
    """`lplr-tui run ... --ray` (main(), as the installed script): the bare flag parses, and
    without Ray installed the one message says how to install it."""
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(sys, "argv", ["lplr-tui", *tiny_run(data_root, tmp_path / "results", "--ray")])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install" in lines[0] and ".[ray]" in lines[0], captured.err
    assert "requires an argument" not in captured.err


def test_ray_that_cannot_be_imported_says_how_to_install_it(data_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = invoke(*tiny_run(data_root, tmp_path / "results", "--ray"))
    a_user_error(result, "--ray", "pip install", ".[ray]")
    assert not (tmp_path / "results").exists()


def test_ray_that_is_installed_is_what_the_backend_imports():
    import ray

    from engine.ray_backend import import_ray

    assert import_ray() is ray


@pytest.mark.parametrize("address, said", [("auto", "cannot reach a Ray cluster at 'auto'"),
                                            ("127.0.0.1:1", "cannot reach a Ray cluster at '127.0.0.1:1'")])
def test_a_ray_cluster_that_cannot_be_reached_is_one_message_naming_it(data_root, tmp_path, monkeypatch, address, said):
    """auto with no cluster running here; an address nothing listens on, which Ray itself would
    retry 20 times, ~41 s each (~14 min, its warnings on stderr meanwhile): lplr-tui tries the
    port first and says so at once."""
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where "auto" looks for a running cluster: none, whatever runs here
    monkeypatch.setenv("RAY_gcs_server_port_wait_time_s", "1")
    started = time.monotonic()
    try:
        result = invoke(*tiny_run(data_root, tmp_path / "results", "--ray", address))
        a_user_error(result, f"--ray {address}", said)
        assert not ray.is_initialized()
    finally:
        ray.shutdown()
    assert time.monotonic() - started < 30


def test_a_reachable_address_passes_the_check(tmp_path):
    import socket

    from engine.ray_backend import check_reachable

    with socket.socket() as listening:  # something answers there: Ray gets to try it
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")
    check_reachable("")  # auto without RAY_ADDRESS: Ray finds its own
    check_reachable("ray://head:10001")  # Ray Client addresses are Ray's to try


# ------------------------------------------------------------------ the storage check of a Ray cluster


def test_write_probe_on_a_path_that_is_not_a_directory_says_so(tmp_path):
    from engine.ray_backend import write_probe

    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("x")
    problem = write_probe(str(not_a_dir), ".probe", "hello")
    assert problem and str(not_a_dir) in problem
    missing = tmp_path / "missing"
    assert str(missing) in write_probe(str(missing), ".probe", "hello")
    assert not missing.exists()


def test_write_probe_on_a_good_directory_works_and_leaves_nothing_behind(tmp_path):
    from engine.ray_backend import write_probe

    assert write_probe(str(tmp_path), ".ray-storage-check-abc", "node-1") == ""
    assert list(tmp_path.iterdir()) == []


class StubRay:
    """What RayTasks.check_storage uses of ray: nodes(), remote(fn).options(...).remote(...),
    wait(), get(). Each node's probe returns answers[node_id] (absent: runs write_probe here)."""

    def __init__(self, answers: dict, nodes: list[dict], late: set = frozenset()):
        self.answers, self._nodes, self.late = answers, nodes, late
        self.asked: list[tuple] = []  # (node_id, strategy node, soft, num_cpus)
        self.shut = False

    def nodes(self):
        return self._nodes

    def remote(self, fn):
        stub = self

        class Options:
            def __init__(self, kw):
                self.kw = kw

            def remote(self, *args):
                node = args[-1]
                strategy = self.kw.get("scheduling_strategy")
                stub.asked.append((node, getattr(strategy, "node_id", None), getattr(strategy, "soft", None), self.kw.get("num_cpus")))
                return ("ref", node, stub.answers[node] if node in stub.answers else fn(*args))

        class Remote:
            def options(self, **kw):
                return Options(kw)

            def remote(self, *args):
                return Options({}).remote(*args)

        return Remote()

    def wait(self, refs, num_returns, timeout):
        ready = [r for r in refs if r[1] not in self.late]
        return ready, [r for r in refs if r[1] in self.late]

    def get(self, refs):
        return [r[2] for r in refs]

    def cluster_resources(self):
        return {"CPU": 4.0}

    def init(self, **kw):
        pass

    def shutdown(self):
        self.shut = True


A, B, DEAD = "a" * 56, "b" * 56, "d" * 56  # Ray node IDs: 28 bytes, in hex
NODES = [{"NodeID": A, "Alive": True}, {"NodeID": B, "Alive": True}, {"NodeID": DEAD, "Alive": False}]


def test_a_node_that_cannot_write_the_results_directory_is_one_error_naming_its_problem(tmp_path):
    from engine.ray_backend import RayTasks

    stub = StubRay({B: "node-b: /shared/results does not exist there", DEAD: "never asked"}, NODES)
    with pytest.raises(LplrError) as caught:
        RayTasks(stub, False, 0.0).check_storage(tmp_path / "results", timeout=5)
    message = str(caught.value)
    assert message.startswith("--ray:")
    assert "storage every node of the cluster sees" in message
    assert "node-b: /shared/results does not exist there" in message
    assert "\n" not in message
    assert [a[0] for a in stub.asked] == [A, B]  # alive nodes only
    assert all(node == pinned and soft is False and cpus == 0 for node, pinned, soft, cpus in stub.asked)  # each on its node


def test_a_node_that_does_not_answer_in_time_is_an_error_too(tmp_path):
    from engine.ray_backend import RayTasks

    stub = StubRay({A: "", B: ""}, NODES, late={B})
    with pytest.raises(LplrError, match=r"1 node\(s\) did not answer within 5 s"):
        RayTasks(stub, False, 0.0).check_storage(tmp_path / "results", timeout=5)


def test_storage_every_node_can_write_is_no_error(tmp_path):
    from engine.ray_backend import RayTasks

    stub = StubRay({A: ""}, NODES)  # B writes for real, here
    RayTasks(stub, False, 0.0).check_storage(tmp_path / "results", timeout=5)
    assert (tmp_path / "results").is_dir() and list((tmp_path / "results").iterdir()) == []
    assert [a[0] for a in stub.asked] == [A, B]


def test_a_local_ray_instance_whose_storage_check_fails_is_shut_down(tmp_path, monkeypatch):
    from engine import ray_backend

    stub = StubRay({A: "node-a: read-only file system", B: ""}, NODES)
    monkeypatch.setattr(ray_backend, "import_ray", lambda: stub)
    with pytest.raises(LplrError, match="read-only file system"):
        ray_backend.RayTasks.connect(ray_backend.LOCAL, tmp_path / "results")
    assert stub.shut  # no Ray instance of ours left running

    good = StubRay({A: "", B: ""}, NODES)
    monkeypatch.setattr(ray_backend, "import_ray", lambda: good)
    backend = ray_backend.RayTasks.connect(ray_backend.LOCAL, tmp_path / "results")
    assert not good.shut and backend.started_here
    backend.close()
    assert good.shut


def test_a_bad_devices_with_ray_is_refused_without_leaving_ray_running(data_root, tmp_path, monkeypatch):
    from engine import ray_backend

    stub = StubRay({}, [{"NodeID": A, "Alive": True}])
    monkeypatch.setattr(ray_backend, "import_ray", lambda: stub)
    inited = []
    stub.init = lambda **kw: inited.append(kw)
    result = invoke(*tiny_run(data_root, tmp_path / "results", "--ray", "--devices", "foo"))
    a_user_error(result, "--devices", '"foo"')
    assert not inited or stub.shut  # refused before Ray starts, or Ray shut down again


# ------------------------------------------------------------------ the line display of runs at once


def test_line_display_keeps_two_interleaved_runs_apart():
    spec = engine.load_spec("mnist", {"data.source": "synthetic", "model.widths": [16, 32]})
    runs = Plan.of(spec).runs
    labels = tuple(r.label for r in runs)
    buffer = io.StringIO()
    display = LineDisplay(Console(file=buffer, width=200), every=0.0)  # every epoch a line
    finished = "2026-01-01T00:00:10+00:00"
    events = [ev.PlanStarted(spec.name, labels, (5, 5), {}, "", jobs=2)]
    events += [ev.RunStarted(i, 2, runs[i].label, runs[i], 1000 + i, {"device": "cpu", "started": "2026-01-01T00:00:00+00:00"},
                             f"/results/run-{i}") for i in (0, 1)]
    for epoch in range(1, 4):
        events += [ev.EpochMeasured(0, epoch, 1.0 / epoch, 0.1), ev.ProbeMeasured(1, epoch, {"ntk_lambda_min": 0.5}),
                   ev.EpochMeasured(1, epoch, 2.0 / epoch, 0.2)]
    events += [ev.RunFinished(1, ev.FINISHED, "", 3, {}, finished),
               ev.RunFinished(0, ev.INTERRUPTED, "SIGTERM: asked to terminate", 3, {}, finished),
               ev.PlanFinished(ev.INTERRUPTED, "SIGTERM: asked to terminate")]
    for event in events:
        display.handle(event)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == f"plan {spec.name}: 2 run(s), 2 at once"
    assert f"run 2/2 {labels[1]}: finished after 3 epochs in 0:00:10" in lines
    assert f"run 1/2 {labels[0]}: interrupted after 3 epochs in 0:00:10: SIGTERM: asked to terminate" in lines
    assert lines[-1] == "plan interrupted: SIGTERM: asked to terminate"
    epoch_lines = [line for line in lines if ": epoch " in line]
    assert len(epoch_lines) == 6
    assert all(line.startswith(f"run 1/2 {labels[0]}: epoch ") and "/3000" in line for line in epoch_lines[0::2])
    assert all(line.startswith(f"run 2/2 {labels[1]}: epoch ") and "λ_min 0.5" in line for line in epoch_lines[1::2])


def test_line_display_of_a_run_whose_worker_died_before_it_started():
    """A worker that ends before its RunStarted: the plan still ends that run, and the line says which."""
    buffer = io.StringIO()
    display = LineDisplay(Console(file=buffer, width=200))
    display.handle(ev.PlanStarted("p", ("a", "b"), (5, 5), jobs=2))
    display.handle(ev.RunFinished(1, ev.FAILED, "its worker ended before the run started (exit code 2)", 0, {}, ""))
    display.handle(ev.PlanFinished(ev.FINISHED))
    lines = buffer.getvalue().splitlines()
    assert "run 2: failed after 0 epochs in ?: its worker ended before the run started (exit code 2)" in lines


def test_line_display_of_a_serial_plan_does_not_say_at_once():
    buffer = io.StringIO()
    LineDisplay(Console(file=buffer, width=200)).handle(ev.PlanStarted("p", ("a", "b"), (5, 5)))
    assert buffer.getvalue().strip() == "plan p: 2 run(s)"


# ------------------------------------------------------------------ a tiny plan, two runs at once, end to end


def test_jobs_2_runs_a_tiny_plan_in_two_workers_end_to_end(data_root, tmp_path):
    results = tmp_path / "results"
    result = invoke(*tiny_run(data_root, results, "--jobs", "2"))
    assert result.exit_code == 0, (result.output, result.exception)
    paths = listed_records(result.stdout)
    assert len(paths) == 2
    records = [read_record(p) for p in paths]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    for path, record in zip(paths, records):
        for name in ("record.toml", "events.jsonl", WORKER_LOG):
            assert (path.parent / name).is_file(), f"{path.parent} has no {name}"
        assert record.state == "finished"
        assert record.environment["threads"] == threads
        assert record.environment["device"] == "cpu"
        assert record.environment["pid"] != os.getpid()
    assert len({r.environment["pid"] for r in records}) == 2  # a process each
    (plan_log,) = results.glob("*.plan.jsonl")
    first = Tail(plan_log).poll()[0]
    assert isinstance(first, ev.PlanStarted) and first.jobs == 2
    assert "2 at once" in result.stdout

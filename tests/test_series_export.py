"""Trajectories exported for other tools: CSV tables and TensorBoard event files, read back
with their own readers and compared value for value (NaN, infinities and -0.0 included)."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import LplrError
from engine.record import RECORD_NAME, Record, read_record, write_atomic
from engine.trajectory import SERIES, Trajectory
from lplr_tui.series_export import trajectory_csv, write_csv, write_tensorboard

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAN, INF = float("nan"), float("inf")
HEADER = [
    "epoch", "loss", "grad_sq", "drift", "ntk_lambda_min", "ntk_lambda_max", "ntk_change",
    "sharpness", "ntk_full_lambda_min", "ntk_full_lambda_max",
]
SPEC = {"name": "mnist", "train": {"epochs": 5, "lr": 0.001, "device": "cpu"}, "model": {"width": 128, "depth": 2}}


def odd_trajectory() -> Trajectory:
    """Three axes of different lengths and epochs; NaN, ±inf, -0.0, a subnormal and values that
    float32 would round; grad_sq short by two (untrusted), ntk_change missing altogether."""
    return Trajectory(
        epoch=[0, 1, 2, 3, 4, 5],
        loss=[2.302585092994046, 0.1 + 0.2, NAN, INF, -INF, 5e-324],
        grad_sq=[1.0000000000000002, -0.0, 1e300, 3.3333333333333335],
        probe_epoch=[0, 1, 2, 4],
        drift=[0.0, 0.123456789012345678, NAN, 7.0],
        ntk_lambda_min=[1e-12, 2e-12, 3e-12, -INF],
        ntk_lambda_max=[10.5, 11.25, INF, 12.125],
        ntk_change=[],
        theory_epoch=[0, 5, 7],
        sharpness=[1.5, NAN, 2.0000000000000004],
        ntk_full_lambda_min=[0.001, 0.002, 0.003],
        ntk_full_lambda_max=[100.0, 200.0, INF],
    )


def saved(directory: Path, label: str, trajectory: Trajectory, plan: str = "mnist", state: str = "finished") -> Record:
    """A record written as a run writes it and read back as the exporter gets it."""
    directory.mkdir(parents=True)
    record = Record(run={"plan": plan, "index": 1, "of": 1, "label": label}, spec=SPEC,
                    status={"state": state, "reason": "", "epochs_done": 5}, trajectory=trajectory)
    write_atomic(directory / RECORD_NAME, record.to_dict())
    return read_record(directory / RECORD_NAME)


def same(a: float, b: float) -> bool:
    """Bit for bit up to NaN payloads: NaN equals NaN, -0.0 differs from 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def expected_points(trajectory: Trajectory) -> dict[str, dict[int, float]]:
    """What each series holds, by epoch, from the raw lists (not from the exporter)."""
    out = {}
    for axis, names in SERIES.items():
        for name in names:
            out[name] = {}
            for epoch, value in zip(getattr(trajectory, axis), getattr(trajectory, name)):
                out[name][epoch] = value
    return out


# ---------------------------------------------------------------- CSV


def test_csv_holds_every_value_exactly_and_leaves_unmeasured_cells_empty(tmp_path):
    record = saved(tmp_path / "run", "m=128 η=1e-3", odd_trajectory())
    rows = list(csv.DictReader(io.StringIO(trajectory_csv(record))))
    assert list(rows[0].keys()) == HEADER
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3, 4, 5, 7]  # the three axes together
    arrays = record.trajectory.arrays()
    for axis, names in SERIES.items():
        epochs = [int(e) for e in arrays[axis]]
        for name in names:
            held = len(getattr(record.trajectory, name))
            by_epoch = {int(row["epoch"]): row[name] for row in rows}
            for i, epoch in enumerate(epochs):
                if i < held:
                    assert same(float(by_epoch[epoch]), arrays[name][i]), (name, epoch)
                else:  # arrays() pads NaN; the CSV says "not measured"
                    assert by_epoch[epoch] == "", (name, epoch)
            assert all(by_epoch[e] == "" for e in by_epoch if e not in epochs), name
    # the spellings pandas and R read; a short series is empty, not NaN
    row3 = next(row for row in rows if row["epoch"] == "3")
    assert (row3["loss"], row3["grad_sq"], row3["drift"], row3["sharpness"]) == ("Inf", "3.3333333333333335", "", "")
    row4 = next(row for row in rows if row["epoch"] == "4")
    assert (row4["loss"], row4["grad_sq"], row4["ntk_lambda_min"], row4["ntk_change"]) == ("-Inf", "", "-Inf", "")
    assert next(row for row in rows if row["epoch"] == "2")["loss"] == "NaN"
    assert next(row for row in rows if row["epoch"] == "1")["grad_sq"] == "-0.0"
    assert next(row for row in rows if row["epoch"] == "5")["loss"] == "5e-324"


def test_csv_text_is_exactly_this():
    record = Record(trajectory=Trajectory(epoch=[0, 2], loss=[0.5, NAN], grad_sq=[0.25, -INF],
                                          probe_epoch=[1], drift=[0.1], ntk_lambda_min=[INF], ntk_lambda_max=[2.0], ntk_change=[0.0]))
    assert trajectory_csv(record) == (
        ",".join(HEADER) + "\n"
        "0,0.5,0.25,,,,,,,\n"
        "1,,,0.1,Inf,2.0,0.0,,,\n"
        "2,NaN,-Inf,,,,,,,\n"
    )


def test_csv_reads_back_with_numpy_and_pandas(tmp_path):
    record = saved(tmp_path / "run", "a", odd_trajectory())
    text = trajectory_csv(record)
    table = np.genfromtxt(io.StringIO(text), delimiter=",", names=True, dtype=float)
    assert list(table.dtype.names) == HEADER
    expected = expected_points(record.trajectory)
    for row in table:
        for name in HEADER[1:]:
            want = expected[name].get(int(row["epoch"]))
            if want is None:
                assert math.isnan(row[name])  # genfromtxt reads an empty cell as NaN
            else:
                assert same(float(row[name]), want), (name, row["epoch"])
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(io.StringIO(text))
    assert list(frame.columns) == HEADER and list(frame["epoch"]) == [0, 1, 2, 3, 4, 5, 7]
    assert list(frame["loss"][3:5]) == [INF, -INF] and frame["loss"][2] != frame["loss"][2]
    assert frame["loss"][1] == 0.1 + 0.2 and frame["drift"][1] == 0.123456789012345678
    assert frame["ntk_change"].isna().all() and frame["grad_sq"][4:].isna().all()


def test_an_epoch_twice_on_one_axis_keeps_its_last_value():
    record = Record(trajectory=Trajectory(epoch=[0, 1, 1, 2], loss=[0.1, 0.2, 0.3, 0.4], grad_sq=[1.0, 2.0, 3.0, 4.0]))
    rows = list(csv.DictReader(io.StringIO(trajectory_csv(record))))
    assert [(r["epoch"], r["loss"], r["grad_sq"]) for r in rows] == [("0", "0.1", "1.0"), ("1", "0.3", "3.0"), ("2", "0.4", "4.0")]


def test_an_epoch_that_is_not_a_whole_number_is_refused():
    record = Record(trajectory=Trajectory(epoch=[0, 1.5], loss=[0.1, 0.2], grad_sq=[1.0, 2.0]), path=Path("/r/record.toml"))
    with pytest.raises(LplrError, match=r"/r/record.toml: trajectory.epoch holds 1.5, not a whole number"):
        trajectory_csv(record)
    whole = Record(trajectory=Trajectory(epoch=[0, 1.0], loss=[0.1, 0.2], grad_sq=[1.0, 2.0]))
    assert trajectory_csv(whole).splitlines()[2].startswith("1,0.2,2.0,")


def test_write_csv_beside_each_record(tmp_path):
    a = saved(tmp_path / "results" / "run-a", "a", odd_trajectory())
    b = saved(tmp_path / "results" / "run-b", "b", Trajectory(epoch=[0], loss=[9.5], grad_sq=[8.5]))
    paths = write_csv([a, b])
    assert paths == [tmp_path / "results" / "run-a" / "trajectory.csv", tmp_path / "results" / "run-b" / "trajectory.csv"]
    assert paths[0].read_text() == trajectory_csv(a)
    assert paths[1].read_text() == ",".join(HEADER) + "\n0,9.5,8.5,,,,,,,\n"


def test_write_csv_into_a_directory_keeps_runs_of_the_same_name_apart(tmp_path):
    one = saved(tmp_path / "results1" / "20250101-mnist-01-a", "a", Trajectory(epoch=[0], loss=[1.0], grad_sq=[1.0]))
    two = saved(tmp_path / "results2" / "20250101-mnist-01-a", "a", Trajectory(epoch=[0], loss=[2.0], grad_sq=[2.0]))
    three = saved(tmp_path / "results3" / "20250101-mnist-01-a", "a", Trajectory(epoch=[0], loss=[3.0], grad_sq=[3.0]))
    other = saved(tmp_path / "results1" / "odd name η", "b", Trajectory(epoch=[0], loss=[4.0], grad_sq=[4.0]))
    out = tmp_path / "made" / "csv"
    paths = write_csv([one, two, other, three], out)
    assert [p.name for p in paths] == ["20250101-mnist-01-a.csv", "20250101-mnist-01-a-2.csv", "odd_name_lr.csv", "20250101-mnist-01-a-3.csv"]
    assert all(p.parent == out for p in paths)
    assert [p.read_text().splitlines()[1] for p in paths] == ["0,1.0,1.0,,,,,,,", "0,2.0,2.0,,,,,,,", "0,4.0,4.0,,,,,,,", "0,3.0,3.0,,,,,,,"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temporary files left


def test_write_csv_names_the_path_it_cannot_write(tmp_path):
    record = saved(tmp_path / "run", "a", odd_trajectory())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(LplrError, match=rf"{blocker / 'out'}: cannot make the directory \(Not a directory\)"):
        write_csv([record], blocker / "out")
    gone = Record(run={"label": "g"}, path=tmp_path / "removed" / RECORD_NAME)
    with pytest.raises(LplrError, match=rf"{tmp_path / 'removed' / 'trajectory.csv'}: cannot write \(No such file or directory\)"):
        write_csv([gone])
    with pytest.raises(LplrError, match="has no run directory"):
        write_csv([Record(run={"label": "x"})])


# ---------------------------------------------------------------- TensorBoard


def events(run_dir: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator, tag: str) -> tuple[list[int], list[float]]:
    from tensorboard.util.tensor_util import make_ndarray

    steps, values = [], []
    for event in accumulator.Tensors(tag):
        array = make_ndarray(event.tensor_proto)
        assert array.dtype == np.float64 and array.shape == ()
        steps.append(event.step)
        values.append(float(array))
    return steps, values


def text(accumulator, tag: str) -> str:
    from tensorboard.util.tensor_util import make_ndarray

    (event,) = accumulator.Tensors(f"{tag}/text_summary")
    return make_ndarray(event.tensor_proto).item().decode("utf-8")


def test_tensorboard_holds_every_value_exactly_as_float64(tmp_path):
    pytest.importorskip("tensorboard")
    record = saved(tmp_path / "results" / "20250101-mnist-01-m128", "m=128 η=1e-3", odd_trajectory())
    logdir = tmp_path / "tb"
    (run_dir,) = write_tensorboard([record], logdir)
    assert run_dir == logdir / "m=128_lr=1e-3" and run_dir.is_dir()
    accumulator = events(run_dir)
    expected = expected_points(record.trajectory)
    held = {name for name, points in expected.items() if points}
    assert set(accumulator.Tags()["tensors"]) == held | {"spec/text_summary", "run/text_summary"}
    assert "ntk_change" not in held  # a series the record lacks is not invented
    for name in held:
        steps, values = scalars(accumulator, name)
        assert steps == sorted(expected[name]), name
        assert all(same(v, expected[name][s]) for s, v in zip(steps, values)), (name, values)
    assert scalars(accumulator, "grad_sq")[0] == [0, 1, 2, 3]  # short: no padding NaN at 4, 5
    assert scalars(accumulator, "sharpness") == ([0, 5, 7], [1.5, pytest.approx(NAN, nan_ok=True), 2.0000000000000004])
    assert scalars(accumulator, "loss")[1][5] == 5e-324  # float32 would make it 0
    assert scalars(accumulator, "drift")[1][1] == 0.123456789012345678


def test_tensorboard_text_holds_the_spec_as_toml_and_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    record = saved(tmp_path / "results" / "run-1", "a run", odd_trajectory(), plan="width-sweep", state="diverged")
    (run_dir,) = write_tensorboard([record], tmp_path / "tb")
    accumulator = events(run_dir)
    spec = text(accumulator, "spec")
    assert all(line.startswith("    ") for line in spec.splitlines())  # a markdown code block
    assert "    [train]\n    epochs = 5\n" in spec
    assert tomllib.loads("\n".join(line[4:] for line in spec.splitlines())) == SPEC
    run = text(accumulator, "run").splitlines()
    assert run == ["    label: a run", "    plan: width-sweep", "    state: diverged", f"    record: {record.path}"]


def test_tensorboard_keeps_runs_of_the_same_label_apart(tmp_path):
    pytest.importorskip("tensorboard")
    a = saved(tmp_path / "plan1" / "run-a", "same", Trajectory(epoch=[0, 1], loss=[1.0, 1.5], grad_sq=[0.0, 0.0]))
    b = saved(tmp_path / "plan2" / "run-b", "same", Trajectory(epoch=[0, 1, 2], loss=[2.0, 2.5, 2.75], grad_sq=[0.0, 0.0, 0.0]))
    c = saved(tmp_path / "plan3" / "run-b", "same", Trajectory(epoch=[0], loss=[3.0], grad_sq=[0.0]))
    d = saved(tmp_path / "plan3" / "run-d", "../../escape", Trajectory(epoch=[0], loss=[4.0], grad_sq=[0.0]))
    logdir = tmp_path / "tb"
    dirs = write_tensorboard([a, b, c, d], logdir)
    assert [p.name for p in dirs] == ["same", "same-run-b", "same-run-b-2", "escape"]
    assert sorted(p.name for p in logdir.iterdir()) == sorted(p.name for p in dirs)  # nothing outside logdir
    assert [scalars(events(p), "loss") for p in dirs] == [([0, 1], [1.0, 1.5]), ([0, 1, 2], [2.0, 2.5, 2.75]), ([0], [3.0]), ([0], [4.0])]
    assert [text(events(p), "run").splitlines()[-1] for p in dirs] == [f"    record: {r.path}" for r in (a, b, c, d)]


def test_tensorboard_keeps_the_last_of_a_repeated_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    record = Record(run={"label": "r"}, trajectory=Trajectory(epoch=[0, 1, 1, 2], loss=[0.1, 0.2, 0.3, 0.4], grad_sq=[1.0, 2.0, 3.0, 4.0]))
    (run_dir,) = write_tensorboard([record], tmp_path / "tb")
    assert scalars(events(run_dir), "loss") == ([0, 1, 2], [0.1, 0.3, 0.4])


def test_tensorboard_refuses_a_file_and_an_earlier_export(tmp_path):
    pytest.importorskip("tensorboard")
    record = saved(tmp_path / "results" / "run-1", "a", Trajectory(epoch=[0], loss=[1.0], grad_sq=[1.0]))
    a_file = tmp_path / "tb-file"
    a_file.write_text("x")
    with pytest.raises(LplrError, match=rf"--tensorboard: {a_file} is a file, not a directory"):
        write_tensorboard([record], a_file)
    logdir = tmp_path / "tb"
    (logdir / "a").mkdir(parents=True)  # empty: taken over
    (run_dir,) = write_tensorboard([record], logdir)
    before = sorted(p.name for p in run_dir.iterdir())
    assert len(before) == 1 and before[0].startswith("events.out.tfevents.")
    with pytest.raises(LplrError, match=rf"--tensorboard: {run_dir} exists already"):
        write_tensorboard([record], logdir)  # appending would show every point twice
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert scalars(events(run_dir), "loss") == ([0], [1.0])


def test_tensorboard_missing_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    record = Record(run={"label": "a"}, trajectory=Trajectory(epoch=[0], loss=[1.0], grad_sq=[1.0]))
    with pytest.raises(LplrError) as caught:
        write_tensorboard([record], tmp_path / "tb")
    assert str(caught.value) == "--tensorboard: needs the tensorboard package: pip install 'lplr-tui[tensorboard]'"
    assert not (tmp_path / "tb").exists()


# ---------------------------------------------------------------- the command


def test_export_command_writes_csv_beside_each_record_and_tensorboard_runs(tmp_path):
    from typer.testing import CliRunner

    from lplr_tui.cli import app
    from made_records import write_record

    pytest.importorskip("tensorboard")
    results = tmp_path / "results"
    a = write_record(results, "a", label="m=128 η=1e-3")
    b = write_record(results, "b", label="m=256 η=1e-3", overrides={"model.width": 256})
    result = CliRunner().invoke(app, ["export", str(results), "--csv", "--tensorboard", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert f"csv: {a / 'trajectory.csv'}" in result.output and f"csv: {b / 'trajectory.csv'}" in result.output
    assert f"tensorboard: {tmp_path / 'tb' / 'm=128_lr=1e-3'}" in result.output.replace("\n", "")
    rows = list(csv.DictReader(io.StringIO((a / "trajectory.csv").read_text())))
    assert [float(r["loss"]) for r in rows] == read_record(a).trajectory.loss


@pytest.mark.parametrize("args, says", [
    ([], "export: say what to write: --csv, --tensorboard LOGDIR, or both"),
    (["--tensorboard", "tb", "--out", "x"], "--out: only with --csv"),
])
def test_export_command_refuses_a_request_it_cannot_carry_out(tmp_path, args, says):
    from typer.testing import CliRunner

    from lplr_tui.cli import app
    from made_records import write_record

    write_record(tmp_path / "results", "a")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "results"), *args])
    assert result.exit_code == 2 and says in result.output

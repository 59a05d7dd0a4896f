"""The `lplr-tui` command as a user runs it: a real subprocess, no terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.record import find_records, read_record

SCRIPT = Path(sys.executable).with_name("lplr-tui")


def lplr(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "lplr_tui"]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture
def short(data_root, tmp_path):
    """Arguments for a short run with the test data root and a fresh results directory."""
    return ["--data-dir", data_root, "--results", str(tmp_path / "results"), "--device", "cpu"]


def test_mnist_run_prints_progress_table_1_and_record_paths(short, tmp_path):
    done = lplr("run", "--preset", "mnist", "--set", "train.epochs=30", "--set", "probes.ntk_subset=20", *short)
    assert done.returncode == 0, done.stderr
    assert "run 1/1 m=128 η=1e-3: finished after 30 epochs" in done.stdout
    assert "Table 1" in done.stdout and "150,145" in done.stdout
    (path,) = find_records([tmp_path / "results"])
    assert str(path) in done.stdout
    assert read_record(path).state == "finished"


def test_ablation_preset_writes_five_records(short, tmp_path):
    done = lplr("run", "--preset", "ablation", "--set", "train.epochs=2", *short)
    assert done.returncode == 0, done.stderr
    records = [read_record(p) for p in find_records([tmp_path / "results"])]
    assert [r.summary["params"] for r in records] == [150_145, 398_593, 1_190_401, 3_953_665, 3_953_665]
    assert [r.run["index"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r.state == "finished" and r.trajectory.epoch == [0, 1, 2] for r in records)
    assert "m=1024 η=2.5e-4" in done.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "optim.lr=-1"], ["optim.lr = -1", "must be > 0"]),
        (["--set", "optim.lrr=1"], ['did you mean "optim.lr"']),
        (["--set", "train.epochs"], ["--set", "table.key=value"]),
        (["--device", "gpu"], ['train.device = "gpu"']),
        (["--set", "probes.ntk_subset=5000"], ["probes.ntk_subset = 5000", "<= data.n_train"]),
    ],
)
def test_bad_input_is_one_message_and_exit_2(short, tmp_path, args, words):
    done = lplr("run", "--preset", "mnist", *short, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) <= 2
    for word in words:
        assert word in done.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_unwritable_results_directory(data_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = lplr("run", "--preset", "mnist", "--data-dir", data_root, "--results", str(blocker / "results"))
    assert done.returncode == 2 and "--results" in done.stderr and "writable" in done.stderr
    assert "Traceback" not in done.stderr


def test_presets_lists_bundled_and_working_directory_presets(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "mine.toml").write_text('description = "my own experiment"\n')
    done = lplr("presets", cwd=tmp_path)
    assert done.returncode == 0
    for word in ("mnist", "ablation", "Paper §6.2", "mine", "my own experiment"):
        assert word in done.stdout


def test_summary_reads_records_back(short, tmp_path):
    lplr("run", "--preset", "mnist", "--set", "train.epochs=10", "--set", "probes.ntk_subset=10", *short)
    done = lplr("summary", str(tmp_path / "results"))
    assert done.returncode == 0 and "m=128 η=1e-3" in done.stdout and "150,145" in done.stdout
    missing = lplr("summary", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no record" in missing.stderr



def test_the_app_without_a_terminal_says_how_to_get_one():
    done = lplr()  # stdin and stdout are pipes here
    assert done.returncode == 2
    assert "needs a terminal: use ssh -t, or lplr-tui run" in done.stderr and "Traceback" not in done.stderr


def foreign_record(run_dir: Path, loss: list[float], extra: str = "") -> None:
    """A record as another tool (or an older lplr-tui) might write it: [spec], [status] and
    [trajectory] only, plus whatever `extra` adds."""
    run_dir.mkdir(parents=True)
    epochs = list(range(len(loss)))
    grad_sq = [2 * (a - b) / 1e-3 for a, b in zip(loss, loss[1:])] + [0.0]
    (run_dir / "record.toml").write_text(
        '[spec]\noptim = { kind = "gd", lr = 1e-3 }\ntrain = { epochs = %d }\n\n[status]\nstate = "finished"\n%s\n'
        "[trajectory]\nepoch = %s\nloss = %s\ngrad_sq = %s\n" % (len(loss) - 1, extra, epochs, loss, grad_sq),
        encoding="utf-8",
    )


def test_summary_recomputes_verdicts_of_old_and_foreign_records(tmp_path):
    foreign_record(tmp_path / "geometric", [0.5 * 0.98**e for e in range(301)])
    # an older version's record: its stored summary and verdicts say what that version thought
    stale = '\n[summary]\nparams = 42\ncontraction = 0.5\n\n[verdict.ntk_positive]\npassed = true\nmeasured = 1.0\nthreshold = 0.0\ntext = "old"\n'
    foreign_record(tmp_path / "sublinear", [1 / (e + 10) for e in range(301)], stale)
    done = lplr("summary", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "recomputed from the trajectories" in done.stdout and "ntk_positive" not in done.stdout
    lines = done.stdout.splitlines()
    verdict = {label: next(l for l in lines[lines.index(label) + 1:] if "decay on the stable regime" in l)
               for label in ("  geometric", "  sublinear")}
    assert verdict["  geometric"].startswith("    ✓ decay on the stable regime: geometric")
    assert verdict["  sublinear"].startswith("    ✗ decay on the stable regime: power-law")
    assert "42" in done.stdout  # params, which no trajectory holds, still come from the record

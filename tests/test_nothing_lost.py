"""Nothing lost: bad input is one message; signals, kills, divergence and OOM leave records;
an interrupted run resumes to the same trajectory as one that never stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import engine
from engine.events import Notice, ProbeMeasured, RunFinished
from engine.record import find_records, read_record, same_summary
from lplr_tui.cli import app

SCRIPT = Path(sys.executable).with_name("lplr-tui")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "lplr_tui"]
SHORT = ["--set", "probes.ntk_subset=10", "--device", "cpu"]


@pytest.fixture
def cli(data_root, tmp_path):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["run", *args, "--results", str(tmp_path / "results")])

    return invoke


def preset_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


BAD = [
    # (arguments, words the one message must hold)
    (["--preset", "mnist", "--set", "optim.lrr=0.1"], ["optim.lrr = 0.1", 'did you mean "optim.lr"']),
    (["--preset", "mnist", "--set", "train.epochs=ten"], ['train.epochs = "ten"', "must be an integer"]),
    (["--preset", "mnist", "--set", "optim.lr=0"], ["optim.lr = 0", "must be > 0"]),
    (["--preset", "mnist", "--set", "optim.lr=-1e-3"], ["optim.lr = -0.001", "must be > 0"]),
    (["--preset", "mnist", "--set", "train.epochs=0"], ["train.epochs = 0", "must be an integer in [1, 100_000_000]"]),
    (["--preset", "mnist", "--set", "model.widths=[]"], ["model.widths = []", "non-empty list"]),
    (["--preset", "mnist", "--set", "probes.ntk_subset=1001"], ["probes.ntk_subset = 1001", "<= data.n_train (1000)"]),
    (["--preset", "mnits"], ['--preset = "mnits"', 'did you mean "mnist"', "known presets: mnist, ablation"]),
    (["--preset", "mnist", "--set", "data.source=fashion"], ['data.source = "fashion"', '"mnist-3v8", "cifar10-5", "imagefolder", "synthetic"']),
    (["--preset", "mnist", "--set", "data.root=/no/such/root"], ['data.root = "/no/such/root"', "no such directory", "data.download = true"]),
    (["--preset", "mnist", "--set", "optim.lr"], ['--set = "optim.lr"', "table.key=value"]),
    (["--preset", "mnist", "--set", "train.seeds=[0, 1.5]"], ["train.seeds = [0, 1.5]", "a list of integers"]),
    (["--preset", "mnist", "--set", "train.seeds=7"], ["train.seeds = 7", "a list of integers"]),
    (["--preset", "mnist", "--set", "optim.momentum=1.0"], ["optim.momentum = 1.0", "[0, 1)"]),
    (["--preset", "mnist", "--set", "optim.momentum=-0.1"], ["optim.momentum = -0.1", "[0, 1)"]),
    (["--preset", "mnist", "--device", "tpu"], ['train.device = "tpu"', '"auto", "cpu", "cuda" or "cuda:N"']),
    (["--preset", "mnist", "--set", "model.depth=true"], ["model.depth = true", "must be an integer"]),
    ([], ["--preset", "missing"]),
]


@pytest.mark.parametrize("args, words", BAD, ids=[" ".join(a[2:] or a[:2]) or "nothing" for a, _ in BAD])
def test_bad_input_one_message_exit_2_nothing_written(cli, data_root, tmp_path, args, words):
    result = cli(*args, "--data-dir", data_root) if "data.root" not in " ".join(args) else cli(*args)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "Traceback" not in result.output + message
    assert len(message.splitlines()) <= 2
    for word in words:
        assert word in message, message
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_toml_syntax_error_names_line_and_column(cli, tmp_path, data_root):
    result = cli("--preset", preset_file(tmp_path, "[train]\nepochs = 3\nseeds = [0,\n"), "--data-dir", data_root)
    assert result.exit_code == 2 and "not valid TOML" in result.stderr and "line" in result.stderr and "column" in result.stderr


def test_unknown_key_in_a_preset_file(cli, tmp_path, data_root):
    result = cli("--preset", preset_file(tmp_path, "[probes]\nevry = 5\n"), "--data-dir", data_root)
    assert result.exit_code == 2 and 'probes.evry = 5: unknown key (did you mean "probes.every"?)' in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(cli, data_root):
    result = cli("--preset", "mnist", "--device", "cuda:0", "--data-dir", data_root)
    assert result.exit_code == 2 and 'train.device = "cuda:0": CUDA is not available' in result.stderr


# ---------------------------------------------------------------- signals and kills


def start_run(data_root: str, results: Path, *sets: str) -> subprocess.Popen:
    args = ["run", "--preset", "mnist", "--data-dir", data_root, "--results", str(results), *SHORT]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(COMMAND + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(results: Path, epochs: int, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in results.glob("*/record.toml"):
            try:
                if len(read_record(path).trajectory.epoch) >= epochs:
                    return path
            except Exception:
                pass
        time.sleep(0.1)
    raise AssertionError("the run never got that far")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_at_the_next_epoch_with_checkpoint_and_record(data_root, tmp_path, sig, code):
    proc = start_run(data_root, tmp_path, "record.write_interval=0.2")
    path = wait_for_epochs(tmp_path, 20)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "interrupted" in out
    record = read_record(path)
    assert record.state == "interrupted" and record.status["epochs_done"] >= 20
    assert f"at epoch {record.status['epochs_done']}" in record.status["reason"]
    assert len(record.trajectory.epoch) == record.status["epochs_done"]  # every epoch measured is kept
    assert (path.parent / "checkpoint.pt").is_file()


def test_a_second_ctrl_c_exits_at_once_with_a_valid_record(data_root, tmp_path):
    # epochs of several seconds, so that the second signal lands while the first waits for one
    # (on a fast CPU an epoch at n_train=10000 ended between the two signals: the first one's
    # clean stop came first, and the second met the default handler)
    proc = start_run(data_root, tmp_path, "data.source=synthetic", "data.n_train=20000", "model.width=1024", "probes.every=0",
                     "probes.ntk_full_every=0", "probes.theory_every=0", "record.write_interval=0.2")
    path = wait_for_epochs(tmp_path, 1)  # seen at an epoch's boundary
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)  # two signals at once would merge into one
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - sent < 5.0  # at once, not after a checkpoint and the tables
    record = read_record(path)
    assert record.state == "interrupted" and len(record.trajectory.epoch) >= 1  # what was measured is kept
    assert record.status["reason"] == "SIGINT twice: stopped at once, before the epoch ended"  # not the first signal's path


def test_kill_9_leaves_a_record_that_parses_and_is_recent(data_root, tmp_path):
    proc = start_run(data_root, tmp_path, "record.write_interval=1.0")
    path = wait_for_epochs(tmp_path, 50)
    time.sleep(1.5)
    killed_at = time.time()
    proc.kill()
    proc.communicate(timeout=60)
    record = read_record(path)  # parses: the replace is atomic
    assert record.state == "running" and record.status["epochs_done"] >= 50
    assert killed_at - path.stat().st_mtime <= 1.0 + 0.5  # lost at most one write interval (+ an epoch)
    assert not list(path.parent.glob(".record.toml-*"))


def test_sigint_then_resume_equals_an_uninterrupted_run(data_root, tmp_path):
    sets = ["train.epochs=300", "train.checkpoint_every=40", "record.write_interval=0.2"]
    whole = start_run(data_root, tmp_path / "whole", *sets)
    whole.communicate(timeout=300)
    assert whole.returncode == 0
    cut = start_run(data_root, tmp_path / "cut", *sets)
    path = wait_for_epochs(tmp_path / "cut", 60)
    cut.send_signal(signal.SIGINT)
    cut.communicate(timeout=60)
    assert cut.returncode == 130 and read_record(path).state == "interrupted"
    cut_plan = read_record(path).run["plan_id"]
    resumed = subprocess.run(COMMAND + ["run", "--resume", str(path.parent)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_record(find_records([tmp_path / "whole"])[0]), read_record(path)
    assert b.state == "finished" and b.status["epochs_done"] == 300 and len(b.environment["resumed"]) == 1
    assert a.trajectory == b.trajectory  # bit for bit: floats compared exactly
    assert same_summary(a.summary, b.summary, rel=0)
    assert b.run["plan_id"] == cut_plan != a.run["plan_id"]  # a resumed run stays in the plan it was started in
    assert {k: v for k, v in b.run.items() if k != "plan_id"} == {k: v for k, v in a.run.items() if k != "plan_id"}


def test_kill_9_then_resume_continues_from_the_periodic_checkpoint_bit_for_bit(data_root, tmp_path):
    sets = ["train.epochs=120", "train.checkpoint_every=10", "record.write_interval=0.2"]
    whole = start_run(data_root, tmp_path / "whole", *sets)
    whole.communicate(timeout=300)
    killed = start_run(data_root, tmp_path / "killed", *sets)
    path = wait_for_epochs(tmp_path / "killed", 35)
    killed.kill()
    killed.communicate(timeout=60)
    saved = torch.load(path.parent / "checkpoint.pt", weights_only=True)["epoch"]
    assert saved >= 30 and saved % 10 == 0  # written every train.checkpoint_every epochs, not only when interrupted
    resumed = subprocess.run(COMMAND + ["run", "--resume", str(path.parent)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "took over the stale lock" in resumed.stderr  # the killed process's lock
    a, b = read_record(find_records([tmp_path / "whole"])[0]), read_record(path)
    assert b.state == "finished" and a.trajectory == b.trajectory
    again = CliRunner().invoke(app, ["run", "--resume", str(path.parent)])
    assert again.exit_code == 2 and "has finished already; nothing to resume" in again.stderr


def test_resume_refuses_what_it_cannot_continue(data_root, tmp_path):
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no record" in result.stderr
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path), "--preset", "mnist"])
    assert result.exit_code == 2 and "give no --preset" in result.stderr


# ---------------------------------------------------------------- in process


def test_same_spec_same_seed_identical_records(make_spec, tmp_path):
    spec = make_spec(train__epochs=40, probes__every=5, probes__ntk_subset=20)
    list(engine.run(spec, tmp_path / "a"))
    list(engine.run(spec, tmp_path / "b"))
    a, b = (read_record(find_records([tmp_path / d])[0]) for d in ("a", "b"))
    assert a.trajectory == b.trajectory and same_summary(a.summary, b.summary, rel=0) and a.spec == b.spec


def test_an_exploding_loss_is_diverged_and_the_table_says_so(make_spec, tmp_path):
    spec = make_spec(train__epochs=200, optim__lr=0.02, train__diverge_factor=10.0, probes__ntk_subset=10)
    events = list(engine.run(spec, tmp_path))
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert finished.state == "diverged" and "exceeded 10 × the initial loss" in finished.reason
    from lplr_tui.tables import columns_for, row_cells, row_values

    record = read_record(find_records([tmp_path])[0])
    row = (record.label, record.spec, record.summary, record.state, record.trajectory)
    columns = columns_for([row])
    cells = dict(zip([c[1] for c in columns], row_cells(row_values(*row), columns)))
    assert cells["decay"] == cells["pl_min"] == cells["contraction"] == "diverged"
    assert cells["params"] == "150,145" and cells["state"] == "diverged"


def test_out_of_memory_in_the_ntk_probe_retries_smaller_then_gives_up(make_spec, tmp_path, monkeypatch):
    from engine.probes import ntk as ntk_probe

    real = ntk_probe.empirical_ntk
    sizes = []

    def tight(model, x, chunk=None, input_gram=None):
        sizes.append(chunk)
        if chunk is None or chunk > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, x, chunk, input_gram)

    monkeypatch.setattr(ntk_probe, "empirical_ntk", tight)
    events = list(engine.run(make_spec(train__epochs=10, probes__every=5, probes__ntk_subset=20), tmp_path))
    probes = [e for e in events if isinstance(e, ProbeMeasured)]
    assert all(p.values["ntk_lambda_min"] > 0 for p in probes)
    assert sizes[:4] == [None, 10, 5, 2] and set(sizes[4:]) == {2}  # later kernels start from what fitted
    notes = read_record(find_records([tmp_path])[0]).status["notes"]
    assert notes == [f"epoch 0: ntk_lambda_min: out of memory; retrying {n} inputs at a time" for n in (10, 5, 2)]

    sizes.clear()  # the CNN's first try is 16 inputs at once, so its retries start from 8
    spec = make_spec("cifar", data__source="synthetic", data__n_train=50, train__epochs=1, train__seeds=[0], probes__ntk_subset=20)
    list(engine.run(spec, tmp_path / "cnn"))
    assert sizes[:4] == [None, 8, 4, 2]

    monkeypatch.setattr(ntk_probe, "empirical_ntk", lambda *a, **k: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("oom")))
    events = list(engine.run(make_spec(train__epochs=10, probes__every=5, probes__ntk_subset=4), tmp_path / "b"))
    assert [e.state for e in events if isinstance(e, RunFinished)] == ["finished"]  # training went on
    assert all(p.values["ntk_lambda_min"] != p.values["ntk_lambda_min"] for p in events if isinstance(p, ProbeMeasured))
    assert any("this probe is NaN" in e.text for e in events if isinstance(e, Notice))

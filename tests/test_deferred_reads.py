"""On CUDA the loop reads loss and grad_sq at the probe cadence, not every epoch. These tests
force that mode on the CPU and check that nothing a user sees changes: the same records, the
same divergence epoch, the same interrupted record and resume, and epochs still reach the UI."""

import pytest
import torch

import engine
from engine import train as train_module
from engine.events import EpochMeasured, RunFinished
from engine.record import find_records, read_record, same_summary


@pytest.fixture
def deferred(monkeypatch):
    monkeypatch.setattr(train_module, "defers_reads", lambda device: True)


@pytest.fixture
def log(monkeypatch):
    """Steps and events in the order the training thread made them."""
    entries: list = []
    step, emit = train_module.Loop.step, engine.Runner._emit

    def logged_step(self, epoch):
        entries.append(("step", epoch))
        step(self, epoch)

    def logged_emit(self, event):
        entries.append(event)
        emit(self, event)

    monkeypatch.setattr(train_module.Loop, "step", logged_step)
    monkeypatch.setattr(engine.Runner, "_emit", logged_emit)
    return entries


def read_at(entries: list) -> list[int]:
    """The epochs after whose measurement the host read the pending epochs."""
    reads, steps = [], 0
    for entry in entries:
        if isinstance(entry, tuple):
            steps = entry[1] + 1
        elif isinstance(entry, EpochMeasured) and (not reads or reads[-1] != steps):
            reads.append(steps)
    return reads


def only_record(path):
    return read_record(find_records([path])[0])


def test_deferred_reads_give_the_same_record(make_spec, tmp_path, monkeypatch):
    spec = make_spec(train__epochs=43, probes__every=10, probes__ntk_subset=20, probes__theory_every=20, probes__ntk_full_every=20)
    list(engine.run(spec, tmp_path / "each"))
    monkeypatch.setattr(train_module, "defers_reads", lambda device: True)
    list(engine.run(spec, tmp_path / "deferred"))
    a, b = only_record(tmp_path / "each"), only_record(tmp_path / "deferred")
    assert a.trajectory == b.trajectory and same_summary(a.summary, b.summary, rel=0)
    assert a.trajectory.epoch == list(range(44))


@pytest.mark.parametrize(
    ("every", "epochs", "reads"),
    [(10, 25, [0, 1, 2, 3, 5, 7, 10, 20, 25]), (0, 250, [99, 199, 250])],
)
def test_epochs_reach_the_host_at_the_probe_cadence(make_spec, deferred, log, every, epochs, reads):
    spec = make_spec(train__epochs=epochs, probes__every=every, probes__ntk_subset=10, probes__theory_every=0, probes__ntk_full_every=0)
    events = list(engine.run(spec))
    assert read_at(log) == reads
    assert [e.epoch for e in events if isinstance(e, EpochMeasured)] == list(range(epochs + 1))


def test_every_epoch_reaches_the_host_on_the_cpu(make_spec, log):
    list(engine.run(make_spec(train__epochs=12, probes__every=5, probes__ntk_subset=10)))
    assert read_at(log) == list(range(13))


def test_a_divergence_between_reads_is_reported_at_its_own_epoch(make_spec, tmp_path, monkeypatch):
    spec = make_spec(train__epochs=200, optim__lr=0.02, train__diverge_factor=10.0, probes__every=5, probes__ntk_subset=10)
    list(engine.run(spec, tmp_path / "each"))
    monkeypatch.setattr(train_module, "defers_reads", lambda device: True)
    list(engine.run(spec, tmp_path / "deferred"))
    a, b = only_record(tmp_path / "each"), only_record(tmp_path / "deferred")
    assert a.state == b.state == "diverged" and a.status["reason"] == b.status["reason"]
    assert a.status["reason"].endswith("at epoch 1")  # between the probes at 0 and 5
    assert a.trajectory == b.trajectory and a.trajectory.epoch == [0, 1]


def test_a_cancel_between_reads_keeps_the_pending_epochs_and_resumes_bit_for_bit(make_spec, tmp_path, deferred, monkeypatch):
    spec = make_spec(train__epochs=40, probes__every=10, probes__ntk_subset=10, probes__theory_every=0)
    list(engine.run(spec, tmp_path / "whole"))
    runner = engine.Runner(spec, tmp_path / "cut")
    step = train_module.Loop.step

    def cancelling_step(self, epoch):
        step(self, epoch)
        if epoch == 13:  # epochs 11..13 are still on the device
            runner.cancel()

    monkeypatch.setattr(train_module.Loop, "step", cancelling_step)
    runner.preflight()
    runner.start()
    list(runner.iter_events())
    cut_dir = runner.record_paths[0].parent
    cut = read_record(cut_dir)
    assert cut.state == "interrupted" and cut.status["reason"] == "cancelled by the user: stopped at epoch 14"
    assert cut.trajectory.epoch == list(range(14))
    monkeypatch.setattr(train_module.Loop, "step", step)
    resumed = engine.Runner.resume(cut_dir)
    resumed.preflight()
    resumed.start()
    assert next(e for e in resumed.iter_events() if isinstance(e, RunFinished)).state == "finished"
    assert read_record(cut_dir).trajectory == only_record(tmp_path / "whole").trajectory


@pytest.mark.cuda
def test_the_epochs_between_probes_never_wait_for_the_gpu(make_spec, monkeypatch):
    """torch raises on any host synchronisation inside the per-epoch work."""
    measure, step = train_module.full_set_gradient, train_module.Loop.step

    def strict(call):
        def wrapped(*args):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return call(*args)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return wrapped

    monkeypatch.setattr(train_module, "full_set_gradient", strict(measure))
    monkeypatch.setattr(train_module.Loop, "step", strict(step))
    for preset in ("mnist", "cifar"):
        spec = make_spec(preset, train__device="cuda", train__epochs=12, train__seeds=[0], probes__every=5,
                         probes__ntk_subset=10, data__source="synthetic", data__n_train=100)
        events = list(engine.run(spec))
        assert next(e for e in events if isinstance(e, RunFinished)).state == "finished", preset

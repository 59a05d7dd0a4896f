"""The runner: typed events in order, cancel, divergence, and failures that leave records."""

import threading

import pytest

import engine
from engine.events import EpochMeasured, PlanFinished, PlanStarted, ProbeMeasured, RunFinished, RunStarted
from engine.record import read_record


def test_events_arrive_in_order_and_carry_the_measurements(make_spec):
    events = list(engine.run(make_spec(train__epochs=12, probes__every=4, probes__ntk_subset=20)))
    kinds = [type(e) for e in events]
    assert kinds[0] is PlanStarted and kinds[1] is RunStarted
    assert kinds[-2] is RunFinished and kinds[-1] is PlanFinished
    epochs = [e.epoch for e in events if isinstance(e, EpochMeasured)]
    probes = [e for e in events if isinstance(e, ProbeMeasured)]
    assert epochs == list(range(13))
    assert [p.epoch for p in probes] == [0, 1, 2, 3, 4, 8, 12]  # log-spaced until the cadence of 4
    assert probes[0].values["drift"] == 0.0 and probes[-1].values["drift"] > 0
    assert all(p.values["ntk_lambda_min"] > 0 for p in probes)
    losses = [e.loss for e in events if isinstance(e, EpochMeasured)]
    assert losses[-1] < losses[0]  # gradient descent descends
    assert events[-2].state == "finished" and events[-1].state == "finished"


def test_cancel_leaves_an_interrupted_record_with_what_was_measured(make_spec, tmp_path):
    runner = engine.Runner(make_spec(train__epochs=100000, probes__ntk_subset=10), tmp_path)
    runner.preflight()
    runner.start()
    for event in runner.iter_events():
        if isinstance(event, EpochMeasured) and event.epoch == 30:
            runner.cancel()
    runner.join()
    record = read_record(runner.record_paths[0])
    assert record.state == "interrupted" and "cancelled" in record.status["reason"]
    assert record.status["epochs_done"] >= 30 and len(record.trajectory.epoch) >= 31
    assert record.summary["l_star_provisional"] is True and record.summary["loss_final"] > 0


def test_a_cancelled_plan_does_not_start_its_next_runs(make_spec, tmp_path):
    runner = engine.Runner(make_spec("ablation", train__epochs=100000, probes__ntk_subset=10), tmp_path)
    runner.preflight()
    runner.start()
    states = []
    for event in runner.iter_events():
        if isinstance(event, EpochMeasured) and event.epoch == 3:
            runner.cancel()
        if isinstance(event, (RunFinished, PlanFinished)):
            states.append(event.state)
    assert states == ["interrupted", "interrupted"]
    assert len(runner.record_paths) == 1


def test_divergence_is_recorded_and_the_plan_goes_on(tmp_path, data_root):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'name = "twostep"\n[data]\nroot = "{data_root}"\n[train]\nepochs = 30\ndevice = "cpu"\n'
        "[probes]\nevery = 5\nntk_subset = 10\n"
        "[[runs]]\noptim.lr = 0.5\n[[runs]]\noptim.lr = 1e-3\n"
    )
    events = list(engine.run(engine.load_spec(str(plan)), results_dir=tmp_path / "results"))
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [f.state for f in finished] == ["diverged", "finished"]
    assert "at epoch" in finished[0].reason and finished[0].epochs_done < 30
    records = [read_record(p) for p in sorted((tmp_path / "results").glob("*/record.toml"))]
    assert [r.state for r in records] == ["diverged", "finished"]
    assert len(records[0].trajectory.loss) == finished[0].epochs_done + 1


def test_a_crash_inside_a_run_is_recorded_as_failed(make_spec, tmp_path, monkeypatch):
    from engine.probes import drift

    def boom(self, state):
        if state.epoch >= 10:
            raise RuntimeError("probe exploded")
        return {"drift": 0.0}

    monkeypatch.setattr(drift.DriftProbe, "measure", boom)
    runner = engine.Runner(make_spec(train__epochs=50, probes__every=5, probes__ntk_subset=10), tmp_path)
    runner.preflight()
    runner.start()
    events = list(runner.iter_events())
    record = read_record(runner.record_paths[0])
    assert record.state == "failed" and "probe exploded" in record.status["reason"]
    assert record.trajectory.epoch[-1] == 10
    assert events[-1].state == "finished"  # the plan itself ran to its end


def test_closing_the_iterator_early_cancels_the_thread(make_spec):
    events = engine.run(make_spec(train__epochs=100000, probes__ntk_subset=10))
    for event in events:
        if isinstance(event, EpochMeasured):
            assert [t.name for t in threading.enumerate() if t.name.startswith("lplr-")]  # the runner's threads, live
            break
    events.close()
    # the runner's own threads, by name: a thread an earlier test left to wind down may end meanwhile
    assert not [t.name for t in threading.enumerate() if t.name.startswith("lplr-")]


def test_cuda_requested_without_cuda_is_a_config_error(make_spec):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    runner = engine.Runner(make_spec(train__device="cuda"))
    with pytest.raises(engine.ConfigError, match='train.device = "cuda": CUDA is not available'):
        runner.preflight()


@pytest.mark.cuda
def test_a_short_run_on_cuda_matches_the_cpu_run(make_spec):
    def final_loss(device):
        events = list(engine.run(make_spec(train__epochs=20, train__device=device, probes__ntk_subset=20)))
        return next(e for e in events if isinstance(e, RunFinished)).summary

    cpu, cuda = final_loss("cpu"), final_loss("cuda")
    assert cuda["loss_final"] == pytest.approx(cpu["loss_final"], rel=1e-4)
    assert cuda["lambda_T"] == pytest.approx(cpu["lambda_T"], rel=1e-4)

"""Records made in a test without training: a spec from a bundled preset, a trajectory built
from a formula (a decaying loss, a drifting kernel), written as a run would leave it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import engine
from engine.record import RECORD_NAME, Record, write_atomic
from engine.trajectory import Trajectory


def trajectory(epochs: int = 60, rate: float = 0.93, seed: int = 0, lam: float = 10.0, every: int = 5, theory_every: int = 20) -> Trajectory:
    """A run's measurements: loss decaying geometrically, PL ratio near -log(rate)/lr-ish,
    drift saturating, λ_min falling slowly; theory every `theory_every` epochs."""
    rng = np.random.default_rng(seed)
    t = Trajectory()
    for e in range(epochs + 1):
        loss = 2.0 * rate**e + 1e-3 * (1 + 0.1 * rng.random())
        t.epoch.append(e)
        t.loss.append(loss)
        t.grad_sq.append(2 * 0.5 * loss * (1 + 0.2 * rng.random()))
    for e in range(0, epochs + 1, every):
        t.probe_epoch.append(e)
        t.drift.append(1.0 - math.exp(-e / 10) + 0.01 * seed)
        t.ntk_lambda_min.append(lam * (1 - 0.002 * e) + 0.1 * seed)
        t.ntk_lambda_max.append(50 * lam)
        t.ntk_change.append(0.05 * lam * e / epochs)
    for e in range(0, epochs + 1, theory_every):
        t.theory_epoch.append(e)
        t.sharpness.append(800.0 + 5 * e)
        t.ntk_full_lambda_min.append(lam * 20)
        t.ntk_full_lambda_max.append(lam * 900)
    return t


def write_record(results: Path, name: str, *, plan: str = "ablation", label: str = "m=128 η=1e-3", preset: str = "mnist",
                 overrides: dict | None = None, traj: Trajectory | None = None, state: str = "finished", pid: int = 1,
                 started: str = "2026-12-01T10:00:00+00:00", annotations: list | None = None, sha: str = "ab" * 32,
                 index: int = 1) -> Path:
    """A run directory `results/name` with a record.toml; returns the directory."""
    values = {"train.device": "cpu", "train.epochs": 60, **(overrides or {})}
    spec = engine.Plan.of(engine.load_spec(preset, values)).runs[0]
    traj = traj if traj is not None else trajectory(values["train.epochs"])
    record = Record(
        run={"plan": plan, "index": index, "of": 2, "label": label},
        spec={**spec.to_dict(), "label": label},
        environment={"started": started, "finished": started, "host": "box", "pid": pid, "process_start": "1",
                     "data_sha256": sha, "device": "cpu"},
        status={"state": state, "reason": "" if state == "finished" else f"it {state}", "epochs_done": traj.epoch[-1] if traj.epoch else 0},
        summary={"params": 1000},
        trajectory=traj,
        annotations=annotations or [],
    )
    run_dir = results / name
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / RECORD_NAME, record.to_dict())
    return run_dir

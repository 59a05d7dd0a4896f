"""lplr-tui's engine: experiments, probes and records, with no UI.

The public API:

    spec = engine.load_spec("mnist", {"train.epochs": 200})
    model = engine.build_model(spec)
    kernel = engine.empirical_ntk(model, x)      # n·k × n·k, float64
    for event in engine.run(spec, results_dir="results"):
        ...
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterator

from engine.config import Plan, Spec, load_spec
from engine.errors import ConfigError, DataError, LplrError

# The training stack (torch) loads on first use, so that reading records, presets and logs
# (`lplr-tui --help`, `presets`, `summary`) never pays for it.
LAZY = {"build_model": "engine.models", "empirical_ntk": "engine.ntk", "read_record": "engine.record", "Runner": "engine.runner"}


def __getattr__(name: str) -> object:
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def run(spec: Spec, results_dir: str | Path | None = None) -> Iterator[object]:
    """Run the spec's plan on a background thread and yield its events, PlanFinished last.

    With `results_dir`, each run leaves a record there. Closing the iterator early cancels.
    """
    from engine.runner import Runner

    runner = Runner(spec, results_dir)
    runner.preflight()
    runner.start()
    try:
        yield from runner.iter_events()
    finally:
        runner.cancel()
        runner.join()


__all__ = [
    "Plan", "Spec", "load_spec", "build_model", "empirical_ntk", "run", "read_record",
    "Runner", "LplrError", "ConfigError", "DataError",
]

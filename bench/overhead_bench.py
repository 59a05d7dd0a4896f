"""What watching costs: the ablation's runs with the default probe cadence (drift and NTK λ_min
every 10 epochs; loss and grad_sq every epoch, read from the GD step itself) against the same
runs with the drift/NTK probes off, side by side in one process.

    python bench/overhead_bench.py               # 100 epochs per run
    python bench/overhead_bench.py --epochs 300

Prints each run's two wall times, the overall ratio (goal: <= 1.05), and the peak memory of
the process (max RSS), which the m = 1024 runs set.
"""

from __future__ import annotations

import argparse
import resource
import time

import engine
from engine.config import plan_runs
from engine.events import RunFinished


def wall(spec) -> float:
    start = time.perf_counter()
    events = list(engine.run(spec))
    assert next(e for e in events if isinstance(e, RunFinished)).state == "finished"
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2, help="tries of each side; the fastest counts")
    args = parser.parse_args()
    plan = engine.load_spec("ablation", {"train.epochs": args.epochs, "train.device": args.device})
    total_on = total_off = 0.0
    wall(engine.load_spec("mnist", {"train.epochs": 5, "train.device": args.device}))  # warm-up: threads, caches
    print(f"{'run':<18} {'probes on s':>12} {'probes off s':>13} {'ratio':>7}")
    for run in plan_runs(plan):
        off = engine.config.validate({**run.to_dict(), "probes": {**run.to_dict()["probes"], "every": 0}})
        # the faster of two tries each, alternating, so that a busy moment of the machine
        # does not land on one side only
        on_s = off_s = float("inf")
        for _ in range(args.repeat):
            on_s, off_s = min(on_s, wall(run)), min(off_s, wall(off))
        total_on, total_off = total_on + on_s, total_off + off_s
        print(f"{run.label:<18} {on_s:>12.2f} {off_s:>13.2f} {on_s / off_s:>7.3f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak memory (max RSS of the process, set by the m=1024 runs): {peak:.2f} GiB")
    print(f"overhead probes on/off ({args.epochs} epochs per run): {total_on / total_off:.3f}")


if __name__ == "__main__":
    main()

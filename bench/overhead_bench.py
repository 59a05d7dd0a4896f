"""What watching costs: the ablation's runs side by side in one process, off (only loss and
grad_sq, which come from the GD step itself) against probes (drift and NTK λ_min every 10
epochs, the default cadence), and with --theory also all (probes + the theory probes every
50 epochs: sharpness by Hessian power iteration and the full-set NTK spectrum, as the preset
has it).

    python bench/overhead_bench.py               # 100 epochs per run, about 3.5 minutes
    python bench/overhead_bench.py --theory      # adds the third column, about 6.5 minutes

Prints each run's wall times and the overall ratios (goal for probes/off: <= 1.05), and the
peak memory of the process (max RSS), which the m = 1024 runs set.
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


def with_probes(spec, every: int, theory_every: int):
    raw = spec.to_dict()
    raw["probes"] = {**raw["probes"], "every": every, "theory_every": theory_every}
    return engine.config.validate(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2, help="tries of each side; the fastest counts")
    parser.add_argument("--theory", action="store_true", help="also time the preset's theory probes")
    args = parser.parse_args()
    plan = engine.load_spec("ablation", {"train.epochs": args.epochs, "train.device": args.device})
    wall(engine.load_spec("mnist", {"train.epochs": 5, "train.device": args.device}))  # warm-up: threads, caches
    totals = {"off": 0.0, "probes": 0.0, "all": 0.0}
    print(f"{'run':<18} {'off s':>7} {'probes s':>9} {'probes/off':>11}" + (f" {'all s':>7} {'all/off':>8}" if args.theory else ""))
    for run in plan_runs(plan):
        variants = {"off": with_probes(run, 0, 0), "probes": with_probes(run, run.probes.every, 0)}
        if args.theory:
            variants["all"] = run
        best = {name: float("inf") for name in variants}
        # the fastest of `repeat` tries, alternating, so a busy moment lands on no side alone
        for _ in range(args.repeat):
            for name, spec in variants.items():
                best[name] = min(best[name], wall(spec))
        for name in variants:
            totals[name] += best[name]
        line = f"{run.label:<18} {best['off']:>7.2f} {best['probes']:>9.2f} {best['probes'] / best['off']:>11.3f}"
        if args.theory:
            line += f" {best['all']:>7.2f} {best['all'] / best['off']:>8.3f}"
        print(line, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak memory (max RSS of the process, set by the m=1024 runs): {peak:.2f} GiB")
    if args.theory:
        print(f"overhead all/off (theory every {plan.probes.theory_every} epochs): {totals['all'] / totals['off']:.3f}")
    print(f"overhead probes/off ({args.epochs} epochs per run): {totals['probes'] / totals['off']:.3f}")


if __name__ == "__main__":
    main()

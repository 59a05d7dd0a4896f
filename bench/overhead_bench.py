"""What watching costs: a preset's runs timed side by side in one process, three ways:

- off: only loss and grad_sq, which come from the GD step itself;
- probes: plus drift and the NTK subset's λ_min, λ_max and ‖K_t − K_0‖₂ every `probes.every`
  epochs and at the log-spaced early epochs;
- all: plus the preset's sharpness probes (every `probes.theory_every`) and full-set NTK
  spectra (every `probes.ntk_full_every`): every diagnostic at the preset's cadence.

    python bench/overhead_bench.py                                 # mnist, 3000 epochs, about 7 minutes
    python bench/overhead_bench.py --preset ablation --epochs 300   # the ablation's five runs
    python bench/overhead_bench.py --set probes.theory_every=50     # another cadence

Each run's sides alternate, `--repeat` times, and the fastest of each counts, so a busy moment
lands on no side alone. Prints each run's wall times and ratios, the ratio of the process's CPU
time too, and the time the probes themselves took in the fastest 'all' side (each probe's
`measure` clocked). The goal (all diagnostics ≤ 1.10× a plain run) is judged on that last
figure: on a shared machine the speed of a plain epoch drifts by ±10 % within one run and
between runs, more than the effect measured, and the bench prints that noise too. Also the
overall ratios and the peak memory of the process (max RSS). Each side's time includes the
start (data, model) and the end (the record's analysis), as a user's run does.
"""

from __future__ import annotations

import argparse
import resource
import time

import engine
from engine.config import Plan, parse_override
from engine.events import RunFinished
from engine.probes import DriftProbe, FullNTKProbe, NTKProbe, SharpnessProbe

GOAL = 1.10


class ProbeClock:
    """The time the probes themselves take, per probe class: each series probe's `measure` is
    wrapped while a side runs. Steadier than a difference of two wall times on a shared
    machine, and it names where the cost is."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def __enter__(self) -> "ProbeClock":
        self.saved = {cls: cls.measure for cls in SERIES_PROBES}
        for cls, measure in self.saved.items():
            def clocked(probe, state, measure=measure, name=cls.__name__):
                start = time.perf_counter()
                try:
                    return measure(probe, state)
                finally:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                    self.calls[name] = self.calls.get(name, 0) + 1
            cls.measure = clocked
        return self

    def __exit__(self, *exc) -> None:
        for cls, measure in self.saved.items():
            cls.measure = measure


SERIES_PROBES = (DriftProbe, NTKProbe, SharpnessProbe, FullNTKProbe)


def timed(spec) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process: every thread, the trainer's included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    events = list(engine.run(spec))
    assert next(e for e in events if isinstance(e, RunFinished)).state == "finished"
    return time.perf_counter() - wall, time.process_time() - cpu


def with_probes(spec, **cadence: int):
    raw = spec.to_dict()
    raw["probes"] = {**raw["probes"], **cadence}
    return engine.config.validate(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist")
    parser.add_argument("--epochs", type=int, default=0, help="0: the preset's own length")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="tries of each side; the fastest counts")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset key, as lplr-tui run --set does (e.g. probes.theory_every=200)")
    args = parser.parse_args()
    overrides = {"train.device": args.device, **({"train.epochs": args.epochs} if args.epochs else {})}
    overrides.update(parse_override(text) for text in args.set)
    plan = engine.load_spec(args.preset, overrides)
    timed(engine.load_spec("mnist", {"train.epochs": 5, "train.device": args.device}))  # warm-up: threads, caches
    p = plan.probes
    print(f"{args.preset}, {plan.train.epochs} epochs per run; probes every {p.every}, sharpness every "
          f"{p.theory_every}, full-set NTK every {p.ntk_full_every} (0: never); the fastest of {args.repeat}")
    print(f"{'run':<18} {'off s':>7} {'probes s':>9} {'all s':>7} {'probes/off':>11} {'all/off':>8} {'CPU all/off':>12}")
    totals = {"off": [0.0, 0.0], "probes": [0.0, 0.0], "all": [0.0, 0.0]}  # [wall, CPU]
    spent_total = 0.0  # the probes' own time in the fastest 'all' sides
    for run in Plan.of(plan).runs:
        variants = {
            "off": with_probes(run, every=0, theory_every=0, ntk_full_every=0),
            "probes": with_probes(run, theory_every=0, ntk_full_every=0),
            "all": run,
        }
        best = {name: [float("inf"), float("inf")] for name in variants}
        spread: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, spec in variants.items():
                if name == "all":
                    with ProbeClock() as clock:
                        times = timed(spec)
                    if times[0] < best[name][0]:
                        probe_time = clock
                else:
                    times = timed(spec)
                best[name] = [min(b, t) for b, t in zip(best[name], times)]
                spread[name].append(times[0])
        for name in variants:
            totals[name] = [t + b for t, b in zip(totals[name], best[name])]
        (off, cpu_off), (probes, _), (full, cpu_all) = best["off"], best["probes"], best["all"]
        print(f"{run.label:<18} {off:>7.2f} {probes:>9.2f} {full:>7.2f} {probes / off:>11.3f} {full / off:>8.3f} "
              f"{cpu_all / cpu_off:>12.3f}", flush=True)
        spent = sum(probe_time.seconds.values())
        parts = ", ".join(f"{name} {probe_time.calls[name]} x {seconds / probe_time.calls[name] * 1e3:.1f} ms = {seconds:.2f} s"
                          for name, seconds in probe_time.seconds.items())
        print(f"  in the fastest 'all': the probes took {spent:.2f} s, {spent / (full - spent):.3f} of the rest of the run ({parts})")
        spent_total += spent
        noise = max(max(t) / min(t) for t in spread.values())
        print(f"  noise: the slowest of a side's {args.repeat} tries took up to {noise:.3f}x its fastest")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak memory (max RSS of the process): {peak:.2f} GiB")
    print(f"overhead probes/off: {totals['probes'][0] / totals['off'][0]:.3f} wall")
    overall, cpu = totals["all"][0] / totals["off"][0], totals["all"][1] / totals["off"][1]
    own = 1 + spent_total / (totals["all"][0] - spent_total)
    print(f"overhead all/off: {overall:.3f} wall, {cpu:.3f} CPU time")
    print(f"overhead from the probes' own time: {own:.3f} (goal <= {GOAL:.2f}: {'met' if own <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()

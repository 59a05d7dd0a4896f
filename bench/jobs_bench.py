"""A plan's runs at once against one after the other, side by side in one invocation: the same
preset and machine, the wall time of the whole `lplr-tui run` (imports, preflight, every run,
the tables), each in a results directory of its own.

    python bench/jobs_bench.py                                   # ablation, 300 epochs: serial, --jobs 2
    python bench/jobs_bench.py --preset edge --epochs 300 --ray  # the edge map: serial, --jobs 2, --ray

Besides the times and their ratios it says how the records compare: bit for bit (after the
fields that say when and by whom) with a serial plan at the same thread count (`--same-threads`
adds that serial plan, `--set train.threads=1`), and otherwise the largest relative difference
of any measured value, and whether every verdict is the same.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.record import dumps, find_records, read_record  # noqa: E402

VOLATILE = {"started", "finished", "pid", "process_start", "heartbeat", "plan_id", "threads"}


def run(label: str, preset: str, epochs: int, results: Path, extra: list[str]) -> float:
    command = [sys.executable, "-m", "lplr_tui", "run", "--preset", preset, "--set", f"train.epochs={epochs}",
               "--device", "cpu", "--results", str(results), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{label}: exit {done.returncode}\n{done.stderr[-2000:]}")
    print(f"{label:<28} {took:7.1f} s   ({' '.join(extra) or 'serial'})", flush=True)
    return took


def records(results: Path) -> list:
    return sorted((read_record(p) for p in find_records([results])), key=lambda r: int(r.run["index"]))


def clean(value):
    return {k: clean(v) for k, v in value.items() if k not in VOLATILE} if isinstance(value, dict) else value


def compare(a: list, b: list, what: str) -> None:
    same = sum(dumps(clean(x.to_dict()) | {"spec": {}}) == dumps(clean(y.to_dict()) | {"spec": {}}) for x, y in zip(a, b))
    worst, where = 0.0, ""
    for x, y in zip(a, b):
        for name, xs in x.trajectory.to_dict().items():
            for i, (u, v) in enumerate(zip(xs, y.trajectory.to_dict().get(name, []))):
                if math.isfinite(u) and math.isfinite(v) and u != v and abs(u - v) / max(abs(u), abs(v)) > worst:
                    worst, where = abs(u - v) / max(abs(u), abs(v)), f" ({x.label}, {name}[{i}])"
    verdicts = all({k: v.get("passed") for k, v in x.verdict.items()} == {k: v.get("passed") for k, v in y.verdict.items()}
                   for x, y in zip(a, b))
    print(f"  {what}: {same}/{len(a)} records identical bit for bit; largest relative difference {worst:.3g}{where}; "
          f"every verdict the same: {'yes' if verdicts else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ablation")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also run it on a local Ray instance (pip install -e '.[ray]')")
    parser.add_argument("--same-threads", action="store_true", help="also a serial plan with one thread a run: bit for bit the --jobs 2 records")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{args.preset}, {args.epochs} epochs, on {cores} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        serial = run("serial", args.preset, args.epochs, tmp / "serial", [])
        fanned = run(f"--jobs {args.jobs}", args.preset, args.epochs, tmp / "jobs", ["--jobs", str(args.jobs)])
        print(f"  --jobs {args.jobs} is {serial / fanned:.2f}× as fast as serial")
        compare(records(tmp / "jobs"), records(tmp / "serial"), f"--jobs {args.jobs} ({max(1, cores // args.jobs)} thread(s) a run) against serial ({cores})")
        if args.same_threads:
            one = run("serial, 1 thread a run", args.preset, args.epochs, tmp / "serial1", ["--set", f"train.threads={max(1, cores // args.jobs)}"])
            print(f"  --jobs {args.jobs} is {one / fanned:.2f}× as fast as it")
            compare(records(tmp / "jobs"), records(tmp / "serial1"), f"--jobs {args.jobs} against it")
        if args.ray:
            ray = run("--ray (local instance)", args.preset, args.epochs, tmp / "ray", ["--ray"])
            print(f"  --ray is {serial / ray:.2f}× as fast as serial, {fanned / ray:.2f}× as fast as --jobs {args.jobs}")
            compare(records(tmp / "ray"), records(tmp / "jobs"), f"--ray against --jobs {args.jobs}")


if __name__ == "__main__":
    main()

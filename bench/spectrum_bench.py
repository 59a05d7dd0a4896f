"""The ends of the full-set NTK spectrum, λ_min(K_N) and λ_max(K_N), three ways, side by side
in one process on the mnist preset's K_N (N = 1000 real digits, m = 128, at initialisation):

- ours: scipy.linalg.eigvalsh (LAPACK through scipy), what FullNTKProbe uses;
- torch.linalg.eigvalsh, the obvious alternative;
- Lanczos for the two ends only: λ_max by scipy's eigsh on K, λ_min by eigsh on K⁻¹ through
  a Cholesky factor (shift-invert at 0), counting the Cholesky solves.

    python bench/spectrum_bench.py           # about 30 s

Each row: the fastest of --repeat calls, λ_min and λ_max, and the relative difference of
λ_min from torch's. The last line reads `torch/ours: <ratio>x` (and Lanczos/ours).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

import engine
from engine.config import Plan
from engine.data import load_data
from engine.ntk import empirical_ntk, input_gram
from engine.theory import spectrum_ends


def lanczos_ends(k: np.ndarray, solves: list[int]) -> tuple[float, float]:
    start = np.random.default_rng(0).standard_normal(len(k))
    factor = scipy.linalg.cho_factor(k)

    def solve(v: np.ndarray) -> np.ndarray:
        solves[0] += 1
        return scipy.linalg.cho_solve(factor, v)

    inverse = LinearOperator(k.shape, matvec=solve, dtype=np.float64)
    low = 1.0 / float(eigsh(inverse, k=1, which="LA", v0=start, tol=1e-10)[0][0])
    high = float(eigsh(k, k=1, which="LA", v0=start, tol=1e-10)[0][0])
    return low, high


def best_of(fn, repeat: int) -> tuple[float, tuple[float, float]]:
    times, value = [], (0.0, 0.0)
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    run = Plan.of(engine.load_spec("mnist", {"train.device": "cpu"})).runs[0]
    data = load_data(run.data, run.model.kind)
    model = engine.build_model(run)
    kernel = empirical_ntk(model, data.x, input_gram=input_gram(data.x))
    k = kernel.numpy()
    solves = [0]
    rows = {
        "torch.linalg.eigvalsh": lambda: tuple(float(v) for v in torch.linalg.eigvalsh(kernel)[[0, -1]]),
        "ours (scipy eigvalsh)": lambda: spectrum_ends(kernel),
        "Lanczos, shift-invert": lambda: lanczos_ends(k, solves),
    }
    print(f"K_N: {len(k)} x {len(k)}, float64, torch threads {torch.get_num_threads()}")
    print(f"{'method':<24} {'s':>8} {'λ_min':>16} {'λ_max':>14} {'λ_min rel diff':>15}")
    times, reference = {}, None
    for name, fn in rows.items():
        seconds, (low, high) = best_of(fn, args.repeat)
        times[name] = seconds
        reference = low if reference is None else reference  # torch's, the first row
        diff = f"{abs(low - reference) / abs(reference):.1e}"
        print(f"{name:<24} {seconds:>8.3f} {low:>16.10g} {high:>14.8g} {diff:>15}")
    print(f"Cholesky solves per Lanczos λ_min: {solves[0] / args.repeat:.0f}")
    print(f"torch/ours: {times['torch.linalg.eigvalsh'] / times['ours (scipy eigvalsh)']:.2f}x; "
          f"Lanczos/ours: {times['Lanczos, shift-invert'] / times['ours (scipy eigvalsh)']:.2f}x")


if __name__ == "__main__":
    main()

"""The closed-form MLP NTK against the jacobian-contraction method of PyTorch's NTK tutorial
(torch.func: vmap(jacrev) per input, then an einsum over every parameter), side by side in
one process, on the paper's MLP, the same inputs, both in float64.

    python bench/ntk_bench.py              # m in {128, 256, 512, 1024}, n in {64, 128, 256}
    python bench/ntk_bench.py --quick      # m in {128, 1024}, n = 128

Each row: the time of K + λ_min for each method, their ratio, and the relative difference of
the two λ_min. The last line reads `speedup m=1024 n=128: <ratio>x`.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.func import functional_call, jacrev, vmap

from engine.models import MLP, he_normal_
from engine.ntk import lambda_min, mlp_ntk


def tutorial_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """https://pytorch.org/tutorials/intermediate/neural_tangent_kernels.html, 'jacobian contraction'."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def fnet_single(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(fnet_single), (None, 0))(params, x)
    jac = [j.flatten(2) for j in jac.values()]
    return torch.stack([torch.einsum("Naf,Mbf->NMab", j, j) for j in jac]).sum(0).squeeze(-1).squeeze(-1)


def best_of(fn, repeat: int) -> tuple[float, float]:
    """(seconds, λ_min) of the fastest of `repeat` calls."""
    times, value = [], 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        value = lambda_min(fn())
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    widths, sizes = ((128, 1024), (128,)) if args.quick else ((128, 256, 512, 1024), (64, 128, 256))
    torch.manual_seed(0)
    print(f"{'m':>5} {'n':>4} {'closed form s':>14} {'torch.func s':>13} {'speedup':>9} {'λ_min rel diff':>15}")
    speedups = {}
    for m in widths:
        model = MLP(784, m, 4).double()
        he_normal_(model, torch.Generator().manual_seed(0))
        for n in sizes:
            x = torch.rand(n, 784, dtype=torch.float64)
            ours, lam_ours = best_of(lambda model=model, x=x: mlp_ntk(model, x), args.repeat)
            theirs, lam_theirs = best_of(lambda model=model, x=x: tutorial_ntk(model, x), 1 if m * n >= 1024 * 256 else args.repeat)
            speedups[m, n] = theirs / ours
            diff = abs(lam_ours - lam_theirs) / abs(lam_theirs)
            print(f"{m:>5} {n:>4} {ours:>14.4f} {theirs:>13.3f} {speedups[m, n]:>8.1f}x {diff:>15.2e}", flush=True)
    print(f"speedup m=1024 n=128: {speedups[1024, 128]:.1f}x")


if __name__ == "__main__":
    main()

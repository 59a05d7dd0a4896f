"""λ_max(∇²L) by Lanczos, as an alternative to engine.theory.PowerIteration (measured by
bench/sharpness_bench.py; the probe keeps power iteration, which needs no more HVPs).

scipy's `eigsh` (ARPACK's implicitly restarted Lanczos) asks for k = 1 eigenvalue, the largest
algebraic one (which = "LA"), of a LinearOperator whose matvec is one Hessian-vector product
`engine.theory.hvp` on the flattened parameter vector; ARPACK works in float64 on the host,
the HVP in the model's dtype on its device. Like PowerIteration it is warm-started from the
last call's vector (v0), keeps that vector as a list of tensors shaped like the parameters (for
warm starts and checkpoints), and has the same call shape. It counts its HVPs in `hvps`.

Its knobs are eigsh's: `tolerance` is `tol`, the relative accuracy ARPACK asks of the Ritz value
(its residual estimate ≤ tol·|λ|), `iterations` is `maxiter` (restarts of the Lanczos basis),
and `basis` is `ncv`, the number of Lanczos vectors. Every call costs at least about basis + 1
HVPs, even from a converged vector; each further restart about basis − 2 more.

Unlike power iteration, which = "LA" finds the largest algebraic eigenvalue: where the Hessian
has a negative eigenvalue larger in size than λ_max, power iteration follows that one, this
does not.

When ARPACK stops at `maxiter` without convergence it reports no eigenvalue at all (k = 1);
the call then returns its own best estimate instead: the largest Ritz value of a running
Rayleigh–Ritz over the products the call made (`RunningRitz`), a lower bound on λ_max, and keeps
that Ritz vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import nn

from engine.data import Dataset
from engine.theory import hvp


@dataclass
class Lanczos:
    """λ_max(∇²L) by scipy's eigsh on Hessian-vector products, warm-started between calls."""

    iterations: int = 3  # eigsh's maxiter: restarts per call
    tolerance: float = 1e-4  # eigsh's tol, relative
    basis: int = 4  # eigsh's ncv: Lanczos vectors (>= 2)
    vector: list[torch.Tensor] | None = None
    hvps: int = 0  # HVPs over all calls
    last_hvps: int = 0  # HVPs of the last call
    converged: bool = True  # whether the last call met the tolerance

    def __call__(self, model: nn.Module, data: Dataset, micro_batch: int = 0, iterations: int | None = None) -> float:
        params = [p for p in model.parameters()]
        sizes = [p.numel() for p in params]
        n = sum(sizes)
        if self.vector is None:
            g = torch.Generator().manual_seed(0)
            self.vector = [torch.randn(p.shape, generator=g).to(p) for p in params]
        v0 = torch.cat([t.detach().flatten().double().cpu() for t in self.vector]).numpy()
        ritz = RunningRitz(width=self.basis + 2)  # a call that converges in its first cycle never reduces
        self.last_hvps = 0

        def to_tensors(flat: torch.Tensor) -> list[torch.Tensor]:
            return [piece.view(p.shape).to(p) for piece, p in zip(flat.split(sizes), params)]

        def matvec(x: np.ndarray) -> np.ndarray:
            self.hvps += 1
            self.last_hvps += 1
            # a copy: x is ARPACK's work buffer; flat is what the HVP sees, in the model's dtype
            flat = torch.from_numpy(np.ascontiguousarray(x).reshape(-1)).to(params[0].dtype, copy=True)
            hv = hvp(model, data, to_tensors(flat), micro_batch)
            y = torch.cat([h.detach().flatten().cpu() for h in hv])
            ritz.add(flat, y)
            return y.double().numpy()

        op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        try:
            values, vectors = eigsh(
                op, k=1, which="LA", v0=v0, tol=self.tolerance,
                maxiter=iterations or self.iterations, ncv=max(2, min(self.basis, n)),
            )
            estimate, top = float(values[0]), torch.from_numpy(vectors[:, 0])
            self.converged = True
        except ArpackNoConvergence as exc:
            self.converged = False
            if len(exc.eigenvalues):
                estimate, top = float(exc.eigenvalues[-1]), torch.from_numpy(exc.eigenvectors[:, -1])
            else:
                estimate, top = ritz.best()
        if top is not None and bool(torch.isfinite(top).all()) and float(top.norm()) > 0:
            self.vector = [t.detach() for t in to_tensors(top / top.norm())]
        return estimate


class RunningRitz:
    """The largest Ritz value of a symmetric H, and its vector, over (nearly) the span of every x_i
    given, from the pairs (x_i, H x_i) alone: every `width` pairs, they and the `keep` best Ritz
    pairs so far are reduced to the `keep` best Ritz pairs of their span (a thick restart), so it
    holds at most width + keep pairs, and `best()` reduces what is left. Each estimate is a
    Rayleigh quotient, so it is a lower bound on λ_max, and it never decreases."""

    def __init__(self, width: int = 3, keep: int = 2):
        self.width, self.keep = width, keep
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # kept Ritz pairs first, best first
        self.kept = 0
        self.value = math.nan

    def add(self, x: torch.Tensor, hx: torch.Tensor) -> None:
        self.pairs.append((x, hx))
        if len(self.pairs) - self.kept >= self.width:
            self.reduce()

    def reduce(self) -> None:
        if len(self.pairs) == self.kept:
            return
        x = torch.stack([p[0].double() for p in self.pairs])  # rows
        hx = torch.stack([p[1].double() for p in self.pairs])
        gram_values, gram_vectors = torch.linalg.eigh(x @ x.T)
        independent = gram_values > gram_values[-1] * 1e-12
        basis = gram_vectors[:, independent] / gram_values[independent].sqrt()  # basisᵀ x: orthonormal rows
        small = basis.T @ (x @ hx.T) @ basis
        values, coords = torch.linalg.eigh((small + small.T) / 2)
        self.value = float(values[-1])
        c = basis @ coords.flip(1)[:, : self.keep]
        self.pairs = [(c[:, j] @ x, c[:, j] @ hx) for j in range(c.shape[1])]
        self.kept = len(self.pairs)

    def best(self) -> tuple[float, torch.Tensor | None]:
        self.reduce()
        return (self.value, self.pairs[0][0]) if self.pairs else (math.nan, None)

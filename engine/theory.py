"""The hypotheses of the paper's Theorems 5.4 and 5.7, measured instead of assumed.

- The full-set NTK K_N: with squared loss, ∇L = Jᵀr/N, so ‖∇L‖² = rᵀ K_N r / N² and
  PL ratio = ‖∇L‖²/(2(L − L*)) ≥ (λ_min(K_N)/N) · L/(L − L*)  (since ‖r‖² = 2NL).
- Sharpness λ_max(∇²L) by power iteration on Hessian-vector products; near interpolation it
  approaches the Gauss-Newton value λ_max(K_N)/N. GD with step η is stable only while
  η · λ_max(∇²L) < 2, so 2/λ_max is the largest stable step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import nn

from engine.analysis import NAN, OUTSIDE, UNSTABLE, step_class
from engine.data import Dataset
from engine.kinds import kind_of
from engine.models import squared_loss
from engine.ntk import empirical_ntk


def spectrum_ends(kernel: torch.Tensor) -> tuple[float, float]:
    """(λ_min, λ_max) of a symmetric kernel, in float64 (NaN for a kernel with NaN or inf).

    The whole spectrum by LAPACK through scipy, which at N = 1000 takes 0.6 to 0.7 of the time
    of torch's eigvalsh here. Lanczos for the two ends is no cheaper: K_N's condition number
    (~1e7 on mnist) and its nearly equal smallest eigenvalues cost a shift-invert Lanczos some
    50 Cholesky solves (bench/spectrum_bench.py).
    """
    k = kernel.detach().double().cpu().numpy()
    if not np.isfinite(k).all():
        return NAN, NAN
    eig = scipy.linalg.eigvalsh(k, check_finite=False)
    return float(eig[0]), float(eig[-1])


def full_ntk_ends(model: nn.Module, data: Dataset, gram: torch.Tensor | None = None) -> tuple[float, float]:
    """(λ_min, λ_max) of K_N; `gram`: the inputs' input_gram, computed once by the caller."""
    return spectrum_ends(empirical_ntk(model, data.x, input_gram=gram))


def hvp(model: nn.Module, data: Dataset, vector: list[torch.Tensor], micro_batch: int = 0) -> list[torch.Tensor]:
    """∇²L · v on the full training set (micro-batch terms each divided by N, so they add up)."""
    params = [p for p in model.parameters()]
    out = [torch.zeros_like(p) for p in params]
    step = micro_batch or data.n
    for x, y in zip(data.x.split(step), data.y.split(step)):
        loss = squared_loss(model, x, y, data.n)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vector))
        for acc, h in zip(out, torch.autograd.grad(dot, params)):
            acc += h
    return out


def hessian(model: nn.Module, data: Dataset, micro_batch: int = 0) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """v ↦ ∇²L·v at the model's θ, on the full training set. When the set goes through at once,
    the gradient's graph is built once and every product reuses it (a second backward pass
    each, about 30 % cheaper than hvp from the second product on); with micro-batches each
    product goes through hvp, so memory stays at one micro-batch's graph."""
    if micro_batch and micro_batch < data.n:
        return lambda vector: hvp(model, data, vector, micro_batch)
    params = list(model.parameters())
    grads = torch.autograd.grad(squared_loss(model, data.x, data.y, data.n), params, create_graph=True)

    def product(vector: list[torch.Tensor]) -> list[torch.Tensor]:
        dot = sum((g * v).sum() for g, v in zip(grads, vector))
        return list(torch.autograd.grad(dot, params, retain_graph=True))

    return product


def norm(vector: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((v.double() ** 2).sum() for v in vector))


@dataclass
class PowerIteration:
    """λ_max(∇²L) by power iteration, warm-started from the last vector between calls.

    Power iteration finds the eigenvalue of largest magnitude. That is λ_max while the top of
    the spectrum outweighs any negative curvature, as on the MLPs (at m = 128's initialisation
    λ_max = 653 against λ_min ≈ −33). When it lands on a negative eigenvalue λ_- instead (the
    CNN's at some initialisations: −31.6 on 100 CIFAR images, seed 2), it runs again on
    H + |λ_-|·I, whose spectrum is shifted to [0, λ_max + |λ_-|], and subtracts the shift. A
    warm-started Lanczos (scipy's eigsh) needed as many Hessian-vector products per probe, no
    fewer: bench/sharpness_bench.py."""

    iterations: int = 3
    tolerance: float = 1e-4
    vector: list[torch.Tensor] | None = None

    def __call__(self, model: nn.Module, data: Dataset, micro_batch: int = 0, iterations: int | None = None) -> float:
        if self.vector is None:
            g = torch.Generator().manual_seed(0)
            self.vector = [torch.randn(p.shape, generator=g).to(p) for p in model.parameters()]
        start = [t.to(p) for t, p in zip(self.vector, model.parameters())]  # a checkpoint's is on the CPU
        product = hessian(model, data, micro_batch)
        steps = iterations or self.iterations
        estimate, v = self.iterate(product, start, steps)
        if estimate < 0:  # the most negative curvature outweighs the top of the spectrum
            shift = -estimate

            def shifted(vector: list[torch.Tensor]) -> list[torch.Tensor]:
                return [h + shift * x for h, x in zip(product(vector), vector)]

            g = torch.Generator().manual_seed(1)
            fresh = [torch.randn(p.shape, generator=g).to(p) for p in model.parameters()]
            top, v = self.iterate(shifted, fresh, steps)
            estimate = top - shift
        self.vector = [t.detach() for t in v]
        return estimate

    def iterate(self, product: Callable, start: list[torch.Tensor], steps: int) -> tuple[float, list[torch.Tensor]]:
        """(the Rayleigh quotient after at most `steps` products, the last unit vector)."""
        size = norm(start)
        v = [t / size.to(t.dtype) for t in start]
        estimate = float("nan")
        for _ in range(steps):
            hv = product(v)
            new = float(sum((a.double() * b.double()).sum() for a, b in zip(v, hv)))  # Rayleigh quotient
            size = norm(hv)
            if size == 0:
                return 0.0, v
            v = [h / size.to(h.dtype) for h in hv]
            converged = abs(new - estimate) <= self.tolerance * abs(new)
            estimate = new
            if converged:
                break
        return estimate, v


@dataclass(frozen=True)
class Advice:
    """The step-size verdict for one run of a plan, at its initialisation."""

    label: str
    lr: float
    sharpness: float  # λ_max(∇²L) at θ_0
    gauss_newton: float  # λ_max(K_N)/N at θ_0 (MLP; NaN otherwise)
    momentum: float = 0.0  # μ of heavy-ball momentum (0: plain gradient descent)

    @property
    def max_stable_lr(self) -> float:
        """The stability edge on the quadratic model with curvature β: 2/β for gradient
        descent, 2(1 + μ)/β for heavy ball with momentum μ."""
        return 2.0 * (1.0 + self.momentum) / self.sharpness if self.sharpness > 0 else float("inf")

    @property
    def effective_lr(self) -> float:
        """η/(1 − μ): how far heavy ball moves per step along a steady gradient."""
        return self.lr / (1.0 - self.momentum)

    @property
    def unstable(self) -> bool:
        return self.lr >= self.max_stable_lr

    @property
    def step_class(self) -> str:
        """Gradient descent: inside the theorem (η ≤ 1/β), stable but outside it, or unstable
        (η ≥ 2/β). With momentum the theorem (plain GD) never applies: stable but outside it
        below heavy ball's edge, else unstable."""
        if self.momentum and math.isfinite(self.lr * self.sharpness):
            return UNSTABLE if self.unstable else OUTSIDE
        return step_class(round(self.lr * self.sharpness, 12))  # η = scale/β₀ gives η·β₀ = 2 within rounding


def init_key(run) -> tuple:
    """What a run's initialisation (and so its β₀) depends on: its model, seed and data."""
    return (repr(run.model), run.train.seeds[0], repr(run.data))


def advise(runs: list[tuple], device: torch.device, seen: dict | None = None) -> list[Advice]:
    """Per (run spec, its training set): the largest stable step 2/λ_max(∇²L) at
    initialisation, and the run's step (optim.lr, or lr_scale/β₀ when optim.lr_scale is set).
    Runs that share their initialisation (same model, seed and data) share the computation;
    `seen` keeps it across calls."""
    from engine.models import build_model

    seen = {} if seen is None else seen
    out = []
    for run, data in runs:
        key = init_key(run)
        if key not in seen:
            data = data.to(device)
            model = build_model(run, data.k).to(device)
            sharp = PowerIteration(iterations=100, tolerance=1e-6)(model, data, run.probes.micro_batch)
            gn = full_ntk_ends(model, data)[1] / data.n if kind_of(run.model.kind).closed_form_ntk else float("nan")
            seen[key] = (sharp, gn)
        sharp, gn = seen[key]
        lr = run.optim.lr_scale / sharp if run.optim.lr_scale > 0 and sharp > 0 else run.optim.lr
        out.append(Advice(run.label, lr, sharp, gn, run.optim.momentum))
    return out

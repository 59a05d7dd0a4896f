"""On a fixed probe subset S, eigenvalues in float64:
ntk_lambda_min = λ_min(K_t), K_t = J_S J_Sᵀ;
ntk_lambda_max = λ_max(K_t) = ‖K_t‖₂ (K_t is a Gram matrix), so ‖K_0‖₂ is its first value;
ntk_change = ‖K_t − K_0‖₂, the kernel's change (lazy training: small against ‖K_0‖₂)."""

import copy

import torch

from engine.models import MLP
from engine.ntk import empirical_ntk, input_gram, inputs_at_once
from engine.probes.base import Probe, TrainState


class NTKProbe(Probe):
    names = ("ntk_lambda_min", "ntk_lambda_max", "ntk_change")

    def __init__(self, x_subset: torch.Tensor, every: int = 1):
        super().__init__(every)
        self.x_subset = x_subset
        self.chunk: int | None = None  # inputs at a time; None: all at once
        self.kernel0: torch.Tensor | None = None
        self.gram: torch.Tensor | None = None  # the subset's first-layer Gram matrix (MLP): fixed, made once

    def measure(self, state: TrainState) -> dict:
        kernel = self.kernel(state.model, state)
        if kernel is None:
            return dict.fromkeys(self.names, float("nan"))
        if self.kernel0 is None:  # K_0 from θ_0 itself, so a resumed run gets the same one
            self.kernel0 = kernel if state.epoch == 0 else self.kernel(at(state.model, state.theta0), state)
        # ‖K_t − K_0‖₂ of a symmetric matrix: its largest |eigenvalue| (eigvalsh: half an SVD's cost)
        change = float(torch.linalg.eigvalsh(kernel - self.kernel0).abs().max()) if self.kernel0 is not None else float("nan")
        eig = torch.linalg.eigvalsh(kernel)  # empirical_ntk's kernel is float64 already
        return {"ntk_lambda_min": float(eig[0]), "ntk_lambda_max": float(eig[-1]), "ntk_change": change}

    def kernel(self, model: torch.nn.Module, state: TrainState) -> torch.Tensor | None:
        """K on S. On out-of-memory: halve the chunk of inputs and retry; at one input, give up
        on this probe (None: NaN, and the record says so) and let training go on."""
        chunk = self.chunk
        if self.gram is None and isinstance(model, MLP):
            self.gram = input_gram(self.x_subset)
        while True:
            try:
                return empirical_ntk(model, self.x_subset, chunk, self.gram)
            except torch.cuda.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if chunk == 1:
                    state.notes.append("ntk_lambda_min: out of memory even one input at a time; this probe is NaN")
                    return None
                chunk = max(1, inputs_at_once(model, self.x_subset, chunk) // 2)  # half of what failed
                self.chunk = chunk  # later probes start from what fitted
                state.notes.append(f"ntk_lambda_min: out of memory; retrying {chunk} inputs at a time")


def probe_subset(n_train: int, n: int, seed: int) -> torch.Tensor:
    """The indices of S: n of the N training inputs, fixed by the seed alone (same across widths)."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def at(model: torch.nn.Module, theta: list[torch.Tensor]) -> torch.nn.Module:
    """A copy of the model with the parameters θ."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p, t in zip(twin.parameters(), theta):
            p.copy_(t)
    return twin

"""ntk_lambda_min = λ_min(J_S J_Sᵀ) on a fixed probe subset S, eigenvalues in float64."""

import torch

from engine.ntk import empirical_ntk, lambda_min
from engine.probes.base import Probe, TrainState


class NTKProbe(Probe):
    names = ("ntk_lambda_min",)

    def __init__(self, x_subset: torch.Tensor, every: int = 1):
        super().__init__(every)
        self.x_subset = x_subset
        self.chunk: int | None = None  # inputs at a time; None: all at once

    def measure(self, state: TrainState) -> dict:
        """On out-of-memory: halve the chunk of inputs and retry; at one input, give up on this
        probe (NaN, and the record says so) and let training go on."""
        chunk = self.chunk
        while True:
            try:
                return {"ntk_lambda_min": lambda_min(empirical_ntk(state.model, self.x_subset, chunk))}
            except torch.cuda.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if chunk == 1:
                    state.notes.append("ntk_lambda_min: out of memory even one input at a time; this probe is NaN")
                    return {"ntk_lambda_min": float("nan")}
                chunk = max(1, (chunk or len(self.x_subset)) // 2)
                self.chunk = chunk  # later probes start from what fitted
                state.notes.append(f"ntk_lambda_min: out of memory; retrying {chunk} inputs at a time")


def probe_subset(n_train: int, n: int, seed: int) -> torch.Tensor:
    """The indices of S: n of the N training inputs, fixed by the seed alone (same across widths)."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:n].sort().values

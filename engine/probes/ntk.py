"""ntk_lambda_min = λ_min(J_S J_Sᵀ) on a fixed probe subset S, eigenvalues in float64."""

import torch

from engine.ntk import empirical_ntk, lambda_min
from engine.probes.base import Probe, TrainState


class NTKProbe(Probe):
    names = ("ntk_lambda_min",)

    def __init__(self, x_subset: torch.Tensor, every: int = 1):
        super().__init__(every)
        self.x_subset = x_subset

    def measure(self, state: TrainState) -> dict:
        return {"ntk_lambda_min": lambda_min(empirical_ntk(state.model, self.x_subset))}


def probe_subset(n_train: int, n: int, seed: int) -> torch.Tensor:
    """The indices of S: n of the N training inputs, fixed by the seed alone (same across widths)."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[:n].sort().values

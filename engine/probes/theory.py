"""The theorems' hypotheses, probed: the full-set NTK spectrum and the sharpness λ_max(∇²L)."""

import torch

from engine.data import Dataset
from engine.probes.base import Probe, TrainState
from engine.ntk import input_gram
from engine.theory import PowerIteration, full_ntk_ends


class FullNTKProbe(Probe):
    """λ_min and λ_max of K_N on all N training inputs (closed form for the MLP)."""

    names = ("ntk_full_lambda_min", "ntk_full_lambda_max")

    def __init__(self, data: Dataset, every: int):
        super().__init__(every)
        self.data = data
        self.early = frozenset()  # an N×N spectrum per probe: the regular cadence only
        self.gram: torch.Tensor | None = None  # the inputs' first-layer Gram matrix: fixed, made once

    def measure(self, state: TrainState) -> dict:
        if self.gram is None:
            self.gram = input_gram(self.data.x)
        low, high = full_ntk_ends(state.model, self.data, self.gram)
        return {"ntk_full_lambda_min": low, "ntk_full_lambda_max": high}


class SharpnessProbe(Probe):
    """λ_max(∇²L) on the full set: power iteration on Hessian-vector products, warm-started
    from the previous probe's vector, so a few iterations per probe keep it converged."""

    names = ("sharpness",)

    def __init__(self, data: Dataset, every: int, micro_batch: int = 0, iterations: int = 3, first: int = 30):
        super().__init__(every)
        self.early = frozenset()  # Hessian-vector products on the full set: the regular cadence only
        self.data, self.micro_batch, self.first = data, micro_batch, first
        self.power = PowerIteration(iterations)

    def state(self) -> dict:
        return {"vector": self.power.vector}

    def restore(self, state: dict) -> None:
        self.power.vector = state.get("vector")

    def measure(self, state: TrainState) -> dict:
        with torch.enable_grad():
            iterations = self.first if self.power.vector is None else None
            return {"sharpness": self.power(state.model, self.data, self.micro_batch, iterations)}

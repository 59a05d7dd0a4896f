"""grad_sq = ‖∇L(θ)‖², exact: read from the full-batch step's own gradient, no extra pass."""

import torch

from engine.probes.base import Probe, TrainState


class GradSqProbe(Probe):
    names = ("grad_sq",)
    per_epoch = True

    def measure(self, state: TrainState) -> dict:
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        return {"grad_sq": torch.stack([torch.sum(g.double() ** 2) for g in grads]).sum()}

"""drift = ‖θ_t − θ_0‖₂ over all parameters."""

import torch

from engine.probes.base import Probe, TrainState


class DriftProbe(Probe):
    names = ("drift",)

    @torch.no_grad()
    def measure(self, state: TrainState) -> dict:
        params = list(state.model.parameters())
        sq = torch.stack([torch.sum((p.double() - p0.double()) ** 2) for p, p0 in zip(params, state.theta0)])
        return {"drift": sq.sum().sqrt()}

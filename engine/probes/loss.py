"""loss L = (1/2N) Σ_i ‖f(x_i) − y_i‖² on the full training set: the training step's own value."""

from engine.probes.base import Probe, TrainState


class LossProbe(Probe):
    names = ("loss",)
    per_epoch = True

    def measure(self, state: TrainState) -> dict:
        return {"loss": state.loss.detach()}

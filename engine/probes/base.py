"""The common shape of a diagnostic: its names, its schedule, and how it is measured."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class TrainState:
    """What a probe may read at one epoch: θ_t after the forward/backward pass, before the step."""

    model: nn.Module
    epoch: int
    loss: torch.Tensor  # L(θ_t) on the full training set, a 0-d tensor
    theta0: list[torch.Tensor]  # θ_0, one tensor per parameter
    notes: list[str] = field(default_factory=list)  # what a probe wants the record to say


def early_epochs(every: int) -> frozenset[int]:
    """Log-spaced epochs before the regular cadence starts: 1, 2, 3, 5, 7, 10, 20, 30, 50, 70,
    100, … below `every`, so the first epochs (a catapult lasts a handful) are measured too."""
    out, decade = set(), 1
    while decade < every:
        out.update(d * decade for d in (1, 2, 3, 5, 7) if d * decade < every)
        decade *= 10
    return frozenset(out)


class Probe:
    """One diagnostic. `every` is its cadence in epochs; the last epoch is always measured, and
    so are the log-spaced `early_epochs` before the cadence starts.

    `per_epoch` probes form the trajectory's epoch series (loss, grad_sq); the others form its
    probe series (drift, ntk_lambda_min) at the probe cadence.
    """

    names: tuple[str, ...] = ()
    per_epoch = False

    def __init__(self, every: int = 1):
        self.every = every
        self.early = early_epochs(every)

    def due(self, epoch: int, last_epoch: int) -> bool:
        return epoch % self.every == 0 or epoch == last_epoch or epoch in self.early

    def measure(self, state: TrainState) -> dict[str, torch.Tensor | float]:
        raise NotImplementedError

    def state(self) -> dict:
        """What a checkpoint must keep for a resumed run to measure exactly as this one would."""
        return {}

    def restore(self, state: dict) -> None:
        pass

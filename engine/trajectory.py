"""A run's measurements as the record stores them: epoch series and probe series."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from engine.events import EpochMeasured, ProbeMeasured


@dataclass
class Trajectory:
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_sq: list[float] = field(default_factory=list)
    probe_epoch: list[int] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)
    ntk_lambda_min: list[float] = field(default_factory=list)

    def add(self, event: object) -> None:
        if isinstance(event, EpochMeasured):
            self.epoch.append(event.epoch)
            self.loss.append(event.loss)
            self.grad_sq.append(event.grad_sq)
        elif isinstance(event, ProbeMeasured):
            self.probe_epoch.append(event.epoch)
            self.drift.append(event.values.get("drift", float("nan")))
            self.ntk_lambda_min.append(event.values.get("ntk_lambda_min", float("nan")))

    def to_dict(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Trajectory":
        names = {f.name for f in fields(cls)}
        return cls(**{k: list(v) for k, v in data.items() if k in names})

    def before(self, epoch: int) -> "Trajectory":
        """What was measured before `epoch` (a checkpoint's epoch)."""
        keep = sum(e < epoch for e in self.epoch)
        keep_probe = sum(e < epoch for e in self.probe_epoch)
        return Trajectory(
            self.epoch[:keep], self.loss[:keep], self.grad_sq[:keep],
            self.probe_epoch[:keep_probe], self.drift[:keep_probe], self.ntk_lambda_min[:keep_probe],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name), dtype=float) for f in fields(self)}

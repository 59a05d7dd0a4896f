"""A run's measurements as the record stores them: three series, each with its own epochs.

epoch series   epoch, loss, grad_sq                                         every epoch
probe series   probe_epoch, drift, ntk_lambda_min, ntk_lambda_max, ntk_change
                                                                            every probes.every (and early)
theory series  theory_epoch, sharpness, ntk_full_lambda_min, ntk_full_lambda_max
                                                                            every probes.theory_every
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from engine.events import EpochMeasured, ProbeMeasured

SERIES = {
    "epoch": ("loss", "grad_sq"),
    "probe_epoch": ("drift", "ntk_lambda_min", "ntk_lambda_max", "ntk_change"),
    "theory_epoch": ("sharpness", "ntk_full_lambda_min", "ntk_full_lambda_max"),
}


@dataclass(eq=False)
class Trajectory:
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_sq: list[float] = field(default_factory=list)
    probe_epoch: list[int] = field(default_factory=list)
    drift: list[float] = field(default_factory=list)
    ntk_lambda_min: list[float] = field(default_factory=list)
    ntk_lambda_max: list[float] = field(default_factory=list)
    ntk_change: list[float] = field(default_factory=list)
    theory_epoch: list[int] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    ntk_full_lambda_min: list[float] = field(default_factory=list)
    ntk_full_lambda_max: list[float] = field(default_factory=list)

    def add(self, event: object) -> None:
        if isinstance(event, EpochMeasured):
            self.append("epoch", event.epoch, {"loss": event.loss, "grad_sq": event.grad_sq})
        elif isinstance(event, ProbeMeasured):
            for axis, names in SERIES.items():
                if axis != "epoch" and any(name in event.values for name in names):
                    self.append(axis, event.epoch, event.values)

    def append(self, axis: str, epoch: int, values: dict) -> None:
        getattr(self, axis).append(epoch)
        for name in SERIES[axis]:
            getattr(self, name).append(values.get(name, float("nan")))

    def __eq__(self, other: object) -> bool:
        """The same measurements, NaN included: a NaN (not measured, or a diverged value)
        equals a NaN at the same place, so two runs compare bit for bit."""
        if not isinstance(other, Trajectory):
            return NotImplemented
        return all(same_values(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def to_dict(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Trajectory":
        names = {f.name for f in fields(cls)}
        return cls(**{k: list(v) for k, v in data.items() if k in names})

    def before(self, epoch: int) -> "Trajectory":
        """What was measured before `epoch` (a checkpoint's epoch)."""
        out = Trajectory()
        for axis, names in SERIES.items():
            keep = sum(e < epoch for e in getattr(self, axis))
            for name in (axis, *names):
                setattr(out, name, list(getattr(self, name))[:keep])
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Every series as float arrays, each as long as its epoch axis: a series that a record
        lacks (an older version's, another tool's) or holds short is padded with NaN."""
        out = {}
        for axis, names in SERIES.items():
            out[axis] = np.asarray(getattr(self, axis), dtype=float)
            for name in names:
                values = np.asarray(getattr(self, name), dtype=float)[: out[axis].size]
                out[name] = np.concatenate([values, np.full(out[axis].size - values.size, np.nan)])
        return out


def same_values(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))

"""One module per diagnostic, each a `Probe` that knows its schedule."""

from __future__ import annotations

from engine.config import Spec
from engine.data import Dataset
from engine.probes.base import Probe, TrainState
from engine.probes.drift import DriftProbe
from engine.probes.grad_sq import GradSqProbe
from engine.probes.loss import LossProbe
from engine.probes.ntk import NTKProbe, probe_subset

EPOCH_SERIES = ("loss", "grad_sq")
PROBE_SERIES = ("drift", "ntk_lambda_min")


def build_probes(spec: Spec, data: Dataset) -> list[Probe]:
    """loss and grad_sq every epoch; drift and NTK λ_min every `probes.every` epochs (0: never)."""
    every = spec.probes.every
    if every == 0:
        return [LossProbe(), GradSqProbe()]
    subset = probe_subset(data.n, spec.probes.ntk_subset, spec.probes.ntk_seed).to(data.x.device)
    return [LossProbe(), GradSqProbe(), DriftProbe(every), NTKProbe(data.x[subset], every)]


__all__ = ["Probe", "TrainState", "build_probes", "EPOCH_SERIES", "PROBE_SERIES"]

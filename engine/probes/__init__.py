"""One module per diagnostic, each a `Probe` that knows its schedule."""

from __future__ import annotations

from engine.config import Spec
from engine.data import Dataset
from engine.probes.base import Probe, TrainState
from engine.probes.drift import DriftProbe
from engine.probes.grad_sq import GradSqProbe
from engine.probes.loss import LossProbe
from engine.probes.ntk import NTKProbe, probe_subset
from engine.probes.theory import FullNTKProbe, SharpnessProbe

def build_probes(spec: Spec, data: Dataset) -> list[Probe]:
    """loss and grad_sq every epoch; drift and NTK λ_min every `probes.every` epochs; the
    theory probes every `probes.theory_every` epochs (0: never; the full-set NTK: MLP only)."""
    probes: list[Probe] = [LossProbe(), GradSqProbe()]
    every, theory = spec.probes.every, spec.probes.theory_every
    if every:
        subset = probe_subset(data.n, spec.probes.ntk_subset, spec.probes.ntk_seed).to(data.x.device)
        probes += [DriftProbe(every), NTKProbe(data.x[subset], every)]
    if theory:
        probes.append(SharpnessProbe(data, theory, spec.probes.micro_batch))
        if spec.model.kind == "mlp":
            probes.append(FullNTKProbe(data, theory))
    return probes


__all__ = ["Probe", "TrainState", "build_probes"]

"""One module per diagnostic, each a `Probe` that knows its schedule."""

from __future__ import annotations

from engine.config import Spec
from engine.data import Dataset
from engine.kinds import kind_of
from engine.probes.base import Probe, TrainState
from engine.probes.drift import DriftProbe
from engine.probes.grad_sq import GradSqProbe
from engine.probes.loss import LossProbe
from engine.probes.ntk import NTKProbe, probe_subset
from engine.probes.theory import FullNTKProbe, SharpnessProbe

def build_probes(spec: Spec, data: Dataset) -> list[Probe]:
    """loss and grad_sq every epoch; drift and NTK λ_min every `probes.every` epochs; the
    sharpness every `probes.theory_every` epochs and the full-set NTK spectrum (MLP only) every
    `probes.ntk_full_every` (0: never)."""
    probes: list[Probe] = [LossProbe(), GradSqProbe()]
    p = spec.probes
    if p.every:
        subset = probe_subset(data.n, p.ntk_subset, p.ntk_seed).to(data.x.device)
        probes += [DriftProbe(p.every), NTKProbe(data.x[subset], p.every)]
    if p.theory_every:
        probes.append(SharpnessProbe(data, p.theory_every, p.micro_batch))
    if p.ntk_full_every and kind_of(spec.model.kind).closed_form_ntk:
        probes.append(FullNTKProbe(data, p.ntk_full_every))
    return probes


__all__ = ["Probe", "TrainState", "build_probes"]

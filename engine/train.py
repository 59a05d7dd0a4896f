"""Gradient descent that reports what its probes measure, as events.

Epoch t first measures θ_t on the full training set (loss and the exact gradient, accumulated
over micro-batches when asked), then trains: full-batch GD takes one step with that very
gradient; SGD takes a shuffled pass of mini-batches. Epochs 0..E give E epochs of training and
the last measurement is the final θ_E.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from engine.analysis import step_sizes
from engine.checkpoint import Start
from engine.config import Spec
from engine.data import Dataset
from engine.events import DIVERGED, FINISHED, INTERRUPTED, EpochMeasured, Notice, ProbeMeasured
from engine.models import squared_loss
from engine.probes import Probe, TrainState, build_probes


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str
    epochs_done: int


def full_set_gradient(model: nn.Module, data: Dataset, micro_batch: int) -> torch.Tensor:
    """L(θ) on all N inputs, with ∇L(θ) left in the parameters' .grad (exact: the micro-batch
    terms are each divided by N, so their sum is the full-set loss and gradient)."""
    model.zero_grad(set_to_none=True)
    model.eval()
    total = torch.zeros((), device=data.x.device)
    step = micro_batch or data.n
    for x, y in zip(data.x.split(step), data.y.split(step)):
        loss = squared_loss(model, x, y, data.n)
        loss.backward()
        total += loss.detach()
    model.train()
    return total


def sgd_epoch(model: nn.Module, data: Dataset, optimiser: torch.optim.Optimizer, order: torch.Generator, batch: int) -> None:
    """One shuffled pass of mini-batch steps; each batch's mean loss estimates L."""
    perm = torch.randperm(data.n, generator=order)  # drawn on the CPU: the same order on any device
    if data.x.is_cuda:
        perm = perm.pin_memory().to(data.x.device, non_blocking=True)  # pinned: the copy does not wait for the GPU
    for idx in perm.split(batch):
        optimiser.zero_grad(set_to_none=True)
        squared_loss(model, data.x[idx], data.y[idx], len(idx)).backward()
        optimiser.step()


def step_size(spec: Spec, epoch: int) -> float:
    """η at this epoch (the one schedule formula is analysis.step_sizes)."""
    return float(step_sizes(np.array([epoch]), spec.optim.lr, spec.optim.schedule, spec.train.epochs)[0])


MAX_PENDING = 100  # epochs a CUDA run holds on the device at most, when no probe is due sooner


def defers_reads(device: torch.device) -> bool:
    """Whether per-epoch values stay on the device until the probe cadence. On CUDA, reading a
    value waits for every queued kernel, so a read per epoch would idle the GPU between epochs;
    on the CPU nothing is queued, and each epoch is read as it comes (the charts move each epoch)."""
    return device.type == "cuda"


class Pending:
    """loss and grad_sq of the epochs not yet read by the host, as device tensors."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.values: list[dict[str, torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self.epochs)

    def add(self, epoch: int, values: dict[str, torch.Tensor]) -> None:
        self.epochs.append(epoch)
        self.values.append(values)

    def read(self) -> list[tuple[int, dict[str, float]]]:
        """All pending values in one device-to-host transfer (float64 holds float32 exactly)."""
        if not self.epochs:
            return []
        names = list(self.values[0])
        rows = torch.stack([torch.stack([v[k].double() for k in names]) for v in self.values]).tolist()
        read = [(epoch, dict(zip(names, row))) for epoch, row in zip(self.epochs, rows)]
        self.epochs, self.values = [], []
        return read


class Loop:
    """The state a run carries from epoch to epoch, restored from a checkpoint or fresh."""

    def __init__(self, model: nn.Module, spec: Spec, data: Dataset, start: Start):
        self.model, self.spec, self.data = model, spec, data
        fresh = [p.detach().clone() for p in model.parameters()]
        self.theta0 = [t.to(data.x.device) for t in start.theta0] if start.theta0 else fresh
        self.probes = build_probes(spec, data)
        for probe, saved in zip(self.probes, start.probes):
            probe.restore(saved)
        self.per_epoch = [p for p in self.probes if p.per_epoch]
        self.series = [p for p in self.probes if not p.per_epoch]
        self.optimiser = torch.optim.SGD(model.parameters(), lr=spec.optim.lr, momentum=spec.optim.momentum)
        if start.optimiser:
            self.optimiser.load_state_dict(start.optimiser)
        if start.rng is not None:
            torch.set_rng_state(start.rng)
        self.order = torch.Generator().manual_seed(spec.train.seeds[0])  # the data order of SGD
        if start.order is not None:
            self.order.set_state(start.order)
        self.first_loss = start.first_loss
        self.pending = Pending()
        self.defer = defers_reads(data.x.device)

    def snapshot(self, epoch: int) -> dict:
        """A checkpoint of θ_epoch, before this epoch's step."""
        return {
            "epoch": epoch, "model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
            "theta0": self.theta0, "first_loss": self.first_loss, "rng": torch.get_rng_state(),
            "order": self.order.get_state(), "probes": [probe.state() for probe in self.probes],
        }

    def step(self, epoch: int) -> None:
        for group in self.optimiser.param_groups:
            group["lr"] = step_size(self.spec, epoch)
        if self.spec.optim.kind == "gd":
            self.optimiser.step()  # with the full-set gradient just measured
        else:
            sgd_epoch(self.model, self.data, self.optimiser, self.order, self.spec.optim.batch_size)

    def settle(self, emit: Callable, run: int) -> Outcome | None:
        """Read the pending epochs, emit them in order, and stop at the first that diverged
        (the epochs a deferred read let the GPU run past it are never reported)."""
        for epoch, values in self.pending.read():
            emit(EpochMeasured(run, epoch, values["loss"], values["grad_sq"]))
            self.first_loss = values["loss"] if epoch == 0 else self.first_loss
            why = divergence(values["loss"], self.first_loss, self.spec.train.diverge_factor)
            if why:
                return Outcome(DIVERGED, f"{why} at epoch {epoch}", epoch)
        return None

    def must_read(self, epoch: int, probing: bool) -> bool:
        last = self.spec.train.epochs
        return not self.defer or probing or epoch == last or len(self.pending) >= MAX_PENDING


def train(
    model: nn.Module,
    spec: Spec,
    data: Dataset,
    emit: Callable[[object], None],
    cancel: threading.Event,
    run: int = 0,
    start: Start | None = None,
    save: Callable[[dict], None] | None = None,
) -> Outcome:
    """Train from `start` (a checkpoint, or epoch 0); `save` receives checkpoints: every
    `train.checkpoint_every` epochs and when cancelled. Pending epochs are read before a
    checkpoint, so a checkpoint never holds values its record lacks."""
    start = start or Start()
    loop = Loop(model, spec, data, start)
    last, every = spec.train.epochs, spec.train.checkpoint_every
    for epoch in range(start.epoch, last + 1):
        cancelled = cancel.is_set()  # read once: a cancel arriving later must not skip the settle
        saving = save and every and epoch % every == 0 and epoch > start.epoch
        if (cancelled or saving) and (outcome := loop.settle(emit, run)):
            return outcome
        if cancelled:
            if save:
                save(loop.snapshot(epoch))
            return Outcome(INTERRUPTED, f"stopped at epoch {epoch}", epoch)
        if saving:
            save(loop.snapshot(epoch))
        loss = full_set_gradient(model, data, spec.probes.micro_batch)
        if outcome := measure(loop, TrainState(model, epoch, loss, loop.theta0), emit, run):
            return outcome
        if epoch < last:
            loop.step(epoch)
    return Outcome(FINISHED, "", last)


def measure(loop: Loop, state: TrainState, emit: Callable, run: int) -> Outcome | None:
    """Run the probes due at this epoch. The per-epoch values join the pending ones; when they
    are read, the epoch series is emitted before the probe series is measured, so a probe that
    fails loses only its own values."""
    last = loop.spec.train.epochs
    loop.pending.add(state.epoch, run_all([p for p in loop.per_epoch if p.due(state.epoch, last)], state))
    series = [p for p in loop.series if p.due(state.epoch, last)]
    if not loop.must_read(state.epoch, bool(series)):
        return None
    outcome = loop.settle(emit, run)
    if outcome and outcome.epochs_done < state.epoch:
        return outcome
    if series:
        emit(ProbeMeasured(run, state.epoch, {k: float(v) for k, v in run_all(series, state).items()}))
    for text in state.notes:
        emit(Notice(run, state.epoch, text))
    return outcome


def run_all(probes: list[Probe], state: TrainState) -> dict:
    values: dict = {}
    for probe in probes:
        values.update(probe.measure(state))
    return values


def divergence(loss: float, first_loss: float, factor: float) -> str:
    if not math.isfinite(loss):
        return f"loss became {loss}"
    if math.isfinite(first_loss) and loss > factor * first_loss:
        return f"loss {loss:.3g} exceeded {factor:g} × the initial loss {first_loss:.3g}"
    return ""

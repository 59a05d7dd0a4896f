"""Checkpoints: everything a run needs to continue bit for bit (θ, θ_0, optimiser, RNG).

A checkpoint is untrusted input (a shared results directory, a colleague's tarball): it is
loaded with `weights_only=True`, so nothing in it executes, and then checked against the
schema below and against the model it is meant for. One that fails is refused with one line
naming the file.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.atomic import replace_atomically
from engine.errors import LplrError

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class Start:
    """Where a run begins: epoch 0 with fresh θ_0, or a checkpoint's state."""

    epoch: int = 0
    theta0: list[torch.Tensor] | None = None
    optimiser: dict | None = None
    first_loss: float = float("nan")
    rng: torch.Tensor | None = None
    order: torch.Tensor | None = None  # the SGD data-order generator's state
    probes: list = field(default_factory=list)  # each probe's own state (a warm-start vector...)
    model: dict = field(default_factory=dict)


def save_checkpoint(run_dir: str | Path, state: dict) -> Path:
    """Atomically: a kill during the save leaves the previous checkpoint intact."""
    path = Path(run_dir) / CHECKPOINT_NAME
    replace_atomically(path, lambda fh: torch.save(state, fh))
    return path


class CheckpointError(LplrError):
    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: refused as a checkpoint: {problem}")


def first_line(exc: Exception) -> str:
    """An exception as `Type: its first line`, bounded (torch's messages run to pages)."""
    why = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {why}" if why else type(exc).__name__


def tensor_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(t, torch.Tensor) for t in value)


def byte_state(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1


# key -> (check, what is allowed)
SCHEMA = {
    "epoch": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "model": (lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items()), "a state dict of tensors"),
    "optimiser": (lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict) and isinstance(v.get("param_groups"), list), "an optimiser state dict"),
    "theta0": (tensor_list, "a list of tensors"),
    "first_loss": (lambda v: isinstance(v, float), "a float"),
    "rng": (byte_state, "a uint8 generator state"),
    "order": (lambda v: v is None or byte_state(v), "a uint8 generator state"),
    "probes": (lambda v: isinstance(v, list) and all(isinstance(s, dict) for s in v), "a list of tables"),
}


def load_checkpoint(run_dir: str | Path) -> Start:
    path = Path(run_dir) / CHECKPOINT_NAME
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except pickle.UnpicklingError:
        raise CheckpointError(path, "it is not a plain checkpoint of tensors and numbers (damaged, or holding objects that could run code when loaded)") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(path, f"it cannot be read ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a table")
    for key, (check, allowed) in SCHEMA.items():
        if key not in state and key in ("order", "probes"):  # older checkpoints had neither
            continue
        if key not in state:
            raise CheckpointError(path, f"{key} is missing")
        if not check(state[key]):
            raise CheckpointError(path, f"{key} must be {allowed}")
    return Start(
        epoch=state["epoch"],
        theta0=state["theta0"],
        optimiser=state["optimiser"],
        first_loss=state["first_loss"],
        rng=state["rng"],
        order=state.get("order"),
        probes=state.get("probes", []),
        model=state["model"],
    )


def check_belongs(start: Start, model: torch.nn.Module, epochs: int, path: Path) -> None:
    """The checkpoint belongs to this model and plan: the same tensors, an epoch inside the run."""
    own = model.state_dict()
    if own.keys() != start.model.keys():
        raise CheckpointError(path, "its model tensors are not this run's model")
    for name, tensor in own.items():
        if start.model[name].shape != tensor.shape or start.model[name].dtype != tensor.dtype:
            raise CheckpointError(path, f"model tensor {name} has shape {tuple(start.model[name].shape)}, the run's model {tuple(tensor.shape)}")
    shapes = [tuple(p.shape) for p in model.parameters()]
    if [tuple(t.shape) for t in start.theta0] != shapes:
        raise CheckpointError(path, "theta0 does not have the model's parameter shapes")
    if start.epoch > epochs:
        raise CheckpointError(path, f"epoch = {start.epoch} is past the run's train.epochs = {epochs}")
    for state in start.probes:
        vector = state.get("vector")
        if vector is not None and (not tensor_list(vector) or [tuple(t.shape) for t in vector] != shapes):
            raise CheckpointError(path, "a probe's vector does not have the model's parameter shapes")
    try:  # what the run will restore, tried first on throwaway objects
        for generator_state in (start.rng, start.order):
            if generator_state is not None:
                torch.Generator().set_state(generator_state)
        scratch = [torch.zeros_like(p) for p in model.parameters()]
        torch.optim.SGD(scratch, lr=1.0, momentum=0.5).load_state_dict(start.optimiser)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CheckpointError(path, f"its generator or optimiser state cannot be restored ({first_line(exc)})") from None

"""Checkpoints: everything a run needs to continue bit for bit (θ, θ_0, optimiser, RNG)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.atomic import replace_atomically

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
    replace_atomically(path, lambda tmp: torch.save(state, tmp), ".checkpoint-")
    return path


def load_checkpoint(run_dir: str | Path) -> Start:
    state = torch.load(Path(run_dir) / CHECKPOINT_NAME, map_location="cpu", weights_only=False)
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

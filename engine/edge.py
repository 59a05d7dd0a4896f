"""Where the local regime ends: a plan's runs on a map, the width against the step measured
against each run's own edge at initialisation, η·β₀ (β₀ = λ_max(∇²L) at θ_0).

Each cell is one run: whether it stayed in the local regime (its local-regime verdicts:
stays_lazy, drift_contained, no_loss_spike), its kernel change, λ_min's change, its decay
model, and the largest η·β it reached along the run. The advisor's prediction is its class at
initialisation (η·β₀ ≤ 1 inside the theorem, < 2 stable, ≥ 2 unstable); the map says how many
runs of each class stayed, and places each run by its largest η·β too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.analysis import INSIDE, OUTSIDE, UNSTABLE, step_class
from engine.judge import width_of
from engine.verdicts import LOCAL, left_local_regime

NAN = float("nan")
CLASSES = (INSIDE, OUTSIDE, UNSTABLE)


@dataclass(frozen=True)
class Cell:
    label: str
    width: int
    scale: float  # η·β₀: asked for (optim.lr_scale), else measured (eta_beta_0)
    state: str
    left: tuple[str, ...] | None  # the local-regime verdicts it failed; None: not finished, not judged
    kernel_change: float = NAN  # max ‖K_t − K_0‖₂/‖K_0‖₂
    lambda_change: float = NAN  # λ_min's largest move against λ_0, in %, signed (+ rose, − fell)
    decay: str = ""
    eta_beta_max: float = NAN
    asked: bool = False  # the step was set against β₀ (optim.lr_scale), not measured afterwards

    @property
    def predicted(self) -> str:
        """The advisor's class: η·β₀ against 1 and 2."""
        return step_class(self.scale)

    @property
    def reached(self) -> str:
        """The class of the largest η·β measured along the run."""
        return step_class(self.eta_beta_max)


def judged(verdicts: list[dict], state: str) -> bool:
    """A finished run with every local-regime verdict (a run without probes has none of them)."""
    return state == "finished" and set(LOCAL) <= {v.get("name") for v in verdicts}


def number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else NAN


def cell_of(label: str, spec: dict, summary: dict, verdicts: list[dict], state: str) -> Cell:
    optim = spec.get("optim", {}) if isinstance(spec.get("optim"), dict) else {}
    scale = number(optim.get("lr_scale", 0.0))
    asked = scale > 0
    if not asked:
        scale = float(f"{number(summary.get('eta_beta_0')):.2g}")  # a plain step: placed by its measured η·β₀
    rise, fall = number(summary.get("lambda_rise_pct")), number(summary.get("lambda_fall_pct"))
    change = -fall if fall > rise else rise  # the larger move, with its sign
    return Cell(
        label, width_of(spec), scale, state, tuple(left_local_regime(verdicts)) if judged(verdicts, state) else None,
        number(summary.get("kernel_change_rel_max")), change, str(summary.get("decay_model", "")), number(summary.get("eta_beta_max")),
        asked,
    )


@dataclass
class EdgeMap:
    cells: list[Cell]
    widths: list[int] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.widths = sorted({c.width for c in self.cells})
        self.scales = sorted({c.scale for c in self.cells if math.isfinite(c.scale)})

    def at(self, width: int, scale: float) -> list[Cell]:
        return [c for c in self.cells if c.width == width and c.scale == scale]

    @property
    def is_a_map(self) -> bool:
        """A sweep of steps set against β₀ (optim.lr_scale) over two widths or more: a grid
        worth drawing."""
        return len(self.widths) > 1 and len(self.scales) > 1 and all(c.asked for c in self.cells)

    def tally(self, by: str = "predicted") -> dict[str, tuple[int, int]]:
        """Per step-size class (the advisor's at θ_0, or `reached` along the run): (runs that
        stayed local, finished runs judged)."""
        out = {}
        for name in CLASSES:
            judged = [c for c in self.cells if getattr(c, by) == name and c.left is not None]
            out[name] = (sum(not c.left for c in judged), len(judged))
        return out


def edge_map(entries: list[tuple[str, dict, dict, list[dict], str]]) -> EdgeMap:
    """entries: (label, spec, summary, verdicts, state) per run; the runs whose step was set
    against β₀ (optim.lr_scale) make the map, the others are left out of it."""
    cells = [cell_of(*entry) for entry in entries]
    return EdgeMap([c for c in cells if c.asked] if any(c.asked for c in cells) else cells)

"""A run's summary and verdicts, derived from its trajectory and spec with today's analysis.

The runner calls this when a run ends; `lplr-tui summary` and the app call it on records read
back, so an old record gets today's verdicts. A record needs only [spec], [status] and
[trajectory]; spec keys this version does not know are ignored, missing ones take defaults.
"""

from __future__ import annotations

import math

from engine import analysis
from engine.config import AnalysisSpec, GuideSpec, lenient
from engine.events import FINISHED
from engine.kinds import kind_in
from engine.trajectory import Trajectory
from engine.verdicts import plan_verdicts, run_verdicts


def guide_of(spec: dict) -> GuideSpec:
    return lenient(GuideSpec, spec.get("guide", {}))


def judge(trajectory: Trajectory, spec: dict, params: int, state: str) -> tuple[dict, list[dict]]:
    """(summary, verdicts as dicts) of one run. Only a finished run's final loss is the
    terminal-loss proxy; otherwise it is provisional."""
    window = lenient(AnalysisSpec, spec.get("analysis", {}))
    guide = guide_of(spec)
    optim, data, train = spec.get("optim", {}), spec.get("data", {}), spec.get("train", {})
    summary = analysis.summarize(
        trajectory, params, window.stable_from, window.stable_to, final=state == FINISHED,
        n_train=int(data.get("n_train", 0) or 0),
        lr=float(optim.get("lr", math.nan)),
        schedule=str(optim.get("schedule", "constant")),
        total=int(train.get("epochs", 0) or 0),
        gd=optim.get("kind", "gd") == "gd" and not optim.get("momentum", 0.0),  # the descent lemma's plain step
        decay_margin=guide.decay_margin,
        ntk_subset=int(spec.get("probes", {}).get("ntk_subset", 0) or 0),
    )
    return summary, [v.to_dict() for v in run_verdicts(summary, guide)]


def width_of(spec: dict) -> int:
    kind = kind_in(spec.get("model"))
    return kind.width(spec["model"]) if kind is not None else 0


def plan_entry(label: str, spec: dict, summary: dict, verdicts: list[dict]) -> dict:
    """What the cross-run verdicts need of one finished run."""
    seeds = spec.get("train", {}).get("seeds", [0]) or [0]
    return {"label": label, "width": width_of(spec), "lr": float(spec.get("optim", {}).get("lr", math.nan)),
            "seed": seeds[0], "summary": summary, "verdicts": verdicts}


def judge_plan(entries: list[dict], spec: dict) -> list[dict]:
    """The cross-run verdicts of a plan's finished runs, with the plan's thresholds; none for
    fewer than two runs (a single run's verdicts say it all)."""
    return [v.to_dict() for v in plan_verdicts(entries, guide_of(spec))] if len(entries) > 1 else []

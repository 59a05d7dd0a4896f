"""Did the theory's predictions hold? Pure functions on trajectories and summaries.

Per run (Theorems 5.4 / 5.7, on the stable regime):
  ntk_positive     λ_min > 0 at every probe
  pl_envelope      the PL ratio's lower envelope on the stable regime is positive
  geometric_decay  log(L − L*) is linear in the epoch there: R² of the fit >= a threshold
  drift_contained  the drift is bounded and saturates: its last stretch grew by at most a
                   fraction of its total, and it never jumped several-fold between probes
Across a plan: λ_0 rises with width; which runs left the local regime; whether a run at a
reduced step restored it; for seeds (the CNN), the envelope is positive on every one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from engine import analysis
from engine.config import GuideSpec
from engine.trajectory import Trajectory


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    measured: float
    threshold: float
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def r_squared(epochs: np.ndarray, subopt: np.ndarray) -> float:
    ok = np.isfinite(subopt) & (subopt > 0)
    if ok.sum() < 3:
        return analysis.NAN
    x, y = np.asarray(epochs, float)[ok], np.log(subopt[ok])
    fit = np.polyval(np.polyfit(x, y, 1), x)
    total = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - fit) ** 2).sum() / total) if total > 0 else 1.0


def biggest_jump(drift: np.ndarray) -> float:
    """The largest ratio between consecutive drift values (ignoring the first, from 0)."""
    d = drift[np.isfinite(drift)]
    if d.size < 3:
        return analysis.NAN
    later, earlier = d[2:], d[1:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(earlier > 0, later / earlier, np.nan)
    return float(np.nanmax(ratios)) if np.isfinite(ratios).any() else analysis.NAN


def late_growth(epochs: np.ndarray, drift: np.ndarray) -> float:
    """Drift growth over the last 20% of the probes' epochs, as a fraction of its total."""
    ok = np.isfinite(drift)
    if ok.sum() < 3 or drift[ok][-1] <= 0:
        return analysis.NAN
    e, d = epochs[ok], drift[ok]
    cut = e[0] + 0.8 * (e[-1] - e[0])
    return float((d[-1] - np.interp(cut, e, d)) / d[-1])


def run_verdicts(traj: Trajectory, summary: dict, final: bool, t: GuideSpec = GuideSpec()) -> list[Verdict]:
    """The thresholds are the preset's [guide] fields."""
    a = traj.arrays()
    lam = a["ntk_lambda_min"][np.isfinite(a["ntk_lambda_min"])]
    lam_min = float(lam.min()) if lam.size else analysis.NAN
    l_star = analysis.terminal_loss(a["loss"], final)
    window = (summary.get("stable_from", 0), summary.get("stable_to", 0))
    stable = analysis.in_window(a["epoch"], window)
    r2 = r_squared(a["epoch"][stable], analysis.suboptimality(a["loss"], l_star)[stable])
    jump, late = biggest_jump(a["drift"]), late_growth(a["probe_epoch"], a["drift"])
    envelope = summary.get("pl_min", analysis.NAN)
    return [
        Verdict("ntk_positive", bool(lam.size and lam_min > 0), lam_min, 0.0,
                f"λ_min > 0 at every probe: smallest {lam_min:.4g}"),
        Verdict("pl_envelope", bool(envelope > 0), envelope, 0.0,
                f"PL lower envelope on the stable regime: {envelope:.4g} (> 0 needed)"),
        Verdict("geometric_decay", bool(r2 >= t.r2_min), r2, t.r2_min,
                f"geometric decay on the stable regime: R² = {r2:.3f} of log(L − L*) against the epoch (≥ {t.r2_min:g})"),
        Verdict("drift_contained", bool(jump <= t.drift_jump and late <= t.saturation), jump, t.drift_jump,
                f"drift bounded and saturating: largest jump between probes ×{jump:.2f} (≤ ×{t.drift_jump:g}), "
                f"last 20% added {100 * late:.0f}% of it (≤ {100 * t.saturation:.0f}%)"),
    ]


def left_local_regime(summary: dict, verdicts: list[dict], t: GuideSpec = GuideSpec()) -> bool:
    """A run left the local regime when λ_min fell by more than `lambda_drop` or its drift
    was not contained."""
    fell = summary.get("ntk_drift_pct", analysis.NAN) > 100 * t.lambda_drop
    contained = next((v["passed"] for v in verdicts if v["name"] == "drift_contained"), True)
    return bool(fell or not contained)


def plan_verdicts(runs: list[dict], t: GuideSpec = GuideSpec()) -> list[Verdict]:
    """runs: dicts with label, width, lr, seed, summary, verdicts (dicts), in plan order."""
    out: list[Verdict] = []
    if not runs:
        return out
    left = [r for r in runs if left_local_regime(r["summary"], r["verdicts"], t)]
    widths = sorted({r["width"] for r in runs})
    if len(widths) > 1:
        lam0 = [next(r["summary"]["lambda_0"] for r in runs if r["width"] == w) for w in widths]
        rises = all(b > a for a, b in zip(lam0, lam0[1:]))
        out.append(Verdict("lambda0_rises_with_width", rises, float(len(widths)), 0.0,
                           "λ_0 rises with width: " + ", ".join(f"m={w}: {v:.4g}" for w, v in zip(widths, lam0))))
    out.append(Verdict("left_local_regime", not left, float(len(left)), 0.0,
                       "runs that left the local regime: " + (", ".join(r["label"] for r in left) or "none")))
    for run in left:
        fixes = [r for r in runs if r["width"] == run["width"] and r["lr"] < run["lr"] and r["seed"] == run["seed"]]
        for fix in fixes:
            restored = not left_local_regime(fix["summary"], fix["verdicts"], t)
            out.append(Verdict("reduced_step_restores", restored, fix["lr"], run["lr"],
                               f"{fix['label']} {'restores' if restored else 'does not restore'} the local regime that {run['label']} left"))
    seeds = {r["seed"] for r in runs}
    if len(seeds) > 1 and len(widths) == 1:
        envelopes = [r["summary"].get("pl_min", analysis.NAN) for r in runs]
        positive = all(e > 0 for e in envelopes)
        out.append(Verdict("envelope_positive_every_seed", positive, float(np.nanmin(envelopes)), 0.0,
                           "PL envelope positive on every seed: " + ", ".join(f"{e:.4g}" for e in envelopes)))
    return out

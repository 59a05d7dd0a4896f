"""Pure functions on trajectories (DESIGN.md §3): L* proxy, subopt, PL ratio, stable regime,
lower envelope, contraction fit, NTK drift, and the summary row of a run.

Arrays in, numbers out; NaN marks what is undefined (never an exception).
"""

from __future__ import annotations

import math

import numpy as np

from engine.trajectory import Trajectory

NAN = float("nan")


def terminal_loss(loss: np.ndarray, final: bool = True) -> float:
    """L*: the run's last loss when it ended normally; else the running minimum (provisional)."""
    finite = loss[np.isfinite(loss)]
    if finite.size == 0:
        return NAN
    return float(finite[-1]) if final and np.isfinite(loss[-1]) else float(finite.min())


def suboptimality(loss: np.ndarray, l_star: float) -> np.ndarray:
    return np.asarray(loss, dtype=float) - l_star


def pl_ratio(grad_sq: np.ndarray, loss: np.ndarray, l_star: float) -> np.ndarray:
    """‖∇L‖² / (2 (L − L*)), NaN where L − L* ≤ 0."""
    sub = suboptimality(loss, l_star)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(grad_sq, dtype=float) / (2.0 * sub)
    ratio[~(sub > 0)] = NAN
    return ratio


def stable_regime(last_epoch: int, start: float, end: float) -> tuple[int, int]:
    """The epoch window [from, to] where summary statistics are taken."""
    return int(round(start * last_epoch)), int(round(end * last_epoch))


def in_window(epochs: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    return (epochs >= window[0]) & (epochs <= window[1])


def lower_envelope(values: np.ndarray) -> np.ndarray:
    """The running minimum, NaNs skipped (NaN until the first defined value)."""
    return np.fmin.accumulate(np.asarray(values, dtype=float))


def contraction(epochs: np.ndarray, subopt: np.ndarray) -> float:
    """ρ from a least-squares fit log(L − L*) ≈ a + t·log ρ (per epoch); NaN with < 2 points."""
    ok = np.isfinite(subopt) & (subopt > 0)
    if ok.sum() < 2:
        return NAN
    slope = np.polyfit(np.asarray(epochs, dtype=float)[ok], np.log(subopt[ok]), 1)[0]
    return float(math.exp(slope))


def ntk_drift_pct(lambda_0: float, lambda_t: float) -> float:
    if not (math.isfinite(lambda_0) and lambda_0 != 0):
        return NAN
    return 100.0 * (lambda_0 - lambda_t) / lambda_0


def nan_stat(fn, values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(fn(values)) if values.size else NAN


def first(values) -> float:
    return float(values[0]) if len(values) else NAN


def last(values) -> float:
    return float(values[-1]) if len(values) else NAN


def summarize(
    traj: Trajectory, params: int, stable_from: float, stable_to: float, final: bool,
    n_train: int = 0, lr: float = NAN,
) -> dict:
    """The run's summary row (DESIGN.md §5 names). `final`: L* is the last loss, not provisional.
    `n_train` and `lr` (the base step size) feed the theory columns."""
    a = traj.arrays()
    l_star = terminal_loss(a["loss"], final)
    window = stable_regime(int(a["epoch"][-1]) if a["epoch"].size else 0, stable_from, stable_to)
    stable = in_window(a["epoch"], window)
    pl = pl_ratio(a["grad_sq"], a["loss"], l_star)[stable]
    lambda_0, lambda_t = first(traj.ntk_lambda_min), last(traj.ntk_lambda_min)
    return {
        "params": int(params),
        "lambda_0": lambda_0,
        "lambda_T": lambda_t,
        "ntk_drift_pct": ntk_drift_pct(lambda_0, lambda_t),
        "drift_final": last(traj.drift),
        "loss_final": last(traj.loss),
        "l_star": l_star,
        "l_star_provisional": not final,
        "pl_min": nan_stat(np.min, pl),
        "pl_median": nan_stat(np.median, pl),
        "contraction": contraction(a["epoch"][stable], suboptimality(a["loss"], l_star)[stable]),
        "stable_from": window[0],
        "stable_to": window[1],
        **theory_summary(a, l_star, n_train, lr),
    }


def pl_bound(a: dict[str, np.ndarray], l_star: float, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """At the theory epochs of the trajectory's arrays `a`: (the PL ratio, its lower bound
    (λ_min(K_N)/N) · L/(L − L*))."""
    index = {int(e): i for i, e in enumerate(a["epoch"])}
    rows = [index.get(int(e), -1) for e in a["theory_epoch"]]
    known = np.array([r >= 0 for r in rows], dtype=bool)
    take = np.array([max(r, 0) for r in rows], dtype=int)
    loss = np.where(known, a["loss"][take] if a["loss"].size else NAN, NAN)
    grad_sq = np.where(known, a["grad_sq"][take] if a["grad_sq"].size else NAN, NAN)
    ratio = pl_ratio(grad_sq, loss, l_star)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = a["ntk_full_lambda_min"] / max(n_train, 1) * loss / (loss - l_star)
    bound[~np.isfinite(ratio)] = NAN
    return ratio, bound


def theory_summary(a: dict[str, np.ndarray], l_star: float, n_train: int, lr: float) -> dict:
    """The hypotheses of Theorems 5.4 / 5.7 as numbers (NaN where not measured), from the
    trajectory's arrays `a`."""
    sharpness_max = nan_stat(np.max, a["sharpness"])
    ratio, bound = pl_bound(a, l_star, n_train)
    defined = np.isfinite(ratio) & np.isfinite(bound)
    # rounding slack: the bound follows from an identity, so it can only fail by a bug
    holds = ratio[defined] >= bound[defined] * (1 - 1e-6)
    lipschitz = NAN
    if a["ntk_change"].size == a["drift"].size:  # a trajectory from before ntk_change has none
        with np.errstate(divide="ignore", invalid="ignore"):
            lipschitz = nan_stat(np.max, np.where(a["drift"] > 0, a["ntk_change"] / a["drift"], NAN))
    radius = nan_stat(np.max, a["drift"])
    margin = first(a["ntk_lambda_min"]) - lipschitz * radius
    return {
        "sharpness_max": sharpness_max,
        "eos_ratio_max": lr * sharpness_max / 2.0,
        "pl_bound_holds_frac": float(holds.mean()) if defined.any() else NAN,
        "lipschitz_K": lipschitz,
        "drift_max": radius,
        "compat_margin": margin,
        "pl_mu": margin / n_train if (n_train and margin > 0) else NAN,
    }


def live_series(traj: Trajectory, final: bool, n_train: int = 0, lr: float = NAN) -> dict:
    """What a dashboard draws for one run: subopt and PL ratio every epoch against the L*
    proxy (provisional unless `final`), drift and λ_min at the probe epochs, the edge-of-
    stability ratio η·λ_max(∇²L)/2 and the PL ratio with its lower bound at the theory epochs."""
    a = traj.arrays()
    l_star = terminal_loss(a["loss"], final)
    ratio_at_theory, bound = pl_bound(a, l_star, n_train)
    return {
        "epoch": a["epoch"],
        "loss": a["loss"],
        "subopt": suboptimality(a["loss"], l_star),
        "pl_ratio": pl_ratio(a["grad_sq"], a["loss"], l_star),
        "l_star": l_star,
        "l_star_provisional": not final,
        "probe_epoch": a["probe_epoch"],
        "drift": a["drift"],
        "ntk_lambda_min": a["ntk_lambda_min"],
        "theory_epoch": a["theory_epoch"],
        "eos_ratio": lr * a["sharpness"] / 2.0,
        "pl_ratio_theory": ratio_at_theory,
        "pl_bound": bound,
    }


MEAN_KEYS = ("lambda_0", "lambda_T", "ntk_drift_pct", "drift_final", "loss_final", "l_star", "pl_min", "pl_median", "contraction")


def mean_summary(summaries: list[dict]) -> dict:
    """The mean row of a table of runs (Table 2): the mean of each statistic over the runs
    where it is defined; params when all runs share them."""
    out = {}
    for key in MEAN_KEYS:
        values = np.array([s.get(key, NAN) for s in summaries], dtype=float)
        out[key] = nan_stat(np.mean, values)
    params = {s.get("params") for s in summaries}
    if len(params) == 1:
        out["params"] = params.pop()
    return out

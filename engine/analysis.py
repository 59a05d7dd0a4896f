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


def first(values: list[float]) -> float:
    return float(values[0]) if values else NAN


def last(values: list[float]) -> float:
    return float(values[-1]) if values else NAN


def summarize(traj: Trajectory, params: int, stable_from: float, stable_to: float, final: bool) -> dict:
    """The run's summary row (DESIGN.md §5 names). `final`: L* is the last loss, not provisional."""
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
    }


def live_series(traj: Trajectory, final: bool) -> dict:
    """What a dashboard draws for one run: subopt and PL ratio every epoch against the L*
    proxy (provisional unless `final`), drift and λ_min at the probe epochs."""
    a = traj.arrays()
    l_star = terminal_loss(a["loss"], final)
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

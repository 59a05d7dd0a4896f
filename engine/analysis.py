"""Pure functions on trajectories (docs/diagnostics.md defines every quantity): the three
views of L*, the PL ratio and its envelope, the decay model, the PL rate and sufficient
decrease, the step-size class, the local-regime measures, and the summary row of a run.

Arrays in, numbers out; NaN marks what is undefined (never an exception). A summary is
always derived from a trajectory, never stored as the only copy of a fact.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import least_squares

from engine.trajectory import Trajectory

NAN = float("nan")


# ---------------------------------------------------------------- L*, PL ratio, windows


def terminal_loss(loss: np.ndarray, final: bool = True) -> float:
    """The paper's terminal-loss proxy for L*: the run's last loss when it ended normally;
    else the running minimum (provisional)."""
    finite = loss[np.isfinite(loss)]
    if finite.size == 0:
        return NAN
    return float(finite[-1]) if final and np.isfinite(loss[-1]) else float(finite.min())


def suboptimality(loss: np.ndarray, l_star: float) -> np.ndarray:
    return np.asarray(loss, dtype=float) - l_star


def pl_ratio(grad_sq: np.ndarray, loss: np.ndarray, l_star: float) -> np.ndarray:
    """‖∇L‖² / (2 (L − L*)), NaN where L − L* ≤ 0. With L* = 0 this is pl_ratio₀."""
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


def contraction_proxy(epochs: np.ndarray, subopt: np.ndarray) -> tuple[float, float]:
    """The paper's view: (ρ, R²) of a least-squares line log(L − L*) ≈ a + t·log ρ with the
    terminal-loss proxy for L*. It bends any decaying tail into a line, so it decides nothing."""
    ok = np.isfinite(subopt) & (subopt > 0)
    if ok.sum() < 3:
        return NAN, NAN
    x, y = np.asarray(epochs, dtype=float)[ok], np.log(subopt[ok])
    slope, intercept = np.polyfit(x, y, 1)
    total = ((y - y.mean()) ** 2).sum()
    r2 = float(1 - ((y - (slope * x + intercept)) ** 2).sum() / total) if total > 0 else 1.0
    return float(math.exp(slope)), r2


def ntk_drift_pct(lambda_0: float, lambda_t: float) -> float:
    """100·(λ_0 − λ_T)/λ_0: positive when λ_min fell, negative when it rose."""
    if not (math.isfinite(lambda_0) and lambda_0 != 0):
        return NAN
    return 100.0 * (lambda_0 - lambda_t) / lambda_0


def nan_stat(fn, values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(fn(values)) if values.size else NAN


def first(values) -> float:
    return float(values[0]) if len(values) else NAN


def last(values) -> float:
    return float(values[-1]) if len(values) else NAN


def first_epoch(epochs: np.ndarray, where: np.ndarray) -> float:
    """The first epoch where `where` holds, NaN when it never does."""
    hits = np.flatnonzero(where)
    return float(epochs[hits[0]]) if hits.size else NAN


# ---------------------------------------------------------------- step sizes


def step_sizes(epochs: np.ndarray, lr: float, schedule: str = "constant", total: int = 0) -> np.ndarray:
    """η_t at each epoch: constant, or cosine annealing lr·(1 + cos(π·t/total))/2."""
    epochs = np.asarray(epochs, dtype=float)
    if schedule == "cosine" and total > 0:
        return lr * 0.5 * (1.0 + np.cos(np.pi * epochs / total))
    return np.full(epochs.shape, float(lr))


INSIDE, OUTSIDE, UNSTABLE = "inside the theorem", "stable, outside the theorem", "unstable"


def step_class(eta_beta: float) -> str:
    """η·β ≤ 1: the descent lemma's step (Theorem 5.7's hypothesis); 1 < η·β < 2: GD is stable
    on the quadratic model but the theorem does not apply; η·β ≥ 2: above the stability edge."""
    if not math.isfinite(eta_beta):
        return "unknown"
    return INSIDE if eta_beta <= 1.0 else OUTSIDE if eta_beta < 2.0 else UNSTABLE


# ---------------------------------------------------------------- the decay model

GEOMETRIC, POWER_LAW, UNDECIDED = "geometric", "power-law", "undecided"
MAX_POWER = 10.0  # a power law steeper than t^-10 over its own time scale is a geometric decay
MIN_DECAY_POINTS = 8
DECAY_POINTS = 400  # the fits take at most this many epochs, evenly spaced over the window


def bic(residuals: np.ndarray, params: int) -> float:
    """The Bayesian information criterion of a least-squares fit on n points."""
    n = residuals.size
    rss = max(float(np.sum(residuals**2)), n * 1e-300)
    return n * math.log(rss / n) + params * math.log(n)


def inside(bound: np.ndarray, direction: int) -> np.ndarray:
    """A bound moved a hair into the feasible set (least_squares wants a strictly feasible
    start); infinite bounds stay as they are."""
    nudge = np.where(np.isfinite(bound), 1e-9 * (np.abs(np.nan_to_num(bound, posinf=0.0, neginf=0.0)) + 1e-12), 0.0)
    return bound + direction * nudge


def _fit(residual, starts: list[np.ndarray], low: np.ndarray, high: np.ndarray):
    """The best of several bounded least-squares fits (trust-region reflective)."""
    best = None
    for x0 in starts:
        x0 = np.clip(x0, inside(low, +1), inside(high, -1))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                fit = least_squares(residual, x0, bounds=(low, high), method="trf", x_scale="jac", max_nfev=200)
            except (ValueError, FloatingPointError):
                continue
        if np.all(np.isfinite(fit.fun)) and (best is None or fit.cost < best.cost):
            best = fit
    return best


def fit_geometric(s: np.ndarray, y: np.ndarray, l_star_free: bool) -> dict | None:
    """log L ≈ log(L* + C·ρ^s) with s the epochs since the window's start; L* = 0 or free in
    [0, min L)."""
    floor = float(np.exp(y.min()))
    slope, intercept = np.polyfit(s, y, 1)

    def model(p):
        l_star, log_c, log_rho = (p if l_star_free else (0.0, *p))
        return l_star + np.exp(log_c + log_rho * s)

    if l_star_free:
        starts = []
        for frac in (0.0, 0.5, 0.9, 0.99):
            sub = np.maximum(np.exp(y) - frac * floor, 1e-300)
            b, a = np.polyfit(s, np.log(sub), 1)
            starts.append(np.array([frac * floor, a, min(b, -1e-12)]))
        low, high = np.array([0.0, -np.inf, -np.inf]), np.array([floor * (1 - 1e-9), np.inf, 0.0])
    else:
        starts, low, high = [np.array([intercept, min(slope, -1e-12)])], np.array([-np.inf, -np.inf]), np.array([np.inf, 0.0])
    fit = _fit(lambda p: np.log(np.maximum(model(p), 1e-300)) - y, starts, low, high)
    if fit is None:
        return None
    l_star = float(fit.x[0]) if l_star_free else 0.0
    return {"rho": float(math.exp(fit.x[-1])), "l_star": l_star, "bic": bic(fit.fun, len(fit.x))}


def fit_power(s: np.ndarray, y: np.ndarray, l_star_free: bool) -> dict | None:
    """log L ≈ log(L* + C·(s + u)^(−p)) with s the epochs since the window's start, u > 0 the
    offset (t₀ = u − start in absolute epochs) and 0 < p ≤ MAX_POWER. Fitted as
    L* + exp(a − p·log(1 + k·s/p)), with a the log-level at the window's start and k = p/u its
    initial decay rate: as p grows this tends to a geometric decay, and the bound on p keeps
    the two families apart."""
    floor = float(np.exp(y.min()))
    span = max(float(s[-1]), 1.0)

    def model(q):
        l_star, a, log_k, power = (q if l_star_free else (0.0, *q))
        return l_star + np.exp(a - power * np.log1p(np.exp(log_k) * s / power))

    starts = []
    for u in (1.0, span / 10 + 1.0, span):
        b, c = np.polyfit(np.log(s + u), y, 1)
        power = float(np.clip(-b, 1e-2, MAX_POWER))
        guess = [c + b * math.log(u), math.log(power / u), power]
        starts += [np.array([0.0, *guess]), np.array([0.5 * floor, *guess])] if l_star_free else [np.array(guess)]
    core_low, core_high = [-np.inf, -np.inf, 1e-3], [np.inf, np.inf, MAX_POWER]
    low = np.array(([0.0] if l_star_free else []) + core_low)
    high = np.array(([floor * (1 - 1e-9)] if l_star_free else []) + core_high)
    fit = _fit(lambda q: np.log(np.maximum(model(q), 1e-300)) - y, starts, low, high)
    if fit is None:
        return None
    l_star = float(fit.x[0]) if l_star_free else 0.0
    power, rate = float(fit.x[-1]), float(math.exp(fit.x[-2]))
    return {"p": power, "u": power / rate, "l_star": l_star, "bic": bic(fit.fun, len(fit.x))}


def decay_model(epochs: np.ndarray, loss: np.ndarray, margin: float) -> dict:
    """Geometric L* + C·ρ^t against power law L* + C·(t + t₀)^(−p) on the given epochs (the
    stable regime), each with L* free in [0, min L) and with L* = 0, fitted in log L (the loss
    spans orders of magnitude; errors are relative) on at most DECAY_POINTS epochs. The better variant of each family is
    compared by BIC: "geometric" when its BIC is lower by at least `margin`, "power-law" when
    the power law's is, else "undecided"."""
    empty = {"decay_model": UNDECIDED, "contraction": NAN, "decay_p": NAN, "decay_t0": NAN, "decay_l_star": NAN,
             "bic_geometric": NAN, "bic_power": NAN, "decay_delta_bic": NAN}
    epochs, loss = np.asarray(epochs, dtype=float), np.asarray(loss, dtype=float)
    ok = np.isfinite(loss) & (loss > 0) & np.isfinite(epochs)
    if ok.sum() < MIN_DECAY_POINTS:
        return empty
    t, y = epochs[ok], np.log(loss[ok])
    if t.size > DECAY_POINTS:  # neighbouring epochs carry little new information; fits stay fast
        keep = np.unique(np.linspace(0, t.size - 1, DECAY_POINTS).round().astype(int))
        t, y = t[keep], y[keep]
    s = t - t[0]
    geo = [f for f in (fit_geometric(s, y, free) for free in (True, False)) if f]
    power = [f for f in (fit_power(s, y, free) for free in (True, False)) if f]
    if not geo or not power:
        return empty
    g, p = min(geo, key=lambda f: f["bic"]), min(power, key=lambda f: f["bic"])
    delta = p["bic"] - g["bic"]
    model = GEOMETRIC if delta >= margin else POWER_LAW if delta <= -margin else UNDECIDED
    return {
        "decay_model": model,
        "contraction": g["rho"],
        "decay_p": p["p"],
        "decay_t0": p["u"] - t[0],
        "decay_l_star": p["l_star"] if model == POWER_LAW else g["l_star"],
        "bic_geometric": g["bic"],
        "bic_power": p["bic"],
        "decay_delta_bic": delta,
    }


# ---------------------------------------------------------------- PL against the infimum


def consecutive_steps(epochs: np.ndarray) -> np.ndarray:
    """Indices i where epochs[i + 1] == epochs[i] + 1 (one step of the optimiser apart)."""
    e = np.asarray(epochs, dtype=float)
    return np.flatnonzero(np.diff(e) == 1) if e.size > 1 else np.array([], dtype=int)


DECREASE_SLACK = 1e-6  # relative: float32 rounding of the loss


def sufficient_decrease(loss: np.ndarray, grad_sq: np.ndarray, eta: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Per step t in `steps`: L_{t+1} ≤ L_t − (η_t/2)‖∇L_t‖² (up to DECREASE_SLACK·L_t), the
    descent step of Theorem 5.7's proof. It holds for every step when η ≤ 1/β."""
    now, after = loss[steps], loss[steps + 1]
    return after <= now - 0.5 * eta[steps] * grad_sq[steps] + DECREASE_SLACK * np.abs(now)


def observed_rate(epochs: np.ndarray, loss: np.ndarray) -> float:
    """The loss's mean contraction per epoch against L* = 0 between the window's ends:
    (L_end / L_start)^(1 / (t_end − t_start))."""
    ok = np.isfinite(loss) & (loss > 0)
    if ok.sum() < 2:
        return NAN
    e, l = epochs[ok], loss[ok]
    if e[-1] <= e[0]:
        return NAN
    return float(math.exp((math.log(l[-1]) - math.log(l[0])) / (e[-1] - e[0])))


def pl_rate(mu_hat: float, eta: float) -> float:
    """ρ_PL = 1 − η·μ̂: with η ≤ 1/β the descent lemma gives L_{t+1} ≤ L_t − (η/2)‖∇L_t‖²
    and PL (‖∇L‖² ≥ 2μ̂·L on the regime) turns it into L_{t+1} ≤ (1 − ημ̂)·L_t."""
    if not (math.isfinite(mu_hat) and math.isfinite(eta)):
        return NAN
    return 1.0 - eta * mu_hat


def explained(rho_pl: float, rho_observed: float) -> float:
    """How much of the observed speed the PL bound explains: log ρ_PL / log ρ_observed
    (1: all of it; 0.1: the bound accounts for a tenth of the observed decay rate)."""
    if not (0 < rho_pl < 1 and 0 < rho_observed < 1):
        return NAN
    return math.log(rho_pl) / math.log(rho_observed)


# ---------------------------------------------------------------- drift and the loss's path


def drift_speedup(epochs: np.ndarray, drift: np.ndarray) -> float:
    """The drift's fastest speed per epoch, (d_k − d_{k−1})/(e_k − e_{k−1}), as a multiple of
    its speed over the first interval from θ_0 (d_0 = 0). Gradient descent that settles moves
    fastest at the start (≈ 1); a catapult accelerates away from θ_0 (≫ 1)."""
    ok = np.isfinite(drift)
    e, d = np.asarray(epochs, dtype=float)[ok], np.asarray(drift, dtype=float)[ok]
    if d.size < 3:
        return NAN
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.diff(d) / np.diff(e)
    if not (np.isfinite(speed[0]) and speed[0] > 0):
        return NAN
    return float(np.nanmax(speed) / speed[0])


def at_epochs(a: dict[str, np.ndarray], name: str, epochs: np.ndarray) -> np.ndarray:
    """The epoch series `name` (loss, grad_sq) at the given epochs; NaN where not measured."""
    index = {int(e): i for i, e in enumerate(a["epoch"])}
    rows = np.array([index.get(int(e), -1) for e in epochs], dtype=int)
    values = a[name][np.maximum(rows, 0)] if a[name].size else np.full(rows.shape, NAN)
    return np.where(rows >= 0, values, NAN)


def drift_uphill(drift: np.ndarray, loss: np.ndarray) -> float:
    """The share of the drift travelled while the loss rose: Σ max(d_k − d_{k−1}, 0) over the
    probe intervals where L(e_k) > L(e_{k−1}), over the largest drift. Gradient descent moves
    downhill (≈ 0); a catapult travels most of its distance while the loss spikes (≈ 1)."""
    ok = np.isfinite(drift) & np.isfinite(loss)
    d, l = drift[ok], loss[ok]
    if d.size < 2 or not d.max() > 0:
        return NAN
    rose = np.diff(l) > 0
    return float(np.maximum(np.diff(d), 0.0)[rose].sum() / d.max())


def late_growth(epochs: np.ndarray, drift: np.ndarray) -> float:
    """Drift growth over the last 20% of the probes' epochs, as a fraction of its total."""
    ok = np.isfinite(drift)
    if ok.sum() < 3 or drift[ok][-1] <= 0:
        return NAN
    e, d = epochs[ok], drift[ok]
    cut = e[0] + 0.8 * (e[-1] - e[0])
    return float((d[-1] - np.interp(cut, e, d)) / d[-1])


def loss_spike(loss: np.ndarray) -> float:
    """The largest factor by which the loss rose above its running minimum (1: never rose)."""
    ok = np.isfinite(loss) & (loss > 0)
    if ok.sum() < 2:
        return NAN
    l = loss[ok]
    return float(np.max(l / np.minimum.accumulate(l)))


# ---------------------------------------------------------------- the local regime


def local_series(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """At the probe epochs of the trajectory's arrays `a`: the kernel's relative change
    ‖K_t − K_0‖₂/‖K_0‖₂ (`kernel_change_rel`), λ_min's change against λ_0 in per cent
    (`lambda_change_pct`), and the Weyl certificate λ_0 − ‖K_t − K_0‖₂ (`weyl`)."""
    lam, change = a["ntk_lambda_min"], a["ntk_change"]
    lambda_0 = first(lam)
    relative = (100.0 * (lam - lambda_0) / lambda_0) if math.isfinite(lambda_0) and lambda_0 > 0 else np.full(lam.shape, NAN)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel_rel = change / first(a["ntk_lambda_max"])
    return {"kernel_change_rel": kernel_rel, "lambda_change_pct": relative, "weyl": lambda_0 - change}


def local_regime(a: dict[str, np.ndarray]) -> dict:
    """At the probe epochs: the kernel's relative change ‖K_t − K_0‖₂/‖K_0‖₂, λ_min's change
    in both directions, and the Weyl certificate λ_0 − ‖K_t − K_0‖₂ (while positive,
    λ_min(K_t) ≥ λ_0 − ‖K_t − K_0‖₂ > 0 is guaranteed; weyl_negative_epoch is the first probe
    where it is ≤ 0)."""
    series, epochs = local_series(a), a["probe_epoch"]
    relative, weyl = series["lambda_change_pct"], series["weyl"]
    return {
        "kernel_change_rel_max": nan_stat(np.max, series["kernel_change_rel"]),
        "lambda_rise_pct": max(nan_stat(np.max, relative), 0.0) + 0.0 if np.isfinite(relative).any() else NAN,  # + 0.0: no −0
        "lambda_fall_pct": max(-nan_stat(np.min, relative), 0.0) + 0.0 if np.isfinite(relative).any() else NAN,
        "weyl_min": nan_stat(np.min, weyl),
        "weyl_min_epoch": first_epoch(epochs, weyl == np.nanmin(weyl)) if np.isfinite(weyl).any() else NAN,
        "weyl_negative_epoch": first_epoch(epochs, weyl <= 0),  # from here on nothing is guaranteed
    }


# ---------------------------------------------------------------- the summary


def summarize(
    traj: Trajectory, params: int, stable_from: float, stable_to: float, final: bool,
    n_train: int = 0, lr: float = NAN, schedule: str = "constant", total: int = 0,
    gd: bool = True, decay_margin: float = 10.0, ntk_subset: int = 0,
) -> dict:
    """The run's summary row (docs/diagnostics.md names). `final`: the terminal-loss proxy is
    the last loss, not provisional. `lr`, `schedule` and `total` (epochs) give η_t; `gd`:
    full-batch steps, so sufficient decrease and the PL rate are defined."""
    a = traj.arrays()
    epochs, loss, grad_sq = a["epoch"], a["loss"], a["grad_sq"]
    l_star = terminal_loss(loss, final)
    window = stable_regime(int(epochs[-1]) if epochs.size else 0, stable_from, stable_to)
    stable = in_window(epochs, window)
    pl0 = pl_ratio(grad_sq, loss, 0.0)[stable]
    mu_hat = nan_stat(np.min, pl0)
    eta = step_sizes(epochs, lr, schedule, total)
    steps = consecutive_steps(epochs)
    steps = steps[stable[steps] & stable[steps + 1]] if steps.size else steps
    decrease = sufficient_decrease(loss, grad_sq, eta, steps) if gd else np.array([])
    rises = loss[steps + 1] > loss[steps] if steps.size else np.array([])
    rho_pl = pl_rate(mu_hat, lr) if gd and schedule == "constant" else NAN
    rho_obs = observed_rate(epochs[stable], loss[stable])
    rho_proxy, r2_proxy = contraction_proxy(epochs[stable], suboptimality(loss, l_star)[stable])
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
        "pl_min": mu_hat,
        "pl_median": nan_stat(np.median, pl0),
        "pl_min_proxy": nan_stat(np.min, pl_ratio(grad_sq, loss, l_star)[stable]),
        **decay_model(epochs[stable], loss[stable], decay_margin),
        "contraction_proxy": rho_proxy,
        "r2_proxy": r2_proxy,
        "rho_pl": rho_pl,
        "rho_observed": rho_obs,
        "pl_explains": explained(rho_pl, rho_obs),
        "sufficient_decrease_frac": float(decrease.mean()) if decrease.size else NAN,
        "loss_rise_frac": float(rises.mean()) if gd and rises.size else NAN,
        "loss_spike": loss_spike(loss),
        "drift_speedup": drift_speedup(a["probe_epoch"], a["drift"]),
        "drift_uphill": drift_uphill(a["drift"], at_epochs(a, "loss", a["probe_epoch"])),
        "drift_late_growth": late_growth(a["probe_epoch"], a["drift"]),
        **local_regime(a),
        "stable_from": window[0],
        "stable_to": window[1],
        **theory_summary(a, n_train, lr, schedule, total, ntk_subset),
    }


def pl_bound(a: dict[str, np.ndarray], l_star: float, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """At the theory epochs of the trajectory's arrays `a`: (the PL ratio, its lower bound
    (λ_min(K_N)/N) · L/(L − L*))."""
    loss, grad_sq = at_epochs(a, "loss", a["theory_epoch"]), at_epochs(a, "grad_sq", a["theory_epoch"])
    ratio = pl_ratio(grad_sq, loss, l_star)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = a["ntk_full_lambda_min"] / max(n_train, 1) * loss / (loss - l_star)
    bound[~np.isfinite(ratio)] = NAN
    return ratio, bound


def eta_beta(a: dict[str, np.ndarray], lr: float, schedule: str = "constant", total: int = 0) -> np.ndarray:
    """η_t·β_t at the theory epochs (β = λ_max(∇²L), the sharpness)."""
    return step_sizes(a["theory_epoch"], lr, schedule, total) * a["sharpness"]


def theory_summary(a: dict[str, np.ndarray], n_train: int, lr: float,
                   schedule: str = "constant", total: int = 0, ntk_subset: int = 0) -> dict:
    """The hypotheses of Theorems 5.4 / 5.7 as numbers (NaN where not measured), from the
    trajectory's arrays `a`."""
    eb = eta_beta(a, lr, schedule, total)
    ratio, bound = pl_bound(a, 0.0, n_train)  # the identity holds for any L*; 0 as the verdicts use
    defined = np.isfinite(ratio) & np.isfinite(bound)
    # rounding slack: the bound follows from an identity, so it can only fail by a bug
    holds = ratio[defined] >= bound[defined] * (1 - 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        lipschitz = nan_stat(np.max, np.where(a["drift"] > 0, a["ntk_change"] / a["drift"], NAN))
    radius = nan_stat(np.max, a["drift"])
    margin = first(a["ntk_lambda_min"]) - lipschitz * radius
    n = ntk_subset
    finite = np.isfinite(eb)
    return {
        "sharpness_0": first(a["sharpness"]),
        "sharpness_max": nan_stat(np.max, a["sharpness"]),
        "eta_beta_0": first(eb),
        "eta_beta_max": nan_stat(np.max, eb),
        "eta_beta_max_epoch": first_epoch(a["theory_epoch"], eb == np.nanmax(eb)) if finite.any() else NAN,
        "eta_beta_final": last(eb),
        "eta_beta_above_1": first_epoch(a["theory_epoch"], eb > 1.0),
        "eta_beta_above_2": first_epoch(a["theory_epoch"], eb >= 2.0),
        "step_class_0": step_class(first(eb)),
        "step_class_max": step_class(nan_stat(np.max, eb)),
        "step_class_final": step_class(last(eb)),
        "pl_bound_holds_frac": float(holds.mean()) if defined.any() else NAN,
        "lipschitz_K": lipschitz,
        "drift_max": radius,
        "compat_margin": margin,
        # μ on the probe subset S: its margin over its own size n, like with like
        "pl_mu": margin / n if (n and margin > 0) else NAN,
    }


def live_series(traj: Trajectory, final: bool, n_train: int = 0, lr: float = NAN,
                schedule: str = "constant", total: int = 0) -> dict:
    """What a dashboard draws for one run: every epoch, the PL ratio against L* = 0 and the
    subopt against the terminal-loss proxy (the paper's view, provisional unless `final`);
    drift and λ_min at the probe epochs; η·β and the PL ratio with its lower bound
    λ_min(K_N)/N (L* = 0) at the theory epochs."""
    a = traj.arrays()
    l_star = terminal_loss(a["loss"], final)
    ratio_at_theory, bound = pl_bound(a, 0.0, n_train)
    return {
        "epoch": a["epoch"],
        "loss": a["loss"],
        "subopt": suboptimality(a["loss"], l_star),
        "pl_ratio0": pl_ratio(a["grad_sq"], a["loss"], 0.0),
        "l_star": l_star,
        "l_star_provisional": not final,
        "probe_epoch": a["probe_epoch"],
        "drift": a["drift"],
        "ntk_lambda_min": a["ntk_lambda_min"],
        "theory_epoch": a["theory_epoch"],
        "eta_beta": (eb := eta_beta(a, lr, schedule, total)),
        "step_class_now": step_class(last(eb)),
        "pl_ratio_theory": ratio_at_theory,
        "pl_bound": bound,
    }


L_STAR_VIEWS = ("proxy", "zero", "fitted")


def figure_series(traj: Trajectory, summary: dict, final: bool, n_train: int = 0, lr: float = NAN,
                  schedule: str = "constant", total: int = 0, l_star: str = "proxy") -> dict:
    """What a figure draws for one run: the dashboard's series (live_series), with L − L*
    against the chosen view of L* (`proxy`: the terminal-loss proxy, `zero`, or `fitted`: the
    decay fit's `decay_l_star` from the run's summary), and the local-regime series at the
    probe epochs (local_series)."""
    out = live_series(traj, final, n_train, lr, schedule, total)
    a = traj.arrays()
    value = {"proxy": out["l_star"], "zero": 0.0, "fitted": float(summary.get("decay_l_star", NAN))}[l_star]
    out.update(l_star=value, l_star_view=l_star, subopt=suboptimality(a["loss"], value), **local_series(a))
    return out


def band(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of one configuration (seeds) as one line: on the union of their x values, the mean
    of the finite values there, and their min and max (NaN where no run has a finite value)."""
    if not xs:
        return np.array([]), np.array([]), np.array([]), np.array([])
    x = np.unique(np.concatenate([np.asarray(v, dtype=float) for v in xs]))
    grid = np.full((len(ys), x.size), NAN)
    for row, (xv, yv) in enumerate(zip(xs, ys)):
        yv = np.asarray(yv, dtype=float)
        keep = np.isfinite(yv)
        grid[row, np.searchsorted(x, np.asarray(xv, dtype=float)[keep])] = yv[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with no finite value: NaN
        return x, np.nanmean(grid, axis=0), np.nanmin(grid, axis=0), np.nanmax(grid, axis=0)


MEAN_KEYS = ("lambda_0", "lambda_T", "ntk_drift_pct", "drift_final", "loss_final", "l_star", "contraction")


def stable_pl0(traj: Trajectory, summary: dict) -> np.ndarray:
    """pl_ratio₀ on the run's stable regime (as its summary says where it is)."""
    a = traj.arrays()
    window = (summary.get("stable_from", 0), summary.get("stable_to", 0))
    return pl_ratio(a["grad_sq"], a["loss"], 0.0)[in_window(a["epoch"], window)]


def mean_summary(summaries: list[dict], trajectories: list[Trajectory] | None = None) -> dict:
    """The summary row of a table of seeds (Table 2) as the paper quotes it: PL min is the
    minimum over the seeds, PL median the median pooled over seeds and epochs of the stable
    regime; every other statistic the mean over the runs where it is defined; params when all
    runs share them."""
    out = {key: nan_stat(np.mean, np.array([s.get(key, NAN) for s in summaries], dtype=float)) for key in MEAN_KEYS}
    out["pl_min"] = nan_stat(np.min, np.array([s.get("pl_min", NAN) for s in summaries], dtype=float))
    pooled = [stable_pl0(t, s) for t, s in zip(trajectories or [], summaries)]
    out["pl_median"] = nan_stat(np.median, np.concatenate(pooled)) if pooled else NAN
    params = {s.get("params") for s in summaries}
    if len(params) == 1:
        out["params"] = params.pop()
    return out

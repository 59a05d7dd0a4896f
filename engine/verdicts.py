"""Did the theory's predictions hold? Verdicts are claims that can fail, derived from a run's
summary (itself derived from its trajectory); none is true by construction. Each verdict's
docstring says how it fails. Thresholds are the preset's [guide] fields (docs/diagnostics.md).

Per run: geometric_decay, sufficient_decrease, pl_rate, step_size, weyl_certificate,
stays_lazy, drift_contained, no_loss_spike.
Across a plan: lambda0_doubles, all_stay_local, reduced_step_restores; over seeds of one
configuration: geometric_every_seed, contained_every_seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from engine import analysis
from engine.config import GuideSpec

NAN = analysis.NAN


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    measured: float
    threshold: float
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


def fmt(value: float, spec: str = ".4g") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def known(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# ---------------------------------------------------------------- per run


def geometric_decay(s: dict, t: GuideSpec) -> Verdict:
    """Fails unless a geometric decay beats the best power law by `decay_margin` in BIC on the
    stable regime: a 1/t, 1/√t or 1/log t curve fails, and so does an undecided fit."""
    delta, model = s.get("decay_delta_bic", NAN), s.get("decay_model", analysis.UNDECIDED)
    detail = (f"ρ = {fmt(s.get('contraction'), '.6f')}" if model == analysis.GEOMETRIC
              else f"p = {fmt(s.get('decay_p'), '.3g')}, t₀ = {fmt(s.get('decay_t0'), '.4g')}" if model == analysis.POWER_LAW
              else "neither model wins")
    return Verdict("geometric_decay", model == analysis.GEOMETRIC, delta, t.decay_margin,
                   f"decay on the stable regime: {model} ({detail}; L* = {fmt(s.get('decay_l_star'), '.3g')}); "
                   f"BIC(power law) − BIC(geometric) = {fmt(delta, '.1f')} (≥ {t.decay_margin:g} for geometric)")


def sufficient_decrease(s: dict, t: GuideSpec) -> Verdict:
    """Fails when L_{t+1} ≤ L_t − (η/2)‖∇L_t‖² holds at fewer than `sufficient_decrease` of
    the stable regime's steps: the descent lemma's step breaks when η > 1/β."""
    share = s.get("sufficient_decrease_frac", NAN)
    return Verdict("sufficient_decrease", bool(share >= t.sufficient_decrease), share, t.sufficient_decrease,
                   f"sufficient decrease L_t+1 ≤ L_t − (η/2)‖∇L_t‖² at {fmt(100 * share, '.1f')}% of the stable "
                   f"regime's steps (≥ {100 * t.sufficient_decrease:g}%)")


def pl_rate(s: dict, t: GuideSpec) -> Verdict:
    """Fails when the loss decayed more slowly than the rate the PL envelope guarantees,
    ρ_observed > ρ_PL = 1 − η·μ̂ (possible only where sufficient decrease fails)."""
    rho_pl, rho_obs = s.get("rho_pl", NAN), s.get("rho_observed", NAN)
    share = s.get("pl_explains", NAN)
    why = f"; PL explains {fmt(100 * share, '.3g')}% of the observed speed" if known(share) else ""
    # relative slack for rounding: on an exactly geometric decay the bound is tight
    return Verdict("pl_rate", known(rho_pl, rho_obs) and rho_obs <= rho_pl * (1 + 1e-9), rho_obs, rho_pl,
                   f"loss contracted by ρ = {fmt(rho_obs, '.6f')} per epoch against L* = 0, "
                   f"PL guarantees ρ_PL = 1 − η·μ̂ = {fmt(rho_pl, '.6f')} (μ̂ = {fmt(s.get('pl_min'))}){why}")


def step_size(s: dict, t: GuideSpec) -> Verdict:
    """Fails when η·β exceeded 1 at any theory probe (β = λ_max(∇²L)): the run left the
    theorem's hypothesis η ≤ 1/β, whether or not GD stayed stable."""
    first, peak, final = s.get("eta_beta_0", NAN), s.get("eta_beta_max", NAN), s.get("eta_beta_final", NAN)
    crossed = s.get("eta_beta_above_1", NAN)
    when = f", first above 1 at epoch {fmt(crossed, '.0f')}" if known(crossed) else ""
    return Verdict("step_size", known(peak) and peak <= 1.0, peak, 1.0,
                   f"step size: η·β = {fmt(first, '.3g')} at initialisation ({s.get('step_class_0', 'unknown')}), "
                   f"max {fmt(peak, '.3g')} at epoch {fmt(s.get('eta_beta_max_epoch'), '.0f')} "
                   f"({s.get('step_class_max', 'unknown')}), final {fmt(final, '.3g')}{when}")


def weyl_certificate(s: dict, t: GuideSpec) -> Verdict:
    """Fails when λ_0 − ‖K_t − K_0‖₂ ≤ 0 at some probe: the kernel moved further than λ_0, so
    nothing guarantees λ_min(K_t) > 0 and the theorem's guarantee is vacuous on this run."""
    low, at, negative = s.get("weyl_min", NAN), s.get("weyl_min_epoch", NAN), s.get("weyl_negative_epoch", NAN)
    passed = known(low) and low > 0
    words = ("λ_min > 0 guaranteed at every probe" if passed else
             f"≤ 0 from epoch {fmt(negative, '.0f')} on: the theorem's guarantee is vacuous on this run")
    return Verdict("weyl_certificate", passed, low, 0.0,
                   f"Weyl certificate λ_0 − ‖K_t − K_0‖₂: min {fmt(low)} at epoch {fmt(at, '.0f')} "
                   f"(λ_0 = {fmt(s.get('lambda_0'))}): {words}")


def stays_lazy(s: dict, t: GuideSpec) -> Verdict:
    """Fails when the kernel changed by more than `kernel_change` of ‖K_0‖₂, or λ_min fell by
    more than `lambda_drop` or rose by more than `lambda_rise` of λ_0, at any probe."""
    rel, rise, fall = s.get("kernel_change_rel_max", NAN), s.get("lambda_rise_pct", NAN), s.get("lambda_fall_pct", NAN)
    passed = known(rel, rise, fall) and rel <= t.kernel_change and fall <= 100 * t.lambda_drop and rise <= 100 * t.lambda_rise
    return Verdict("stays_lazy", passed, rel, t.kernel_change,
                   f"kernel: ‖K_t − K_0‖₂/‖K_0‖₂ up to {fmt(rel, '.3g')} (≤ {t.kernel_change:g}); λ_min rose up to "
                   f"{fmt(rise, '.0f')}% (≤ {100 * t.lambda_rise:g}%) and fell up to {fmt(fall, '.0f')}% (≤ {100 * t.lambda_drop:g}%)")


def drift_contained(s: dict, t: GuideSpec) -> Verdict:
    """Fails when the drift accelerated away from θ_0 (its speed per epoch rose above
    `drift_jump` × its speed over the first interval), when more than `uphill` of it was
    travelled while the loss rose (a catapult), or when it did not saturate (its last 20% of
    epochs added `saturation` of it or more; a drift growing linearly adds 20%)."""
    speed, late, uphill = s.get("drift_speedup", NAN), s.get("drift_late_growth", NAN), s.get("drift_uphill", NAN)
    passed = known(speed, late, uphill) and speed <= t.drift_jump and uphill <= t.uphill and late < t.saturation
    return Verdict("drift_contained", passed, speed, t.drift_jump,
                   f"drift: fastest ×{fmt(speed, '.2f')} its first step's speed (≤ ×{t.drift_jump:g}), "
                   f"{fmt(100 * uphill, '.0f')}% of it travelled while the loss rose (≤ {100 * t.uphill:g}%), "
                   f"last 20% of epochs added {fmt(100 * late, '.0f')}% of it (< {100 * t.saturation:.0f}%), final {fmt(s.get('drift_final'), '.3g')}")


def no_loss_spike(s: dict, t: GuideSpec) -> Verdict:
    """Fails when the loss rose above `loss_spike` × its lowest value so far (a catapult)."""
    spike = s.get("loss_spike", NAN)
    rises = s.get("loss_rise_frac", NAN)
    extra = f"; the loss rose at {fmt(100 * rises, '.1f')}% of the stable regime's steps" if known(rises) else ""
    return Verdict("no_loss_spike", known(spike) and spike <= t.loss_spike, spike, t.loss_spike,
                   f"loss: at most ×{fmt(spike, '.2f')} its running minimum (≤ ×{t.loss_spike:g}){extra}")


RUN_VERDICTS = (geometric_decay, sufficient_decrease, pl_rate, step_size, weyl_certificate, stays_lazy, drift_contained, no_loss_spike)
# what each verdict needs measured; a verdict without its measurements is not given
NEEDS = {
    "sufficient_decrease": "sufficient_decrease_frac",
    "pl_rate": "rho_pl",
    "step_size": "eta_beta_max",
    "weyl_certificate": "weyl_min",
    "stays_lazy": "kernel_change_rel_max",
    "drift_contained": "drift_speedup",
}
LOCAL = ("stays_lazy", "drift_contained", "no_loss_spike")  # a run that fails any has left the local regime


def run_verdicts(summary: dict, t: GuideSpec = GuideSpec()) -> list[Verdict]:
    """The verdicts whose measurements exist in `summary` (SGD has no sufficient decrease, a
    run without theory probes no step-size class)."""
    out = []
    for judge in RUN_VERDICTS:
        need = NEEDS.get(judge.__name__)
        if need is None or known(summary.get(need, NAN)):
            out.append(judge(summary, t))
    return out


def left_local_regime(verdicts: list[dict]) -> list[str]:
    """The local-regime verdicts a run failed (empty: it stayed local)."""
    return [v["name"] for v in verdicts if v["name"] in LOCAL and not v["passed"]]


# ---------------------------------------------------------------- across a plan


def per_doubling(m_a: float, lam_a: float, m_b: float, lam_b: float) -> float:
    """λ_0's growth factor per doubling of width between widths m_a < m_b."""
    if not (known(lam_a, lam_b) and lam_a > 0 and lam_b > 0 and m_b > m_a > 0):
        return NAN
    return (lam_b / lam_a) ** (1.0 / math.log2(m_b / m_a))


def lambda0_doubles(runs: list[dict], t: GuideSpec) -> Verdict | None:
    """Fails when λ_0 does not grow by a factor within [2/(1 + tol), 2·(1 + tol)] per doubling
    of width between consecutive widths (tol = `doubling_tolerance`)."""
    widths = sorted({r["width"] for r in runs})
    if len(widths) < 2:
        return None
    lam0 = {w: next(r["summary"].get("lambda_0", NAN) for r in runs if r["width"] == w) for w in widths}
    factors = [per_doubling(a, lam0[a], b, lam0[b]) for a, b in zip(widths, widths[1:])]
    low, high = 2.0 / (1 + t.doubling_tolerance), 2.0 * (1 + t.doubling_tolerance)
    passed = all(known(f) and low <= f <= high for f in factors)
    worst = max(factors, key=lambda f: abs(math.log(f / 2.0)) if known(f) and f > 0 else math.inf)
    steps = ", ".join(f"m={a}→{b}: ×{fmt(f, '.3g')}" for (a, b), f in zip(zip(widths, widths[1:]), factors))
    return Verdict("lambda0_doubles", passed, worst, 2.0,
                   f"λ_0 per doubling of width in [×{low:.2f}, ×{high:.2f}] (the paper: it approximately doubles): {steps}")


def plan_verdicts(runs: list[dict], t: GuideSpec = GuideSpec()) -> list[Verdict]:
    """runs: dicts with label, width, lr, seed, summary, verdicts (dicts), in plan order."""
    out: list[Verdict] = []
    if not runs:
        return out
    if (doubling := lambda0_doubles(runs, t)) is not None:
        out.append(doubling)
    left = {r["label"]: left_local_regime(r["verdicts"]) for r in runs}
    names = [f"{label} ({', '.join(why)})" for label, why in left.items() if why]
    out.append(Verdict("all_stay_local", not names, float(len(names)), 0.0,
                       "runs that left the local regime: " + ("; ".join(names) or "none")))
    for run in runs:
        if not left[run["label"]]:
            continue
        for fix in (r for r in runs if r["width"] == run["width"] and r["lr"] < run["lr"] and r["seed"] == run["seed"]):
            restored = not left[fix["label"]]
            out.append(Verdict("reduced_step_restores", restored, fix["lr"], run["lr"],
                               f"{fix['label']} {'restores' if restored else 'does not restore'} the local regime that {run['label']} left"))
    widths = {r["width"] for r in runs}
    if len({r["seed"] for r in runs}) > 1 and len(widths) == 1:
        out += seed_verdicts(runs)
    return out


def seed_verdicts(runs: list[dict]) -> list[Verdict]:
    """Seeds of one configuration: each fails when any seed fails its run verdict."""
    out = []
    for name, verdict in (("geometric_every_seed", "geometric_decay"), ("contained_every_seed", "drift_contained")):
        results = [next((v["passed"] for v in r["verdicts"] if v["name"] == verdict), False) for r in runs]
        failed = [r["label"] for r, ok in zip(runs, results) if not ok]
        out.append(Verdict(name, not failed, float(sum(results)), float(len(runs)),
                           f"{verdict} on {sum(results)} of {len(runs)} seeds" + (f"; not on {', '.join(failed)}" if failed else "")))
    return out

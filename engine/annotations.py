"""Live annotations: what a researcher should notice, said as it happens, with the numbers.

An Annotator follows one run's measurements and returns Annotation events (kinds):
  loss_spike          the loss rose above `loss_spike` × its running minimum (once)
  loss_rose           the loss rose between two probes (at the start of each rise)
  lambda_fell         λ_min fell by more than `lambda_drop` of λ_0 (once)
  lambda_rose         λ_min rose by more than `lambda_rise` of λ_0 (once)
  lambda_nonpositive  λ_min ≤ 0 (once)
  kernel_moved        ‖K_t − K_0‖₂ > `kernel_change` · ‖K_0‖₂ (once)
  weyl_negative       λ_0 − ‖K_t − K_0‖₂ ≤ 0: the theorem's guarantee is vacuous (once)
  drift_jumped        the drift's speed rose above `drift_jump` × its first step's (once)
  drift_uphill        more than `uphill` of the drift so far was travelled while the loss rose (once)
  step_size           η·β crossed 1 or 2 (β = λ_max(∇²L)), each kind of crossing once
The thresholds are the preset's [guide] fields, the same the verdicts use.
"""

from __future__ import annotations

import math
from typing import Callable

from engine.analysis import INSIDE, OUTSIDE, UNSTABLE, step_class
from engine.config import GuideSpec
from engine.events import Annotation, EpochMeasured, ProbeMeasured


LEVELS = {INSIDE: 0, OUTSIDE: 1, UNSTABLE: 2}  # η·β ≤ 1, in (1, 2), ≥ 2


class Annotator:
    def __init__(self, run: int, guide: GuideSpec = GuideSpec(), lr: Callable[[int], float] = lambda epoch: math.nan):
        self.run, self.guide, self.lr = run, guide, lr
        self.said: set[str] = set()
        self.latest = (-1, math.nan)  # epoch, loss: a probe's epoch is measured just before it
        self.lowest = math.inf  # the loss's running minimum
        self.lambda0: float | None = None
        self.kernel0: float | None = None
        self.before: tuple[int, float, float] | None = None  # the last probe's epoch, loss, drift
        self.first_speed: float | None = None  # the drift's speed over the first probe interval
        self.reference = False  # whether that first interval has been seen
        self.rising = False
        self.uphill = 0.0  # drift travelled over probe intervals where the loss rose
        self.step = "unknown"

    def see(self, event: object) -> list[Annotation]:
        if isinstance(event, EpochMeasured) and event.run == self.run:
            return self.epoch(event.epoch, event.loss)
        if not (isinstance(event, ProbeMeasured) and event.run == self.run):
            return []
        values, epoch = event.values, event.epoch
        out = self.sharpness(epoch, values.get("sharpness", math.nan))
        if "ntk_lambda_min" in values or "drift" in values:
            out += self.kernel(epoch, values) + self.path(epoch, values.get("drift", math.nan))
        return out

    # ------------------------------------------------------------ each measure

    def epoch(self, epoch: int, loss: float) -> list[Annotation]:
        self.latest = (epoch, loss)
        out = []
        if math.isfinite(loss) and loss > self.guide.loss_spike * self.lowest and self.once("loss_spike"):
            out.append(self.say(epoch, "loss_spike", f"the loss spiked to {loss:.4g}, ×{loss / self.lowest:.3g} its lowest so far "
                                                     f"({self.lowest:.4g}): a catapult out of the local regime?"))
        if math.isfinite(loss):
            self.lowest = min(self.lowest, loss)
        return out

    def kernel(self, epoch: int, values: dict) -> list[Annotation]:
        lam, top, change = (values.get(k, math.nan) for k in ("ntk_lambda_min", "ntk_lambda_max", "ntk_change"))
        if self.lambda0 is None and math.isfinite(lam):
            self.lambda0, self.kernel0 = lam, top
        out: list[Annotation] = []
        if not (self.lambda0 and math.isfinite(lam)):
            return out
        lam0, g = self.lambda0, self.guide
        if lam <= 0 and self.once("lambda_nonpositive"):
            out.append(self.say(epoch, "lambda_nonpositive", f"λ_min became non-positive: {lam:.4g} (λ_0 = {lam0:.4g})"))
        if lam < (1 - g.lambda_drop) * lam0 and self.once("lambda_fell"):
            out.append(self.say(epoch, "lambda_fell", f"λ_min fell by {100 * (1 - lam / lam0):.0f}% since initialisation: {lam0:.4g} → {lam:.4g}"))
        if lam > (1 + g.lambda_rise) * lam0 and self.once("lambda_rose"):
            out.append(self.say(epoch, "lambda_rose", f"λ_min rose by {100 * (lam / lam0 - 1):.0f}% since initialisation: {lam0:.4g} → {lam:.4g} "
                                                      "(the kernel is not frozen)"))
        if self.kernel0 and math.isfinite(change) and change > g.kernel_change * self.kernel0 and self.once("kernel_moved"):
            out.append(self.say(epoch, "kernel_moved", f"the kernel moved: ‖K_t − K_0‖₂ = {change:.4g}, {change / self.kernel0:.2f} × ‖K_0‖₂ "
                                                       f"(> {g.kernel_change:g}: not lazy training)"))
        if math.isfinite(change) and lam0 - change <= 0 and self.once("weyl_negative"):
            out.append(self.say(epoch, "weyl_negative", f"λ_0 − ‖K_t − K_0‖₂ = {lam0:.4g} − {change:.4g} = {lam0 - change:.4g} ≤ 0: "
                                                        "the theorem's guarantee is vacuous on this run from here on"))
        return out

    def path(self, epoch: int, drift: float) -> list[Annotation]:
        loss = self.latest[1] if self.latest[0] == epoch else math.nan
        out: list[Annotation] = []
        if self.before is not None:
            before_epoch, before_loss, before_drift = self.before
            rose = math.isfinite(loss) and math.isfinite(before_loss) and loss > before_loss
            if rose and not self.rising:
                out.append(self.say(epoch, "loss_rose", f"loss rose between probes: {before_loss:.4g} at epoch {before_epoch} → {loss:.4g} "
                                                        "(a step above the stability edge?)"))
            self.rising = rose
            out += self.speed(epoch, before_epoch, before_drift, drift)
            if rose and math.isfinite(drift) and math.isfinite(before_drift):
                self.uphill += max(drift - before_drift, 0.0)
            if drift > 0 and self.uphill > self.guide.uphill * drift and self.once("drift_uphill"):
                out.append(self.say(epoch, "drift_uphill", f"{100 * self.uphill / drift:.0f}% of the drift so far ({self.uphill:.3g} of {drift:.3g}) "
                                                           "was travelled while the loss rose: a catapult?"))
        self.before = (epoch, loss, drift)
        return out

    def speed(self, epoch: int, before_epoch: int, before: float, drift: float) -> list[Annotation]:
        """The drift's speed per epoch over the last probe interval against its first one."""
        if not (math.isfinite(drift) and math.isfinite(before)) or epoch <= before_epoch:
            return []
        speed = (drift - before) / (epoch - before_epoch)
        if not self.reference:  # as analysis.drift_speedup: no positive first speed, no judgement
            self.reference, self.first_speed = True, speed if speed > 0 else None
            return []
        if self.first_speed is not None and speed > self.guide.drift_jump * self.first_speed and self.once("drift_jumped"):
            return [self.say(epoch, "drift_jumped", f"the drift accelerated: {speed:.3g} per epoch, ×{speed / self.first_speed:.1f} its first "
                                                    f"step's, now {drift:.4g} (leaving the local regime?)")]
        return []

    def sharpness(self, epoch: int, beta: float) -> list[Annotation]:
        eta = self.lr(epoch)
        if not (math.isfinite(beta) and math.isfinite(eta)):
            return []
        now, was = step_class(eta * beta), self.step
        self.step = now
        if was in ("unknown", now) or not self.once(f"step:{was}->{now}"):
            return []
        up = LEVELS[now] > LEVELS[was]
        crossed = f"rose above {LEVELS[now]}" if up else f"fell below {LEVELS[was]}"
        return [self.say(epoch, "step_size", f"η·β {crossed}: η·β = {eta * beta:.3g} (β = λ_max(∇²L) = {beta:.4g}); the step is now {now}")]

    # ------------------------------------------------------------ saying it

    def once(self, key: str) -> bool:
        if key in self.said:
            return False
        self.said.add(key)
        return True

    def say(self, epoch: int, kind: str, text: str) -> Annotation:
        return Annotation(self.run, epoch, kind, text)

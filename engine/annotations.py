"""Live annotations: what a researcher should notice, said as it happens, with the numbers.

An Annotator follows one run's measurements and returns Annotation events when
  - λ_min fell by more than `lambda_drop` of its initial value (once),
  - λ_min became non-positive (once),
  - the loss rose between two probes (a step above the stability edge?),
  - the drift jumped more than `drift_jump`-fold within `drift_window` probes (leaving the
    local regime?).
"""

from __future__ import annotations

import math

from engine.events import Annotation, EpochMeasured, ProbeMeasured


class Annotator:
    def __init__(self, run: int, lambda_drop: float = 0.5, drift_jump: float = 3.0, drift_window: int = 3):
        self.run, self.lambda_drop, self.drift_jump, self.window = run, lambda_drop, drift_jump, drift_window
        self.lambda0: float | None = None
        self.said: set[str] = set()
        self.latest = (-1, math.nan)  # epoch, loss: a probe's epoch is measured just before it
        self.probes: list[tuple[int, float, float]] = []  # epoch, loss, drift
        self.rising = False

    def see(self, event: object) -> list[Annotation]:
        if isinstance(event, EpochMeasured) and event.run == self.run:
            self.latest = (event.epoch, event.loss)
        if not (isinstance(event, ProbeMeasured) and event.run == self.run):
            return []
        out: list[Annotation] = []
        epoch, values = event.epoch, event.values
        lam = values.get("ntk_lambda_min", math.nan)
        if self.lambda0 is None and math.isfinite(lam):
            self.lambda0 = lam
        if self.lambda0 and math.isfinite(lam):
            if lam <= 0 and self.once("lambda_nonpositive"):
                out.append(self.say(epoch, "lambda_nonpositive", f"λ_min became non-positive: {lam:.4g} (λ_0 = {self.lambda0:.4g})"))
            if lam < (1 - self.lambda_drop) * self.lambda0 and self.once("lambda_fell"):
                out.append(self.say(epoch, "lambda_fell",
                                    f"λ_min fell by {100 * (1 - lam / self.lambda0):.0f}% since initialisation: {self.lambda0:.4g} → {lam:.4g}"))
        loss = self.latest[1] if self.latest[0] == epoch else math.nan
        drift = values.get("drift", math.nan)
        if self.probes:
            out += self.loss_rise(epoch, loss) + self.drift_jumped(epoch, drift)
        self.probes.append((epoch, loss, drift))
        return out

    def loss_rise(self, epoch: int, loss: float) -> list[Annotation]:
        before_epoch, before, _ = self.probes[-1]
        rose = math.isfinite(loss) and math.isfinite(before) and loss > before
        first_of_a_rise, self.rising = rose and not self.rising, rose
        if not first_of_a_rise:
            return []
        text = f"loss rose between probes: {before:.4g} at epoch {before_epoch} → {loss:.4g} (a step above the stability edge?)"
        return [self.say(epoch, "loss_rose", text)]

    def drift_jumped(self, epoch: int, drift: float) -> list[Annotation]:
        earlier = [d for _, _, d in self.probes[-self.window :] if math.isfinite(d) and d > 0]
        if not earlier or not math.isfinite(drift) or drift <= self.drift_jump * earlier[0] or not self.once(f"drift@{len(self.probes) // max(self.window, 1)}"):
            return []
        return [self.say(epoch, "drift_jumped",
                         f"drift jumped ×{drift / earlier[0]:.1f} within {self.window} probes: {earlier[0]:.4g} → {drift:.4g} (leaving the local regime?)")]

    def once(self, key: str) -> bool:
        if key in self.said:
            return False
        self.said.add(key)
        return True

    def say(self, epoch: int, kind: str, text: str) -> Annotation:
        return Annotation(self.run, epoch, kind, text)

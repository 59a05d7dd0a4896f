"""A plotext chart of one diagnostic, for one run or several overlaid.

plotext keeps state between builds, and its log axis crashes on a second build unless the data
are plotted afresh; a log axis with no data or a value <= 0 crashes, and inf crashes a linear
axis. So the widget keeps its series itself and re-plots them inside every `render()`, after
dropping the points an axis cannot show (they are counted in the title, never silently lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.text import Text
from textual_plotext import PlotextPlot

COLOURS = ["cyan", "orange", "green", "magenta", "yellow", "red", "blue", "white"]


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    colour: str = "cyan"


@dataclass
class Drawable:
    series: list[Series] = field(default_factory=list)
    skipped: int = 0


def drawable(series: list[Series], log: bool) -> Drawable:
    """Only the points the axis can show: finite, and > 0 on a log axis."""
    out = Drawable()
    for s in series:
        x, y = np.asarray(s.x, dtype=float), np.asarray(s.y, dtype=float)
        ok = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log else True)
        out.skipped += int((~ok).sum())
        if ok.any():
            out.series.append(Series(s.label, *thin(x[ok], y[ok]), s.colour))
    return out


def thin(x: np.ndarray, y: np.ndarray, buckets: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """At most two points per bucket (its lowest and highest), so spikes survive thinning."""
    if len(x) <= 2 * buckets:
        return x, y
    keep = set()
    for part in np.array_split(np.arange(len(x)), buckets):
        keep.update((part[np.argmin(y[part])], part[np.argmax(y[part])]))
    idx = np.array(sorted(keep))
    return x[idx], y[idx]


def fit(text: str, width: int) -> str:
    """plotext drops a title wider than the plot: shorten it instead."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class DiagnosticChart(PlotextPlot):
    def __init__(self, title: str, log: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.base_title = title
        self.log_axis = log
        self.series: list[Series] = []
        self.marks: list[float] = []
        self.levels: list[float] = []
        self.noticed: list[float] = []
        self.note = ""
        self.data = Drawable()
        self.skipped = 0

    def show(
        self, series: list[Series], marks: list[float] = (), note: str = "", levels: list[float] = (),
        title: str = "", noticed: list[float] = (),
    ) -> None:
        """Series to draw; `marks` (grey) and `noticed` (yellow, the annotations) are epochs,
        drawn as vertical lines; `levels` are values, drawn as horizontal lines."""
        self.series, self.marks, self.note, self.levels = list(series), list(marks), note, list(levels)
        self.noticed = list(noticed)
        self.data = drawable(self.series, self.log_axis)  # once per update, not per render
        self.skipped = self.data.skipped
        self.base_title = title or self.base_title
        self.refresh()

    @property
    def points(self) -> int:
        return sum(len(s.x) for s in self.series)

    def render(self):
        plt = self.plt
        plt.clear_data()
        data = self.data
        title = self.base_title + (f" {self.note}" if self.note else "")
        if data.skipped:
            title += f" [{data.skipped} not drawn]"
        plt.title(fit(title, self.size.width - 14))  # minus the y tick labels plotext reserves
        if not data.series:
            note = f"{data.skipped} point(s), none drawable (NaN/inf or ≤ 0)" if data.skipped else "waiting for data"
            return Text(f"{fit(title, self.size.width)}\n\n{note}", style="dim", justify="center")
        plt.xlabel("epoch")
        plt.yscale("log" if self.log_axis else "linear")
        for s in data.series:
            plt.plot(s.x.tolist(), s.y.tolist(), label=s.label if len(data.series) > 1 else None, color=s.colour, marker="braille")
        for mark in self.marks:
            plt.vline(mark, "gray")
        for level in self.levels:
            plt.hline(level, "red")
        for epoch in self.noticed:
            plt.vline(epoch, "yellow")
        return super().render()

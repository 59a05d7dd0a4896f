"""The chart widget: NaN, inf and non-positive points are counted, never drawn, never a crash."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult

from lplr_tui.components.chart import DiagnosticChart, Series, drawable, thin


def test_drawable_counts_what_an_axis_cannot_show():
    s = Series("a", np.arange(6), np.array([1.0, np.nan, np.inf, -np.inf, 0.0, -2.0]))
    assert drawable([s], log=True).skipped == 5
    linear = drawable([s], log=False)
    assert linear.skipped == 3 and linear.series[0].y.tolist() == [1.0, 0.0, -2.0]


def test_thinning_keeps_spikes():
    y = np.ones(10_000)
    y[4321] = 1e6
    x, kept = thin(np.arange(10_000.0), y, buckets=100)
    assert len(kept) <= 200 and kept.max() == 1e6 and x[-1] >= 9_900


class OneChart(App):
    def __init__(self, log: bool):
        super().__init__()
        self.log_axis = log

    def compose(self) -> ComposeResult:
        yield DiagnosticChart("test", log=self.log_axis, id="chart")


async def test_log_chart_survives_bad_points_rerenders_and_resizes():
    app = OneChart(log=True)
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(DiagnosticChart)
        for y in ([np.nan], [np.inf, -1.0, 0.0], [1.0, 1e-3, np.nan, 1e-9], [5.0, np.inf, 2.0]):
            chart.show([Series("a", np.arange(len(y)), np.array(y))])
            await pilot.pause()
            await pilot.resize_terminal(50 + len(y), 18)
            await pilot.pause()
        assert chart.skipped == 1


async def test_linear_chart_with_inf_and_an_empty_chart_render():
    app = OneChart(log=False)
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(DiagnosticChart)
        await pilot.pause()  # nothing to draw yet
        chart.show([Series("a", np.arange(4), np.array([1.0, np.inf, -np.inf, 2.0]))])
        await pilot.pause()
        assert chart.skipped == 2
        chart.show([Series("a", np.arange(2), np.array([np.nan, np.nan]))])
        await pilot.pause()
        assert chart.skipped == 2

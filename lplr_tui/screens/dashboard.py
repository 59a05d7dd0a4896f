"""The live dashboard: a run list, four charts, a status bar. It reads the app's PlanView and
redraws at a bounded rate; it computes nothing."""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, ListItem, ListView, Static

from lplr_tui.components.chart import COLOURS, DiagnosticChart, Series
from lplr_tui.plan_view import PlanView, RunView
from lplr_tui.progress import clock, devices_text, num

MARKS = {"waiting": "·", "running": "▶", "finished": "✓", "diverged": "✗", "interrupted": "■", "failed": "✗", "lost": "?"}
REDRAW_EVERY = 0.25  # seconds: charts redraw at most 4 times a second

# chart id, title, log axis, (x key, y key) in live_series
CHARTS = [
    ("chart-lambda", "λ_min (NTK subset)", False, ("probe_epoch", "ntk_lambda_min")),
    ("chart-drift", "drift ‖θ_t − θ_0‖", False, ("probe_epoch", "drift")),
    ("chart-pl", "PL ratio, L* = 0 (log)", True, ("epoch", "pl_ratio0")),
    ("chart-subopt", "L − L*", True, ("epoch", "subopt")),
]
# the theory view (key x) draws these in two of the charts' places:
# chart id -> (title, [(x key, y key, what the series is)], horizontal levels)
THEORY = {
    "chart-lambda": ("step size η·β (lines: 1 theorem, 2 stability edge)", [("theory_epoch", "eta_beta", "")], [1.0, 2.0]),
    "chart-pl": (
        "PL ratio (L* = 0) and its bound λ_min(K_N)/N (log)",
        [("theory_epoch", "pl_ratio_theory", "ratio"), ("theory_epoch", "pl_bound", "bound")],
        [],
    ),
}


class FigureWritten(Message):
    """The figure of the current view is on disk (written on a worker thread)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class FigureFailed(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def run_line(run: RunView) -> str:
    return f"{MARKS.get(run.state, '?')} {run.label}"


def status_line(plan: PlanView) -> str:
    run = plan.current
    if run is None:
        return "lplr-tui"
    eta = plan.eta()
    parts = [
        f"{plan.name} run {run.index + 1}/{len(plan.runs)}: {run.label}" + ("" if plan.live else f" {plan.state}"),
        f"epoch {run.epoch}/{run.epochs}",
        f"loss {num(run.loss)}",
        run.device or "…",
        clock(plan.elapsed()) + (f" / ETA {clock(eta)}" if eta is not None else ""),
    ]
    running = sum(r.state == "running" for r in plan.runs)
    if running > 1:  # a plan run with --jobs: the line follows the newest
        parts.insert(1, f"{running} running")
    if devices := devices_text(plan.devices):
        parts.append(devices)
    if run.reason and run.state != "running":
        parts.append(f"run {run.state}: {run.reason}")
    if plan.lost is not None and plan.lost.run_dir and run.state == "lost":
        parts.append(f"lplr-tui run --resume {plan.lost.run_dir} continues it")
    return " · ".join(parts)


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("c", "cancel", "cancel"),
        Binding("e", "app.export", "export"),
        Binding("o", "overlay", "overlay"),
        Binding("n", "next_run", "next run"),
        Binding("p", "previous_run", "prev run"),
        Binding("P", "figure", "figure"),
        Binding("f", "follow", "follow"),
        Binding("t", "table", "table"),
        Binding("m", "edge_map", "map"),
        Binding("x", "theory", "theory"),
        Binding("g", "guide", "guide"),
        Binding("b", "back", "back", show=False),
    ]  # ? and q are the app's

    def __init__(self, plan: PlanView, overlay: bool = False):
        super().__init__()
        self.plan = plan
        self.guide = plan.guide  # "" until the first run's spec has come
        self.selected = 0
        self.follow = True  # show the run in progress, until the user picks another (f: again)
        self.overlay = overlay
        self.theory = False
        self.drawn_version = -1
        self.drawn_status = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        with Horizontal():
            with Vertical(id="runs-pane"):
                yield Label("runs", classes="pane-title")
                yield ListView(id="runs")
                yield Static(f"[o] overlay: {'on' if self.overlay else 'off'}", id="overlay-hint")
            with Grid(id="charts"):
                for chart_id, title, log, _ in CHARTS:
                    yield DiagnosticChart(title, log=log, id=chart_id)
            with VerticalScroll(id="guide-pane"):
                yield Static(Text(self.guide or "(this preset has no guide)"), id="guide-text")
                yield Label("noticed", classes="pane-title")
                yield Static("", id="annotations")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#guide-pane").display = self.app.size.width >= 120  # room for it; g toggles
        self.set_interval(REDRAW_EVERY, self.redraw)
        self.redraw()

    # ------------------------------------------------------------ drawing

    def redraw(self, force: bool = False) -> None:
        if not self.is_mounted or not self.children:
            return  # a timer that fires while the screen is being taken down (the app quitting)
        status = status_line(self.plan)
        if status != self.drawn_status:  # the clock moves once a second; an ended plan's line stays
            self.drawn_status = status
            self.query_one("#status", Static).update(Text(status))
        if self.plan.version == self.drawn_version and not force:
            return
        self.drawn_version = self.plan.version
        current = self.plan.current
        if self.follow and current is not None and current.index != self.selected:
            self.selected = current.index
            if self.query_one("#runs", ListView).children:
                self.query_one("#runs", ListView).index = self.selected
        self.update_run_list()
        self.update_charts()
        self.update_annotations()

    def update_run_list(self) -> None:
        view = self.query_one("#runs", ListView)
        if len(view.children) != len(self.plan.runs):
            view.clear()
            view.extend(
                ListItem(Label(Text(run_line(run)), id=f"run-label-{run.index}"), name=str(run.index)) for run in self.plan.runs
            )
            view.index = self.selected
            return  # the new labels already say what is current
        for run in self.plan.runs:
            self.query_one(f"#run-label-{run.index}", Label).update(Text(run_line(run)))

    def shown_runs(self) -> list[RunView]:
        if not self.plan.runs:
            return []
        if self.overlay:
            return [r for r in self.plan.runs if r.trajectory.epoch]
        return [self.plan.runs[min(self.selected, len(self.plan.runs) - 1)]]

    def update_charts(self) -> None:
        runs = self.shown_runs()
        data = [(run, run.series()) for run in runs]
        lines = {"marks": self.stable_marks(runs), "noticed": self.noticed(runs)}
        for chart_id, title, _, (x_key, y_key) in CHARTS:
            chart = self.query_one("#" + chart_id, DiagnosticChart)
            if self.theory and chart_id in THEORY:
                self.draw_theory(chart, chart_id, data, lines)
                continue
            series = [Series(run.label, s[x_key], s[y_key], COLOURS[run.index % len(COLOURS)]) for run, s in data]
            chart.show(series, note=self.note(chart_id, data), title=title, **lines)

    def draw_theory(self, chart: DiagnosticChart, chart_id: str, data: list, lines: dict) -> None:
        title, parts, levels = THEORY[chart_id]
        series = [
            Series(f"{run.label} {what}".strip(), s[x_key], s[y_key], COLOURS[(run.index + 3 * i) % len(COLOURS)])
            for run, s in data
            for i, (x_key, y_key, what) in enumerate(parts)
        ]
        note = f"now {data[0][1]['step_class_now']}" if chart_id == "chart-lambda" and len(data) == 1 else ""
        chart.show(series, levels=levels, title=title, note=note, **lines)

    def update_annotations(self) -> None:
        lines = [f"[{run.label}] epoch {a.epoch}: {a.text}" for run in self.shown_runs() for a in run.annotations]
        self.query_one("#annotations", Static).update(Text("\n".join(lines) or "nothing yet"))
        if not self.guide and self.plan.guide:  # the guide comes with the first run's spec
            self.guide = self.plan.guide
            self.query_one("#guide-text", Static).update(Text(self.guide))

    @staticmethod
    def noticed(runs: list[RunView]) -> list[float]:
        return sorted({a.epoch for run in runs for a in run.annotations})

    @staticmethod
    def stable_marks(runs: list[RunView]) -> list[float]:
        """The stable regime, once a single run has ended and its summary says where it is."""
        if len(runs) != 1 or "stable_from" not in runs[0].summary:
            return []
        return [runs[0].summary["stable_from"], runs[0].summary["stable_to"]]

    @staticmethod
    def note(chart_id: str, data: list) -> str:
        if chart_id != "chart-subopt" or not data:
            return ""
        if any(s["l_star_provisional"] for _, s in data):
            return "(log; L* provisional)"
        if len(data) == 1 and math.isfinite(data[0][1]["l_star"]):
            return f"(log; L* = final loss {data[0][1]['l_star']:.4g})"
        return "(log; L* = final loss)"

    # ------------------------------------------------------------ keys

    @on(ListView.Highlighted, "#runs")
    def run_highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is None or event.list_view.index != int(event.item.name):
            return  # a highlight the list has moved past (the list was just rebuilt)
        if int(event.item.name) != self.selected:
            self.selected = int(event.item.name)
            self.follow = False  # the user chose this run
            self.redraw(force=True)

    def select_run(self, step: int) -> None:
        if self.plan.runs:
            self.follow = False
            self.selected = (self.selected + step) % len(self.plan.runs)
            self.query_one("#runs", ListView).index = self.selected
            self.redraw(force=True)

    def action_next_run(self) -> None:
        self.select_run(+1)

    def action_previous_run(self) -> None:
        self.select_run(-1)

    def action_follow(self) -> None:
        self.follow = True
        self.notify("following the run in progress", timeout=2)
        self.redraw(force=True)

    def action_overlay(self) -> None:
        self.overlay = not self.overlay
        self.query_one("#overlay-hint", Static).update(f"[o] overlay: {'on' if self.overlay else 'off'}")
        self.redraw(force=True)

    def action_guide(self) -> None:
        pane = self.query_one("#guide-pane")
        pane.display = not pane.display

    def action_theory(self) -> None:
        self.theory = not self.theory
        self.notify("theory view: " + ("edge of stability and the PL bound" if self.theory else "off"), timeout=2)
        self.redraw(force=True)

    def action_figure(self) -> None:
        """P: the current view (one run or the overlay, normal or theory) as a PDF by the
        figures' code, and the dashboard as an SVG screenshot, beside the run directories."""
        from engine.record import slug
        from lplr_tui.figures import DEFAULT_PANELS, THEORY_PANELS, FigureRun

        runs = [r for r in self.shown_runs() if r.trajectory.epoch]
        if not runs:
            self.notify("nothing measured yet: no figure", severity="warning")
            return
        # the results directory the app was given (a log's run_dir is not trusted with a path)
        where = self.app.results_dir.resolve()
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(self.plan.name or 'plan')}-{'overlay' if self.overlay else slug(runs[0].label)}"
        base += "-theory" if self.theory else ""
        stem = base
        for n in range(2, 1000):  # P twice in a second: two figures
            if not (where / f"{stem}.pdf").exists():
                break
            stem = f"{base}-{n}"
        try:
            where.mkdir(parents=True, exist_ok=True)
            screenshot = self.app.save_screenshot(f"{stem}-screen.svg", str(where))
        except OSError as exc:
            self.notify(f"screenshot failed: {where}: {exc.strerror or exc}", severity="error", markup=False)
            return
        self.notify(f"screenshot: {screenshot}\ndrawing the figure…", timeout=6, markup=False)
        # copies: the drain goes on adding epochs to the live runs while the worker draws
        copies = [FigureRun.of_view(run) for run in runs]
        self.write_figure(copies, where / f"{stem}.pdf", DEFAULT_PANELS + (THEORY_PANELS if self.theory else ()))

    @work(thread=True, exclusive=True, group="figure")
    def write_figure(self, runs: list, path: Path, panels: tuple) -> None:
        """On a thread: matplotlib draws and saves; the result comes back as a message."""
        from engine.errors import LplrError
        from lplr_tui.figures import parse_size, write

        try:
            self.post_message(FigureWritten(write(runs, path, panels, parse_size(None, len(panels)), group=False)))
        except LplrError as exc:
            self.post_message(FigureFailed(f"figure failed: {exc}"))
        except Exception as exc:  # whatever matplotlib raises, the dashboard stays (a worker's error would end the app)
            self.post_message(FigureFailed(f"figure failed: {type(exc).__name__}: {exc}"))

    @on(FigureWritten)
    def figure_written(self, message: FigureWritten) -> None:
        self.notify(f"figure: {message.path}", timeout=10, markup=False)

    @on(FigureFailed)
    def figure_failed(self, message: FigureFailed) -> None:
        self.notify(message.text, severity="error", timeout=10, markup=False)

    def action_edge_map(self) -> None:
        from lplr_tui.screens.edgemap import EdgeMapScreen

        self.app.push_screen(EdgeMapScreen(self.plan))

    def action_cancel(self) -> None:
        self.app.cancel_plan()

    def action_table(self) -> None:
        self.app.show_table()

    def action_back(self) -> None:
        self.app.back_to_picker()

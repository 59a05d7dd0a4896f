"""The map of where the local regime ends (a sweep of optim.lr_scale over widths, as the edge
preset runs): a coloured table, a cell per run, redrawn as runs start and finish."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from lplr_tui.plan_view import PlanView
from lplr_tui.tables import edge_notes, edge_of_runs, edge_table

REDRAW_EVERY = 0.5  # seconds


class EdgeMapScreen(Screen):
    BINDINGS = [Binding("escape,m", "app.pop_screen", "back")]  # ? and q are the app's

    def __init__(self, plan: PlanView):
        super().__init__()
        self.plan = plan
        self.drawn_version = -1
        self.drawn: object = Text("")  # what the map shows now (a rich renderable)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="map-pane"):
            yield Static("", id="map")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REDRAW_EVERY, self.redraw)
        self.redraw()

    def redraw(self) -> None:
        if self.plan.version == self.drawn_version or not self.is_mounted:
            return
        self.drawn_version = self.plan.version
        edge = edge_of_runs(self.plan.runs)
        started = sum(r.spec is not None for r in self.plan.runs)
        if not edge.is_a_map and started < len(self.plan.runs):
            self.drawn = Text(f"the map fills in as the runs start: {started} of {len(self.plan.runs)} have, and a map needs two "
                              "widths at two steps set against β₀ (optim.lr_scale)")
        elif not edge.is_a_map:
            self.drawn = Text("no map: this plan is not a sweep of optim.lr_scale over two widths or more (the edge preset is one)")
        else:
            title = f"{self.plan.name}: where the local regime ends (width × η·β₀)"
            self.drawn = Group(edge_table(title, edge), *(Text(line) for line in edge_notes(edge)))
        self.query_one("#map", Static).update(self.drawn)

"""Table 1 of the plan, one row per run, as a DataTable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from lplr_tui.plan_view import PlanView
from lplr_tui.tables import CAPTION, columns_for, row_cells, row_values


class SummaryScreen(Screen):
    BINDINGS = [
        Binding("escape,t", "app.pop_screen", "back"),
        Binding("e", "app.export", "export"),
        Binding("question_mark", "app.help", "help"),
        Binding("q", "app.quit_app", "quit"),
    ]

    def __init__(self, plan: PlanView):
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        yield Static(f"[b]{self.plan.name}[/b]: summary (Table 1)", id="summary-title")
        yield DataTable(id="summary", zebra_stripes=True, cursor_type="row")
        yield Static(CAPTION.format(regime=""), id="summary-caption")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        columns = columns_for([r.state for r in self.plan.runs] + ["running"])
        table.add_columns(*(header.replace("\n", " ") for header, _, _ in columns))
        for run in self.plan.runs:
            table.add_row(*row_cells(row_values(run.label, run.spec, run.summary, run.state), columns))

"""Table 1 of the plan, one row per run, as a DataTable."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from lplr_tui.plan_view import PlanView
from lplr_tui.tables import columns_for, extra_tables, is_table2, rows_of, table_caption, table_rows, verdict_lines


class SummaryScreen(Screen):
    BINDINGS = [
        Binding("escape,t", "app.pop_screen", "back"),
        Binding("e", "app.export", "export"),
    ]  # ? and q are the app's

    def __init__(self, plan: PlanView):
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        self.rows = rows_of(self.plan.runs)
        yield Static(Text.assemble((self.plan.name, "bold"), f": summary (Table {2 if is_table2(self.rows) else 1})"), id="summary-title")
        with VerticalScroll(id="summary-pane"):
            yield DataTable(id="summary", zebra_stripes=True, cursor_type="row")
            yield Static(Text(table_caption(self.rows)), id="summary-caption")
            self.extra = extra_tables(self.rows)  # the theory and local-regime tables, where measured
            for i, (title, caption, _, _) in enumerate(self.extra):
                yield Static(Text(title), classes="extra-title")
                yield DataTable(id=f"extra-{i}", zebra_stripes=True, cursor_type="row")
                yield Static(Text(caption), classes="extra-caption")
            lines = verdict_lines([(r.label, r.verdicts) for r in self.plan.runs], self.plan.verdicts)
            yield Static(Text("verdicts\n" + "\n".join(lines) if lines else "verdicts: after the runs end"), id="verdicts")
        yield Footer()

    def on_mount(self) -> None:
        fill(self.query_one("#summary", DataTable), columns_for(self.rows), table_rows(self.rows))
        for i, (_, _, columns, cells) in enumerate(self.extra):
            fill(self.query_one(f"#extra-{i}", DataTable), columns, cells)


def fill(table: DataTable, columns: list, rows: list[list[str]]) -> None:
    table.add_columns(*(header.replace("\n", " ") for header, _, _ in columns))
    for cells in rows:
        table.add_row(*map(Text, cells))

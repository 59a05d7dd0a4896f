"""A plan's summary beside its run directories: TOML (rows, and Table 2's mean) and text."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from engine.atomic import write_text_atomic
from engine.record import RECORD_NAME, write_plan_summary
from lplr_tui.tables import Row, plan_mean, summary_table, theory_table


def export_plan(results_dir: Path, plan: str, rows: list[Row], run_dirs: list[str], verdicts: list | None = None) -> list[Path]:
    """Writes <time>-<plan>-summary.toml and .txt; returns their paths."""
    runs = [
        {"label": label, "state": state, "record": str(Path(run_dir) / RECORD_NAME), "summary": summary}
        for (label, _, summary, state, _), run_dir in zip(rows, run_dirs)
    ]
    mean = plan_mean(rows)
    path = write_plan_summary(results_dir, plan, runs, mean[0] if mean else None, verdicts or [])
    console = Console(record=True, width=160, file=io.StringIO(), emoji=False)
    console.print(summary_table(plan, rows))
    for table in theory_table(plan, rows):
        console.print(table)
    text = path.with_suffix(".txt")
    write_text_atomic(text, console.export_text())
    return [path, text]

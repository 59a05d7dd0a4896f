"""Table 1 (the MLP runs) as a rich Table, from the summaries the engine computed."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from engine.record import Record

# (header, where the value lives, format)
TABLE1 = [
    ("run", "label", "s"),
    ("width", "width", "d"),
    ("params", "params", ","),
    ("λ_0", "lambda_0", ".4g"),
    ("λ_T", "lambda_T", ".4g"),
    ("NTK\ndrift %", "ntk_drift_pct", ".1f"),
    ("final\ndrift", "drift_final", ".3g"),
    ("L*", "l_star", ".4g"),
    ("PL\nmin", "pl_min", ".4g"),
    ("ρ", "contraction", ".5f"),
    ("state", "state", "s"),
]
CAPTION = (
    "λ: NTK λ_min on the probe subset at the first and last probe; drift: final ‖θ_T − θ_0‖; "
    "L*: terminal-loss proxy; PL min and ρ (contraction per epoch) on the stable regime{regime}."
)


def cell(value: object, fmt: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return format(value, fmt)


def row_values(record: Record) -> dict:
    summary = record.summary
    state = record.state
    if summary.get("l_star_provisional") and state != "running":
        state += " (L* provisional)"
    return {
        **summary,
        "label": record.label,
        "width": record.spec.get("model", {}).get("width", ""),
        "state": state,
    }


def table1(records: list[Record], title: str = "Table 1") -> Table:
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
        caption=CAPTION.format(regime=regimes(records)), caption_justify="left",
    )
    # the state column earns its place only when some run did not finish
    columns = [c for c in TABLE1 if c[1] != "state" or any(r.state != "finished" for r in records)]
    for header, _, fmt in columns:
        text = fmt == "s"
        table.add_column(
            header, justify="left" if text else "right", overflow="fold", no_wrap=not text,
            min_width=6 if header == "run" else None,
        )
    for record in records:
        values = row_values(record)
        table.add_row(*(cell(values.get(key), fmt) for _, key, fmt in columns))
    return table


def regimes(records: list[Record]) -> str:
    windows = {(r.summary["stable_from"], r.summary["stable_to"]) for r in records if "stable_from" in r.summary}
    return (" (epochs " + ", ".join(f"{a}–{b}" for a, b in sorted(windows)) + ")") if windows else ""

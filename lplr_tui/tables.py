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
    if isinstance(value, str) and fmt != "s":
        return value
    return format(value, fmt)


# a run that diverged or failed has no meaningful L*, so nothing computed from L* is shown
FROM_L_STAR = ("l_star", "pl_min", "pl_median", "contraction")


def row_values(label: str, spec: dict, summary: dict, state: str) -> dict:
    values = {**summary, "label": label, "width": spec.get("model", {}).get("width", ""), "state": state}
    if state in ("diverged", "failed"):
        values.update({key: state for key in FROM_L_STAR})
    elif summary.get("l_star_provisional") and state != "running":
        values["state"] = state + " (L* provisional)"
    return values


def columns_for(states: list[str]) -> list[tuple[str, str, str]]:
    """Table 1's columns; the state column earns its place only when some run did not finish."""
    return [c for c in TABLE1 if c[1] != "state" or any(s != "finished" for s in states)]


def row_cells(values: dict, columns: list[tuple[str, str, str]]) -> list[str]:
    return [cell(values.get(key), fmt) for _, key, fmt in columns]


def table1(records: list[Record], title: str = "Table 1") -> Table:
    return table1_from_rows(title, [(r.label, r.spec, r.summary, r.state) for r in records])


def table1_from_rows(title: str, rows: list[tuple[str, dict, dict, str]]) -> Table:
    """rows: (label, spec, summary, state) per run."""
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
        caption=CAPTION.format(regime=regimes([summary for _, _, summary, _ in rows])), caption_justify="left",
    )
    columns = columns_for([state for *_, state in rows])
    for header, _, fmt in columns:
        text = fmt == "s"
        table.add_column(
            header, justify="left" if text else "right", overflow="fold", no_wrap=not text,
            min_width=6 if header == "run" else None,
        )
    for label, spec, summary, state in rows:
        table.add_row(*row_cells(row_values(label, spec, summary, state), columns))
    return table


def regimes(summaries: list[dict]) -> str:
    windows = {(s["stable_from"], s["stable_to"]) for s in summaries if "stable_from" in s}
    return (" (epochs " + ", ".join(f"{a}–{b}" for a, b in sorted(windows)) + ")") if windows else ""

"""Table 1 (the MLP runs) and Table 2 (the CNN seeds, with a mean row) as rich Tables, from
the summaries the engine computed."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table

from engine.analysis import mean_summary
from engine.config import short_float
from engine.record import Record

Row = tuple[str, dict, dict, str]  # label, spec, summary, state

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
TABLE2 = [
    ("run", "label", "s"),
    ("params", "params", ","),
    ("PL\nmin", "pl_min", ".4g"),
    ("PL\nmedian", "pl_median", ".4g"),
    ("final\ndrift", "drift_final", ".4g"),
    ("L*", "l_star", ".4g"),
    ("λ_0", "lambda_0", ".4g"),
    ("λ_T", "lambda_T", ".4g"),
    ("state", "state", "s"),
]
THEORY_COLUMNS = [
    ("run", "label", "s"),
    ("λ_max(∇²L)\nmax", "sharpness_max", ".4g"),
    ("η·λ_max/2\nmax", "eos_ratio_max", ".3f"),
    ("PL bound\nholds", "pl_bound_holds_frac", ".0%"),
    ("L̂_K", "lipschitz_K", ".4g"),
    ("R", "drift_max", ".3g"),
    ("margin\nλ_0 − L̂_K·R", "compat_margin", ".4g"),
    ("μ", "pl_mu", ".3g"),
]
THEORY_CAPTION = (
    "The theorems' hypotheses: sharpness λ_max(∇²L) (GD is stable while η·λ_max/2 < 1); the share "
    "of theory probes where PL ratio ≥ (λ_min(K_N)/N)·L/(L − L*); L̂_K = max ‖K_t − K_0‖₂/‖θ_t − θ_0‖ "
    "on the NTK subset; R = max drift; μ = margin/N when the margin is positive."
)
CAPTION = (
    "λ: NTK λ_min on the probe subset at the first and last probe; drift: final ‖θ_T − θ_0‖; "
    "L*: terminal-loss proxy; PL statistics{rho} on the stable regime{regime}."
)
# a run that diverged or failed has no meaningful L*, so nothing computed from L* is shown
FROM_L_STAR = ("l_star", "pl_min", "pl_median", "contraction")


def cell(value: object, fmt: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, str) and fmt != "s":
        return value
    return format(value, fmt)


def row_values(label: str, spec: dict, summary: dict, state: str) -> dict:
    values = {**summary, "label": label, "width": spec.get("model", {}).get("width", ""), "state": state}
    if state in ("diverged", "failed"):
        values.update({key: state for key in FROM_L_STAR})
    elif summary.get("l_star_provisional") and state != "running":
        values["state"] = state + " (L* provisional)"
    return values


def is_table2(rows: list[Row]) -> bool:
    """The CNN runs are reported per seed (paper's Table 2); everything else as Table 1."""
    return bool(rows) and all(spec.get("model", {}).get("kind") == "resnet-gn" for _, spec, _, _ in rows)


def columns_for(rows: list[Row]) -> list[tuple[str, str, str]]:
    """The table's columns; the state column earns its place only when some run did not finish."""
    columns = TABLE2 if is_table2(rows) else TABLE1
    return [c for c in columns if c[1] != "state" or any(state != "finished" for *_, state in rows)]


def row_cells(values: dict, columns: list[tuple[str, str, str]]) -> list[str]:
    return [cell(values.get(key), fmt) for _, key, fmt in columns]


def rows_of(runs: list) -> list[Row]:
    """The table rows of records or of the app's run views (both have these four fields)."""
    return [(r.label, r.spec, r.summary, r.state) for r in runs]


def plan_mean(rows: list[Row]) -> tuple[dict, int] | None:
    """Table 2's mean over the finished runs (the engine's mean_summary) and how many; None
    for Table 1."""
    if not is_table2(rows):
        return None
    finished = [summary for _, _, summary, state in rows if state == "finished"]
    return mean_summary(finished), len(finished)


def table_rows(rows: list[Row]) -> list[list[str]]:
    """The cells of every row, and Table 2's mean row."""
    columns = columns_for(rows)
    cells = [row_cells(row_values(*row), columns) for row in rows]
    if (mean := plan_mean(rows)) is not None:
        summary, count = mean
        cells.append(row_cells({**summary, "label": f"mean of {count}", "state": ""}, columns))
    return cells


def rich_table(title: str, caption: str, columns: list[tuple[str, str, str]]) -> Table:
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
        padding=(0, 1), caption=caption, caption_justify="left",
    )
    for header, _, fmt in columns:
        text = fmt == "s"
        table.add_column(header, justify="left" if text else "right", overflow="fold", no_wrap=not text,
                         min_width=6 if header == "run" else None)
    return table


def table_caption(rows: list[Row]) -> str:
    rho = "" if is_table2(rows) else " and ρ (contraction per epoch)"
    return CAPTION.format(rho=rho, regime=regimes([s for _, _, s, _ in rows]))


def summary_table(title: str, rows: list[Row]) -> Table:
    table2 = is_table2(rows)
    table = rich_table(f"{title} (Table {2 if table2 else 1})", table_caption(rows), columns_for(rows))
    all_cells = table_rows(rows)
    for i, cells in enumerate(all_cells):
        table.add_row(*cells, end_section=table2 and i == len(all_cells) - 2)
    return table


def regimes(summaries: list[dict]) -> str:
    windows = {(s["stable_from"], s["stable_to"]) for s in summaries if "stable_from" in s}
    return (" (epochs " + ", ".join(f"{a}–{b}" for a, b in sorted(windows)) + ")") if windows else ""


def has_theory(rows: list[Row]) -> bool:
    keys = ("sharpness_max", "lipschitz_K")
    return any(isinstance(summary.get(k), float) and math.isfinite(summary[k]) for _, _, summary, _ in rows for k in keys)


def theory_cells(rows: list[Row]) -> list[list[str]]:
    return [row_cells({**summary, "label": label}, THEORY_COLUMNS) for label, _, summary, _ in rows]


def theory_table(title: str, rows: list[Row]) -> Table:
    table = rich_table(f"{title} (the theorems' hypotheses)", THEORY_CAPTION, THEORY_COLUMNS)
    for cells in theory_cells(rows):
        table.add_row(*cells)
    return table


def advice_lines(advice: list) -> list[str]:
    """One line per run of `engine.theory.Advice`; UNSTABLE where η > 2/λ_max(∇²L)."""
    width = max(len(a.label) for a in advice)
    return [
        f"{a.label:<{width}}  η = {short_float(a.lr):<7} λ_max(∇²L) = {a.sharpness:<8.4g} λ_max(K_N)/N = {a.gauss_newton:<8.4g} "
        f"largest stable step 2/λ_max = {a.max_stable_lr:.2e}  {'UNSTABLE' if a.unstable else 'stable'}"
        for a in advice
    ]


def verdict_lines(runs: list[tuple[str, list]], plan: list) -> list[str]:
    """runs: (label, verdict dicts) per run; plan: the cross-run verdict dicts."""
    lines = []
    for label, verdicts in runs:
        if verdicts:
            lines.append(label)
            lines += [f"  {'✓' if v['passed'] else '✗'} {v['text']}" for v in verdicts]
    if plan:
        lines.append("across the plan")
        lines += [f"  {'✓' if v['passed'] else '✗'} {v['text']}" for v in plan]
    return lines


def record_verdicts(record: Record) -> list[dict]:
    return [{"name": name, **v} for name, v in record.verdict.items()]

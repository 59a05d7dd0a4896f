"""Table 1 (the MLP runs) and Table 2 (the CNN seeds, with a mean row) as rich Tables, from
the summaries the engine computed."""

from __future__ import annotations

import math
from collections import Counter

from rich import box
from rich.table import Table
from rich.text import Text

from engine.analysis import INSIDE, OUTSIDE, UNSTABLE, mean_summary
from engine.config import short_float
from engine.errors import printable
from engine.kinds import kind_in
from engine.record import Record

Row = tuple[str, dict, dict, str, object]  # label, spec, summary, state, trajectory

# (header, where the value lives, format)
TABLE1 = [
    ("run", "label", "s"),
    ("width", "width", "d"),
    ("params", "params", ","),
    ("λ_0", "lambda_0", ".4g"),
    ("λ_T", "lambda_T", ".4g"),
    ("NTK\ndrift %", "ntk_drift_pct", ".1f"),
    ("final\ndrift", "drift_final", ".3g"),
    ("PL min\nμ̂", "pl_min", ".4g"),
    ("decay", "decay", "s"),
    ("ρ", "contraction", ".5f"),
    ("state", "state", "s"),
]
TABLE2 = [
    ("run", "label", "s"),
    ("params", "params", ","),
    ("PL min\nμ̂", "pl_min", ".4g"),
    ("PL\nmedian", "pl_median", ".4g"),
    ("final\ndrift", "drift_final", ".4g"),
    ("decay", "decay", "s"),
    ("λ_0", "lambda_0", ".4g"),
    ("λ_T", "lambda_T", ".4g"),
    ("state", "state", "s"),
]
THEORY_COLUMNS = [
    ("run", "label", "s"),
    ("η·β\ninit", "eta_beta_0", ".3g"),
    ("η·β\nmax", "eta_beta_max", ".3g"),
    ("step size (at max η·β)", "step_class_max", "s"),
    ("ρ_PL", "rho_pl", ".6f"),
    ("ρ\nobserved", "rho_observed", ".6f"),
    ("PL\nexplains", "pl_explains", ".1%"),
    ("suff.\ndecrease", "sufficient_decrease_frac", ".1%"),
    ("margin\nλ_0 − L̂_K·R", "compat_margin", ".4g"),
    ("μ on S", "pl_mu", ".3g"),
]
THEORY_CAPTION = (
    "η·β with β = λ_max(∇²L): ≤ 1 inside the theorem, < 2 stable but outside it, ≥ 2 unstable. "
    "ρ_PL = 1 − η·μ̂ is the rate the PL envelope μ̂ guarantees while η ≤ 1/β; ρ observed is the "
    "loss's mean contraction per epoch against L* = 0 on the stable regime; PL explains = "
    "log ρ_PL / log ρ observed. Sufficient decrease: share of steps with L_t+1 ≤ L_t − (η/2)‖∇L_t‖². "
    "margin: λ_0 − L̂_K·R with L̂_K = max ‖K_t − K_0‖₂/‖θ_t − θ_0‖ and R = max drift; μ on S = "
    "margin/n, vacuous when the margin is ≤ 0."
)
LOCAL_COLUMNS = [
    ("run", "label", "s"),
    ("‖K_t − K_0‖₂\n/‖K_0‖₂ max", "kernel_change_rel_max", ".3g"),
    ("λ_min\nrise %", "lambda_rise_pct", ".0f"),
    ("λ_min\nfall %", "lambda_fall_pct", ".0f"),
    ("Weyl\nmin", "weyl_min", ".4g"),
    ("at\nepoch", "weyl_min_epoch", ".0f"),
    ("drift\nspeed-up", "drift_speedup", ".2f"),
    ("loss\nspike", "loss_spike", ".3g"),
    ("loss rises\n(steps)", "loss_rise_frac", ".1%"),
]
LOCAL_CAPTION = (
    "The local regime, at every probe: the kernel's change relative to ‖K_0‖₂ (lazy training: "
    "small); λ_min's largest rise and fall against λ_0; the Weyl certificate λ_0 − ‖K_t − K_0‖₂ "
    "(≤ 0: the guarantee is vacuous); the drift's fastest speed as a multiple of its first step's; "
    "the loss's largest rise over its running minimum, and the share of steps where it rose."
)
CAPTION = (
    "λ: NTK λ_min on the probe subset at the first and last probe; drift: final ‖θ_T − θ_0‖; "
    "on the stable regime{regime}: μ̂, the PL ratio's lower envelope against L* = 0, and the decay "
    "(geometric, power-law or undecided by BIC){rho}. The terminal-loss proxy is not used here."
)
# a run that diverged or failed has no meaningful decay or envelope
FROM_L_STAR = ("pl_min", "pl_median", "contraction", "decay")


def cell(value: object, fmt: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, str) and fmt != "s":
        return value
    return format(value, fmt)


def decay_cell(summary: dict) -> str:
    model = summary.get("decay_model", "")
    if model == "power-law" and isinstance(summary.get("decay_p"), float) and math.isfinite(summary["decay_p"]):
        return f"power-law p={summary['decay_p']:.2g}"
    return model


def row_values(label: str, spec: dict, summary: dict, state: str, trajectory: object = None) -> dict:
    kind = kind_in(spec.get("model"))
    width = kind.width(spec["model"]) if kind is not None else spec.get("model", {}).get("width", "")
    values = {**summary, "label": label, "width": width, "state": state, "decay": decay_cell(summary)}
    if isinstance(summary.get("compat_margin"), float) and summary["compat_margin"] <= 0:
        values["pl_mu"] = "vacuous"
    if state in ("diverged", "failed"):
        values.update({key: state for key in FROM_L_STAR})
    elif summary.get("l_star_provisional") and state != "running":
        values["state"] = state + " (L* provisional)"
    return values


def is_table2(rows: list[Row]) -> bool:
    """The CNN runs are reported per seed (paper's Table 2); everything else as Table 1."""
    return bool(rows) and all(getattr(kind_in(row[1].get("model")), "table", 1) == 2 for row in rows)


def columns_for(rows: list[Row]) -> list[tuple[str, str, str]]:
    """The table's columns; the state column earns its place only when some run did not finish."""
    columns = TABLE2 if is_table2(rows) else TABLE1
    return [c for c in columns if c[1] != "state" or any(row[3] != "finished" for row in rows)]


def row_cells(values: dict, columns: list[tuple[str, str, str]]) -> list[str]:
    return [cell(values.get(key), fmt) for _, key, fmt in columns]


def rows_of(runs: list) -> list[Row]:
    """The table rows of records (their spec a dict) or of the app's run views (a Spec)."""
    return [(r.label, r.spec.to_dict() if hasattr(r.spec, "to_dict") else (r.spec or {}), r.summary, r.state, r.trajectory) for r in runs]


def plan_mean(rows: list[Row]) -> tuple[dict, int] | None:
    """Table 2's mean over the finished runs (the engine's mean_summary) and how many; None
    for Table 1."""
    if not is_table2(rows):
        return None
    finished = [(summary, trajectory) for _, _, summary, state, trajectory in rows if state == "finished"]
    return mean_summary([f[0] for f in finished], [f[1] for f in finished]), len(finished)


def table_rows(rows: list[Row]) -> list[list[str]]:
    """The cells of every row, and Table 2's mean row."""
    columns = columns_for(rows)
    cells = [row_cells(row_values(*row), columns) for row in rows]
    if (mean := plan_mean(rows)) is not None:
        summary, count = mean
        label = f"all {count}: PL min the minimum, PL median pooled, the rest the mean"
        cells.append(row_cells({**summary, "label": label, "state": ""}, columns))
    return cells


def rich_table(title: str, caption: str, columns: list[tuple[str, str, str]]) -> Table:
    table = Table(
        title=Text(title), title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
        padding=(0, 1), caption=caption, caption_justify="left",
    )
    for header, _, fmt in columns:
        text = fmt == "s"
        table.add_column(header, justify="left" if text else "right", overflow="fold", no_wrap=not text,
                         min_width=6 if header == "run" else None)
    return table


def table_caption(rows: list[Row]) -> str:
    rho = "" if is_table2(rows) else "; ρ: the geometric fit's contraction per epoch"
    return CAPTION.format(rho=rho, regime=regimes([row[2] for row in rows]))


def summary_table(title: str, rows: list[Row]) -> Table:
    table2 = is_table2(rows)
    table = rich_table(f"{title} (Table {2 if table2 else 1})", table_caption(rows), columns_for(rows))
    all_cells = table_rows(rows)
    for i, cells in enumerate(all_cells):
        table.add_row(*map(Text, cells), end_section=table2 and i == len(all_cells) - 2)
    return table


def regimes(summaries: list[dict]) -> str:
    windows = {(s["stable_from"], s["stable_to"]) for s in summaries if "stable_from" in s}
    return (" (epochs " + ", ".join(f"{a}–{b}" for a, b in sorted(windows)) + ")") if windows else ""


def measured(rows: list[Row], columns: list[tuple[str, str, str]]) -> bool:
    """Whether any run has a finite value in any of the columns (besides the label)."""
    return any(isinstance(row[2].get(key), float) and math.isfinite(row[2][key]) for row in rows for _, key, _ in columns[1:])


def has_theory(rows: list[Row]) -> bool:
    return measured(rows, THEORY_COLUMNS)


def column_cells(rows: list[Row], columns: list[tuple[str, str, str]]) -> list[list[str]]:
    return [row_cells(row_values(*row), columns) for row in rows]


def theory_cells(rows: list[Row]) -> list[list[str]]:
    return column_cells(rows, THEORY_COLUMNS)


def extra_tables(rows: list[Row]) -> list[tuple[str, str, list, list[list[str]]]]:
    """(title, caption, columns, cells) of the theory and local-regime tables, where measured."""
    out = []
    for title, caption, columns in (("the theorems' hypotheses", THEORY_CAPTION, THEORY_COLUMNS), ("the local regime", LOCAL_CAPTION, LOCAL_COLUMNS)):
        if measured(rows, columns):
            out.append((title, caption, columns, column_cells(rows, columns)))
    return out


def theory_table(title: str, rows: list[Row]) -> list[Table]:
    tables = []
    for name, caption, columns, cells in extra_tables(rows):
        table = rich_table(f"{title} ({name})", caption, columns)
        for row in cells:
            table.add_row(*map(Text, row))
        tables.append(table)
    return tables


def two_digits(x: float) -> str:
    return short_float(float(f"{x:.2g}")) if math.isfinite(x) else "—"


def advice_rows(advice: list) -> list[list[str]]:
    """Per run: label, η, β = λ_max(∇²L) at θ_0, 1/β, 2/β and the step-size class."""
    return [[a.label, short_float(a.lr), f"{a.sharpness:.4g}", two_digits(1 / a.sharpness) if a.sharpness > 0 else "—",
             two_digits(2 / a.sharpness) if a.sharpness > 0 else "—", a.step_class] for a in advice]


def momentum_lines(advice: list) -> list[str]:
    """For the runs with momentum: heavy ball's edge and the effective step, against β."""
    lines = []
    for a in advice:
        if a.momentum and a.sharpness > 0:
            lines.append(
                f"{a.label}: momentum μ = {a.momentum:g}; heavy ball is stable below η = 2(1+μ)/β = {two_digits(a.max_stable_lr)} "
                f"(η·β = {a.lr * a.sharpness:.3g}, edge {2 * (1 + a.momentum):.3g}); "
                f"its effective step η/(1−μ) = {short_float(a.effective_lr)} is {a.effective_lr * a.sharpness:.3g}/β. "
                "The theorem covers plain gradient descent only."
            )
    return lines


ADVICE_HEADERS = ["run", "η", "β", "1/β", "2/β", "at initialisation"]


SHORT_CLASS = {INSIDE: "inside", OUTSIDE: "outside", UNSTABLE: "unstable"}


def advice_lines(advice: list, compact: bool = False) -> list[str]:
    """A plain table of the step-size advice, one line per run, within 80 columns for the
    usual labels; the class says whether η is inside the theorem (η ≤ 1/β), stable but
    outside it (1/β < η < 2/β) or unstable (η ≥ 2/β). `compact` (the picker's pane, about 55
    columns at 80): no η column, the classes in one word, and a legend."""
    rows = [ADVICE_HEADERS] + advice_rows(advice)
    if compact:
        rows = [[r[0], *r[2:5], SHORT_CLASS.get(r[5], r[5])] for r in rows]
        rows[0][-1] = "η is"
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i in (0, last) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    if compact:
        return lines + ["β = λ_max(∇²L) at θ_0. inside: η ≤ 1/β (the", "theorem); outside: stable, η < 2/β; unstable: η ≥ 2/β",
                        "(with momentum μ: η ≥ 2(1+μ)/β)."] + momentum_lines(advice)
    return lines + ["β = λ_max(∇²L) at θ_0. The theorem needs η ≤ 1/β; GD is stable only below 2/β (heavy ball with "
                    "momentum μ below 2(1+μ)/β)."] + momentum_lines(advice)


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


# ---------------------------------------------------------------- runs from several plans


def started_of(record: Record) -> str:
    """When the run started, to the minute ("" when the record does not say)."""
    started = record.environment.get("started", "")
    return str(started)[:16].replace("T", " ") if isinstance(started, str) else ""


def shown_labels(records: list[Record]) -> list[str]:
    """Each run's label, with its plan and start where another run has the same label (runs of
    the same plan on two days), and its directory where even that is the same."""
    twice = Counter(r.label for r in records)
    labels = [f"{r.label} · {r.run.get('plan', '')} {started_of(r)}".rstrip() if twice[r.label] > 1 else r.label for r in records]
    twice = Counter(labels)
    return [f"{label} · {r.path.parent.name}" if twice[label] > 1 and r.path is not None else label for label, r in zip(labels, records)]


def compare_table(title: str, records: list[Record]) -> tuple[Table, list[str]]:
    """Table 1 or 2's columns for runs of any plans, with each run's plan and start, and the
    keys where a run's spec differs beyond those the plans vary; and the lines that say so."""
    from engine.compare import experiment_of, flags, shown_value

    labels = shown_labels(records)  # in the lines below the table; in it, the plan and start have columns
    rows = rows_of(records)
    experiments = [experiment_of(r.spec, r.environment) for r in records]
    # a plan: its id (kept when a run is resumed); an older record's: the worker that wrote it
    plans = [r.run.get("plan_id") or (r.run.get("plan", ""), r.environment.get("host"), r.environment.get("pid"),
                                      r.environment.get("process_start")) for r in records]
    keys, varied, beyond = flags(experiments, plans)
    base = columns_for(rows)
    columns = [base[0], ("plan", "plan", "s"), ("started", "started", "s"), *base[1:]]
    if any(beyond):
        columns.append(("differs beyond\nthe varied keys", "differs", "s"))
    table = rich_table(f"{title} (Table {2 if is_table2(rows) else 1} columns)", table_caption(rows), columns)
    for row, record, experiment, extra in zip(rows, records, experiments, beyond):
        values = {**row_values(*row), "plan": str(record.run.get("plan", "")), "started": started_of(record),
                  "differs": printable(", ".join(f"{k} = {shown_value(experiment, k)}" for k in extra))}
        table.add_row(*map(Text, row_cells(values, columns)))
    notes = [f"the runs' specs differ in: {', '.join(keys) or 'nothing'}" + (f" (varied by their plans: {', '.join(varied)})" if varied else "")]
    flagged = [label for label, extra in zip(labels, beyond) if extra]
    if flagged:
        extra_keys = sorted({k for e in beyond for k in e})
        notes.append(f"flagged, not a controlled comparison: {', '.join(flagged)} differ in {', '.join(extra_keys)}, "
                     "which no plan here varies (see the last column)")
    return table, [printable(note) for note in notes]  # spec keys come from records


# ---------------------------------------------------------------- the edge map


SHORT_VERDICT = {"stays_lazy": "not lazy", "drift_contained": "drift", "no_loss_spike": "spike"}
SHORT_DECAY = {"geometric": "geometric", "power-law": "power law", "undecided": "undecided"}
CLASS_WORDS = {INSIDE: "inside the theorem (η·β ≤ 1)", OUTSIDE: "stable, outside it (1 < η·β < 2)", UNSTABLE: "unstable (η·β ≥ 2)"}


def edge_of(records: list[Record]):
    from engine.edge import edge_map

    return edge_map([(r.label, r.spec, r.summary, record_verdicts(r), r.state) for r in records])


def edge_of_runs(runs: list):
    """The map of the app's runs that have started (a waiting run's spec is not known yet)."""
    from engine.edge import edge_map

    return edge_map([(r.label, r.spec.to_dict(), r.summary, r.verdicts, r.state) for r in runs if r.spec is not None])


def edge_cell(cells: list) -> Text:
    """A cell of the map: stayed local (✓) or left (✗, and why); kernel change and λ_min's
    move; the decay model and the largest η·β reached."""
    if not cells:
        return Text("")
    out = Text()
    for i, c in enumerate(cells):  # several runs in one cell (seeds, or plans): each, under its label
        if len(cells) > 1:
            out.append(("\n\n" if i else "") + c.label + "\n", style="dim")
        if c.left is None:
            out.append(f"… {c.state}", style="dim")
        elif c.left:
            out.append("✗ " + "+".join(SHORT_VERDICT.get(v, v) for v in c.left), style="red")
        else:
            out.append("✓ local", style="green")
        out.append(f"\nK {cell(c.kernel_change, '.2g')} λ {cell(c.lambda_change, '+.0f')}%\n{SHORT_DECAY.get(c.decay, c.decay or '—')}"
                   f"\nηβ ≤ {cell(c.eta_beta_max, '.2g')}")
    return out


def edge_table(title: str, edge) -> Table:
    table = Table(title=Text(title), title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, show_lines=True,
                  caption="A cell per run: ✓ stayed in the local regime, or ✗ left it: not lazy (the kernel moved, or λ_min rose "
                  "or fell by more than the guide's thresholds), drift (not contained), spike (the loss spiked). K: "
                  "‖K_t − K_0‖₂/‖K_0‖₂ at most; λ: λ_min's largest move against λ_0; the decay model; ηβ ≤: the largest "
                  "η·β measured along the run.", caption_justify="left")
    table.add_column("m \\ η·β₀", no_wrap=True)
    for scale in edge.scales:
        table.add_column(short_float(scale), min_width=14)
    for width in edge.widths:
        table.add_row(Text(f"m={width}"), *(edge_cell(edge.at(width, s)) for s in edge.scales))
    return table


def edge_notes(edge) -> list[str]:
    """What the map says about the advisor's prediction, in numbers."""
    def line(by: str) -> str:
        tally = edge.tally(by)
        return "; ".join(f"{CLASS_WORDS[name]}: {stayed} of {judged} stayed local" for name, (stayed, judged) in tally.items() if judged)

    return [f"by η·β₀ at initialisation (the advisor's prediction): {line('predicted') or 'no finished run'}",
            f"by the largest η·β along the run: {line('reached') or 'not measured (probes.theory_every = 0)'}"]

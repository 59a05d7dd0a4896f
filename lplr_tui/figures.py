"""Publication figures of records (and of the app's runs) with matplotlib, without a display.

One run: the four diagnostics in a 2×2 grid (λ_min, drift, PL ratio with its envelope, L − L*),
the stable regime shaded, the run's annotations as vertical marks. Several runs: one line per
run, named by its label. Runs of one configuration that differ only in their seed: their mean
with a min–max band. `theory` adds the step-size panel (η·β against 1 and 2), the PL ratio
against its bound, and the local-regime measures. Every series comes from the engine
(`figure_series`, `band`); nothing here computes a diagnostic.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.analysis import INSIDE, L_STAR_VIEWS, OUTSIDE, band, figure_series, step_class
from engine.errors import LplrError, show_value
from engine.trajectory import Trajectory

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
# no creation date: the same figure gives the same file
METADATA = {"pdf": {"Creator": "lplr-tui", "CreationDate": None}, "png": {"Software": "lplr-tui"}, "svg": {"Creator": "lplr-tui", "Date": None}}
# Okabe & Ito's palette: told apart with every common colour-vision deficiency, and in grey
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
DASHES = ["-", "--", "-.", ":"]
COLUMN_WIDTH = 3.5  # inches: one column of a two-column paper
ROW_HEIGHT = 1.45  # inches per row of panels
STYLE = {
    "font.size": 7, "axes.titlesize": 6.5, "axes.labelsize": 7, "xtick.labelsize": 6, "ytick.labelsize": 6,
    "legend.fontsize": 6, "lines.linewidth": 0.9, "axes.linewidth": 0.5, "xtick.major.width": 0.5,
    "ytick.major.width": 0.5, "mathtext.fontset": "dejavusans",
    "pdf.fonttype": 42,  # TrueType fonts, embedded (journals refuse Type 3)
    "ps.fonttype": 42,
    "svg.fonttype": "path",  # text as outlines: the SVG needs no font on the reader's machine
    "svg.hashsalt": "lplr-tui",  # the same figure gives the same file
}


@dataclass(frozen=True)
class Panel:
    name: str
    title: str
    ylabel: str
    x: str  # the key of its epochs in figure_series
    y: str  # the key of its values
    log: bool = False
    levels: tuple = ()  # horizontal reference lines: (value, what it is)
    theory: bool = False


PANELS = {
    "lambda": Panel("lambda", r"NTK $\lambda_{\min}$", r"$\lambda_{\min}(K_t)$", "probe_epoch", "ntk_lambda_min"),
    "drift": Panel("drift", "drift", r"$\|\theta_t-\theta_0\|$", "probe_epoch", "drift"),
    "pl": Panel("pl", r"PL ratio, $L^*=0$", r"$\|\nabla L\|^2/2L$", "epoch", "pl_ratio0", log=True),
    "subopt": Panel("subopt", "suboptimality", r"$L-L^*$", "epoch", "subopt", log=True),
    "step": Panel("step", r"step size, $\beta=\lambda_{\max}(\nabla^2L)$", r"$\eta\,\beta$",
                  "theory_epoch", "eta_beta", levels=((1.0, "1: theorem"), (2.0, "2: stability edge")), theory=True),
    "bound": Panel("bound", r"PL ratio (—), bound (···)", r"$\|\nabla L\|^2/2L$", "theory_epoch",
                   "pl_ratio_theory", log=True, theory=True),
    "kernel": Panel("kernel", "kernel change", r"$\|K_t-K_0\|_2/\|K_0\|_2$", "probe_epoch", "kernel_change_rel", theory=True),
    "weyl": Panel("weyl", "Weyl certificate", r"$\lambda_0-\|K_t-K_0\|_2$",
                  "probe_epoch", "weyl", levels=((0.0, ""),), theory=True),
}
DEFAULT_PANELS = ("lambda", "drift", "pl", "subopt")
THEORY_PANELS = ("step", "bound", "kernel", "weyl")
L_STAR_WORDS = {"proxy": "final loss", "zero": "0", "fitted": "fitted"}
SEED = re.compile(r" seed=\d+$")


def text(value: str) -> str:
    """Text from a record as matplotlib draws it literally: a `$` would start mathtext."""
    return value.replace("$", r"\$")


@dataclass
class FigureRun:
    """What a figure needs of a run: a record's, or the app's view of a live one."""

    label: str
    trajectory: Trajectory
    spec: dict
    summary: dict
    state: str
    annotations: list = field(default_factory=list)  # (epoch, text)
    name: str = ""  # the run's own label, where `label` tells it apart from another run's (compare)

    @classmethod
    def of_record(cls, record, label: str | None = None) -> "FigureRun":
        notes = [(a.get("epoch"), str(a.get("text", ""))) for a in record.annotations if isinstance(a.get("epoch"), (int, float))]
        return cls(label or record.label, record.trajectory, record.spec, record.summary, record.state, notes, record.label)

    @classmethod
    def of_view(cls, run) -> "FigureRun":
        """The app's view of a run, copied: its live trajectory may grow while a figure is drawn."""
        spec = run.spec.to_dict() if run.spec is not None else {}
        return cls(run.label, Trajectory.from_dict(run.trajectory.to_dict()), spec, dict(run.summary), run.state,
                   [(a.epoch, a.text) for a in run.annotations])

    def setting(self, table: str, key: str, default):
        value = self.spec.get(table, {}).get(key, default) if isinstance(self.spec.get(table), dict) else default
        return value if isinstance(value, type(default)) and not isinstance(value, bool) else default

    def series(self, l_star: str) -> dict:
        lr = self.setting("optim", "lr", float("nan"))
        return figure_series(
            self.trajectory, self.summary, self.state == "finished", self.setting("data", "n_train", 0),
            float(lr), self.setting("optim", "schedule", "constant"), self.setting("train", "epochs", 0), l_star,
        )

    def configuration(self) -> str:
        """The experiment without its seed, as `compare` sees it: runs that share it differ only
        by chance."""
        from engine.compare import flat

        return json.dumps({k: v for k, v in flat(self.spec).items() if k != "train.seeds"}, sort_keys=True)


@dataclass
class Line:
    """One line of the figure: a run, or the runs of one configuration (mean and band)."""

    label: str
    runs: list[FigureRun]
    colour: str
    dash: str


# ---------------------------------------------------------------- choosing


def choose_runs(runs: list[FigureRun], patterns: list[str]) -> list[FigureRun]:
    """The runs whose label matches one of the patterns (exact, or shell-style: m=1024*)."""
    def matches(run: FigureRun, pattern: str) -> bool:
        return any(label == pattern or fnmatch.fnmatchcase(label, pattern) for label in (run.label, run.name) if label)

    if not patterns:
        return runs
    for pattern in patterns:
        if not any(matches(r, pattern) for r in runs):
            labels = ", ".join(sorted({r.label for r in runs}))
            raise LplrError(f"--runs {show_value(pattern)}: matches no run; the runs are: {labels}")
    return [r for r in runs if any(matches(r, p) for p in patterns)]


def parse_panels(text: str | None, theory: bool) -> tuple[str, ...]:
    if not text:
        return DEFAULT_PANELS + (THEORY_PANELS if theory else ())
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in PANELS:
            import difflib

            hint = difflib.get_close_matches(name, PANELS, n=1)
            maybe = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise LplrError(f"--panels {show_value(text)}: unknown panel {show_value(name)}{maybe}; the panels are {', '.join(PANELS)}")
    if not names:
        raise LplrError(f"--panels {show_value(text)}: name at least one of {', '.join(PANELS)}")
    return tuple(dict.fromkeys(names))


def parse_size(text: str | None, panels: int) -> tuple[float, float]:
    """WIDTHxHEIGHT in inches; by default a column wide, ROW_HEIGHT per row of two panels."""
    if not text:
        rows = math.ceil(panels / 2)
        return COLUMN_WIDTH, ROW_HEIGHT * rows + 0.55
    match = re.fullmatch(r"\s*([0-9.]+)\s*[xX×]\s*([0-9.]+)\s*", text)
    try:
        width, height = (float(match.group(1)), float(match.group(2))) if match else (0.0, 0.0)
    except ValueError:
        width = height = 0.0
    if not (1.0 <= width <= 40.0 and 1.0 <= height <= 40.0):
        raise LplrError(f"--size {show_value(text)}: must be WIDTHxHEIGHT in inches, each from 1 to 40 (e.g. 3.5x3.4, 7x5)")
    return width, height


def figure_format(out: Path) -> str:
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise LplrError(f"--out {show_value(str(out))}: the suffix must be .png, .svg or .pdf (it chooses the format)")
    return fmt


def lines_of(runs: list[FigureRun], group: bool = True) -> list[Line]:
    """A line per run; with `group`, the runs of one configuration (seeds) share one, as their
    mean and band."""
    groups: dict[str, list[FigureRun]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.configuration() if group else str(i), []).append(run)
    lines = []
    for i, members in enumerate(groups.values()):
        if len(members) == 1:
            label = text(members[0].label) + state_note(members[0])
        else:
            seeds = {json.dumps(m.setting("train", "seeds", []), default=str) for m in members}
            what = "seeds" if len(seeds) == len(members) else "runs"
            label = f"{text(SEED.sub('', members[0].name or members[0].label))} ({len(members)} {what}: mean, min–max)"
            label += "".join(f"; {text(m.label)}{state_note(m)}" for m in members if state_note(m))
        lines.append(Line(label, members, PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]))
    return lines


def state_note(run: FigureRun) -> str:
    if run.state in ("finished", ""):
        return ""
    epochs = run.trajectory.epoch
    return text(f" ({run.state} at epoch {epochs[-1]})" if epochs else f" ({run.state})")


# ---------------------------------------------------------------- drawing


def shown(values: np.ndarray, log: bool) -> np.ndarray:
    """What a panel draws of a series: NaN and ±inf are gaps (they stay in the record), and so
    is every value ≤ 0 on a log axis."""
    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values) & ((values > 0) if log else True)
    return np.where(keep, values, np.nan)


def draw(runs: list[FigureRun], panels: tuple[str, ...], size: tuple[float, float], l_star: str = "proxy", group: bool = True):
    """The figure (a matplotlib Figure, no pyplot state)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if l_star not in L_STAR_VIEWS:
        raise LplrError(f"--l-star {show_value(l_star)}: must be one of {', '.join(L_STAR_VIEWS)}")
    lines = lines_of(runs, group)
    data = [[run.series(l_star) for run in line.runs] for line in lines]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        columns = 1 if len(panels) == 1 else 2
        rows = math.ceil(len(panels) / columns)
        grid = fig.subplots(rows, columns, squeeze=False, sharex=True)
        for ax in grid.flat[len(panels):]:
            ax.set_visible(False)
        window = shared_window(runs)
        for ax, name in zip(grid.flat, panels):
            panel = PANELS[name]
            ax.set_gid(name)
            draw_panel(ax, panel, lines, data, window, l_star)
        for ax in grid.flat[max(len(panels) - columns, 0):len(panels)]:
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("epoch")
        handles = [Line2D([], [], color=line.colour, linestyle=line.dash, label=line.label) for line in lines]
        if window is not None:
            handles.append(Patch(facecolor="0.92", edgecolor="none", label=f"stable regime (epochs {window[0]}–{window[1]})"))
        if "pl" in panels and any(pl_envelope(line) for line in lines):
            handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=0.7, label="PL envelope μ̂ on the stable regime"))
        if len(lines) == 1 and len(lines[0].runs) == 1 and marked(lines[0].runs[0]):
            handles.append(Line2D([], [], color="0.4", linestyle=(0, (1, 1.5)), linewidth=0.6, label="annotation"))
        fig.legend(handles=handles, loc="outside lower center", ncols=legend_columns(handles, size[0]), frameon=False)
    return fig


def legend_columns(handles: list, width: float) -> int:
    longest = max((len(h.get_label()) for h in handles), default=1)
    return max(1, min(len(handles), int(width * 14 // max(longest, 1))))


def shared_window(runs: list[FigureRun]) -> tuple[int, int] | None:
    """The stable regime, when every run's summary places it at the same epochs."""
    windows = {(r.summary.get("stable_from"), r.summary.get("stable_to")) for r in runs}
    if len(windows) != 1:
        return None
    low, high = windows.pop()
    numbers = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high))
    return (int(low), int(high)) if numbers and high > low else None


def draw_panel(ax, panel: Panel, lines: list[Line], data: list[list[dict]], window, l_star: str) -> None:
    ax.set_title(title_of(panel, lines, data, l_star), loc="left")
    ax.set_ylabel(panel.ylabel)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    if window is not None:
        ax.axvspan(*window, color="0.92", linewidth=0, zorder=0)
    drawn = False
    for line, series in zip(lines, data):
        drawn |= draw_line(ax, panel, line, series)
        if panel.name == "bound":
            bound = Panel("bound", "", "", panel.x, "pl_bound", log=True)
            draw_line(ax, bound, Line(f"_bound {line.label}", line.runs, line.colour, ":"), series)
        if panel.name == "pl":
            draw_envelope(ax, line)
        for run in line.runs if len(lines) == 1 and len(line.runs) == 1 else ():  # an overlay's would hide its lines
            for epoch in marked(run):
                ax.axvline(epoch, color="0.4", linestyle=(0, (1, 1.5)), linewidth=0.6, alpha=0.8, zorder=1)
    for value, what in panel.levels:
        ax.axhline(value, color="0.3", linewidth=0.6, linestyle="--", zorder=1)
        if what:
            ax.annotate(what, (1.0, value), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=5, color="0.3")
    if panel.log and drawn:
        ax.set_yscale("log")
    if panel.name == "weyl" and drawn:
        # symmetric log, linear within ±λ_0: the sign (the guarantee) stays readable when a run's
        # kernel moved by orders of magnitude more than λ_0
        scale = [abs(float(s["ntk_lambda_min"][0])) for series in data for s in series if len(s["ntk_lambda_min"])]
        scale = [v for v in scale if math.isfinite(v) and v > 0]
        ax.set_yscale("symlog", linthresh=max(scale) if scale else 1.0)
        ax.set_ylim(top=2 * (max(scale) if scale else 1.0))  # the certificate is at most λ_0: no empty decades above
    if not drawn:
        what = "not measured (probes.theory_every = 0)" if panel.x == "theory_epoch" else "no finite values"
        ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", fontsize=6, color="0.4")


def marked(run: FigureRun) -> list[float]:
    """The epochs of the run's annotations that fall within its epochs (a record's are untrusted:
    one far outside would squash the run against an edge)."""
    epochs = [float(e) for e in run.trajectory.epoch if math.isfinite(float(e))]
    if not epochs:
        return []
    return [float(e) for e, _ in run.annotations if math.isfinite(float(e)) and min(epochs) <= e <= max(epochs)]


def draw_line(ax, panel: Panel, line: Line, series: list[dict]) -> bool:
    """The line's values (a run's, or the mean of its seeds with a min–max band); whether
    anything finite was drawn."""
    # the theory series are measured every probes.theory_every (or ntk_full_every) epochs: their
    # points are joined and marked; elsewhere a NaN or inf is a gap in the line
    sparse = {"marker": "o", "markersize": 2} if panel.x == "theory_epoch" else {}
    if len(series) == 1:
        x, y = np.asarray(series[0][panel.x], dtype=float), shown(series[0][panel.y], panel.log)
        keep = np.isfinite(y) if sparse else np.ones(y.shape, dtype=bool)
        ax.plot(x[keep], y[keep], color=line.colour, linestyle=line.dash, label=line.label, **sparse)
        return bool(np.isfinite(y).any())
    x, mean, low, high = band([s[panel.x] for s in series], [shown(s[panel.y], panel.log) for s in series])
    keep = np.isfinite(mean) if sparse else np.ones(mean.shape, dtype=bool)
    ax.fill_between(x[keep], shown(low, panel.log)[keep], shown(high, panel.log)[keep], color=line.colour, alpha=0.2,
                    linewidth=0, label=f"_band {line.label}")
    ax.plot(x[keep], shown(mean, panel.log)[keep], color=line.colour, linestyle=line.dash, label=line.label, **sparse)
    return bool(np.isfinite(mean).any())


def pl_envelope(line: Line) -> tuple[float, float, float] | None:
    """(μ̂, from, to): the PL ratio's lower envelope on the stable regime as the summary states
    it (the lowest over the seeds); None where it is not a positive number."""
    values = [r.summary.get("pl_min") for r in line.runs]
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    run = line.runs[0].summary
    if not values or not isinstance(run.get("stable_from"), (int, float)) or not isinstance(run.get("stable_to"), (int, float)):
        return None
    return min(values), run["stable_from"], run["stable_to"]


def draw_envelope(ax, line: Line) -> None:
    envelope = pl_envelope(line)
    if envelope is not None:
        ax.hlines(*envelope, color=line.colour, linestyle="--", linewidth=0.7, label=f"_envelope {line.label}", zorder=3)


def title_of(panel: Panel, lines: list[Line], data: list[list[dict]], l_star: str) -> str:
    if panel.name == "lambda":
        sizes = {r.setting("probes", "ntk_subset", 0) for line in lines for r in line.runs}
        size = sizes.pop() if len(sizes) == 1 else 0
        return f"NTK $\\lambda_{{\\min}}$, subset of {size}" if size else panel.title
    if panel.name == "subopt":
        provisional = any(s["l_star_provisional"] for series in data for s in series) and l_star == "proxy"
        if provisional:
            return "provisional $L^*$ (min. so far)"
        values = [s["l_star"] for series in data for s in series]
        one = len(values) == 1 and math.isfinite(values[0]) and l_star != "zero"
        return f"$L^*$ = {L_STAR_WORDS[l_star]}" + (f" {values[0]:.3g}" if one else "")
    return panel.title


# ---------------------------------------------------------------- writing


def write(runs: list[FigureRun], out: Path, panels: tuple[str, ...], size: tuple[float, float], l_star: str = "proxy",
          group: bool = True) -> Path:
    """Draw and save; the format from the suffix (PNG at 300 dpi, SVG, PDF with fonts embedded)."""
    import matplotlib

    fmt = figure_format(out)
    if not runs:
        raise LplrError("no runs to plot")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context(STYLE):
            draw(runs, panels, size, l_star, group).savefig(out, format=fmt, dpi=300, metadata=METADATA[fmt])
    except OSError as exc:
        raise LplrError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    except (ValueError, OverflowError, TypeError) as exc:  # values in a record that matplotlib cannot place
        raise LplrError(f"cannot draw these runs: {type(exc).__name__}: {str(exc)[:200]}") from None
    return out


def default_path(records: list, theory: bool, suffix: str = ".pdf", what: str = "figure") -> Path:
    """<time>-<plan>-<what>[-theory].pdf beside the run directories (of the first run; "compare"
    when the runs come from several plans)."""
    import time

    from engine.record import slug

    plans = {str(r.run.get("plan", "")) for r in records}
    name = plans.pop() if len(plans) == 1 else "compare"
    where = records[0].path.parent.parent if records and records[0].path is not None else Path(".")
    return where / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(name or 'runs')}-{what}{'-theory' if theory else ''}{suffix}"


# ---------------------------------------------------------------- the edge map


def draw_map(edge, size: tuple[float, float] | None = None):
    """The map of where the local regime ends: a cell per run, width against η·β₀, blue where
    the run stayed local, vermillion where it left, grey where it was not judged (not finished);
    each cell gives the kernel change and λ_min's move; dashed lines at η·β₀ = 1 and 2."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colours = {"local": "#56B4E9", "left": "#D55E00", "mixed": "#E69F00", "none": "0.85"}
    columns, rows = len(edge.scales), len(edge.widths)
    size = size or (COLUMN_WIDTH, 0.45 * rows + 1.3)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.subplots()
        ax.set_gid("map")
        for y, width in enumerate(edge.widths):
            for x, scale in enumerate(edge.scales):
                cells = edge.at(width, scale)
                if not cells:
                    continue
                c, judged = cells[0], [c for c in cells if c.left is not None]
                stayed = sum(not c.left for c in judged)
                state = "none" if not judged else "local" if stayed == len(judged) else "left" if not stayed else "mixed"
                ax.add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=colours[state], edgecolor="white",
                                                          gid=f"{width}:{scale:g}:{state}"))
                if len(cells) > 1:  # seeds (or plans) in one cell: how many stayed
                    words = f"{stayed}/{len(judged)} local" if judged else f"{len(cells)} runs"
                else:
                    words = f"K {c.kernel_change:.2g}\nλ {c.lambda_change:+.0f}%" if math.isfinite(c.kernel_change) else c.state
                ax.text(x, y, words, ha="center", va="center", fontsize=5, color="white" if state == "left" else "black")
        # the advisor's lines, by the engine's classes: after the last column inside the theorem, and the last stable one
        classes = [step_class(s) for s in edge.scales]
        ends = {classes.count(INSIDE), classes.count(INSIDE) + classes.count(OUTSIDE)}
        for end in sorted(e for e in ends if 0 < e < columns):
            ax.axvline(end - 0.5, color="0.2", linestyle="--", linewidth=0.8)
        ax.set_xlim(-0.5, columns - 0.5)
        ax.set_ylim(-0.5, rows - 0.5)
        ax.set_xticks(range(columns), [f"{s:g}" for s in edge.scales])
        ax.set_yticks(range(rows), [f"{w}" for w in edge.widths])
        ax.set_xlabel(r"$\eta\,\beta_0$ (step against the edge at $\theta_0$)")
        ax.set_ylabel("width $m$")
        ax.set_title("where the local regime ends", loc="left")
        handles = [Patch(facecolor=colours["local"], label="stayed local"), Patch(facecolor=colours["left"], label="left"),
                   Patch(facecolor=colours["mixed"], label="some left"), Patch(facecolor=colours["none"], label="not judged")]
        fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False)
    return fig


def write_map(edge, out: Path, size: tuple[float, float] | None = None) -> Path:
    import matplotlib

    fmt = figure_format(out)
    if not edge.is_a_map:
        raise LplrError("--map: these runs are not a map: it needs steps set against β₀ (optim.lr_scale) at two widths or more, "
                        "as the edge preset's sweep gives")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with matplotlib.rc_context(STYLE):
            draw_map(edge, size).savefig(out, format=fmt, dpi=300, metadata=METADATA[fmt])
    except OSError as exc:
        raise LplrError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    return out

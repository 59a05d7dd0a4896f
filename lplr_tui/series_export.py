"""A run's trajectory for other tools: one CSV table per run, or TensorBoard event files.

CSV: a column `epoch`, then every series in `engine.trajectory.SERIES` order. The rows are the
epochs of all three axes together (each series is measured on its own axis: every epoch, every
probe, every theory probe); a cell is empty where its series was not measured at that epoch.
Values are written exactly (`repr`), NaN as `NaN` and infinities as `Inf`/`-Inf`, which Python,
numpy, pandas and R all read back as the same float.

TensorBoard: one run directory per record, named by its label, holding every series as a
float64 scalar (`new_style`, `double_precision`: stored as the double it is, not rounded to
float32), the spec as TOML text and the run's label, plan, state and record path.

Records are untrusted input. What they hold is exported as it is (NaN and infinities are data);
a series shorter than its axis is not measured at the epochs it lacks (an empty cell, no
scalar), not padded with NaN as `Trajectory.arrays` does, so an exported NaN is always a NaN the
record holds; values beyond the end of their axis have no epoch and are left out. An epoch
that appears twice on one axis keeps its last value. An epoch that is not a whole number is
refused (LplrError), as is a value too large for a float.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from engine.atomic import write_text_atomic
from engine.errors import LplrError, show_value
from engine.record import dumps, slug
from engine.trajectory import SERIES

COLUMNS = ("epoch", *(name for names in SERIES.values() for name in names))
CSV_NAME = "trajectory.csv"
TENSORBOARD_MISSING = "--tensorboard: needs the tensorboard package: pip install 'lplr-tui[tensorboard]'"
INT64 = 2**63


# ---------------------------------------------------------------- the series


def where(record) -> str:
    """The record, as an error names it."""
    return str(record.path) if record.path else f"run {record.label!r}"


def whole_epoch(record, axis: str, value: object) -> int:
    """An epoch from an untrusted record as an int (3.0 is 3); anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LplrError(f"{where(record)}: trajectory.{axis} holds {show_value(value)[:40]}, not a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise LplrError(f"{where(record)}: trajectory.{axis} holds {show_value(value)[:40]}, not a whole number")
        value = int(value)
    if not -INT64 <= value < INT64:
        raise LplrError(f"{where(record)}: trajectory.{axis} holds {str(value)[:40]}…, out of range for an epoch")
    return value


def as_float(record, name: str, value: object) -> float:
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError):
        raise LplrError(f"{where(record)}: trajectory.{name} holds a value that is not a float ({str(value)[:40]})") from None


def axes(record) -> dict[str, list[int]]:
    """Each epoch axis of the record, as ints, in the record's order."""
    return {axis: [whole_epoch(record, axis, e) for e in getattr(record.trajectory, axis, None) or []] for axis in SERIES}


def measured(record) -> dict[str, dict[int, float]]:
    """Every series as {epoch: value}, in SERIES order, epochs ascending: only the epochs at which
    the record holds a value (a short or missing series lacks the rest); a repeated epoch keeps its
    last value."""
    out: dict[str, dict[int, float]] = {}
    for axis, epochs in axes(record).items():
        for name in SERIES[axis]:
            values = getattr(record.trajectory, name, None) or []
            points = {epoch: as_float(record, name, value) for epoch, value in zip(epochs, values)}  # the last wins
            out[name] = dict(sorted(points.items()))
    return out


def csv_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(value)


# ---------------------------------------------------------------- CSV


def trajectory_csv(record) -> str:
    """The record's trajectory as CSV text: a header row (COLUMNS), then one row per epoch that any
    axis holds, ascending; empty cells where a series was not measured."""
    series = measured(record)
    epochs = sorted({epoch for values in axes(record).values() for epoch in values})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for epoch in epochs:
        writer.writerow([epoch, *(csv_number(series[name][epoch]) if epoch in series[name] else "" for name in COLUMNS[1:])])
    return text.getvalue()


def run_dir_name(record) -> str:
    return record.path.parent.name if record.path else record.label


def unique(name: str, used: set[str]) -> str:
    """`name`, or name-2, name-3... the first not in `used` (which it joins)."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


def write_csv(records: list, out_dir: str | Path | None = None) -> list[Path]:
    """Each record's trajectory as CSV: `<run dir>/trajectory.csv` beside its record, or with
    `out_dir`, `<out_dir>/<run dir name>.csv` (runs of the same directory name from different
    results directories get -2, -3...). Returns the paths written, one per record, in order."""
    if out_dir is None:
        for record in records:
            if record.path is None:
                raise LplrError(f"run {record.label!r} has no run directory to write {CSV_NAME} into: give an output directory")
        targets = [record.path.parent / CSV_NAME for record in records]
    else:
        out_dir = Path(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LplrError(f"{out_dir}: cannot make the directory ({exc.strerror or exc})") from None
        used: set[str] = set()
        targets = [out_dir / (unique(slug(run_dir_name(record)), used) + ".csv") for record in records]
    texts = [trajectory_csv(record) for record in records]  # every record read before one is written
    for path, text in zip(targets, texts):
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise LplrError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return targets


# ---------------------------------------------------------------- TensorBoard


def run_names(records: list) -> list[str]:
    """A TensorBoard run name per record: its label; a label (slugged) already taken gets the run
    directory's name appended, then -2, -3..., so no two runs are merged into one."""
    used: set[str] = set()
    names = []
    for record in records:
        name = slug(record.label)
        if name in used:
            name = slug(f"{record.label}-{run_dir_name(record)}")
        names.append(unique(name, used))
    return names


def code_block(text: str) -> str:
    """Markdown that shows `text` as it is: every line indented by four spaces."""
    return "\n".join("    " + line for line in text.splitlines())


def run_text(record) -> str:
    lines = [
        f"label: {record.label}",
        f"plan: {record.run.get('plan', '')}",
        f"state: {record.state}",
        f"record: {record.path if record.path else ''}",
    ]
    return code_block("\n".join(lines))


def write_tensorboard(records: list, logdir: str | Path) -> list[Path]:
    """Each record as a TensorBoard run under `logdir`: every series (tag = its name, step = its
    epochs, float64 values, NaN and infinities as they are), the spec as TOML text (tag
    `spec`) and the run's label, plan, state and record path (tag `run`). Returns the run
    directories. A run directory that already holds files (an earlier export) is refused rather
    than appended to, which would show every point twice."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise LplrError(TENSORBOARD_MISSING) from None
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise LplrError(f"--tensorboard: {logdir} is a file, not a directory")
    series = [measured(record) for record in records]  # every record read before one is written
    targets = [logdir / name for name in run_names(records)]
    for target in targets:
        if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink() and not any(target.iterdir())):
            raise LplrError(f"--tensorboard: {target} exists already (an earlier export?): give another directory or remove it")
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        for record, points, target in zip(records, series, targets):
            target.mkdir(exist_ok=True)
            writer = SummaryWriter(log_dir=str(target))
            try:
                for name, values in points.items():
                    for epoch, value in values.items():
                        writer.add_scalar(name, value, global_step=epoch, new_style=True, double_precision=True)
                writer.add_text("spec", code_block(dumps(record.spec)))
                writer.add_text("run", run_text(record))
                writer.flush()
            finally:
                writer.close()
    except OSError as exc:
        raise LplrError(f"--tensorboard: {exc.filename or logdir}: cannot write ({exc.strerror or exc})") from None
    return targets

"""The headless run's display: a rich progress bar per run on a terminal, plain periodic
lines otherwise (logs, `nohup`, CI). Both consume engine events and compute nothing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engine.errors import printable
from engine.times import unix_time
from engine.events import DevicesMeasured, EpochMeasured, Lost, PlanFinished, PlanStarted, ProbeMeasured, RunFinished, RunStarted

MARKS = {"finished": "[green]✓[/]", "diverged": "[red]✗ diverged[/]", "interrupted": "[yellow]■ interrupted[/]", "failed": "[red]✗ failed[/]"}


def num(value: float | None) -> str:
    if value is None:
        return "…"
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def devices_text(devices: tuple) -> str:
    """"cuda:0 87% busy, 12.3/79.6 GiB" per device (utilisation where NVML tells it)."""
    parts = []
    for d in devices if isinstance(devices, (list, tuple)) else ():
        if not isinstance(d, dict):  # a log is untrusted: what is not a device's reading is left out
            continue
        busy, used, total = finite(d.get("busy")), finite(d.get("used")), finite(d.get("total"))
        busy_text = f" {busy:.0f}% busy," if busy is not None else ""
        memory = f" {used / 2**30:.1f}/{total / 2**30:.1f} GiB" if used is not None and total is not None and total > 0 else ""
        parts.append(f"{printable(str(d.get('device', '?')))[:20]}{busy_text}{memory}".rstrip(","))
    return ", ".join(parts)


def finite(value: object) -> float | None:
    """A reading as a float, None unless it is a finite number (a log may say anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


DEVICES_EVERY = 30.0  # seconds between the lines that say how busy the GPUs are


class BarDisplay:
    """One rich progress bar per run: epoch, loss, latest λ_min, elapsed, ETA."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("epochs  loss {task.fields[loss]}  λ_min {task.fields[lam]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[int, int] = {}
        self.devices_said = -DEVICES_EVERY

    def __enter__(self) -> "BarDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def handle(self, event: object) -> None:
        if isinstance(event, RunStarted):
            self.tasks[event.run] = self.progress.add_task(
                f"run {event.run + 1}/{event.of} {escape(printable(event.label))}", total=event.spec.train.epochs, loss="…", lam="…"
            )
        elif isinstance(event, EpochMeasured):
            self.progress.update(self.tasks[event.run], completed=event.epoch, loss=num(event.loss))
        elif isinstance(event, ProbeMeasured):
            self.progress.update(self.tasks[event.run], lam=num(event.values.get("ntk_lambda_min")))
        elif isinstance(event, RunFinished):
            task = self.tasks[event.run]
            description = self.progress.tasks[task].description
            self.progress.update(task, description=f"{description} {MARKS.get(event.state, event.state)}")
            self.progress.stop_task(task)
        elif isinstance(event, DevicesMeasured) and time.monotonic() - self.devices_said >= DEVICES_EVERY:
            self.devices_said = time.monotonic()
            if text := devices_text(event.devices):
                self.progress.console.print(f"devices: {text}", markup=False, highlight=False)


@dataclass
class RunLine:
    """What the lines say of one run: several are live at once in a plan run with --jobs."""

    label: str
    total: int
    started: float
    last_line: float
    lam: float | None = None


class LineDisplay:
    """A line per run start and end, and one every `every` seconds in between, per run."""

    def __init__(self, console: Console, every: float = 10.0):
        self.console = console
        self.every = every
        self.runs: dict[int, RunLine] = {}
        self.devices_said = -DEVICES_EVERY

    def __enter__(self) -> "LineDisplay":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def say(self, text: str) -> None:
        """A line, its control characters escaped: names and reasons may come from a log."""
        self.console.print(printable(text), markup=False, highlight=False, soft_wrap=True)

    def handle(self, event: object) -> None:
        run = self.runs.get(getattr(event, "run", -1))
        if isinstance(event, PlanStarted):
            at_once = f", {event.jobs} at once" if event.jobs > 1 else ""
            self.say(f"plan {event.name}: {len(event.labels)} run(s){at_once}")
        elif isinstance(event, RunStarted):
            started = unix_time(event.environment.get("started", "")) or time.time()  # the worker's start: right in a watch too
            run = self.runs[event.run] = RunLine(f"run {event.run + 1}/{event.of} {event.label}", event.spec.train.epochs, started, time.monotonic())
            where = f", record in {event.run_dir}" if event.run_dir else ""
            self.say(f"{run.label}: started on {event.environment.get('device', '?')} ({event.params:,} parameters{where})")
            if event.environment.get("data_detail") and event.resumed_from == 0:
                self.say(f"  data: {event.environment['data_detail']}")
        elif isinstance(event, ProbeMeasured) and run is not None:
            run.lam = event.values.get("ntk_lambda_min")
        elif isinstance(event, EpochMeasured) and run is not None:
            now = time.monotonic()
            if now - run.last_line >= self.every:
                run.last_line = now
                self.say(self.line(run, event, time.time() - run.started))
        elif isinstance(event, RunFinished):
            label = run.label if run is not None else f"run {event.run + 1}"
            end = unix_time(event.finished) or time.time()
            elapsed = clock(end - run.started) if run is not None else "?"
            extra = f": {event.reason}" if event.reason else ""
            self.say(f"{label}: {event.state} after {event.epochs_done} epochs in {elapsed}{extra}")
        elif isinstance(event, PlanFinished):
            self.say(f"plan {event.state}" + (f": {event.reason}" if event.reason else ""))
        elif isinstance(event, Lost):
            where = f"; `lplr-tui run --resume {event.run_dir}` continues it" if event.run_dir else ""
            self.say(f"lost at epoch {event.epochs_done}: {event.reason}{where}")
        elif isinstance(event, DevicesMeasured) and time.monotonic() - self.devices_said >= min(self.every, DEVICES_EVERY):
            self.devices_said = time.monotonic()
            if text := devices_text(event.devices):
                self.say(f"devices: {text}")

    @staticmethod
    def line(run: RunLine, event: EpochMeasured, elapsed: float) -> str:
        done = max(event.epoch, 1)
        eta = elapsed / done * (run.total - event.epoch)
        return (
            f"{run.label}: epoch {event.epoch}/{run.total}  loss {num(event.loss)}  "
            f"λ_min {num(run.lam)}  elapsed {clock(elapsed)}  ETA {clock(eta)}"
        )


def display_for(console: Console) -> BarDisplay | LineDisplay:
    """The bar on a terminal, lines anywhere else: a terminal is where the console writes, not
    what the environment claims. FORCE_COLOR or TTY_COMPATIBLE (a CI job's, or a shell's that a
    detached worker inherits) make rich take a file for one, and the bar's redraws, colours and
    cursor codes would fill the log."""
    return BarDisplay(console) if console.is_terminal and writes_to_a_tty(console) else LineDisplay(console)


def writes_to_a_tty(console: Console) -> bool:
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed file
        return False


"""The `lplr-tui` command: headless runs, presets, and summaries of records."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from engine.config import available_presets, load_spec, parse_override, preset_description
from engine.errors import LplrError
from engine.events import FAILED, INTERRUPTED, PlanFinished
from engine.record import find_records, read_record
from engine.runner import Runner
from lplr_tui.progress import display_for
from lplr_tui.tables import table1

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Watch gradient descent stay (or not) in a locally Polyak-Łojasiewicz region.",
)
out = Console(highlight=False)
if not out.is_terminal:  # logs: wide enough that tables keep every column
    out = Console(highlight=False, width=160)
err = Console(stderr=True, highlight=False)


def user_errors(fn: Callable) -> Callable:
    """Bad input: one message on stderr, exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LplrError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback(invoke_without_command=True)
@user_errors
def root(
    ctx: typer.Context,
    results: Path = typer.Option(Path("results"), "--results", "-r", help="where the app writes run directories"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="the data root (sets data.root)"),
    device: Optional[str] = typer.Option(None, "--device", help='"auto", "cpu", "cuda" or "cuda:N" (sets train.device)'),
) -> None:
    """With no command: the app. Pick an experiment, watch its four diagnostics live."""
    if ctx.invoked_subcommand is not None:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        err.print("needs a terminal: use ssh -t, or lplr-tui run")
        raise typer.Exit(2)
    from lplr_tui.app import LplrApp  # textual loads only for the app

    tui = LplrApp(results, common_overrides(data_dir, device))
    try:
        tui.run()
    finally:  # whatever ended the app, the run's record must say so
        tui.stop_runner()


def common_overrides(data_dir: Optional[str], device: Optional[str]) -> dict:
    values = {}
    if data_dir is not None:
        values["data.root"] = data_dir
    if device is not None:
        values["train.device"] = device
    return values


@app.command()
@user_errors
def run(
    preset: str = typer.Option(..., "--preset", "-p", help="a preset name (see `lplr-tui presets`) or a path to a .toml"),
    overrides: List[str] = typer.Option([], "--set", "-s", help="override a preset key, e.g. --set train.epochs=300"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="where run directories are written"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="the data root (sets data.root)"),
    device: Optional[str] = typer.Option(None, "--device", help='"auto", "cpu", "cuda" or "cuda:N" (sets train.device)'),
) -> None:
    """Run a preset headless: a progress bar per run, then Table 1 and the record paths."""
    values = {**dict(parse_override(o) for o in overrides), **common_overrides(data_dir, device)}
    runner = Runner(load_spec(preset, values), results)
    runner.preflight()
    final = drive(runner)
    records = [read_record(p) for p in runner.record_paths]
    out.print(table1(records, title=f"{runner.spec.name}: summary (Table 1)"))
    out.print("records:")
    for path in runner.record_paths:
        out.print(f"  {path}", markup=False)
    raise typer.Exit(exit_code(final, records))


def drive(runner: Runner) -> PlanFinished:
    """Show the plan's progress until it ends; Ctrl-C cancels at the next epoch."""
    runner.start()
    final = PlanFinished(FAILED, "no events")
    with display_for(out) as display:
        events = runner.iter_events()
        while True:
            try:
                for event in events:
                    display.handle(event)
                    final = event if isinstance(event, PlanFinished) else final
                break
            except KeyboardInterrupt:
                runner.cancel()
                err.print("cancelling: the run stops at the next epoch and its record says interrupted")
                events = runner.iter_events()
    runner.join()
    return final


def exit_code(final: PlanFinished, records: list) -> int:
    if final.state == INTERRUPTED:
        return 130
    if final.state == FAILED or any(r.state == FAILED for r in records):
        err.print(f"[red]failed:[/] {final.reason or 'a run failed: see its record'}")
        return 1
    return 0


@app.command()
def presets() -> None:
    """List the presets (./presets first, then the bundled ones) with their descriptions."""
    table = Table(header_style="bold", show_lines=True)
    table.add_column("preset", no_wrap=True)
    table.add_column("description")
    table.add_column("file", overflow="fold")
    for name, path in available_presets().items():
        table.add_row(name, preset_description(path), str(path))
    out.print(table)


@app.command()
@user_errors
def summary(
    paths: List[Path] = typer.Argument(..., help="record.toml files, run directories or results directories"),
) -> None:
    """Read records back and print their summary rows (Table 1)."""
    records = [read_record(p) for p in find_records(paths)]
    if not records:
        raise LplrError(f"no records under {', '.join(map(str, paths))}")
    out.print(table1(records, title="summary (Table 1)"))


def main() -> None:
    app(prog_name="lplr-tui")


if __name__ == "__main__":
    sys.exit(main())

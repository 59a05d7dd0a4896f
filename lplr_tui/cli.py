"""The `lplr-tui` command: headless runs, presets, and summaries of records."""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.config import available_presets, load_spec, parse_override, preset_description, preset_origin, shadowed
from engine.errors import LplrError, printable, show_value
from engine.events import FAILED, INTERRUPTED, LOST, PlanFinished

if TYPE_CHECKING:
    from engine.runner import Runner

# What a command needs beyond these (torch for the training stack; numpy and scipy for the
# analysis and tables) is imported inside it: `--help` and `presets` load neither.

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Watch gradient descent stay (or not) in a locally Polyak-Łojasiewicz region.",
)
# no highlighting and no :emoji: codes: text from presets and records is printed as it is
out = Console(highlight=False, emoji=False)
if not out.is_terminal:  # logs: wide enough that tables keep every column
    out = Console(highlight=False, emoji=False, width=160)
err = Console(stderr=True, highlight=False, emoji=False)
LOCAL_RAY = "local"  # `--ray` with no address: a Ray instance of this machine's, started for the plan


def user_errors(fn: Callable) -> Callable:
    """Bad input: one message on stderr, exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LplrError as exc:
            err.print(Text.assemble(("error:", "bold red"), f" {printable(str(exc))}"), soft_wrap=True)
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
    import asyncio

    from lplr_tui.app import LplrApp  # textual loads only for the app

    tui = LplrApp(results, common_overrides(data_dir, device))
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        """SIGTERM / SIGHUP: the live run stops at its epoch's end and says why; the app exits.
        A second signal ends the process at once, the records marked interrupted first."""
        received.append(signum)
        reason = f"{signal.Signals(signum).name}: {SIGNAL_WORDS[signum]}"
        if len(received) > 1:
            if tui.runner is not None:
                tui.runner.abandon(f"{reason}, twice: stopped at once, before the epoch ended")
            os._exit(SIGNALS[received[0]])
        if tui.runner is not None:
            tui.runner.cancel(reason)
        # Nothing of Textual's is touched here (the handler may have interrupted its own code):
        # the exit is queued on its event loop, and a watchdog ends the process should the app
        # hang on a terminal that is gone, once the run has stopped and its record is written.
        threading.Thread(target=exit_after_stop, args=(tui, reason, SIGNALS[signum]), daemon=True).start()
        try:
            asyncio.get_running_loop().call_soon_threadsafe(functools.partial(tui.exit, return_code=SIGNALS[signum]))
        except RuntimeError:  # the app's loop is not running (yet, or any more)
            pass

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    reason = "the app ended"
    try:
        tui.run()
    except BaseException as exc:
        reason = f"the app failed ({type(exc).__name__}: {exc})"
        raise
    finally:  # whatever ended the app, the run's record must say so
        tui.stop_runner(reason)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise typer.Exit(SIGNALS[received[0]])


EXIT_GRACE = 10.0  # seconds the app gets to exit by itself after a signal once its run has stopped


def exit_after_stop(tui, reason: str, code: int) -> None:
    """After SIGTERM/SIGHUP: stop the run (record interrupted), then give the app EXIT_GRACE
    seconds to restore the terminal and exit, else end the process."""
    if tui.runner is not None:
        tui.runner.stop(reason)
    time.sleep(EXIT_GRACE)
    if tui.runner is not None:  # one started after the signal (the app was in preflight): marked too
        tui.runner.abandon(reason)
    os._exit(code)


def common_overrides(data_dir: Optional[str], device: Optional[str]) -> dict:
    values = {}
    if data_dir is not None:
        values["data.root"] = data_dir
    if device is not None:
        values["train.device"] = device
    return values


def spec_values(overrides: list[str], data_dir: Optional[str], device: Optional[str]) -> dict:
    """The --set overrides, then --data-dir and --device, which win."""
    return {**dict(parse_override(o) for o in overrides), **common_overrides(data_dir, device)}


@app.command()
@user_errors
def run(
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="a preset name (see `lplr-tui presets`) or a path to a .toml"),
    overrides: List[str] = typer.Option([], "--set", "-s", help="override a preset key, e.g. --set train.epochs=300"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="where run directories are written"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="the data root (sets data.root)"),
    device: Optional[str] = typer.Option(None, "--device", help='"auto", "cpu", "cuda" or "cuda:N" (sets train.device)'),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue an interrupted or lost run from its directory"),
    trust: bool = typer.Option(False, "--trust", help="with --resume: resume a run directory that another user owns"),
    detach: bool = typer.Option(False, "--detach", help="run in a session of its own, immune to the terminal's hang-up; output to a log in the results directory"),
    plan_id: Optional[str] = typer.Option(None, "--plan-id", hidden=True, help="the plan's file names (set by --detach)"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="runs at once, each in a process of its own, the CPU's cores split between them (default: the preset's train.jobs, 1)"),
    devices: Optional[str] = typer.Option(None, "--devices", help='the devices the runs share, one per process: "cuda:0,cuda:1", or "auto" (every visible GPU)'),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help=f"each run as a Ray task: alone (or {LOCAL_RAY}), a Ray instance of this machine's, for this plan; auto: the cluster RAY_ADDRESS names; or HOST:PORT. Needs pip install -e '.\\[ray]'"),
) -> None:
    """Run a preset headless: a progress bar per run, then Table 1 and the record paths."""
    from engine.record import read_record
    from lplr_tui.export import export_plan
    from lplr_tui.tables import rows_of

    if trust and not resume:
        raise LplrError("--trust: only with --resume RUN_DIR (it allows resuming a directory another user owns)")
    if plan_id is not None and not PLAN_ID.fullmatch(plan_id):
        raise LplrError(f"--plan-id {printable(plan_id)[:80]!r}: must be letters, digits and . = _ - (it names the plan's files)")
    fan = fan_options(jobs, devices, ray, resume)
    if detach:
        start_detached(preset, overrides, results, data_dir, device, resume, trust, fan)
        return
    runner = resumed_runner(resume, preset, overrides, data_dir, device, trust, plan_id or "") if resume else new_runner(
        preset, overrides, results, data_dir, device, plan_id or "", jobs, devices, ray
    )
    runner.preflight()
    if preset is not None:
        err.print(f"preset {preset}: {preset_origin(preset)}", markup=False, soft_wrap=True)
    for line in runner.said:
        err.print(line, markup=False, soft_wrap=True)
    final, code = drive(runner)
    records = [read_record(p) for p in runner.record_paths]
    print_tables(records, f"{runner.plan.name}: summary")
    print_verdicts(records, list(final.verdicts))
    if records:
        summary_path, _ = export_plan(
            runner.results_dir, runner.plan.name, rows_of(records), [str(p.parent) for p in runner.record_paths], list(final.verdicts)
        )
        out.print(f"summary: {summary_path}", markup=False)
    out.print("records:")
    for path in runner.record_paths:
        out.print(f"  {path}", markup=False)
    raise typer.Exit(code if code is not None else exit_code(final, records))


def print_tables(records: list, title: str) -> None:
    from lplr_tui.tables import edge_notes, edge_of, edge_table, rows_of, summary_table, theory_table

    rows = rows_of(records)
    out.print(summary_table(title, rows))
    for table in theory_table(title, rows):
        out.print(table)
    edge = edge_of(records)
    if edge.is_a_map:  # two widths or more, at two steps or more: where the local regime ends
        out.print(edge_table(f"{title}: where the local regime ends (width × η·β₀, the step against the edge at θ_0)", edge))
        for line in edge_notes(edge):
            out.print(line, markup=False, soft_wrap=True)


def print_verdicts(records: list, plan: list) -> None:
    from lplr_tui.tables import record_verdicts, verdict_lines

    lines = verdict_lines([(r.label, record_verdicts(r)) for r in records], plan)
    if lines:
        out.print("verdicts (did the theory's predictions hold?)", style="bold")
        for line in lines:
            out.print("  " + line, markup=False)


def new_runner(preset, overrides, results, data_dir, device, plan_id: str = "", jobs=None, devices=None, ray=None) -> "Runner":
    from engine.fanout import make_runner, parse_devices

    spec = checked_spec(preset, overrides, data_dir, device)
    shared = parse_devices(devices) if devices is not None else None  # every check of the input before Ray starts
    if ray is None:
        return make_runner(spec, results, plan_id, jobs, shared)
    from engine.ray_backend import RayTasks

    backend = RayTasks.connect(ray, results)
    try:
        return make_runner(spec, results, plan_id, jobs, shared, backend)
    except BaseException:
        backend.close()
        raise


def fan_options(jobs, devices, ray, resume) -> list[str]:
    """--jobs, --devices and --ray checked (as far as can be without torch), as arguments for a
    detached worker."""
    from engine.config import MAX_JOBS

    if jobs is not None and not 1 <= jobs <= MAX_JOBS:
        raise LplrError(f"--jobs = {jobs}: must be between 1 and {MAX_JOBS}")
    if resume is not None and (jobs is not None or devices is not None or ray is not None):
        raise LplrError("--resume: continues one run in this process; give no --jobs, --devices or --ray")
    args = ["--jobs", str(jobs)] if jobs is not None else []
    args += ["--devices", devices] if devices is not None else []
    return args + (["--ray", ray] if ray is not None else [])


def checked_spec(preset, overrides, data_dir, device):
    if preset is None:
        raise LplrError("--preset: missing; give a preset name or path (see `lplr-tui presets`), or --resume RUN_DIR")
    return load_spec(preset, spec_values(overrides, data_dir, device))


def resumed_runner(resume, preset, overrides, data_dir, device, trust: bool = False, plan_id: str = "") -> "Runner":
    from engine.runner import Runner

    check_resume_alone(preset, overrides, data_dir, device)
    return Runner.resume(resume, trust, plan_id)


def check_resume_alone(preset, overrides, data_dir, device) -> None:
    if preset or overrides or data_dir or device:
        raise LplrError("--resume: continues a run exactly as it was specified; give no --preset, --set, --data-dir or --device")


PLAN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]{0,200}")


def start_detached(preset, overrides, results, data_dir, device, resume, trust, fan: list[str] = ()) -> None:
    """Check what can be checked without the training stack, start the worker detached, wait
    for its preflight, and say where everything is."""
    from engine.lock import check_free, check_owner
    from engine.record import check_writable, new_plan_id, read_current
    from lplr_tui import detach

    if resume is not None:
        check_resume_alone(preset, overrides, data_dir, device)
        resume = resume.expanduser()
        if not trust:
            check_owner(resume)
        record, _ = read_current(resume)
        if record.state == "finished":
            raise LplrError(f"--resume {resume}: this run has finished already; nothing to resume")
        check_free(resume)  # a live run is not resumed twice
        name, results = str(record.run.get("plan", "") or "resumed"), resume.parent
        args = ["--resume", str(resume)] + (["--trust"] if trust else [])
    else:
        name = checked_spec(preset, overrides, data_dir, device).name
        args = ["--preset", preset, *[a for o in overrides for a in ("--set", o)], "--results", str(results)]
        args += (["--data-dir", data_dir] if data_dir is not None else []) + (["--device", device] if device is not None else [])
        args += list(fan)
    check_writable(results)
    started = detach.spawn(args, results, new_plan_id(results, name))
    problem = detach.wait_started(started)
    if problem:
        started.plan_log.unlink(missing_ok=True)  # an empty log would read as a plan
        raise LplrError(f"{problem} (the worker's output: {started.output})")
    for line in (
        f"plan {name}: running detached as pid {started.pid}, in a session of its own: closing this terminal does not stop it",
        f"records: {results}/ (a directory per run)",
        f"output:  {started.output}",
        f"watch:   {started.watch_command()}",
        f"stop:    kill -TERM {started.pid}, or c in the watch (it stops at the end of the epoch, checkpoint saved)",
    ):
        out.print(line, markup=False, soft_wrap=True)


SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
SIGNAL_WORDS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "asked to terminate", signal.SIGHUP: "the terminal hung up"}


def drive(runner: "Runner") -> tuple[PlanFinished, int | None]:
    """Show the plan's progress until it ends. A first SIGINT/SIGTERM/SIGHUP stops it at the next
    epoch (checkpoint, record interrupted); a second ends the process at once, record still valid."""
    from lplr_tui import progress

    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            runner.cancel(f"{name}: {SIGNAL_WORDS[signum]}")
            err.print(f"{name}: stopping at the next epoch (checkpoint saved, record says interrupted); again to quit now")
            return
        runner.abandon(f"{name} twice: stopped at once, before the epoch ended")
        os._exit(SIGNALS[received[0]])

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    runner.start()
    if runner.plan_log is not None:
        err.print(f"watch it from another terminal: lplr-tui watch {runner.plan_log}", markup=False, soft_wrap=True)
    final = PlanFinished(FAILED, "no events")
    try:
        with progress.display_for(out) as display:
            for event in runner.iter_events():
                display.handle(event)
                final = event if isinstance(event, PlanFinished) else final
        runner.join()
    except BaseException as exc:  # the display broke (a lost terminal...): the records say so
        runner.stop(f"the progress display failed ({type(exc).__name__}: {exc})")
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return final, (SIGNALS[received[0]] if received else None)


def exit_code(final: PlanFinished, records: list) -> int:
    if final.state == INTERRUPTED:
        return 130
    if final.state == FAILED or any(r.state == FAILED for r in records):
        err.print(Text.assemble(("failed:", "red"), f" {final.reason or 'a run failed: see its record'}"), soft_wrap=True)
        return 1
    return 0


@app.command()
@user_errors
def advise(
    preset: str = typer.Option(..., "--preset", "-p", help="a preset name or a path to a .toml"),
    overrides: List[str] = typer.Option([], "--set", "-s", help="override a preset key, e.g. --set optim.lr=5e-4"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="the data root (sets data.root)"),
    device: Optional[str] = typer.Option(None, "--device", help='"auto", "cpu", "cuda" or "cuda:N"'),
) -> None:
    """Each run's step size against β = λ_max(∇²L) at initialisation: inside the theorem
    (η ≤ 1/β), stable but outside it (η < 2/β; with momentum μ, η < 2(1+μ)/β), or unstable."""
    from engine.runner import Runner
    from lplr_tui.tables import advice_lines

    runner = Runner(load_spec(preset, spec_values(overrides, data_dir, device)))
    runner.preflight()  # the same checks and data as a run
    for line in advice_lines(runner.advise()):
        out.print(line, markup=False)



@app.command()
def presets() -> None:
    """List the presets (./presets first, then the bundled ones) with their descriptions."""
    table = Table(header_style="bold", show_lines=True)
    table.add_column("preset", no_wrap=True)
    table.add_column("description")
    table.add_column("file", overflow="fold")
    for name, path in available_presets().items():
        hidden = shadowed(name, path)
        where = str(path) + (f"\n(shadows the bundled {hidden})" if hidden else "")
        table.add_row(Text(name), Text(preset_description(path)), Text(where, style="yellow" if hidden else ""))
    out.print(table)


@app.command()
@user_errors
def summary(
    paths: List[Path] = typer.Argument(..., help="record.toml files, run directories or results directories"),
) -> None:
    """Read records back, recompute their summaries and verdicts from the trajectories with
    today's analysis, and print them (Table 1 or 2, the theory and local-regime tables, the
    verdicts per run and across each plan)."""
    records = load_records(paths)
    print_tables(records, "summary (recomputed from the trajectories)")
    print_verdicts(records, plan_verdicts_of(records))
    for record in records:
        if record.state == LOST:
            out.print(Text.assemble(("lost:", "red"), f" {record.label} at epoch {record.status.get('epochs_done', 0)}: {record.status['reason']}"), soft_wrap=True)


def load_records(paths: list[Path]) -> list:
    """The records under the paths as far as they are known (the log, where the record is behind
    it), liveness checked, summaries and verdicts recomputed with today's analysis. A record that
    cannot be read or analysed is skipped with a warning; when it is the only one, its problem
    is the error."""
    from engine.record import find_records, read_current, with_liveness

    found = find_records(paths)
    records, skipped, notes = [], [], []
    for path in found:  # the stored [summary] and [verdict] may come from an older version
        try:
            record, problems = read_current(path)  # the log, where the record is behind it
            notes += problems + ([f"{path}: {record.status['rebuilt']}"] if record.status.get("rebuilt") else [])
            records.append(reanalysed(with_liveness(record)))
        except LplrError as exc:
            skipped.append(str(exc))
        except Exception as exc:  # a record that parses but that the analysis or the tables cannot take
            skipped.append(f"{path}: cannot be analysed ({type(exc).__name__}: {exc})")
    if not records and len(skipped) == 1:
        raise LplrError(skipped[0])  # the one record asked for: its problem is the error
    for why in skipped:
        err.print(Text.assemble(("skipped:", "yellow"), f" {printable(why)}"), soft_wrap=True)
    for note in notes:
        err.print(Text.assemble(("note:", "yellow"), f" {printable(note)}"), soft_wrap=True)
    if not records:
        none = "no readable records" if found else "no records"
        raise LplrError(f"{none} under {', '.join(map(str, paths))}")
    return records


PANELS_HELP = "panels, comma-separated: lambda, drift, pl, subopt; with the theory: step, bound, kernel, weyl"


@app.command()
@user_errors
def plot(
    paths: List[Path] = typer.Argument(..., help="record.toml files, run directories or results directories"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="the figure: .pdf, .svg or .png (default: <time>-<plan>-figure.pdf beside the run directories)"),
    theory: bool = typer.Option(False, "--theory", help="add the step size η·β against 1 and 2, the PL ratio against its bound, and the local-regime measures"),
    runs: List[str] = typer.Option([], "--runs", help="only the runs with this label (or shell pattern, e.g. 'm=1024*'); repeat or separate with commas"),
    panels: Optional[str] = typer.Option(None, "--panels", help=PANELS_HELP),
    size: Optional[str] = typer.Option(None, "--size", help="WIDTHxHEIGHT in inches (default: 3.5 wide, a paper's column)"),
    l_star: str = typer.Option("proxy", "--l-star", help="L* of the L − L* panel: proxy (the final loss, the paper's), zero, or fitted (the decay fit's)"),
    edge_map: bool = typer.Option(False, "--map", help="the map of where the local regime ends (a sweep of optim.lr_scale over widths, as the edge preset)"),
) -> None:
    """Publication figures of runs: one run in the paper's 2×2 layout, a plan as one line per
    run, seeds of one configuration as their mean with a min–max band; --map: the edge map."""
    chosen, inches = figure_options(out_path, theory, panels, size, l_star)
    records = load_records(paths)
    if edge_map:
        from lplr_tui import figures
        from lplr_tui.tables import edge_of

        target = out_path or figures.default_path(records, False, what="map")
        figures.write_map(edge_of(records), target, inches if size else None)
        out.print(f"map: {target} ({target.stat().st_size / 1024:.0f} KB)", markup=False, soft_wrap=True)
        return
    draw_figure(records, out_path, chosen, inches, l_star, [p.strip() for r in runs for p in r.split(",") if p.strip()])


def figure_options(out_path, theory, panels, size, l_star) -> tuple[tuple[str, ...], tuple[float, float]]:
    """The panels and the size, checked with the suffix and L* before any record is read."""
    from lplr_tui import figures

    if out_path is not None:
        figures.figure_format(out_path)
    chosen = figures.parse_panels(panels, theory)
    if l_star not in figures.L_STAR_VIEWS:
        raise LplrError(f"--l-star {show_value(l_star)}: must be one of {', '.join(figures.L_STAR_VIEWS)}")
    return chosen, figures.parse_size(size, len(chosen))


def draw_figure(records, out_path, chosen, inches, l_star, runs: list[str], group: bool = True) -> Path:
    """Draw the records (the labels told apart where they collide), save, say where."""
    from lplr_tui import figures
    from lplr_tui.tables import shown_labels

    shown = [figures.FigureRun.of_record(r, label) for r, label in zip(records, shown_labels(records))]
    shown = figures.choose_runs(shown, runs)
    target = out_path or figures.default_path(records, any(figures.PANELS[c].theory for c in chosen))
    started = time.perf_counter()
    figures.write(shown, target, chosen, inches, l_star, group)
    took = time.perf_counter() - started
    out.print(f"figure: {target} ({target.stat().st_size / 1024:.0f} KB, {inches[0]:g} × {inches[1]:g} in, "
              f"{len(shown)} run{'s' if len(shown) != 1 else ''}, panels {', '.join(chosen)}; drawn in {took:.1f} s)",
              markup=False, soft_wrap=True)
    return target


@app.command()
@user_errors
def compare(
    paths: List[Path] = typer.Argument(..., help="run directories, results directories or record.toml files, from any plans"),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="also draw them overlaid into this figure (.pdf, .svg, .png)"),
    theory: bool = typer.Option(False, "--theory", help="with --plot: the theory panels too"),
    in_app: bool = typer.Option(False, "--app", help="open the dashboard's overlay on these runs (needs a terminal)"),
) -> None:
    """Runs from different plans or results directories side by side: one table (Table 1 or 2
    columns, with each run's plan and start), flagging runs whose specs differ in more than the
    keys their plans vary."""
    from lplr_tui.tables import compare_table

    if plot_path is not None:
        chosen, inches = figure_options(plot_path, theory, None, None, "proxy")
    if in_app and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise LplrError("--app: needs a terminal (use ssh -t); without --app the table is printed")
    records = load_records(paths)
    table, notes = compare_table("compare", records)
    out.print(table)
    for note in notes:
        out.print(note, markup=False, soft_wrap=True)
    if plot_path is not None:
        draw_figure(records, plot_path, chosen, inches, "proxy", [], group=False)  # each run its own line
    if in_app:
        from lplr_tui.app import LplrApp  # textual loads only for the app

        LplrApp(records[0].path.parent.parent if records[0].path else Path("results"), compare=records).run()


@app.command("export")
@user_errors
def export_series(
    paths: List[Path] = typer.Argument(..., help="record.toml files, run directories or results directories"),
    csv: bool = typer.Option(False, "--csv", help="a CSV of each run's trajectory (header; one row per epoch; empty where not measured)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="with --csv: write <run dir>.csv files here instead of trajectory.csv in each run directory"),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="write each run's series as TensorBoard scalars under this log directory, a subdirectory per run"),
) -> None:
    """Trajectories into the tools you already use: CSV for pandas or R, TensorBoard scalars."""
    from lplr_tui import series_export

    if not csv and tensorboard is None:
        raise LplrError("export: say what to write: --csv, --tensorboard LOGDIR, or both")
    if out_dir is not None and not csv:
        raise LplrError("--out: only with --csv (TensorBoard writes under its LOGDIR)")
    records = load_records(paths)
    if csv:
        for path in series_export.write_csv(records, out_dir):
            out.print(f"csv: {path}", markup=False, soft_wrap=True)
    if tensorboard is not None:
        for path in series_export.write_tensorboard(records, tensorboard):
            out.print(f"tensorboard: {path}", markup=False, soft_wrap=True)
        out.print(f"view them: tensorboard --logdir {tensorboard}", markup=False, soft_wrap=True)


@app.command()
@user_errors
def watch(
    target: Optional[Path] = typer.Argument(None, help="a plan's log (*.plan.jsonl), a run directory, or a results directory (its newest live plan)"),
    results: Path = typer.Option(Path("results"), "--results", "-r", help="where to look for the newest live plan when no TARGET is given"),
) -> None:
    """Follow a plan or a run that another process writes, or wrote: the dashboard on a
    terminal, progress lines otherwise (exit 0 when it has ended, 1 when its worker is lost)."""
    from engine.eventlog import LOG_NAME, check_header
    from engine.tail import resolve

    path = resolve(target if target is not None else results)
    if sys.stdin.isatty() and sys.stdout.isatty():
        check_header(path if path.is_file() else path / LOG_NAME)  # a newer version's log: one line, before the app opens
        from lplr_tui.app import LplrApp  # textual loads only for the app

        LplrApp(path.parent, watch=path).run()
        return
    raise typer.Exit(follow_lines(path))


WATCH_POLL = 0.5  # seconds between reads of a followed log


def follow_lines(path: Path) -> int:
    from engine.events import Lost
    from engine.tail import Tail
    from lplr_tui.progress import LineDisplay

    tail, display = Tail(path), LineDisplay(out)
    display.say(f"following {path}")
    try:
        while True:
            for event in tail.poll():
                display.handle(event)
                if isinstance(event, (PlanFinished, Lost)):
                    return 0 if isinstance(event, PlanFinished) else 1
            for problem in tail.problems:
                err.print(Text.assemble(("warning:", "yellow"), f" {printable(problem)}"), soft_wrap=True)
            tail.problems.clear()
            time.sleep(WATCH_POLL)
    except KeyboardInterrupt:
        return 130


def reanalysed(record):
    """The record with its summary and verdicts recomputed, and proof that its rows can be
    drawn: a record whose values the analysis or the tables cannot take raises here, alone."""
    from engine.judge import plan_entry
    from lplr_tui.tables import extra_tables, record_verdicts, rows_of, table_rows

    summary, verdicts = record.reanalyse()
    record.summary = summary
    record.verdict = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in verdicts}
    rows = rows_of([record])
    table_rows(rows), extra_tables(rows), plan_entry(record.label, record.spec, record.summary, record_verdicts(record))
    return record


def plan_verdicts_of(records: list) -> list[dict]:
    """The cross-run verdicts of each plan among the records (finished runs only)."""
    from engine.judge import judge_plan, plan_entry
    from lplr_tui.tables import record_verdicts

    plans: dict[str, list] = {}
    for record in records:
        plans.setdefault(record.run.get("plan", ""), []).append(record)
    out = []
    for members in plans.values():
        finished = [r for r in members if r.state == "finished"]
        entries = [plan_entry(r.label, r.spec, r.summary, record_verdicts(r)) for r in finished]
        out += judge_plan(entries, finished[0].spec) if entries else []
    return out


def main() -> None:
    app(args=ray_address_optional(sys.argv[1:]), prog_name="lplr-tui")


def ray_address_optional(args: list[str]) -> list[str]:
    """`--ray` with no address (last, or before another option) means a local instance: click
    options take a value or none, never either, so the missing address is written in here."""
    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            return out + args[i + 1:]
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(LOCAL_RAY)
    return out


if __name__ == "__main__":
    sys.exit(main())

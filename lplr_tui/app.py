"""The Textual app: thin. A plan's events come from a source (a detached worker's logs, or a
runner in this process); a timer drains them into a PlanView, and the screens show it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from engine.config import Spec
from engine.errors import LplrError
from engine.events import RUNNING, Lost, PlanFinished
from lplr_tui.export import export_plan
from lplr_tui.plan_view import WAITING, PlanView
from lplr_tui.screens.dashboard import DashboardScreen
from lplr_tui.screens.modals import ConfirmCancel, ConfirmQuit, LeaveOrStop
from lplr_tui.screens.modals import HelpScreen
from lplr_tui.screens.picker import PickerScreen
from lplr_tui.screens.summary import SummaryScreen
from lplr_tui.sources import QueueSource, CompareSource, TailSource
from lplr_tui.tables import rows_of

if TYPE_CHECKING:
    from engine.runner import Runner

STOP_TIMEOUT = 60.0  # seconds an in-process run may take to reach its epoch's end when the app ends
DRAIN_AT_MOST = 5000  # events per drain, so a fast GPU run cannot starve the keyboard


class PlanReady(Message):
    """A detached worker has started its plan: its log is there to follow."""

    def __init__(self, plan_log: Path, pid: int) -> None:
        super().__init__()
        self.plan_log, self.pid = plan_log, pid


class PlanFailed(Message):
    """A detached worker exited before its plan started (its preflight refused the input)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class LplrApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "lplr-tui"
    BINDINGS = [Binding("question_mark", "help", "help"), Binding("q", "quit_app", "quit")]

    def __init__(
        self,
        results_dir: str | Path = "results",
        overrides: dict | None = None,
        clock: Callable[[], float] = time.time,
        watch: Path | None = None,
        detach: bool = True,
        compare: list | None = None,
    ):
        super().__init__()
        self.results_dir = Path(results_dir)
        self.overrides = overrides or {}
        self.clock = clock
        self.watch_target = watch  # `lplr-tui watch`: open on this plan's (or run's) logs
        self.compare = compare or []  # `lplr-tui compare --app`: open the overlay on these records
        self.detach = detach  # start plans as detached workers (False: in this process, for tests)
        self.source: QueueSource | TailSource | CompareSource | None = None
        self.runner: Runner | None = None  # the in-process runner, when there is one
        self.plan = PlanView(clock)
        self.exported: list[Path] = []
        self.starting = False
        self.drain_timer = None

    def on_mount(self) -> None:
        self.push_screen(PickerScreen(self.overrides, self.results_dir))
        if self.watch_target is not None:
            self.attach(TailSource(self.watch_target))
        elif self.compare:
            from lplr_tui.tables import shown_labels

            self.attach(CompareSource(self.compare, shown_labels(self.compare)), overlay=True)

    # ------------------------------------------------------------ the plan

    def attach(self, source: QueueSource | TailSource | CompareSource, overlay: bool = False) -> None:
        """Show the plan this source feeds, from its first event."""
        self.source, self.plan = source, PlanView(self.clock)
        if self.drain_timer is not None:
            self.drain_timer.stop()
        self.drain_timer = self.set_interval(source.every, self.drain)
        self.drain()
        self.push_screen(DashboardScreen(self.plan, overlay))

    def start_plan(self, spec: Spec) -> None:
        """Start the plan: a detached worker (the app may quit, the plan goes on), or a runner
        in this process. Bad input raises here (in-process) or comes back as PlanFailed."""
        if not self.detach:
            from engine.fanout import make_runner

            runner = make_runner(spec, self.results_dir)  # the preset's train.jobs runs at once
            runner.preflight()  # raises what the user must fix; the picker shows it
            runner.start()
            self.runner = runner
            self.attach(QueueSource(runner))
            return
        if self.starting:
            return
        from engine.record import check_writable, dumps, new_plan_id
        from lplr_tui import detach

        check_writable(self.results_dir)
        plan_id = new_plan_id(self.results_dir, spec.name)
        preset = self.results_dir / f"{plan_id}.preset.toml"  # the spec as the picker made it
        try:
            with open(preset, "x", encoding="utf-8") as fh:  # a plan id another app took this second is not shared
                fh.write(dumps(spec.to_dict()))
        except OSError as exc:
            raise LplrError(f"{preset}: cannot be written ({exc.strerror or exc})") from None
        started = detach.spawn(["--preset", str(preset), "--results", str(self.results_dir)], self.results_dir, plan_id)
        self.starting = True
        self.notify("starting the plan in a worker of its own (it loads its data first)…", timeout=4)
        threading.Thread(target=self.wait_for_worker, args=(started,), daemon=True).start()

    def wait_for_worker(self, started) -> None:
        """On a thread: the worker's preflight, then a message (threads never touch widgets)."""
        from lplr_tui import detach

        problem = detach.wait_started(started)
        if problem:
            started.plan_log.unlink(missing_ok=True)
            self.post_message(PlanFailed(f"{problem} (the worker's output: {started.output})"))
        else:
            self.post_message(PlanReady(started.plan_log, started.pid))
            started.process.wait()  # reaped when it ends: a zombie would pass for a live worker

    def resume_run(self, run_dir: Path) -> None:
        """Continue a lost (or interrupted) run in a detached worker, and follow it."""
        from engine.lock import check_free
        from engine.record import new_plan_id, read_current
        from lplr_tui import detach

        if self.starting:
            return
        record, _ = read_current(run_dir)
        check_free(run_dir)
        plan_id = new_plan_id(run_dir.parent, str(record.run.get("plan", "") or "resumed"))
        started = detach.spawn(["--resume", str(run_dir)], run_dir.parent, plan_id)
        self.starting = True
        self.notify(f"resuming {run_dir.name} in a worker of its own…", timeout=4, markup=False)
        threading.Thread(target=self.wait_for_worker, args=(started,), daemon=True).start()

    @on(PlanReady)
    def plan_ready(self, message: PlanReady) -> None:
        self.starting = False
        self.attach(TailSource(message.plan_log, message.pid))

    @on(PlanFailed)
    def plan_failed(self, message: PlanFailed) -> None:
        self.starting = False
        if isinstance(self.screen, PickerScreen):
            self.screen.show_error(LplrError(message.text))
        else:
            self.notify(message.text, severity="error", markup=False)

    def watch_plan(self, plan: PlanView) -> None:
        """Show a plan that is fed from elsewhere (tests, replays)."""
        self.plan = plan
        self.push_screen(DashboardScreen(plan))

    def drain(self) -> None:
        if self.source is None:
            return
        try:
            events = self.source.poll(DRAIN_AT_MOST)
        except LplrError as exc:  # a log this version cannot read (a newer format)
            self.notify(str(exc), severity="error", markup=False, timeout=30)
            self.source = None
            return
        for event in events:
            self.plan.handle(event)
            if isinstance(event, PlanFinished) and not isinstance(self.source, CompareSource):  # a replay's end is no news
                self.notify(f"plan {event.state}" + (f": {event.reason}" if event.reason else ""), markup=False)
            elif isinstance(event, Lost):
                where = f"\n`lplr-tui run --resume {event.run_dir}` continues it" if event.run_dir else ""
                self.notify(f"{event.reason}{where}", severity="error", markup=False, timeout=30)
        for problem in self.source.problems:
            self.notify(problem, severity="warning", markup=False, timeout=10)
        self.source.problems.clear()

    @property
    def live(self) -> bool:
        """A plan whose end has not been read yet (and whose worker is not lost)."""
        return self.source is not None and self.plan.state in (WAITING, RUNNING)

    def cancel_plan(self) -> None:
        if not self.live:
            return

        def answered(stop: bool | None) -> None:
            if stop and self.live:
                self.notify(self.source.stop("cancelled by the user"), markup=False)

        self.push_screen(ConfirmCancel(), answered)

    def export(self) -> None:
        runs = [r for r in self.plan.runs if r.run_dir]
        if not runs:
            self.notify("nothing to export yet", severity="warning")
            return
        try:
            self.exported = export_plan(self.results_dir, self.plan.name, rows_of(runs), [r.run_dir for r in runs], self.plan.verdicts)
        except OSError as exc:
            self.notify(f"export failed: {self.results_dir}: {exc.strerror or exc}", severity="error", markup=False)
            return
        summary, text = self.exported
        self.notify(f"summary: {summary}\n{text}\nrecords: {Path(runs[0].run_dir).parent}/", timeout=10, markup=False)

    def show_table(self) -> None:
        self.push_screen(SummaryScreen(self.plan))

    def back_to_picker(self) -> None:
        if self.live and not self.source.detached:
            self.notify("a plan is live in this process: cancel it (c) first", severity="warning")
            return
        if self.live:
            self.notify("the plan goes on in its worker; the picker lists it (w watches it again)", markup=False)
        self.source = None
        self.pop_screen()

    # ------------------------------------------------------------ keys

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_export(self) -> None:
        self.export()

    def action_quit_app(self) -> None:
        if not self.live:
            self.exit()
            return
        if self.source.detached:
            def chosen(choice: str | None) -> None:
                if choice == "stop":
                    self.notify(self.source.stop("stopped by the user on quitting the app"), markup=False)
                if choice in ("leave", "stop"):
                    self.exit()

            self.push_screen(LeaveOrStop(), chosen)
            return

        def answered(quit_now: bool | None) -> None:
            if quit_now:
                self.stop_and_exit()

        self.push_screen(ConfirmQuit(), answered)

    def stop_and_exit(self) -> None:
        self.stop_runner("the user quit the app")
        self.exit()

    def stop_runner(self, reason: str = "the app ended", timeout: float = STOP_TIMEOUT) -> None:
        """An in-process runner: cancel, and let it write its interrupted record before the
        process ends (abandoned, record saying why, when it does not stop in time). A detached
        worker is not this process's: it goes on."""
        if self.runner is not None:
            self.runner.stop(reason, timeout)

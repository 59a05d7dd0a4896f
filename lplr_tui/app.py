"""The Textual app: thin. It starts the engine's Runner, drains its queue on a timer into a
PlanView, and lets the screens show it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from textual.app import App
from textual.binding import Binding

from engine.config import Spec
from engine.events import RUNNING, PlanFinished
from engine.runner import Runner
from lplr_tui.export import export_plan
from lplr_tui.plan_view import WAITING, PlanView
from lplr_tui.screens.dashboard import DashboardScreen
from lplr_tui.screens.modals import ConfirmQuit, HelpScreen
from lplr_tui.screens.picker import PickerScreen
from lplr_tui.screens.summary import SummaryScreen
from lplr_tui.tables import rows_of

DRAIN_EVERY = 0.1  # seconds between queue drains
STOP_TIMEOUT = 60.0  # seconds a run may take to reach its epoch's end when the app ends
DRAIN_AT_MOST = 5000  # events per drain, so a fast GPU run cannot starve the keyboard


class LplrApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "lplr-tui"
    BINDINGS = [Binding("question_mark", "help", "help"), Binding("q", "quit_app", "quit")]

    def __init__(self, results_dir: str | Path = "results", overrides: dict | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.results_dir = Path(results_dir)
        self.overrides = overrides or {}
        self.clock = clock
        self.runner: Runner | None = None
        self.plan = PlanView(clock)
        self.exported: list[Path] = []

    def on_mount(self) -> None:
        self.push_screen(PickerScreen(self.overrides))
        self.set_interval(DRAIN_EVERY, self.drain)

    # ------------------------------------------------------------ the plan

    def start_plan(self, spec: Spec) -> None:
        runner = Runner(spec, self.results_dir)
        runner.preflight()  # raises what the user must fix; the picker shows it
        self.runner, self.plan = runner, PlanView(self.clock)
        runner.start()
        self.push_screen(DashboardScreen(self.plan, spec.guide.text))

    def watch_plan(self, plan: PlanView) -> None:
        """Show a plan that is fed from elsewhere (tests, replays)."""
        self.plan = plan
        self.push_screen(DashboardScreen(plan))

    def drain(self) -> None:
        if self.runner is None:
            return
        for _ in range(DRAIN_AT_MOST):
            try:
                event = self.runner.events.get_nowait()
            except Exception:
                return
            self.plan.handle(event)
            if isinstance(event, PlanFinished):
                self.notify(f"plan {event.state}" + (f": {event.reason}" if event.reason else ""), markup=False)

    @property
    def live(self) -> bool:
        """A plan started here whose PlanFinished has not been drained yet."""
        return self.runner is not None and self.plan.state in (WAITING, RUNNING)

    def cancel_plan(self) -> None:
        if self.live:
            self.runner.cancel()
            self.notify("cancelling: the run stops at the next epoch; its record will say interrupted")

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
        if self.live:
            self.notify("a plan is live: cancel it (c) first", severity="warning")
            return
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

        def answered(quit_now: bool | None) -> None:
            if quit_now:
                self.stop_and_exit()

        self.push_screen(ConfirmQuit(), answered)

    def stop_and_exit(self) -> None:
        self.stop_runner("the user quit the app")
        self.exit()

    def stop_runner(self, reason: str = "the app ended", timeout: float = STOP_TIMEOUT) -> None:
        """Cancel, and let the runner write its interrupted record before the process ends; a
        run that does not stop in time is abandoned (its record says interrupted, and why)."""
        if self.runner is not None:
            self.runner.stop(reason, timeout)

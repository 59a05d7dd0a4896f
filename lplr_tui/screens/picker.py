"""The first screen: the presets on the left; the selected one's description and main fields,
editable, on the right; the same validation messages as the CLI, shown inline."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ListItem, ListView, Static

from engine.config import Spec, available_presets, load_spec, parse_override, shadowed
from engine.errors import ConfigError, LplrError
from engine.events import LOST, RUNNING
from engine.eventlog import PLAN_SUFFIX
from engine.tail import PlanState, PlanWatch, plan_logs
from lplr_tui.tables import advice_lines

# (the key the field edits, its label); "widths" edits model.width of every [[runs]] entry
FIELDS = [
    ("model.width", "width m"),
    ("optim.lr", "step size η"),
    ("train.epochs", "epochs"),
    ("probes.every", "probe every (epochs)"),
    ("train.device", "device"),
    ("data.root", "data root"),
]


PLANS_EVERY = 5.0  # seconds between looks at the results directory's plans


def plan_line(plan: "PlanState") -> str:
    """The plan's name and state, then its id (start time and name) on a line of its own."""
    return f"{'▶' if plan.live else '?'} {plan.name} ({plan.state})\n  {plan.path.name.removesuffix(PLAN_SUFFIX)}"


class PlanList:
    """The live and lost plans of a results directory, each plan's logs followed incrementally
    (a plan that has ended is not read again)."""

    def __init__(self, results_dir: Path | None):
        self.results_dir = results_dir
        self.watches: dict[Path, PlanWatch] = {}
        self.states: dict[Path, PlanState] = {}
        self.resumed: dict[Path, tuple[float, bool]] = {}  # lost plan -> (its run's log mtime, resumed since)

    def read(self) -> list["PlanState"]:
        if self.results_dir is None or not self.results_dir.is_dir():
            return []
        for path in plan_logs(self.results_dir):
            if path in self.states and not self.states[path].live and self.states[path].state != LOST:
                continue  # ended: it says so for good
            try:
                self.states[path] = self.watches.setdefault(path, PlanWatch(path)).state()
            except (OSError, LplrError):  # unreadable, or a newer version's: not listed
                self.states.pop(path, None)
                self.watches.pop(path, None)
        shown = [p for p in self.states.values() if p.runs and (p.live or (p.state == LOST and not self.resumed_since(p)))]
        return sorted(shown, key=lambda p: p.path.name, reverse=True)

    def resumed_since(self, plan: "PlanState") -> bool:
        """A lost plan's run that another worker has taken up since (a resume): nothing left to do."""
        from engine.liveness import worker_of
        from engine.record import read_current

        run_dir = Path(plan.lost.run_dir) if plan.lost and plan.lost.run_dir else None
        if run_dir is None:
            return False
        try:
            mtime = (run_dir / "events.jsonl").stat().st_mtime
            if self.resumed.get(plan.path, (None,))[0] != mtime:
                record, _ = read_current(run_dir)
                self.resumed[plan.path] = (mtime, record.state != RUNNING or worker_of(record.environment) != plan.worker)
        except (LplrError, OSError):
            return False
        return self.resumed[plan.path][1]


def field_id(key: str) -> str:
    return "field-" + key.replace(".", "-")


def widths_of(spec: Spec) -> list[int]:
    return [entry.get("model", {}).get("width", spec.model.width) for entry in spec.runs]


def width_key(spec: Spec) -> str:
    """What the width field edits: the MLP's width, or the CNN's base width."""
    return "model.base_width" if spec.model.kind == "resnet-gn" else "model.width"


def field_values(spec: Spec) -> dict[str, str]:
    width = ", ".join(map(str, widths_of(spec))) if spec.runs else str(spec.model.width)
    if spec.model.kind == "resnet-gn":
        width = str(spec.model.base_width)
    return {
        "model.width": width,
        "optim.lr": f"{spec.optim.lr:g}",
        "train.epochs": str(spec.train.epochs),
        "probes.every": str(spec.probes.every),
        "train.device": spec.train.device,
        "data.root": spec.data.root,
    }


def overrides_from(spec: Spec, texts: dict[str, str]) -> dict:
    """The fields' texts as load_spec overrides; a plan's widths go into its [[runs]]."""
    values = {}
    for key, text in texts.items():
        if key == "model.width" and spec.runs and spec.model.kind == "mlp":
            continue
        values.update([parse_override(f"{width_key(spec) if key == 'model.width' else key}={text}")])
    if spec.runs and spec.model.kind == "mlp":
        widths = parse_widths(texts["model.width"], len(spec.runs))
        values["runs"] = [
            {**entry, "model": {**entry.get("model", {}), "width": w}} for entry, w in zip(spec.runs, widths)
        ]
    return values


def parse_widths(text: str, count: int) -> list:
    parts = [p.strip() for p in text.replace(",", " ").split()]
    try:
        widths = [int(p) for p in parts]
    except ValueError:
        raise ConfigError("model.width", text, f"must be {count} integers, one per run, e.g. 128, 256") from None
    if len(widths) != count:
        raise ConfigError("model.width", text, f"must list {count} widths, one per run of the plan")
    return widths


class PickerScreen(Screen):
    BINDINGS = [
        Binding("s", "start", "start"),
        Binding("a", "advise", "advise η"),
        Binding("w", "watch_plan", "watch plan"),
        Binding("r", "resume_plan", "resume lost"),
    ]  # ? and q are the app's

    def __init__(self, overrides: dict | None = None, results_dir: Path | None = None):
        super().__init__()
        self.presets: dict[str, Path] = available_presets()
        self.base_overrides = overrides or {}
        self.spec: Spec | None = None
        self.results_dir = results_dir
        self.plans = PlanList(results_dir)

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="preset-pane"):
                yield Label("experiments", classes="pane-title")
                yield ListView(*(ListItem(Label(Text(name)), name=name) for name in self.presets), id="presets")
                yield Label("live & lost plans", classes="pane-title")
                yield ListView(id="plans")
            with VerticalScroll(id="detail-pane", can_focus=False):
                yield Static("", id="description")
                for key, label in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(label, classes="field-label", id=field_id(key) + "-label")
                        yield Input(id=field_id(key), classes="field-input")
                    yield Static("", id=field_id(key) + "-error", classes="field-error")
                yield Static("", id="form-error", classes="field-error")
                yield Button("Start  (s)", id="start", variant="primary")
                yield Static("[dim]a: each run's step size against 1/β and 2/β at initialisation[/dim]", id="advice")
                yield Static("", id="guide")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#presets", ListView).focus()
        if self.presets:
            self.select(next(iter(self.presets)))
        self.refresh_plans()
        self.set_interval(PLANS_EVERY, self.refresh_plans)

    def on_screen_resume(self) -> None:
        self.refresh_plans()

    def refresh_plans(self) -> None:
        """The live and lost plans under the results directory, newest first (looked at while
        the picker is the screen shown)."""
        if not self.is_current:
            return
        shown = self.plans.read()
        view = self.query_one("#plans", ListView)
        names = [str(p.path) for p in shown]
        if [item.name for item in view.children] != names:
            view.clear()
            view.extend(ListItem(Label(Text(plan_line(p))), name=str(p.path)) for p in shown)
        else:
            for item, plan in zip(view.children, shown):
                item.query_one(Label).update(Text(plan_line(plan)))

    def highlighted_plan(self) -> "PlanState | None":
        item = self.query_one("#plans", ListView).highlighted_child
        return self.plans.states.get(Path(item.name)) if item is not None else None

    def action_watch_plan(self) -> None:
        plan = self.highlighted_plan()
        if plan is None:
            self.notify("no live or lost plan highlighted (tab to the plans list)", severity="warning")
            return
        from lplr_tui.sources import TailSource

        self.app.attach(TailSource(plan.path))

    def action_resume_plan(self) -> None:
        plan = self.highlighted_plan()
        if plan is None or plan.lost is None or not plan.lost.run_dir:
            self.notify("highlight a lost plan in the plans list to resume it", severity="warning")
            return
        try:
            self.app.resume_run(Path(plan.lost.run_dir))
        except LplrError as exc:
            self.show_error(exc)

    @on(ListView.Highlighted, "#presets")
    def highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not None:
            self.select(event.item.name)

    def select(self, name: str) -> None:
        self.clear_errors()
        try:
            self.spec = load_spec(str(self.presets[name]), self.base_overrides)
        except LplrError as exc:
            self.spec = None
            self.show_error(exc)
            return
        hidden = shadowed(name, self.presets[name])
        origin = f"\n{self.presets[name]}: a local preset that shadows the bundled one" if hidden else ""
        self.query_one("#description", Static).update(
            Text.assemble((name, "bold"), (origin, "yellow"), "\n\n", self.spec.description)
        )
        self.query_one("#guide", Static).update(Text(self.spec.guide.text.strip()))
        label = "widths m (one per run)" if self.spec.runs else "width m"
        if self.spec.model.kind == "resnet-gn":
            label = "base width (channels)"
        self.query_one("#" + field_id("model.width") + "-label", Label).update(label)
        with self.prevent(Input.Changed):  # the preset's own values: nothing to re-validate
            for key, text in field_values(self.spec).items():
                self.query_one("#" + field_id(key), Input).value = text

    def clear_errors(self) -> None:
        for widget in self.query(".field-error"):
            widget.update("")
            widget.display = False

    def texts(self) -> dict[str, str]:
        return {key: self.query_one("#" + field_id(key), Input).value for key, _ in FIELDS}

    def checked_spec(self) -> Spec | None:
        """The spec with the fields applied, or None with the error shown by its field."""
        self.clear_errors()
        if self.spec is None:
            return None
        try:
            path = self.presets[self.query_one("#presets", ListView).highlighted_child.name]
            return load_spec(str(path), {**self.base_overrides, **overrides_from(self.spec, self.texts())})
        except ConfigError as exc:
            self.show_error(exc)
        return None

    def show_error(self, exc: LplrError) -> None:
        key = getattr(exc, "key", "")
        key = "model.width" if key == "model.base_width" else key  # the width field edits both
        target = f"#{field_id(key)}-error" if key in dict(FIELDS) else "#form-error"
        widget = self.query_one(target, Static)
        widget.update(Text(exc.bare if target != "#form-error" else str(exc)))
        widget.display = True

    def action_advise(self) -> None:
        spec = self.checked_spec()
        if spec is None:
            return
        self.query_one("#advice", Static).update("computing λ_max(∇²L) of each run at its initialisation…")
        self.advise_in_background(spec)

    @work(thread=True, exclusive=True)
    def advise_in_background(self, spec: Spec) -> None:
        try:
            from engine.runner import Runner  # the training stack loads for the advice only

            runner = Runner(spec)
            runner.preflight()
            text = Text("\n".join(advice_lines(runner.advise(), compact=True)))
            text.highlight_words([" unstable"], "bold red")
            text.highlight_words([" outside"], "yellow")
        except LplrError as exc:
            text = Text(str(exc), style="red")
        self.app.call_from_thread(self.query_one("#advice", Static).update, text)

    @on(Input.Changed)
    def changed(self) -> None:
        self.checked_spec()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        spec = self.checked_spec()
        if spec is None:
            return
        try:
            self.app.start_plan(spec)
        except LplrError as exc:
            self.show_error(exc)

"""Small modal screens: help, and the questions asked before cancelling or quitting a live run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """[b]lplr-tui keys[/b]

  picker      ↑ ↓ choose an experiment · tab to its fields · s start
              a the largest stable step 2/λ_max(∇²L) of each run
  dashboard   c cancel the plan, asked first (records say interrupted)
              f follow the run in progress again (after n / p)
              e export the records and the summary
              n / p  next / previous run · o overlay all runs
              x theory view: edge of stability, PL ratio vs its bound
              g show / hide the guide and what was noticed
              P a PDF of this view (as lplr-tui plot) + an SVG screenshot
              m the map of where the local regime ends (a sweep of η·β₀)
              t the summary table · b back to the picker (after the end)
  picker      w watch the highlighted live plan · r resume a lost one
  anywhere    ? this help · q quit (asks while a run is live: a
              detached plan is left running unless you say stop)

[b]charts[/b]
  λ_min      smallest NTK eigenvalue on the fixed probe subset
  drift      ‖θ_t − θ_0‖, how far the weights moved
  PL ratio   ‖∇L‖² / 2(L − L*), log axis
  L − L*     suboptimality, log axis; L* is the running minimum
             (provisional) until the run ends, then its final loss
  the grey lines mark the stable regime once a run has ended,
  the yellow ones what the analysis noticed (listed beside the guide);
  NaN/inf (and ≤ 0 on a log axis) are not drawn, and are counted"""


class HelpScreen(ModalScreen):
    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_subtitle = "any key closes"
            yield Static(HELP)

    def on_key(self) -> None:
        self.dismiss()


class Question(ModalScreen):
    """A question in the confirm box; each key's binding dismisses it with its answer."""

    TEXT = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.TEXT)

    def action_answer(self, answer: object) -> None:
        self.dismiss(answer)


class ConfirmQuit(Question):
    BINDINGS = [Binding("y", "answer(True)", "quit"), Binding("n,escape", "answer(False)", "stay")]
    TEXT = "A run is live. Quit? It stops at the next epoch and its record says interrupted.\n\n[b]y[/b] quit   [b]n[/b] stay"


class ConfirmCancel(Question):
    BINDINGS = [Binding("y", "answer(True)", "stop it"), Binding("n,escape", "answer(False)", "keep it")]
    TEXT = (
        "Stop the plan? Its run stops at the end of the epoch, saves a checkpoint, and its record says interrupted."
        "\n\n[b]y[/b] stop it   [b]n[/b] keep it running"
    )


class LeaveOrStop(Question):
    """Quitting while a detached plan is live: it goes on unless the user says stop."""

    BINDINGS = [
        Binding("l,enter", "answer('leave')", "leave it running"),
        Binding("s", "answer('stop')", "stop it"),
        Binding("escape", "answer('stay')", "stay"),
    ]
    TEXT = (
        "The plan runs in a worker of its own. Quit the app and\n\n"
        "[b]l[/b] / [b]enter[/b] leave it running (watch it again with lplr-tui watch)\n"
        "[b]s[/b] stop it (at the end of its epoch, checkpoint saved)\n"
        "[b]esc[/b] stay here"
    )

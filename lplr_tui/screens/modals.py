"""Small modal screens: help, and the question asked before quitting a live run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """[b]lplr-tui keys[/b]

  picker      ↑ ↓ choose an experiment · tab to its fields · s start
              a the largest stable step 2/λ_max(∇²L) of each run
  dashboard   c cancel the plan (records say interrupted)
              e export the records and the summary
              n / p  next / previous run · o overlay all runs
              x theory view: edge of stability, PL ratio vs its bound
              g show / hide the guide and what was noticed
              t the summary table · b back to the picker (after the end)
  anywhere    ? this help · q quit (asks while a run is live)

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


class ConfirmQuit(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "quit"), Binding("n,escape", "answer(False)", "stay")]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static("A run is live. Quit? It stops at the next epoch and its record says interrupted.\n\n[b]y[/b] quit   [b]n[/b] stay")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

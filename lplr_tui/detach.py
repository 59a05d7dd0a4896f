"""Plans that outlive the terminal: `lplr-tui run ... --plan-id ID` started in a session of its
own (no controlling terminal, so no SIGHUP when the SSH connection drops), its output in
<results>/<ID>.log. Nothing here loads torch: the worker does, in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import LplrError, last_words
from engine.eventlog import PLAN_SUFFIX
from engine.events import PlanStarted
from engine.tail import Tail

OUTPUT_SUFFIX = ".log"
START_TIMEOUT = 600.0  # seconds to wait for the worker's preflight (data, memory) before saying where to look
# rich takes a file for a terminal under these: the worker writes a log, never a terminal
FORCES_A_TERMINAL = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass
class Detached:
    process: subprocess.Popen
    plan_log: Path
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def watch_command(self) -> str:
        return f"lplr-tui watch {self.plan_log}"


def spawn(args: list[str], results_dir: Path, plan_id: str) -> Detached:
    """Starts `lplr-tui run ARGS --plan-id PLAN_ID` detached; its output goes to <plan_id>.log,
    which is created here first (O_EXCL), so a plan id is never shared."""
    output = results_dir / f"{plan_id}{OUTPUT_SUFFIX}"
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except FileExistsError:
        raise LplrError(f"{output}: a plan with this id exists already") from None
    except OSError as exc:
        raise LplrError(f"--results {results_dir}: cannot write there ({exc.strerror})") from None
    env = {**{k: v for k, v in os.environ.items() if k not in FORCES_A_TERMINAL}, "PYTHONUNBUFFERED": "1"}
    with os.fdopen(fd, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "lplr_tui", "run", *args, "--plan-id", plan_id],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
    return Detached(process, results_dir / f"{plan_id}{PLAN_SUFFIX}", output)


def wait_started(detached: Detached, timeout: float = START_TIMEOUT, poll: float = 0.1) -> str:
    """Until the worker has started the plan (its log holds PlanStarted): "" then, or the
    worker's error when it exited first (bad input its preflight found). A worker still in
    preflight after `timeout` is left to go on: "" too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if detached.plan_log.is_file() and any(isinstance(e, PlanStarted) for e in Tail(detached.plan_log).poll()):
            return ""
        if detached.process.poll() is not None:
            return failure(detached)
        time.sleep(poll)
    return ""


def failure(detached: Detached) -> str:
    """What a worker that exited before starting said (its `error:` line, else its last line)."""
    return last_words(detached.output) or f"the worker exited with code {detached.process.returncode} and said nothing"

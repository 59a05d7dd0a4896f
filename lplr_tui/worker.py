"""`python -m lplr_tui.worker`: one run of a plan that runs its runs at once (engine.fanout),
in a process of its own. The job comes as JSON on stdin; the process's output (an error, a
traceback) goes to worker.log in the run's directory, where the plan reads it if the worker dies.

Signals: a first SIGTERM/SIGINT/SIGHUP stops the run at the end of its epoch (checkpoint,
record interrupted), a second at once (record interrupted). The plan's own stop request (its
.stop file) and the end of the plan's process stop it as the first signal does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

PARENT_POLL = 0.5  # seconds between looks at whether the plan's process is still there


def main() -> int:
    from engine.errors import LplrError, printable
    from engine.events import FAILED, PlanFinished, RunFinished
    from engine.fanout import Job, worker_runner
    from engine.tail import read_stop_request

    try:
        job = Job(**json.loads(sys.stdin.read()))
        runner = worker_runner(job)
        runner.preflight()
    except (LplrError, TypeError, ValueError) as exc:
        sys.stderr.write(f"error: {printable(str(exc))}\n")
        return 2
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            runner.cancel(f"{name}: the worker was asked to stop")
            return
        why = read_stop_request(runner.stop_file) or f"{name} twice"  # the plan's reason, when it gave one
        runner.abandon(f"{why}; stopped at once, before the epoch ended")
        os._exit(128 + received[0])

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    runner.start()
    if job.parent:
        threading.Thread(target=watch_parent, args=(runner, job.parent), name="lplr-parent", daemon=True).start()
    failed = False  # a run that failed, or a worker that failed around it (a stop before the run began is not)
    for event in runner.iter_events():
        failed = failed or (isinstance(event, (RunFinished, PlanFinished)) and event.state == FAILED)
    runner.join()
    return 1 if failed else 0


def watch_parent(runner, parent: int) -> None:
    """The plan's process is gone (killed): stop as if asked, so the record says why."""
    while runner.is_alive():
        if os.getppid() != parent:
            runner.cancel(f"the plan's process (pid {parent}) ended")
            return
        time.sleep(PARENT_POLL)


if __name__ == "__main__":
    sys.exit(main())

"""Where the app's events come from: a runner in this process (its queue), or a worker
elsewhere (its logs, tailed). Both hand over the engine's events, in the same order; the
screens never ask which one they are looking at."""

from __future__ import annotations

import queue
from pathlib import Path

from engine.tail import Tail, request_stop


class QueueSource:
    """A runner of this process: its events come off its queue."""

    every = 0.1  # seconds between drains
    detached = False

    def __init__(self, runner) -> None:
        self.runner = runner
        self.problems: list[str] = []

    def poll(self, limit: int) -> list:
        out = []
        for _ in range(limit):
            try:
                out.append(self.runner.events.get_nowait())
            except queue.Empty:
                break
        return out

    def stop(self, reason: str) -> str:
        self.runner.cancel(reason)
        return "cancelling: the run stops at the next epoch; its record will say interrupted"


class TailSource:
    """A worker elsewhere (detached, or another terminal's): its logs, read as they grow.
    Stopping it writes the plan's stop file, which the worker honours at its next epoch."""

    every = 0.5  # seconds between reads of the logs: each reads only the bytes appended since
    detached = True

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.tail = Tail(path)
        self.pid = pid  # the worker this app started, if it did
        self.problems = self.tail.problems

    @property
    def path(self) -> Path:
        return self.tail.target

    def poll(self, limit: int) -> list:
        return self.tail.poll()

    def stop(self, reason: str) -> str:
        target = self.tail.stop_file
        if target is None:
            return "this run's log names no plan to ask: stop its worker with kill -TERM"
        try:
            request_stop(target, reason)
        except OSError as exc:
            return f"cannot ask the worker to stop: {target}: {exc.strerror or exc}"
        return f"asked the worker to stop ({target.name}): the run stops at the end of its epoch; its record will say interrupted"

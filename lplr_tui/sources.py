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


class CompareSource:
    """Runs of any plans side by side (`lplr-tui compare --app`), as one plan named "compare".
    Each run is followed through its own log exactly as `watch RUN_DIR` follows it (a run still
    going keeps moving), or, when it has no log (another tool's record), replayed from its
    record; their events are renumbered as the runs of one plan."""

    every = 0.5  # seconds between reads of the logs
    detached = True

    def __init__(self, records: list, labels: list[str]) -> None:
        from engine.eventlog import LOG_NAME
        from engine.events import PlanStarted

        self.problems: list[str] = []
        self.parts: list[Tail | list] = []
        for i, (record, label) in enumerate(zip(records, labels)):
            run_dir = record.path.parent if record.path is not None else None
            self.parts.append(Tail(run_dir) if run_dir is not None and (run_dir / LOG_NAME).is_file() else record_events(record, label))
        self.ended: set[int] = set()  # the runs whose end (or loss) has been read
        self.finished = False
        epochs = [r.spec.get("train", {}).get("epochs", 0) if isinstance(r.spec.get("train"), dict) else 0 for r in records]
        starts = sorted(str(r.environment.get("started", "")) for r in records)
        self.pending: list = [PlanStarted("compare", tuple(labels), tuple(e if isinstance(e, int) else 0 for e in epochs),
                                          started=starts[0] if starts else "")]

    def poll(self, limit: int) -> list:
        from dataclasses import replace

        from engine.events import FINISHED, LOST, Lost, PlanFinished, PlanStarted, RunFinished

        out, self.pending = self.pending, []
        for i, part in enumerate(self.parts):
            if isinstance(part, Tail):
                events = part.poll()
                self.problems += part.problems
                part.problems.clear()
            else:
                events, self.parts[i] = part, []
            for event in events:
                if isinstance(event, PlanStarted):
                    continue  # each run's own plan of one: the comparison is the plan
                if isinstance(event, (PlanFinished, Lost)):
                    self.ended.add(i)
                    if isinstance(event, Lost):  # this run's worker, not the others': the run alone is lost
                        out.append(RunFinished(i, LOST, event.reason, event.epochs_done, {}, ""))
                    continue
                out.append(replace(event, run=i) if hasattr(event, "run") else event)
        if len(self.ended) == len(self.parts) and not self.finished:
            self.finished = True
            out.append(PlanFinished(FINISHED))
        return out

    def stop(self, reason: str) -> str:
        return "a comparison stops nothing: stop a live run from its own plan (lplr-tui watch)"


def record_events(record, label: str) -> list:
    """A run without a log, as the events that would have made its record: RunStarted (its whole
    trajectory as the past), its annotations, RunFinished, PlanFinished (as index 0)."""
    from engine.config import known_guide, validate
    from engine.errors import LplrError
    from engine.events import FINISHED, Annotation, PlanFinished, RunFinished, RunStarted
    from lplr_tui.tables import record_verdicts

    try:
        spec = validate(known_guide(record.spec), str(record.path))
    except LplrError:
        spec = None  # another version's spec: drawn without its step size (no theory view)
    run_dir = str(record.path.parent) if record.path is not None else ""
    events: list = [RunStarted(0, 1, label, spec, int(record.summary.get("params", 0) or 0), record.environment, run_dir,
                               trajectory=record.trajectory.to_dict(), plan=str(record.run.get("plan", "")))]
    for note in record.annotations:
        if isinstance(note.get("epoch"), int) and not isinstance(note.get("epoch"), bool):
            events.append(Annotation(0, note["epoch"], str(note.get("kind", "")), str(note.get("text", ""))))
    events.append(RunFinished(0, record.state, str(record.status.get("reason", "")), int(record.status.get("epochs_done", 0) or 0),
                              record.summary, str(record.environment.get("finished", "")), record_verdicts(record)))
    return events + [PlanFinished(FINISHED)]

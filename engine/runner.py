"""Runs a plan (one or many runs) on a background thread and feeds a queue.Queue of events.

Every event goes first to the sinks (the record writer), on the training thread, so records
stay current whether or not anyone drains the queue; then onto the queue for the UI or the
progress bar. Cancel is the only signal that travels upstream.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import queue
import threading
import time
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from engine.checkpoint import CHECKPOINT_NAME, Start, check_belongs, load_checkpoint, save_checkpoint
from engine.config import LABEL, NAME, Plan, Spec, known_guide, validate
from engine.data import Dataset, load_data
from engine.errors import ConfigError, LplrError, printable
from engine.events import (
    FAILED, FINISHED, INTERRUPTED, EpochMeasured, Notice, PlanFinished, PlanStarted, ProbeMeasured,
    RunFinished, RunStarted,
)
from engine import footprint
from engine.eventlog import PLAN_SUFFIX, EventLog
from engine.events import DevicesMeasured, Heartbeat
from engine.devices import device_use, peak_memory
from engine.liveness import HEARTBEAT_EVERY, worker_fields
from engine.tail import STOP_POLL, read_stop_request, stop_file_of
from engine.lock import RunLock, check_owner
from engine.models import build_model, count_params
from engine.record import Record, RecordWriter, check_writable, claim, new_plan_id, new_run_dir, read_current
from engine.annotations import Annotator
from engine.theory import advise, init_key
from engine.judge import judge, judge_plan, plan_entry
from engine.train import Outcome, step_size, train
from engine.trajectory import Trajectory


def now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when there is one; a cuda device that is absent is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("train.device", name, 'CUDA is not available on this machine; allowed: "auto" or "cpu"')
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError("train.device", name, f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version() -> str:
    try:
        return metadata.version("lplr-tui")
    except metadata.PackageNotFoundError:
        return "unknown"


def environment(device: torch.device, data: Dataset) -> dict:
    return {
        "lplr_tui": version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        **data.facts(),  # the source that served the data, where, its classes and their counts
        "started": now(),
        "finished": "",
        **worker_fields(),  # host, pid, process_start: who writes the run, for readers' liveness checks
    }


class Runner:
    """`preflight()` (raises what the user must fix), `start()`, then drain `events`."""

    def __init__(self, plan: Spec | Plan, results_dir: str | Path | None = None, plan_id: str = ""):
        self.plan = plan if isinstance(plan, Plan) else Plan.of(plan)
        self.spec = self.plan.preset  # the preset as written: plan-wide settings
        self.runs = list(self.plan.runs)
        self.results_dir = Path(results_dir).expanduser() if results_dir else None
        self.plan_id = plan_id  # names the plan's files: <plan_id>.plan.jsonl, .stop (and .log when detached)
        self.events: queue.Queue = queue.Queue()
        # the record writer reads the runner's trajectory: one fold of the events, here
        self.writer = RecordWriter(self.plan.name, self.spec.record.write_interval, lambda run: self._trajectory) if self.results_dir else None
        self.log: EventLog | None = None  # each run's events.jsonl and the plan's log, from start()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._main, name="lplr-runner", daemon=True)
        self._pulse = threading.Thread(target=self._beat, name="lplr-heartbeat", daemon=True)
        self._index = -1  # the run in progress
        self._data: dict = {}
        self._sharpness: dict = {}  # β₀ per initialisation, shared by advise and the runs with optim.lr_scale
        self._devices: list[torch.device] = []
        self._trajectory = Trajectory()
        self._annotator: Annotator | None = None
        self._finished: list[dict] = []  # what the cross-run verdicts need, per finished run
        self._resume: tuple[Path, Record] | None = None
        self._start: Start | None = None  # the resumed run's checkpoint, checked at preflight
        self._locks: dict[int, RunLock] = {}  # run index -> the lock on its directory
        self._locks_guard = threading.Lock()  # the runner thread and a stopping main thread both release
        self._cancel_reason = ""
        self.said: list[str] = []  # what the user should read before the run (a lock taken over)
        # A worker of a plan that runs its runs at once (engine.fanout) runs one of them: `only`,
        # in the directory, on the device and with the CPU threads the plan gave it
        self.only: int | None = None
        self._placed: tuple[Path, str] | None = None
        self.threads = 0  # the plan's share of the cores per run, where train.threads is 0 (0: every core)
        self._default_threads = torch.get_num_threads()

    def place(self, index: int, run_dir: Path, device: str, threads: int, beta_0: float = 0.0) -> None:
        """Make this runner a worker that runs the plan's run `index` alone, in `run_dir` (made
        by the plan), on `device`, with `threads` CPU threads; `beta_0` is the β₀ the plan
        measured for it (0: none), so its step is the one a serial run would take."""
        self.only, self._placed, self.threads = index, (Path(run_dir), device), threads
        if beta_0 > 0:
            self._sharpness[init_key(self.runs[index])] = (beta_0, float("nan"))

    @property
    def todo(self) -> list[int]:
        """The indices of the runs this runner runs."""
        return [self.only] if self.only is not None else list(range(len(self.runs)))

    def threads_of(self, run: Spec) -> int:
        """The CPU threads a run computes with: train.threads, else the plan's share of the cores
        (a plan that runs several at once), else every core (torch's default in this process)."""
        return run.train.threads or self.threads or self._default_threads

    def use_threads(self, run: Spec) -> None:
        """torch's threads and the BLAS libraries' (scipy's OpenBLAS computes the spectra): a
        run's numbers depend on how many threads split its sums."""
        from threadpoolctl import threadpool_limits

        threads = self.threads_of(run)
        torch.set_num_threads(threads)
        threadpool_limits(limits=threads, user_api="blas")

    @property
    def plan_log(self) -> Path | None:
        return self.results_dir / f"{self.plan_id}{PLAN_SUFFIX}" if self.results_dir and self.plan_id else None

    @property
    def stop_file(self) -> Path | None:
        """Where a viewer asks this plan to stop (engine.tail.request_stop)."""
        return stop_file_of(self.plan_log) if self.plan_log else None

    @classmethod
    def resume(cls, run_dir: str | Path, trust: bool = False, plan_id: str = "") -> "Runner":
        """A runner that continues the run in `run_dir` from its checkpoint, in place. A
        directory another user owns is resumed only with `trust`: its checkpoint is loaded and
        its files are rewritten."""
        run_dir = Path(run_dir).expanduser()
        if not trust:
            check_owner(run_dir)
        record, _ = read_current(run_dir)  # the log, when the record is behind it
        if record.state == FINISHED:
            raise LplrError(f"--resume {run_dir}: this run has finished already; nothing to resume")
        if not (run_dir / CHECKPOINT_NAME).is_file():
            raise LplrError(f"--resume {run_dir}: no {CHECKPOINT_NAME} there to continue from")
        spec = validate(known_guide(record.spec), str(record.path))
        plan = record.run.get("plan", spec.name)
        if not isinstance(plan, str) or not NAME.check(plan):
            raise ConfigError("[run] plan", plan, NAME.allowed, str(record.path))
        label = record.run.get("label", "") or Plan.of(spec).runs[0].label
        if not LABEL.check(label):
            raise ConfigError("[run] label", label, LABEL.allowed, str(record.path))
        runner = cls(Plan.of(spec).resumed(plan, label), run_dir.parent, plan_id)
        runner._resume = (run_dir, record)
        threads = record.environment.get("threads", 0)  # as many as it had (a run of --jobs had its share): the same numbers
        runner.threads = threads if isinstance(threads, int) and not isinstance(threads, bool) and 0 < threads <= 1024 else 0
        runner.writer.before[0] = record
        return runner

    def abandon(self, reason: str, state: str = INTERRUPTED) -> None:
        """For a process that must end at once: live records say `state` (interrupted), with
        the reason and what they hold. Their locks stay while the run's thread lives (it may
        still save a checkpoint); a process that then ends leaves them stale, to be taken over."""
        if self.writer is not None:
            self.writer.abandon(reason, state)
        if not self._thread.is_alive():
            self.release_locks()

    def release_locks(self, index: int | None = None) -> None:
        with self._locks_guard:
            locks = [self._locks.pop(i) for i in list(self._locks) if index is None or i == index]
        for lock in locks:
            lock.release()

    def stop(self, reason: str, timeout: float = 60.0) -> bool:
        """Cancel, wait up to `timeout` s for the run to stop at an epoch's end (its checkpoint
        and interrupted record written), else abandon it. True when it stopped by itself."""
        self.cancel(reason)
        self.join(timeout)
        if self._thread.is_alive():
            self.abandon(f"{reason}; the run did not stop within {timeout:g} s")
            return False
        self.release_locks()  # a preflight's lock on a resumed run that never started
        return True

    # ------------------------------------------------------------ control

    def preflight(self) -> None:
        """Everything that can fail on bad input, before any run starts."""
        placed = self._placed[1] if self._placed else ""
        self._devices = [resolve_device(placed or run.train.device) if i in self.todo else torch.device("cpu")
                         for i, run in enumerate(self.runs)]
        todo = [(self.runs[i], self._devices[i]) for i in self.todo]
        if self.results_dir is not None:
            check_writable(self.results_dir)
        for run, _ in todo:  # first: an ImageFolder tree's image size and class count size the model
            if self._data_key(run) not in self._data:
                self._data[self._data_key(run)] = load_data(run.data, run.model.kind)
        for run, device in todo:
            data = self._data_of(run)
            footprint.check_memory(run, device, footprint.free_bytes(device), run.label if len(self.runs) > 1 else "",
                                   (tuple(data.x.shape[1:]), data.k))
        if self._resume is None:  # β₀ of each run whose step is set against it: a failure here is before any run
            for run, device in todo:
                if run.optim.lr_scale > 0:
                    self.use_threads(run)  # measured as the run will compute: the same β₀, bit for bit
                    (advice,) = advise([(run, self._data_of(run))], device, self._sharpness)
                    if not advice.sharpness > 0:
                        raise LplrError(f"{run.label}: optim.lr_scale = {run.optim.lr_scale:g} needs β₀ = λ_max(∇²L) > 0 at θ_0; "
                                        f"it measured {advice.sharpness:g}: give optim.lr instead")
        if self._resume is not None and 0 not in self._locks:
            self._lock_resumed()
        if self._placed is not None and self.only not in self._locks:
            self._lock_placed()

    def _lock_placed(self) -> None:
        """A worker's directory is its own before it writes there: a retried task finds the
        lock of a live first attempt and writes nothing (LockedError)."""
        lock, said = RunLock.acquire(self._placed[0])
        with self._locks_guard:
            self._locks[self.only] = lock
        if said:
            self.said.append(f"{self._placed[0]}: {said}")

    @staticmethod
    def _data_key(run: Spec) -> tuple:
        return (repr(run.data), run.model.kind)  # a DataSpec with lists does not hash

    def _data_of(self, run: Spec) -> Dataset:
        return self._data[self._data_key(run)]

    def _lock_resumed(self) -> None:
        """The resumed directory is this process's from here on; its checkpoint must be a
        checkpoint of this run's model (else the lock is let go)."""
        run_dir, record = self._resume
        lock, said = RunLock.acquire(run_dir)
        with self._locks_guard:
            self._locks[0] = lock
        try:
            record, _ = read_current(run_dir)  # as it is now that this process holds it
            self._resume = (run_dir, record)
            if self.writer is not None:
                self.writer.before[0] = record
            if record.state == FINISHED:  # it finished while this process waited for it
                raise LplrError(f"--resume {run_dir}: this run has finished already; nothing to resume")
            data, recorded_data = self._data_of(self.runs[0]), record.environment.get("data_sha256", "")
            if recorded_data and data.sha256 != recorded_data:
                raise LplrError(
                    f"--resume {run_dir}: the data differ from what the run trained on (digest {recorded_data[:12]}… "
                    f"in the record, {data.sha256[:12]}… now, from {data.path or data.detail}); resuming would go on "
                    "with other images. Restore the data, or start a new run"
                )
            start = load_checkpoint(run_dir)
            check_belongs(start, build_model(self.runs[0], self._data_of(self.runs[0]).k), self.runs[0].train.epochs, run_dir / CHECKPOINT_NAME)
            recorded = len(record.trajectory.before(start.epoch).epoch)
            if recorded < start.epoch:  # killed between a checkpoint and the record's next write, before records were written first
                raise LplrError(
                    f"--resume {run_dir}: the checkpoint is at epoch {start.epoch} but the record holds only "
                    f"{recorded} epochs before it; resuming would leave a gap in the trajectory"
                )
        except BaseException:
            self.release_locks()
            raise
        self._start = start
        if said:
            self.said.append(f"{run_dir}: {said}")

    def advise_run(self, index: int):
        """The step-size advice for run `index` (after preflight: β₀ comes from its cache)."""
        run = self.runs[index]
        (advice,) = advise([(run, self._data_of(run))], self._devices[index], self._sharpness)
        return advice

    def advise(self) -> list:
        """The step-size advice for every run of the plan (after preflight)."""
        pairs = [(run, self._data_of(run)) for run in self.runs]
        return advise(pairs, self._devices[0], self._sharpness)

    def start(self) -> None:
        if not self._devices:
            self.preflight()
        if self.results_dir is not None and self.only is not None:  # a worker: the plan keeps the plan's log
            self.log = EventLog(None)
        elif self.results_dir is not None:
            self.plan_id = self.plan_id or new_plan_id(self.results_dir, self.plan.name)
            claim(self.plan_log)
            self.log = EventLog(self.plan_log)
        self._thread.start()
        if self.results_dir is not None:
            self._pulse.start()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop at the next epoch; the first reason given is the one the records keep."""
        if not self._cancel.is_set():
            self._cancel_reason = reason
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:  # a runner that never started has nothing to wait for
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def iter_events(self, poll: float = 0.1) -> Iterator[object]:
        return events_until_end(self.events, poll)

    @property
    def record_paths(self) -> list[Path]:
        return list(self.writer.paths) if self.writer else []

    # ------------------------------------------------------------ the thread

    def _beat(self) -> None:
        """The heartbeat thread: a Heartbeat into the logs every HEARTBEAT_EVERY seconds, and
        a look for a viewer's stop request every STOP_POLL seconds, until the plan ends."""
        last = time.monotonic()  # the plan's start says the worker is alive: the first beat follows it
        while self._thread.is_alive():
            try:
                if time.monotonic() - last >= HEARTBEAT_EVERY:
                    last = time.monotonic()
                    if self.log is not None:  # the logs' readers need it; the queue's consumer is this process
                        self.log.handle(Heartbeat(self._index, time.time()))
                    if self.only is None and any(d.type == "cuda" for d in self._devices):
                        self._show_devices()
                if not self.cancelled and (request := read_stop_request(self.stop_file)):
                    self.cancel(request)
            except Exception:  # a disk that is full now may not be in 5 s: the next beat tries again
                pass
            self._thread.join(STOP_POLL)

    def _show_devices(self) -> None:
        """How busy the GPUs are: into the plan's log and onto the queue, not into a record."""
        use = device_use()
        if use:
            event = DevicesMeasured(time.time(), use)
            if self.log is not None:
                self.log.handle(event)
            self.events.put(event)

    def _emit(self, event: object) -> None:
        if isinstance(event, (EpochMeasured, ProbeMeasured)):
            self._trajectory.add(event)
        if self.writer is not None:
            self.writer.handle(event)
        if self.log is not None:
            self.log.handle(event)
        self.events.put(event)
        for annotation in self._annotator.see(event) if self._annotator else []:
            self._emit(annotation)

    def _main(self) -> None:
        final = PlanFinished(FINISHED)
        try:
            self._emit(PlanStarted(
                self.plan.name, tuple(r.label for r in self.runs), tuple(r.train.epochs for r in self.runs), worker_fields(), now()
            ))
            for index in self.todo:
                if self.cancelled:
                    break
                self._run_one(index, self.runs[index])
            verdicts = tuple(judge_plan(self._finished, self.spec.to_dict())) if self.only is None else ()
            final = PlanFinished(FINISHED, verdicts=verdicts)
            if self.cancelled:
                final = PlanFinished(INTERRUPTED, self._cancel_reason, verdicts)
        except BaseException as exc:  # a sink failed (disk full?): say so instead of hanging consumers
            reason = f"{type(exc).__name__}: {exc} ({where(exc)})"
            final = PlanFinished(FAILED, reason)
            try:  # the records of a run that was live must not keep saying "running"
                self.abandon(f"the runner failed: {reason}", FAILED)
            except BaseException:
                pass
        finally:
            self._index = -1
            try:  # nothing here may keep the end from its consumers, or the locks held
                if self.log is not None:
                    try:
                        self.log.handle(final)
                    finally:
                        self.log.close()
            except BaseException:
                pass
            if self.stop_file is not None and self.only is None:  # a worker leaves the plan's request to the plan
                try:
                    self.stop_file.unlink(missing_ok=True)
                except OSError:
                    pass
            self.release_locks()
            self.events.put(final)

    def _run_one(self, index: int, spec: Spec) -> None:
        device = self._devices[index]
        self.use_threads(spec)
        if device.type == "cuda":  # exact float32 unless the preset accepts TF32's rounding
            torch.backends.cuda.matmul.allow_tf32 = spec.train.tf32
            torch.backends.cudnn.allow_tf32 = spec.train.tf32
        data = self._data_of(spec).to(device)
        found = {}
        if spec.optim.lr_scale > 0 and self._resume is None:  # η = scale/β₀ (a resumed run's spec has its η already)
            (advice,) = advise([(spec, data)], device, self._sharpness)  # measured at preflight: from the cache
            spec = dataclasses.replace(spec, optim=dataclasses.replace(spec.optim, lr=advice.lr))
            found = {"beta_0": advice.sharpness}
        model = build_model(spec, data.k)
        start, prior, run_dir = self._origin(index, spec, model)
        model.to(device)
        params = count_params(model)
        self._trajectory = Trajectory.from_dict(prior.to_dict())
        self._annotator = Annotator(index, spec.guide, lambda epoch: step_size(spec, epoch))
        self._index = index
        self._emit(RunStarted(
            index, len(self.runs), spec.label, spec, params, {**environment(device, data), "threads": torch.get_num_threads(), **found}, str(run_dir or ""),
            resumed_from=start.epoch, trajectory=prior.to_dict(), plan=self.plan.name,
            plan_log=str(self.plan_log or ""),
        ))
        save = (lambda state: self._checkpoint(index, run_dir, state)) if run_dir else None
        for text in self.said if self._resume is not None or self._placed is not None else []:  # a lock taken over
            self._emit(Notice(index, start.epoch, text))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            outcome = train(model, spec, data, self._emit, self._cancel, index, start, save)
        except Exception as exc:
            last_epoch = self._trajectory.epoch[-1] if self._trajectory.epoch else 0
            outcome = Outcome(FAILED, f"{type(exc).__name__}: {exc} ({where(exc)})", last_epoch)
        if outcome.state == INTERRUPTED:
            outcome = dataclasses.replace(outcome, reason=f"{self._cancel_reason}: {outcome.reason}")
        raw = spec.to_dict()
        try:
            summary, verdicts = judge(self._trajectory, raw, params, outcome.state)
        except Exception as exc:  # the measurements stay in the record; the run says why it has no verdicts
            summary, verdicts = {"params": params}, []
            outcome = Outcome(FAILED, f"the analysis failed: {type(exc).__name__}: {exc} ({where(exc)})", outcome.epochs_done)
        if outcome.state == FINISHED:
            self._finished.append(plan_entry(spec.label, raw, summary, verdicts))
        self._emit(RunFinished(index, outcome.state, outcome.reason, outcome.epochs_done, summary, now(), verdicts, peak_memory(device)))
        self.release_locks(index)

    def _checkpoint(self, index: int, run_dir: Path, state: dict) -> None:
        """The record first, then the checkpoint: a kill between the two leaves a record that
        reaches at least the checkpoint's epoch, so a resume has every epoch before it."""
        if self.writer is not None:
            self.writer.write(index)
        save_checkpoint(run_dir, state)

    def _origin(self, index: int, spec: Spec, model) -> tuple[Start, Trajectory, Path | None]:
        """A fresh run (new directory, epoch 0) or the resumed one (its checkpoint, its past)."""
        if self._resume is not None:
            run_dir, record = self._resume
            start = self._start if self._start is not None else load_checkpoint(run_dir)
            model.load_state_dict(start.model)
            return start, record.trajectory.before(start.epoch), run_dir
        if self._placed:  # the directory the plan made for this worker, locked at preflight
            return Start(), Trajectory(), self._placed[0]
        run_dir = new_run_dir(self.results_dir, self.plan.name, index, spec.label) if self.results_dir else None
        if run_dir is not None:
            lock, _ = RunLock.acquire(run_dir)  # a fresh directory: nobody else's yet
            with self._locks_guard:
                self._locks[index] = lock
        return Start(), Trajectory(), run_dir


def events_until_end(events: queue.Queue, poll: float = 0.1) -> Iterator[object]:
    """A plan's events until PlanFinished; wakes every `poll` s so Ctrl-C reaches the caller."""
    while True:
        try:
            event = events.get(timeout=poll)
        except queue.Empty:
            continue
        yield event
        if isinstance(event, PlanFinished):
            return


def where(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"

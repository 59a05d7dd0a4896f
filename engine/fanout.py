"""A plan's runs at once: `FanOut` runs each run of a plan in a worker of its own, at most
`jobs` at a time, and is a Runner to its callers: the same preflight, the same queue of events
(PlanStarted, each run's events as its worker logs them, PlanFinished with the cross-run
verdicts), the same plan log, the same cancel and stop.

A worker is a Runner that runs one run of the plan (`Runner.place`) and writes that run's
directory as a serial plan would: its record, its events.jsonl, its checkpoint, its lock. The
plan follows each worker through its log, so it reads the same events whether the worker is a
process on this machine (`Processes`) or a Ray task on another node (engine.ray_backend).

What each run computes does not depend on where it runs: the same spec, the same seed, the
same β₀ (measured once, by the plan's preflight, with the run's own thread count). On the CPU a
run's numbers depend on its thread count (math libraries split their sums by thread), so the
records of `--jobs N` are bit for bit those of a serial plan with the same `train.threads`.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from engine import events as ev
from engine.checkpoint import CHECKPOINT_NAME
from engine.config import Plan, Spec, known_guide, validate
from engine.devices import device_use
from engine.errors import LplrError, last_words, printable
from engine.eventlog import LOG_NAME, LogFile
from engine.judge import judge, judge_plan, plan_entry
from engine.liveness import HEARTBEAT_EVERY, worker_fields
from engine.lock import LockedError, RunLock
from engine.record import RECORD_NAME, RecordWriter, check_writable, claim, new_plan_id, new_run_dir, read_current
from engine.tail import Followed, read_stop_request, request_stop, stop_file_of
from engine.eventlog import PLAN_SUFFIX

POLL = 0.2  # seconds between reads of the workers' logs
WORKER_LOG = "worker.log"  # a local worker's own output (a traceback, should it crash), in its run directory
WORKER_MODULE = "lplr_tui.worker"  # the process a local worker runs: `python -m lplr_tui.worker`, the job on stdin


@dataclass(frozen=True)
class Job:
    """All a worker needs to run one run of a plan: plain data (JSON for a process's stdin, an
    argument for a Ray task)."""

    preset: dict  # the preset as written; the worker expands it into the same runs (Plan.of)
    index: int  # which run of the plan
    results_dir: str
    plan_id: str  # the plan's files: its log (named in the run's record) and its stop request
    run_dir: str  # made by the plan
    device: str  # "cpu", "cuda:1"
    threads: int  # CPU threads
    beta_0: float = 0.0  # β₀ the plan's preflight measured (optim.lr_scale), 0: none
    parent: int = 0  # the plan's pid: a local worker stops when it ends (0: none, a Ray task)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def worker_runner(job: Job):
    """The Runner a worker drives: the plan's run `job.index`, placed as the plan said."""
    from engine.runner import Runner

    preset = validate(known_guide(job.preset), "the plan's preset")
    runner = Runner(Plan.of(preset), job.results_dir, job.plan_id)
    runner.place(job.index, Path(job.run_dir), job.device, job.threads, job.beta_0)
    return runner


def run_job(job: dict) -> str:
    """A worker's whole work, for a Ray task: the run, to its end; returns its state."""
    runner = worker_runner(Job(**job))
    runner.preflight()
    runner.start()
    state = ev.FAILED
    for event in runner.iter_events():
        state = event.state if isinstance(event, ev.RunFinished) else state
    runner.join()
    return state


class Backend(Protocol):
    name: str

    def launch(self, job: Job) -> object: ...

    def ended(self, handle: object) -> str | None:
        """None while the worker runs; "" when it ended by itself; else how it died."""

    def stop_now(self, handle: object) -> None:
        """End the worker at once (its record says interrupted, as far as it can)."""

    def close(self) -> None: ...

    def device_for(self, spec_device: str) -> str:
        """The device of a worker whose run asks for `spec_device` ("": as the plan's preflight resolved it)."""


class Processes:
    """Workers as processes of this machine, each in a session of its own (the plan relays a
    terminal's Ctrl-C, and a second one, itself)."""

    name = "processes"

    def __init__(self, parent: int | None = None):
        self.parent = os.getpid() if parent is None else parent

    def launch(self, job: Job) -> subprocess.Popen:
        import json

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(Path(job.run_dir) / WORKER_LOG, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env, cwd=os.getcwd(),
            )
        process.stdin.write(json.dumps(dataclasses.replace(job, parent=self.parent).to_dict()).encode())
        process.stdin.close()
        return process

    def ended(self, handle: subprocess.Popen) -> str | None:
        code = handle.poll()
        if code is None:
            return None
        if code == 0:
            return ""
        if code < 0:
            return f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"killed by signal {-code}"
        return f"exit code {code}"

    def stop_now(self, handle: subprocess.Popen) -> None:
        for _ in range(2):  # the first stops it at its epoch's end, the second at once, record written
            try:
                handle.send_signal(signal.SIGTERM)
            except OSError:
                return
            time.sleep(0.05)

    def close(self) -> None:
        pass

    def device_for(self, spec_device: str) -> str:
        return ""


@dataclass
class Worker:
    index: int
    run_dir: Path
    handle: object
    log: Followed
    spec: Spec | None = None  # from its RunStarted
    params: int = 0
    epoch: int = 0
    finished: ev.RunFinished | None = None
    device: str = ""


@dataclass
class Share:
    """Which device each new worker gets: the one the fewest live workers use."""

    devices: list[str]
    load: dict = field(default_factory=dict)

    def take(self) -> str:
        device = min(self.devices, key=lambda d: self.load.get(d, 0))
        self.load[device] = self.load.get(device, 0) + 1
        return device

    def give(self, device: str) -> None:
        self.load[device] = self.load.get(device, 1) - 1


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class FanOut:
    """`preflight()`, `start()`, then drain `events`; as engine.runner.Runner."""

    def __init__(self, plan: Spec | Plan, results_dir: str | Path, plan_id: str = "", jobs: int = 2,
                 devices: list[str] | None = None, backend: Backend | None = None, threads: int = 0):
        from engine.runner import Runner

        self.inner = Runner(plan, results_dir, plan_id)  # the preflight: devices, data, memory, β₀
        self.plan, self.spec, self.runs = self.inner.plan, self.inner.spec, self.inner.runs
        self.results_dir = Path(results_dir).expanduser()
        self.plan_id = plan_id
        self.jobs = max(1, min(jobs, len(self.runs)))
        self.devices = devices  # None: each run's train.device
        self.backend = backend or Processes()
        # each worker's CPU threads, where its train.threads is 0: the cores split between the workers
        self.inner.threads = threads or max(1, cores() // self.jobs)
        self.events: queue.Queue = queue.Queue()
        self.said = self.inner.said
        self._cancel = threading.Event()
        self._cancel_reason = ""
        self._thread = threading.Thread(target=self._main, name="lplr-fanout", daemon=True)
        self._live: dict[int, Worker] = {}
        self._placed: dict[int, Path] = {}
        self._finished: dict[int, dict] = {}  # what the cross-run verdicts need, per finished run
        self._share: Share | None = None
        self._order: list[int] = list(range(len(self.runs)))  # the order the runs start in (preflight: largest first)
        self._log: LogFile | None = None
        self._log_lock = threading.Lock()
        self._ended = False

    @property
    def plan_log(self) -> Path | None:
        return self.results_dir / f"{self.plan_id}{PLAN_SUFFIX}" if self.plan_id else None

    @property
    def stop_file(self) -> Path | None:
        return stop_file_of(self.plan_log) if self.plan_log else None

    @property
    def record_paths(self) -> list[Path]:
        return [self._placed[i] / RECORD_NAME for i in sorted(self._placed) if (self._placed[i] / RECORD_NAME).is_file()]

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # ------------------------------------------------------------ control

    def preflight(self) -> None:
        """What a serial plan checks (devices, data, memory, β₀), once, before any worker starts."""
        check_writable(self.results_dir)
        if self.devices is not None:
            from engine.runner import resolve_device

            self._share = Share([str(resolve_device(d)) for d in self.devices])
        self.inner.preflight()
        self._order = sorted(range(len(self.runs)), key=lambda i: (-self._cost(i), i))
        where = f"the devices {', '.join(self._share.devices)}" if self._share else "each run's train.device"
        self.said.append(f"{self.jobs} runs at a time ({self.backend.name}), on {where}, with "
                         f"{self.inner.threads} CPU thread(s) each where train.threads is 0 ({cores()} cores here)")

    def _cost(self, index: int) -> int:
        """A run's work, roughly: parameters × inputs × epochs. The largest start first, so
        the longest runs do not start last, leaving workers idle at the end."""
        from engine.models import build_model, count_params

        run = self.runs[index]
        return count_params(build_model(run, self.inner._data_of(run).k)) * run.data.n_train * run.train.epochs

    def advise(self) -> list:
        return self.inner.advise()

    def start(self) -> None:
        if not self.inner._devices:
            self.preflight()
        self.plan_id = self.plan_id or new_plan_id(self.results_dir, self.plan.name)
        claim(self.plan_log)
        self._log = LogFile(self.plan_log)
        self._thread.start()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Every worker stops at its next epoch's end (checkpoint, record interrupted); runs not
        started do not start. The first reason given is the one the records keep."""
        if not self._cancel.is_set():
            self._cancel_reason = reason
            if self.stop_file is not None:  # the workers look for it every half second
                try:
                    request_stop(self.stop_file, reason)
                except OSError:
                    pass
        self._cancel.set()

    def abandon(self, reason: str, state: str = ev.INTERRUPTED) -> None:
        """For a process that must end at once: each live worker is ended at once, its record
        marked, and the plan's log says how the plan ended."""
        self.cancel(reason)
        for worker in list(self._live.values()):
            self.backend.stop_now(worker.handle)
        self._end(ev.PlanFinished(state, reason))

    def stop(self, reason: str, timeout: float = 60.0) -> bool:
        self.cancel(reason)
        self.join(timeout)
        if self._thread.is_alive():
            self.abandon(f"{reason}; the runs did not stop within {timeout:g} s")
            return False
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def iter_events(self, poll: float = 0.1) -> Iterator[object]:
        from engine.runner import events_until_end

        return events_until_end(self.events, poll)

    # ------------------------------------------------------------ the thread

    def _main(self) -> None:
        from engine.runner import now, where

        final = ev.PlanFinished(ev.FINISHED)
        try:
            self._plan_event(ev.PlanStarted(self.plan.name, tuple(r.label for r in self.runs),
                                            tuple(r.train.epochs for r in self.runs), worker_fields(), now(), self.jobs))
            pending, beat = list(self._order), time.monotonic()
            while pending or self._live:
                while pending and len(self._live) < self.jobs and not self.cancelled:
                    self._launch(pending.pop(0))
                if self.cancelled:
                    pending.clear()  # as in a serial plan, the runs after a stop do not start
                self._follow()
                if not self.cancelled and (request := read_stop_request(self.stop_file)):
                    self.cancel(request)  # a viewer's request (`watch`, the app)
                if time.monotonic() - beat >= HEARTBEAT_EVERY:
                    beat = time.monotonic()
                    self._plan_event(ev.Heartbeat(-1, time.time()))
                    if use := device_use():  # how busy the GPUs are, for whoever watches
                        self._plan_event(ev.DevicesMeasured(time.time(), use))
                time.sleep(POLL)
            entries = [self._finished[i] for i in sorted(self._finished)]  # in the plan's order, as serially
            verdicts = tuple(judge_plan(entries, self.spec.to_dict()))
            final = ev.PlanFinished(ev.INTERRUPTED, self._cancel_reason, verdicts) if self.cancelled else ev.PlanFinished(ev.FINISHED, verdicts=verdicts)
        except BaseException as exc:
            final = ev.PlanFinished(ev.FAILED, f"{type(exc).__name__}: {exc} ({where(exc)})")
            for worker in list(self._live.values()):
                try:
                    self.backend.stop_now(worker.handle)
                except BaseException:
                    pass
        finally:
            self._end(final)

    def _end(self, final: ev.PlanFinished) -> None:
        with self._log_lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._plan_event(final, last=True)
        except BaseException:
            pass
        try:
            self.backend.close()
        except BaseException:
            pass
        if self.stop_file is not None:
            try:
                self.stop_file.unlink(missing_ok=True)
            except OSError:
                pass
        self.events.put(final)

    def _plan_event(self, event: object, last: bool = False) -> None:
        with self._log_lock:
            if self._log is not None:
                self._log.write(event)
                if last:
                    self._log.close()
                    self._log = None
        if isinstance(event, (ev.PlanStarted, ev.DevicesMeasured)):
            self.events.put(event)

    def _launch(self, index: int) -> None:
        run = self.runs[index]
        run_dir = new_run_dir(self.results_dir, self.plan.name, index, run.label)
        device = self._share.take() if self._share else self.backend.device_for(run.train.device) or str(self.inner._devices[index])
        beta_0 = self.inner.advise_run(index).sharpness if run.optim.lr_scale > 0 else 0.0  # measured at preflight
        job = Job(self.spec.to_dict(), index, str(self.results_dir.resolve()), self.plan_id, str(run_dir.resolve()), device,
                  self.inner.threads_of(run), beta_0)
        self._placed[index] = run_dir
        self._plan_event(ev.RunPlaced(index, str(run_dir), 0))
        self._live[index] = Worker(index, run_dir, self.backend.launch(job), Followed(run_dir / LOG_NAME), device=device)

    def _follow(self) -> None:
        for index, worker in list(self._live.items()):
            self._read(worker)
            how = self.backend.ended(worker.handle)
            if how is None:
                continue
            self._read(worker)  # what it wrote before it ended
            if worker.finished is None and worker.spec is None and how == "" and self.cancelled:
                self._unplace(worker)  # stopped before its run began: as a serial plan's later runs, no run at all
            elif worker.finished is None:
                self._bury(worker, how)
            del self._live[index]
            if self._share:
                self._share.give(worker.device)

    def _read(self, worker: Worker) -> None:
        try:
            events, _ = worker.log.read()  # a corrupt line is the worker's record's business
        except LplrError:
            return
        for event in events:
            if isinstance(event, ev.Heartbeat) or getattr(event, "run", worker.index) != worker.index:
                continue
            if isinstance(event, ev.RunStarted):
                worker.spec, worker.params = event.spec, event.params
            elif isinstance(event, ev.EpochMeasured):
                worker.epoch = event.epoch
            elif isinstance(event, ev.RunFinished):
                worker.finished = event
                if event.state == ev.FINISHED and worker.spec is not None:
                    self._finished[worker.index] = plan_entry(worker.spec.label, worker.spec.to_dict(), event.summary, event.verdicts)
            self.events.put(event)

    def _unplace(self, worker: Worker) -> None:
        """A run directory the plan made for a run that never began: removed (its worker's
        empty log aside, nothing is in it), and the run is not among the plan's records."""
        self._placed.pop(worker.index, None)
        (worker.run_dir / WORKER_LOG).unlink(missing_ok=True)
        try:
            worker.run_dir.rmdir()
        except OSError:  # something else is in it: left as it is
            pass

    def _bury(self, worker: Worker, how: str) -> None:
        """A worker that ended without its run's end: the run failed, and its record and log say
        so, with everything measured up to then."""
        from engine.runner import now

        said = printable(last_words(worker.run_dir / WORKER_LOG))[:300]  # a local process's error or traceback (a Ray task's is in `how`)
        if worker.spec is None:
            reason = f"its worker ended before the run started ({how})" + (f": {said}" if said else "")
        else:
            reason = f"its worker died ({how}) at epoch {worker.epoch}" + (f": {said}" if said else "")
        if (worker.run_dir / CHECKPOINT_NAME).is_file():
            reason += f"; `lplr-tui run --resume {worker.run_dir}` continues it from its checkpoint"
        summary: dict = {"params": worker.params}
        if worker.spec is not None:  # it started: its record and log get their end
            summary = mark_failed(worker.run_dir, worker.index, reason) or summary
        finished = ev.RunFinished(worker.index, ev.FAILED, reason, worker.epoch, summary, now())
        worker.finished = finished
        self.events.put(finished)


def mark_failed(run_dir: Path, index: int, reason: str) -> dict | None:
    """The record and log of a run whose worker died say it failed, and why; the summary of
    what it measured comes back (None when its directory is held by a live process)."""
    from engine.runner import now

    try:
        lock, _ = RunLock.acquire(run_dir)  # the dead worker's lock is stale: taken over
    except LockedError:
        return None
    try:
        record, _ = read_current(run_dir)
        params = int(record.summary.get("params", 0) or 0)
        try:
            summary, _ = judge(record.trajectory, record.spec, params, ev.FAILED)
        except Exception:
            summary = {"params": params}
        epochs = int(record.trajectory.epoch[-1]) if record.trajectory.epoch else 0
        finished = ev.RunFinished(index, ev.FAILED, reason, epochs, summary, now())
        log = LogFile(run_dir / LOG_NAME)
        try:
            log.write(finished)
        finally:
            log.close()
        writer = RecordWriter(record.run.get("plan", ""))  # the record's end, as the worker's own writer would have written it
        writer.records[index] = record
        writer.finish(finished)
        return summary
    finally:
        lock.release()


def parse_devices(value: str) -> list[str]:
    """--devices: "auto" (every visible GPU; the CPU when there is none) or a comma-separated
    list of devices ("cuda:0,cuda:1"; "cpu")."""
    import torch

    from engine.errors import ConfigError
    from engine.runner import resolve_device

    allowed = '"auto" (every visible GPU) or devices separated by commas, e.g. "cuda:0,cuda:1" or "cpu"'
    if value.strip() == "auto":
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    names = [part.strip() for part in value.split(",")]
    if not names or any(not n for n in names):
        raise ConfigError("--devices", value, allowed)
    for name in names:
        if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
            raise ConfigError("--devices", value, f"{name!r} is not a device; allowed: {allowed}")
        try:
            resolve_device(name)
        except ConfigError as exc:
            raise ConfigError("--devices", value, exc.allowed) from None
    return names


def make_runner(spec: Spec, results_dir: str | Path | None, plan_id: str = "", jobs: int | None = None,
                devices: list[str] | None = None, backend: Backend | None = None):
    """The runner of a plan: a Runner in this process when its runs go one after the other,
    else a FanOut (jobs: --jobs, else train.jobs; with devices and no jobs, one per device;
    with a Ray backend and no jobs, every run at once, as the cluster's resources allow)."""
    from engine.runner import Runner

    if jobs is None:
        jobs = len(devices) if devices and spec.train.jobs == 1 else spec.train.jobs
        if backend is not None and jobs == 1:
            jobs = len(Plan.of(spec).runs)
    if results_dir is None or (jobs <= 1 and devices is None and backend is None):
        return Runner(spec, results_dir, plan_id)
    return FanOut(spec, results_dir, plan_id, jobs, devices, backend)

"""Is the process that writes a run still alive? What readers conclude from a worker's identity
(host, pid, process start time) and its heartbeat.

A run whose record or log says `running` is `lost` when
- its worker ran on this host and that process is gone (or its pid now names another process), or
- its newest heartbeat is older than LOST_AFTER heartbeats, whatever the host (the only sign a
  reader on another host has; clocks that disagree by more than that would mislead it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.lock import Holder, alive, me

HEARTBEAT_EVERY = 5.0  # seconds between a worker's heartbeats
LOST_AFTER = 3  # heartbeats missed before a reader on any host calls the worker lost


def worker_fields() -> dict:
    """This process, as logs and records name their worker."""
    holder = me()
    return {"host": holder.host, "pid": holder.pid, "process_start": holder.process_start}


WORKER_KEYS = ("host", "pid", "process_start")


def worker_of(environment: dict) -> dict:
    """The worker's identity from a record's or RunStarted's environment ({} when it has none)."""
    return {k: environment[k] for k in WORKER_KEYS if k in environment}


@dataclass(frozen=True)
class Verdict:
    lost: bool
    reason: str  # why lost ("" while alive)


def check(worker: dict, heartbeat: float | None, now: float | None = None) -> Verdict:
    """Whether the worker named by `worker` (host, pid, process_start) is lost, given its newest
    heartbeat (Unix time; None when none was written yet)."""
    now = time.time() if now is None else now
    holder = holder_of(worker)
    if holder is not None and alive(holder) is False:
        return Verdict(True, f"its process (pid {holder.pid} on {holder.host}) is gone")
    limit = LOST_AFTER * HEARTBEAT_EVERY
    if heartbeat is not None and now - heartbeat > limit:
        return Verdict(True, f"no heartbeat for {now - heartbeat:.0f} s (one is written every {HEARTBEAT_EVERY:g} s)")
    if holder is None and heartbeat is None:
        return Verdict(True, "it names no worker process and has no heartbeat")
    return Verdict(False, "")


def holder_of(worker: dict) -> Holder | None:
    try:
        host, pid = str(worker["host"]), int(worker["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if not host or pid <= 0:
        return None
    return Holder(host, pid, str(worker.get("process_start", "") or ""), "")

"""One writer per run directory: `run.lock`, created with O_EXCL, holding the holder's host,
pid, process start time and when it took the lock.

A second writer (a second `--resume`, a retried Ray task) is refused with one line naming the
holder. A stale lock, whose process is gone (same host only: another host's process cannot be
seen from here), is taken over, and the takeover is said.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import LplrError

LOCK_NAME = "run.lock"
TAKEOVER_NAME = ".run.lock-takeover"
TAKEOVER_STALE_AFTER = 60.0  # seconds: a takeover marker older than this was left by a crash


class LockedError(LplrError):
    """Another process holds the run directory."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    process_start: str  # the kernel's start time of the pid ("" where it cannot be read)
    since: str  # ISO time the lock was taken

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since}"

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "process_start": self.process_start, "since": self.since})


def process_start(pid: int) -> str:
    """The start time of `pid` in clock ticks since boot (Linux), so a reused pid is not taken
    for the process that took the lock; "" where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def me() -> Holder:
    pid = os.getpid()
    return Holder(socket.gethostname(), pid, process_start(pid), datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"))


def alive(holder: Holder) -> bool | None:
    """Whether the holder's process still runs: None when it is on another host."""
    if holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if process_state(holder.pid) == "Z":
        return False  # exited, not yet reaped by its parent (or by init, for a detached worker)
    started = process_start(holder.pid)
    return not (holder.process_start and started and started != holder.process_start)


def process_state(pid: int) -> str:
    """The kernel's one-letter state of `pid` (R, S, Z...; "" where /proc cannot tell)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def read_holder(path: Path) -> Holder | None:
    """The lock's holder, or None when the file is not a lock this module wrote."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "r", encoding="utf-8") as fh:
            raw = json.loads(fh.read(4096))
        holder = Holder(str(raw["host"]), int(raw["pid"]), str(raw.get("process_start", "")), str(raw.get("since", "")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    plain = (  # the fields are shown to the user: only what this module writes passes
        re.fullmatch(r"[A-Za-z0-9._-]{1,253}", holder.host) and holder.pid > 0
        and re.fullmatch(r"[0-9]{0,20}", holder.process_start) and re.fullmatch(r"[0-9A-Za-z:.+-]{0,40}", holder.since)
    )
    return holder if plain else None


class RunLock:
    """`RunLock.acquire(run_dir)` -> (lock, what was said: "" or the takeover). `release()`
    removes the file only while it is still this process's."""

    def __init__(self, path: Path, holder: Holder):
        self.path, self.holder = path, holder

    @classmethod
    def acquire(cls, run_dir: str | Path) -> tuple["RunLock", str]:
        path = Path(run_dir) / LOCK_NAME
        holder = me()
        if create(path, holder):
            return cls(path, holder), ""
        found = read_holder(path)
        problem = holder_problem(run_dir, found)
        if problem:
            raise LockedError(problem)
        if not take_over(path, found, holder):
            raise LockedError(f"{run_dir}: another process took over the stale lock of {found.describe()} first")
        return cls(path, holder), f"took over the stale lock of {found.describe()} (that process is gone)"

    def release(self) -> None:
        if read_holder(self.path) == self.holder:
            self.path.unlink(missing_ok=True)


def create(path: Path, holder: Holder) -> bool:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(holder.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    return True


def take_over(path: Path, stale: Holder, holder: Holder) -> bool:
    """Replace a stale lock, one taker at a time: the takeover marker is itself O_EXCL, and the
    lock is re-read under it, so two takers cannot both remove and recreate it."""
    marker = path.with_name(TAKEOVER_NAME)
    try:
        if time.time() - marker.lstat().st_mtime > TAKEOVER_STALE_AFTER:
            marker.unlink(missing_ok=True)
    except OSError:
        pass
    if not create(marker, holder):
        return False
    try:
        if read_holder(path) != stale:
            return False
        path.unlink(missing_ok=True)
        return create(path, holder)
    finally:
        marker.unlink(missing_ok=True)


def check_owner(run_dir: Path) -> None:
    """A run directory, or a file in it, owned by another user is not resumed unasked."""
    uid = os.getuid()
    try:
        paths = [run_dir, *sorted(run_dir.iterdir())]
    except OSError:
        paths = [run_dir]
    for path in paths:
        try:
            owner = path.lstat().st_uid
        except OSError:
            continue
        if owner != uid:
            raise LplrError(
                f"--resume {run_dir}: {path.name} belongs to {user_name(owner)}, not to you; resuming loads "
                "its checkpoint and rewrites its files: give --trust if you trust it"
            )


def user_name(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_free(run_dir: str | Path) -> None:
    """Refuses a run directory that a live process holds (what a resume would find), without
    taking it: for a caller that hands the run to another process."""
    if (Path(run_dir) / LOCK_NAME).exists():
        problem = holder_problem(run_dir, read_holder(Path(run_dir) / LOCK_NAME))
        if problem:
            raise LockedError(problem)


def holder_problem(run_dir: str | Path, found: Holder | None) -> str:
    """Why a lock found in `run_dir` cannot be taken over ("" when it is stale)."""
    path = Path(run_dir) / LOCK_NAME
    if found is None:
        return f"{run_dir}: {LOCK_NAME} is there but is not a lock this program wrote; remove it if no process uses this run"
    state = alive(found)
    if state is None:
        return f"{run_dir}: locked by {found.describe()}; this host cannot see that process: if it has ended, remove {path} and try again"
    if state:
        return f"{run_dir}: locked by {found.describe()}, which is still running"
    return ""

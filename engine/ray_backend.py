"""Workers as Ray tasks (`lplr-tui run --ray [ADDRESS]`): each run of a plan is one task, on
whichever node of the cluster has its resources (one GPU per task on a GPU cluster).

The tasks write their run directories themselves, so the results directory must be on storage
that every node sees (NFS, a shared volume): `RayTasks.connect` checks that every alive node
can write there before any run starts. The plan follows the tasks through their logs, as it
follows local processes.

Ray runs whatever code anyone who reaches its ports sends it. A Ray instance started here
(no address) listens on 127.0.0.1 only and starts no dashboard; a cluster's own security
(a private network, Ray's TLS) is its operator's.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from engine.errors import LplrError, printable

LOCAL = "local"  # no address: a Ray instance of this machine's, for this plan alone
INSTALL = "pip install -e '.[ray]' (in the project), or pip install 'lplr-tui[ray]'"
STORAGE_TIMEOUT = 120.0  # seconds every node gets to write its probe into the results directory
PROBE_PREFIX = ".ray-storage-check-"


def import_ray():
    try:
        import ray
    except ImportError:
        raise LplrError(f"--ray: Ray is not installed: {INSTALL}") from None
    return ray


def write_probe(directory: str, name: str, text: str) -> str:
    """In a task on one node: write a file into the results directory, read it back ("" when it
    worked, else why not)."""
    import socket

    path = Path(directory) / name
    try:
        if not Path(directory).is_dir():
            what = "is not a directory" if Path(directory).exists() else "does not exist"
            return f"{socket.gethostname()}: {directory} {what} there"
        path.write_text(text, encoding="utf-8")
        back = path.read_text(encoding="utf-8")
        path.unlink()
        return "" if back == text else f"{socket.gethostname()}: {directory}: what was written did not read back"
    except OSError as exc:
        return f"{socket.gethostname()}: {directory}: {exc.strerror or exc}"


REACH_TIMEOUT = 10.0  # seconds to wait for a cluster's address to accept a connection


def check_reachable(address: str, timeout: float = REACH_TIMEOUT) -> None:
    """A HOST:PORT that accepts no connection is one line now, not Ray's minutes of retries
    (about 14 with its defaults) with its warnings on stderr. Anything else (auto with no
    RAY_ADDRESS, ray://, the local instance) is left to Ray."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise LplrError(f"--ray {printable(address)}: cannot reach a Ray cluster at {address!r} ({why}); "
                        "is its head running (ray start --head), and is the port open to this machine?") from None


class RayTasks:
    """A FanOut backend: `launch` submits a task, `ended` asks Ray without waiting."""

    name = "ray"

    def __init__(self, ray, started_here: bool, gpus: float):
        self.ray, self.started_here, self.gpus = ray, started_here, gpus
        self.remote = ray.remote(run_task)

    @classmethod
    def connect(cls, address: str, results_dir: str | Path, num_cpus: int | None = None) -> "RayTasks":
        """Join the cluster at `address` ("auto": the one RAY_ADDRESS or a running local head
        names; LOCAL: start an instance of this machine's, on localhost only, no dashboard), then
        check that every node can write into `results_dir`."""
        ray = import_ray()
        check_reachable(os.environ.get("RAY_ADDRESS", "") if address == "auto" else address)
        options = dict(include_dashboard=False, configure_logging=False, log_to_driver=False, ignore_reinit_error=True)
        try:
            if address == LOCAL:  # Ray's token authentication (its default), whatever the shell says: its servers listen beyond localhost
                if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
                    del os.environ["RAY_AUTH_MODE"]
                ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **options)
            else:
                ray.init(address=address, **options)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError...: Ray's own words, on one line
            where = "start a local Ray instance" if address == LOCAL else f"reach a Ray cluster at {address!r}"
            raise LplrError(f"--ray {printable(address)}: cannot {where} ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
        backend = cls(ray, address == LOCAL, float(ray.cluster_resources().get("GPU", 0)))
        try:
            backend.check_storage(Path(results_dir).expanduser().resolve())
        except BaseException:
            backend.close()
            raise
        return backend

    def check_storage(self, results_dir: Path, timeout: float = STORAGE_TIMEOUT) -> None:
        """One task on each alive node writes a file into the results directory and reads it
        back: a node that cannot is one clear error, before any run starts."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        results_dir.mkdir(parents=True, exist_ok=True)
        probe = self.ray.remote(write_probe)
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(results_dir), f"{PROBE_PREFIX}{secrets.token_hex(6)}", n["NodeID"]) for n in nodes]
        ready, waiting = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        problems = [p for p in self.ray.get(ready) if p]
        if waiting:
            problems.append(f"{len(waiting)} node(s) did not answer within {timeout:g} s")
        if problems:
            raise LplrError(f"--ray: the results directory must be on storage every node of the cluster sees (NFS, a "
                            f"shared volume), and a node cannot write there: {printable(problems[0])}")

    def device_for(self, spec_device: str) -> str:
        """A task's device: a GPU of its node when the cluster has GPUs and the run may use one."""
        return "cuda" if self.gpus and spec_device != "cpu" else "cpu"

    def launch(self, job):
        gpu = job.device.startswith("cuda")
        return self.remote.options(num_cpus=job.threads, num_gpus=1 if gpu else 0, max_retries=1,
                                   retry_exceptions=False).remote(job.to_dict())

    def ended(self, handle) -> str | None:
        ready, _ = self.ray.wait([handle], timeout=0)
        if not ready:
            return None
        try:
            self.ray.get(handle)
            return ""
        except self.ray.exceptions.RayTaskError as exc:  # what the worker raised: its own message
            cause = getattr(exc, "cause", None)
            return f"the task raised {type(cause).__name__}: {printable(str(cause))[:300]}" if cause is not None else "the task raised"
        except self.ray.exceptions.RayError as exc:
            return f"Ray: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

    def stop_now(self, handle) -> None:
        """The plan's stop request (its .stop file) stops each task at its epoch's end; a
        task is not killed mid-epoch, which would leave its record saying running."""

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


def run_task(job: dict) -> str:
    """A Ray task: one run of a plan (engine.fanout.run_job) on this node."""
    from engine.fanout import run_job

    return run_job(job)

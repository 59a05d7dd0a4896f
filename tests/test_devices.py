"""How busy the GPUs are: engine.devices reads each CUDA device's utilisation and memory (NVML,
else torch), the runner puts it into the plan's log and onto its queue every beat, the headless
lines, the bar and the app's status bar show it, and each CUDA run's record keeps the peak of
its device memory. Everything but the last test runs on CPU, NVML and CUDA faked."""

from __future__ import annotations

import io
import json
import math
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from rich.console import Console

import engine
import engine.devices
import engine.runner
from engine.devices import device_use, peak_memory
from engine.eventlog import EventLog, LogFile, read_events
from engine.events import DevicesMeasured, PlanFinished, PlanStarted, RunFinished, RunStarted
from engine.record import RecordWriter, read_record
from engine.tail import Tail
from lplr_tui import progress
from lplr_tui.plan_view import PlanView
from lplr_tui.progress import BarDisplay, LineDisplay, devices_text
from lplr_tui.screens.dashboard import status_line

GiB = 2**30
NAN = float("nan")


# ---------------------------------------------------------------- fakes


class NVMLError(Exception):
    pass


def fake_nvml(devices: dict, *, init_fails: bool = False, broken: frozenset = frozenset(), no_util: frozenset = frozenset()):
    """A pynvml module over physical devices {uuid: (name, busy %, used, total)}, in NVML's order.
    `broken`: uuids whose every query raises; `no_util`: uuids whose utilisation alone raises
    (NVML_ERROR_NOT_SUPPORTED, as on a MIG-enabled GPU)."""
    mod = types.ModuleType("pynvml")
    mod.NVMLError = NVMLError
    mod.calls = []
    order = list(devices)

    def init():
        mod.calls.append(("init",))
        if init_fails:
            raise NVMLError("NVML Shared Library Not Found")

    def by_uuid(uuid):
        mod.calls.append(("uuid", uuid))
        key = uuid.removeprefix("GPU-")
        if key not in devices:
            raise NVMLError("Not Found")
        return ("handle", key)

    def by_index(index):
        mod.calls.append(("index", index))
        return ("handle", order[index])

    def check(handle, what=""):
        if handle[1] in broken or (what == "util" and handle[1] in no_util):
            raise NVMLError("Unknown Error")
        return devices[handle[1]]

    mod.nvmlInit = init
    mod.nvmlDeviceGetHandleByUUID = by_uuid
    mod.nvmlDeviceGetHandleByIndex = by_index
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=check(h)[2], total=check(h)[3], free=check(h)[3] - check(h)[2])
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=check(h, "util")[1], memory=0)
    mod.nvmlDeviceGetName = lambda h: check(h)[0].encode()  # older pynvml: bytes
    return mod


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch says CUDA with the devices of the given uuids, in torch's order."""

    def install(uuids: list[str], initialized: bool = False, props_fail: bool = False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(uuids))
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialized)

        def props(index):
            if props_fail:
                raise RuntimeError("no properties")
            return types.SimpleNamespace(uuid=uuids[index], name=f"torch gpu {index}", total_memory=80 * GiB)

        monkeypatch.setattr(torch.cuda, "get_device_properties", props)

    return install


def entry(device="cuda:0", name="NVIDIA H100", busy=87.0, used=int(12.3 * GiB), total=int(79.6 * GiB)) -> dict:
    return {"device": device, "name": name, "busy": busy, "used": used, "total": total}


# ---------------------------------------------------------------- 1, 2: device_use


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_no_cuda_no_devices_and_nvml_is_not_asked(monkeypatch):
    assert torch.cuda.is_available() is False
    assert device_use() == ()
    # the same with an NVML that would answer: no CUDA for torch, nothing to show
    nvml = fake_nvml({"aaa": ("A100", 50, GiB, 40 * GiB)})
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert device_use() == ()
    assert nvml.calls == []
    # bad input: once torch says CUDA, the same call does return devices (the check above is not vacuous)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid="aaa"))
    assert len(device_use()) == 1


def test_nvml_gives_each_device_its_use_matched_by_uuid(monkeypatch, fake_cuda):
    # NVML's order: aaa (A100), bbb (H100); torch's (CUDA_VISIBLE_DEVICES=1,0): bbb, aaa
    nvml = fake_nvml({"aaa": ("A100-SXM4-40GB", 3, 1 * GiB, 40 * GiB), "bbb": ("H100 80GB HBM3", 87, 12 * GiB, 80 * GiB)})
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    fake_cuda(["GPU-bbb", "aaa"])  # torch's uuid with or without NVML's "GPU-" prefix
    use = device_use()
    assert use == (
        {"device": "cuda:0", "name": "H100 80GB HBM3", "busy": 87.0, "used": 12 * GiB, "total": 80 * GiB},
        {"device": "cuda:1", "name": "A100-SXM4-40GB", "busy": 3.0, "used": 1 * GiB, "total": 40 * GiB},
    )
    assert isinstance(use, tuple) and all(isinstance(d["name"], str) and isinstance(d["busy"], float) for d in use)
    assert ("uuid", "GPU-bbb") in nvml.calls and ("uuid", "GPU-aaa") in nvml.calls
    assert not any(c[0] == "index" for c in nvml.calls)
    # bad input: matched by index instead, cuda:0 would be NVML's device 0, the A100
    fake_cuda(["GPU-bbb", "aaa"], props_fail=True)  # no uuid: the index is all there is
    assert device_use()[0]["name"] == "A100-SXM4-40GB"


def test_a_device_nvml_cannot_read_stays_listed_unknown(monkeypatch, fake_cuda):
    nvml = fake_nvml({"aaa": ("A100", 40, 2 * GiB, 40 * GiB), "bbb": ("H100", 90, 9 * GiB, 80 * GiB)}, broken=frozenset({"bbb"}))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    fake_cuda(["aaa", "bbb"])
    first, second = device_use()
    assert first["used"] == 2 * GiB and first["busy"] == 40.0
    assert second["device"] == "cuda:1" and math.isnan(second["busy"]) and second["used"] == -1 and second["total"] == -1
    assert devices_text((first, second)) == "cuda:0 40% busy, 2.0/40.0 GiB, cuda:1"
    # bad input: the same device readable again reads in full
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({"aaa": ("A100", 40, 2 * GiB, 40 * GiB), "bbb": ("H100", 90, 9 * GiB, 80 * GiB)}))
    assert device_use()[1]["used"] == 9 * GiB


@pytest.mark.parametrize("without", ["no driver", "no package"])
def test_without_nvml_nothing_is_opened_just_to_look(monkeypatch, fake_cuda, without):
    if without == "no driver":
        monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({"aaa": ("A100", 1, 1, 2)}, init_fails=True))
    else:
        monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    opened = []

    def mem_get_info(index):
        opened.append(index)
        return (30 * GiB, 80 * GiB)

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")
    fake_cuda(["aaa", "bbb"], initialized=False)
    use = device_use()
    assert [d["device"] for d in use] == ["cuda:0", "cuda:1"]
    assert all(d["used"] == -1 and d["total"] == -1 and math.isnan(d["busy"]) for d in use)
    assert opened == []  # no CUDA context made to look
    # bad input: a process that has CUDA up reads the memory from torch (the check above can fail)
    fake_cuda(["aaa", "bbb"], initialized=True)
    monkeypatch.setattr(torch._C, "_cuda_hasPrimaryContext", lambda index: True, raising=False)  # both in use here
    use = device_use()
    assert use[0]["used"] == 50 * GiB and use[0]["total"] == 80 * GiB and use[0]["name"] == "GPU 0"
    assert math.isnan(use[0]["busy"])  # utilisation is NVML's alone


def test_without_nvml_only_devices_already_opened_are_read(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    opened = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: opened.append(index) or (30 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")
    monkeypatch.setattr(torch._C, "_cuda_hasPrimaryContext", lambda index: index == 0, raising=False)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index=None: GiB if index in (0, None) else 0)
    fake_cuda(["aaa", "bbb"], initialized=True)  # the run trains on cuda:0 alone
    use = device_use()
    assert use[0]["used"] == 50 * GiB
    assert 1 not in opened and use[1]["used"] == -1


def test_memory_survives_when_only_utilisation_is_unsupported(monkeypatch, fake_cuda):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({"aaa": ("H100", 0, 5 * GiB, 80 * GiB)}, no_util=frozenset({"aaa"})))
    fake_cuda(["aaa"])
    (only,) = device_use()
    assert math.isnan(only["busy"]) and only["used"] == 5 * GiB and only["total"] == 80 * GiB


def test_peak_memory_is_for_cuda_devices_only(monkeypatch):
    assert peak_memory(torch.device("cpu")) == {}
    assert peak_memory("cuda") == {}  # not a device
    asked = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: asked.append(device) or 123456)
    cuda = torch.device("cuda", 0)
    assert peak_memory(cuda) == {"peak_device_memory": 123456}
    assert asked == [cuda]


# ---------------------------------------------------------------- 3: the text


def test_devices_text_formats_busy_and_memory():
    assert devices_text((entry(),)) == "cuda:0 87% busy, 12.3/79.6 GiB"
    two = (entry(), entry("cuda:1", busy=0.4, used=0, total=80 * GiB))
    assert devices_text(two) == "cuda:0 87% busy, 12.3/79.6 GiB, cuda:1 0% busy, 0.0/80.0 GiB"
    assert devices_text(()) == ""


def test_devices_text_leaves_out_what_is_unknown():
    assert devices_text((entry(busy=NAN),)) == "cuda:0 12.3/79.6 GiB"  # no utilisation without NVML
    assert devices_text((entry(busy=None),)) == "cuda:0 12.3/79.6 GiB"
    assert devices_text((entry(used=-1, total=-1),)) == "cuda:0 87% busy"  # no trailing comma
    assert devices_text((entry(busy=NAN, used=-1, total=-1),)) == "cuda:0"
    assert devices_text(({"device": "cuda:3"},)) == "cuda:3"
    # bad input: a known value is shown (the omissions above are not of everything)
    assert "87% busy" in devices_text((entry(total=-1),)) and "GiB" in devices_text((entry(busy=NAN),))


def test_devices_text_shows_names_as_text(tmp_path):
    markup = devices_text((entry(device="[red]x[/]"),))
    assert markup.startswith("[red]x[/] 87% busy")
    control = devices_text((entry(device="cuda:0\x1b[2J\x07"),))
    assert "\x1b" not in control and "\x07" not in control and "\\x1b[2J\\x07" in control
    # the text reaches the terminal as text: LineDisplay prints no markup and no escape
    console = Console(file=io.StringIO(), width=200)
    LineDisplay(console).handle(DevicesMeasured(0.0, (entry(device="[red]x[/]\x1b]0;pwned\x07"),)))
    out = console.file.getvalue()
    assert "[red]x[/]" in out and "\x1b" not in out and "\x07" not in out
    # the name NVML gives is not shown at all (only the device), so it cannot carry markup either
    assert "evil" not in devices_text((entry(name="[blink]evil\x1b[0m"),))
    # bad input: a device name rendered as markup would lose its brackets
    rendered = Console(file=io.StringIO(), width=200)
    rendered.print(f"devices: {markup}")
    assert "[red]x[/]" not in rendered.file.getvalue()


def test_devices_text_skips_entries_that_are_not_tables(tmp_path):
    assert devices_text(("cuda:0 99% busy", 42, None, ["x"], entry())) == "cuda:0 87% busy, 12.3/79.6 GiB"
    # such a line in a plan's log is read (its devices are a list of plain values) and shown without a crash
    log = plan_log_with(tmp_path, {"type": "DevicesMeasured", "at": 1.0, "devices": ["junk", 7, {"device": "cuda:0", "total": GiB, "used": GiB}]})
    (event,) = [e for e in read_events(log).events if isinstance(e, DevicesMeasured)]
    console = Console(file=io.StringIO(), width=200)
    LineDisplay(console).handle(event)
    assert console.file.getvalue() == "devices: cuda:0 1.0/1.0 GiB\n"


@pytest.mark.parametrize("bad", [{"used": "x", "total": 100}, {"used": None, "total": 2**31}, {"busy": 10**400}, {"used": 1, "total": 10**400}])
def test_a_tampered_device_entry_does_not_crash_the_watcher(tmp_path, bad):
    log = plan_log_with(tmp_path, {"type": "DevicesMeasured", "at": 1.0, "devices": [{"device": "cuda:0", **bad}]})
    read = read_events(log)
    assert read.problems == []  # the reader accepts it: the display must cope
    (event,) = [e for e in read.events if isinstance(e, DevicesMeasured)]
    LineDisplay(Console(file=io.StringIO(), width=200)).handle(event)
    view = plan_view(2)
    view.handle(event)
    assert "cuda:0" in status_line(view)


def plan_log_with(tmp_path: Path, *raw: dict) -> Path:
    path = tmp_path / "20250101-000000-p.plan.jsonl"
    log = LogFile(path)
    log.write(PlanStarted("p", ("a",), (3,), {}, "", 1))
    for line in raw:
        log.fh.write(json.dumps(line) + "\n")
    log.close()
    return path


# ---------------------------------------------------------------- 4: the headless displays


@pytest.fixture
def clock(monkeypatch):
    """progress's monotonic clock, set by the test."""
    now = [1000.0]
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=lambda: now[0], time=time.time))
    return now


def devices_lines(console: Console) -> list[str]:
    return [line for line in console.file.getvalue().splitlines() if "devices:" in line]


def test_line_display_says_the_devices_at_most_once_an_interval(clock):
    console = Console(file=io.StringIO(), width=200)
    display = LineDisplay(console, every=10.0)
    display.handle(DevicesMeasured(1.0, (entry(),)))
    assert devices_lines(console) == ["devices: cuda:0 87% busy, 12.3/79.6 GiB"]
    clock[0] += 5.0  # the next beat: within the interval
    display.handle(DevicesMeasured(2.0, (entry(busy=12.0),)))
    assert len(devices_lines(console)) == 1
    clock[0] += 5.0  # `every` seconds after the first line
    display.handle(DevicesMeasured(3.0, (entry(busy=13.0),)))
    assert devices_lines(console)[1:] == ["devices: cuda:0 13% busy, 12.3/79.6 GiB"]
    # bad input: without the rate limit every beat would print; with a long `every`, DEVICES_EVERY bounds it
    slow = LineDisplay(Console(file=io.StringIO(), width=200), every=600.0)
    for step in range(7):  # 35 s of beats, 5 s apart
        slow.handle(DevicesMeasured(float(step), (entry(),)))
        clock[0] += 5.0
    assert len(devices_lines(slow.console)) == 2  # at 0 s and at 30 s


def test_line_display_device_lines_leave_the_run_lines_alone(clock):
    console = Console(file=io.StringIO(), width=200)
    display = LineDisplay(console)
    display.handle(PlanStarted("p", ("a",), (3,), {}, "", 1))
    display.handle(DevicesMeasured(1.0, (entry(),)))
    display.handle(PlanFinished("finished"))
    assert console.file.getvalue().splitlines() == ["plan p: 1 run(s)", "devices: cuda:0 87% busy, 12.3/79.6 GiB", "plan finished"]


def test_bar_display_prints_the_devices_above_its_bars(clock):
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with BarDisplay(console) as bar:
        bar.handle(DevicesMeasured(1.0, (entry(device="[red]x[/]"),)))
        clock[0] += 10.0
        bar.handle(DevicesMeasured(2.0, (entry(busy=5.0),)))  # within DEVICES_EVERY: not printed
        clock[0] += 20.0
        bar.handle(DevicesMeasured(3.0, (entry(busy=6.0),)))
    out = console.file.getvalue()
    assert "devices: [red]x[/] 87% busy, 12.3/79.6 GiB" in out  # not rendered as markup
    assert "5% busy" not in out
    assert "devices: cuda:0 6% busy, 12.3/79.6 GiB" in out
    assert out.count("devices:") == 2


# ---------------------------------------------------------------- 5: the app's view and status bar


def plan_view(runs: int = 2) -> PlanView:
    view = PlanView(clock=lambda: 1000.0)
    labels = tuple(f"r{i}" for i in range(runs))
    view.handle(PlanStarted("p", labels, (3,) * runs, {}, "", runs))
    return view


@pytest.fixture(scope="module")
def spec():
    return engine.load_spec("mnist", {"data.source": "synthetic"})


def started(spec, run: int, of: int) -> RunStarted:
    return RunStarted(run, of, f"r{run}", spec, 10, {"device": f"cuda:{run}"}, "")


def test_plan_view_keeps_the_newest_devices():
    view = plan_view()
    assert view.devices == ()
    view.handle(DevicesMeasured(1.0, (entry(busy=10.0),)))
    view.handle(DevicesMeasured(2.0, (entry(busy=20.0), entry("cuda:1"))))
    assert [d["busy"] for d in view.devices] == [20.0, 87.0]


def test_status_line_shows_the_devices_and_the_runs_at_once(spec):
    view = plan_view(3)
    view.handle(started(spec, 0, 3))
    one = status_line(view)
    assert "running" not in one and "GiB" not in one  # bad input: one run, no devices measured
    view.handle(started(spec, 1, 3))
    view.handle(DevicesMeasured(1.0, (entry(), entry("cuda:1", busy=NAN, used=-1, total=-1))))
    line = status_line(view)
    assert "2 running" in line
    assert line.endswith(" · cuda:0 87% busy, 12.3/79.6 GiB, cuda:1")
    assert line.startswith("p run 2/3: r1 · 2 running · epoch 0/3")  # the newest run's line
    view.handle(RunFinished(0, "finished", "", 3, {}, ""))
    assert "running" not in status_line(view)


# ---------------------------------------------------------------- 6: the runner


@pytest.fixture
def small(data_root):
    return engine.load_spec("mnist", {"data.source": "synthetic", "data.n_train": 32, "train.epochs": 3,
                                      "probes.ntk_subset": 16, "train.device": "cpu", "data.root": data_root})


def test_runner_puts_the_devices_on_its_queue_and_in_the_plan_log(monkeypatch, small, tmp_path):
    use = (entry(), entry("cuda:1", name="H100", busy=NAN, used=-1, total=-1))
    monkeypatch.setattr(engine.runner, "device_use", lambda: use)
    runner = engine.Runner(small, tmp_path, plan_id="20250101-000000-p")
    runner.log = EventLog(runner.plan_log)
    runner.log.handle(PlanStarted("p", ("a",), (3,), {}, "", 1))
    runner._show_devices()
    runner.log.close()
    queued = runner.events.get_nowait()
    assert isinstance(queued, DevicesMeasured) and queued.devices == use and abs(queued.at - time.time()) < 60
    assert runner.events.empty()
    logged = [e for e in read_events(runner.plan_log).events if isinstance(e, DevicesMeasured)]
    assert len(logged) == 1
    back = logged[0].devices
    assert isinstance(back, tuple) and back[0] == use[0] and back[1]["name"] == "H100"
    assert math.isnan(back[1]["busy"]) and back[1]["used"] == -1  # NaN survives JSON
    # a watcher reads it from the plan's log as the app would have from the queue
    tailed = [e for e in Tail(runner.plan_log).poll() if isinstance(e, DevicesMeasured)]
    assert len(tailed) == 1 and tailed[0].at == queued.at and devices_text(tailed[0].devices) == devices_text(use)
    # bad input: without devices (no CUDA) nothing is emitted or written
    monkeypatch.setattr(engine.runner, "device_use", lambda: ())
    runner.log = EventLog(runner.plan_log)
    runner.log.handle(PlanStarted("p", ("a",), (3,), {}, "", 1))
    runner._show_devices()
    runner.log.close()
    assert runner.events.empty()
    assert len([e for e in read_events(runner.plan_log).events if isinstance(e, DevicesMeasured)]) == 1


def test_runner_without_a_log_still_tells_its_queue(monkeypatch, small):
    monkeypatch.setattr(engine.runner, "device_use", lambda: (entry(),))
    runner = engine.Runner(small)
    assert runner.log is None
    runner._show_devices()
    assert isinstance(runner.events.get_nowait(), DevicesMeasured)


@pytest.mark.parametrize("devices, only, expected", [
    (["cuda:0"], None, True),  # a plan on a GPU measures it
    (["cpu", "cuda:0"], None, True),
    (["cpu"], None, False),  # a CPU plan does not
    (["cuda:0"], 0, False),  # a worker of a plan run with --jobs leaves it to the plan
])
def test_the_heartbeat_measures_the_devices_of_a_cuda_plan(monkeypatch, small, devices, only, expected):
    monkeypatch.setattr(engine.runner, "device_use", lambda: (entry(),))
    monkeypatch.setattr(engine.runner, "HEARTBEAT_EVERY", 0.0)
    monkeypatch.setattr(engine.runner, "STOP_POLL", 0.05)
    runner = engine.Runner(small)
    runner._devices = [torch.device(d) for d in devices]
    runner.only = only
    runner._thread = threading.Thread(target=time.sleep, args=(0.3,))  # stands for a plan that runs for 0.3 s
    runner._thread.start()
    runner._beat()
    seen = [e for e in list(runner.events.queue) if isinstance(e, DevicesMeasured)]
    assert bool(seen) is expected
    if expected:
        assert len(seen) >= 2  # once a beat


# ---------------------------------------------------------------- 7: the record


def run_to_the_end(runner: engine.Runner) -> list:
    runner.preflight()
    runner.start()
    events = list(runner.iter_events())
    runner.join()
    return events


def test_a_cpu_run_records_no_device_memory(small, tmp_path):
    events = run_to_the_end(engine.Runner(small, tmp_path))
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    assert finished.state == "finished" and finished.resources == {}
    assert not [e for e in events if isinstance(e, DevicesMeasured)]
    (record,) = [read_record(p) for p in tmp_path.glob("*/record.toml")]
    assert record.environment["device"] == "cpu" and "peak_device_memory" not in record.environment


def test_the_runs_peak_device_memory_reaches_its_record(monkeypatch, small, tmp_path):
    """The runner's wiring, on CPU: what peak_memory says of the device lands in the record."""
    seen = []
    monkeypatch.setattr(engine.runner, "peak_memory", lambda device: seen.append(device) or {"peak_device_memory": 123})
    events = run_to_the_end(engine.Runner(small, tmp_path))
    assert seen == [torch.device("cpu")]
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    assert finished.resources == {"peak_device_memory": 123}
    (run_dir,) = [p.parent for p in tmp_path.glob("*/record.toml")]
    assert read_record(run_dir).environment["peak_device_memory"] == 123
    # the run's log keeps it too: a record rebuilt from the log says the same
    logged = [e for e in read_events(run_dir / "events.jsonl").events if isinstance(e, RunFinished)]
    assert logged[0].resources == {"peak_device_memory": 123}


def test_record_writer_puts_the_resources_into_the_environment(spec, tmp_path):
    def written(resources: dict) -> dict:
        run_dir = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        run_dir.mkdir()
        writer = RecordWriter("p")
        writer.handle(RunStarted(0, 1, "a", spec, 10, {"device": "cuda:0", "started": "2025-01-01T00:00:00+00:00", "finished": ""}, str(run_dir)))
        writer.handle(RunFinished(0, "finished", "", 3, {"params": 10}, "2025-01-01T00:01:00+00:00", [], resources))
        return read_record(run_dir).environment

    env = written({"peak_device_memory": 123})
    assert env["peak_device_memory"] == 123 and env["device"] == "cuda:0" and env["finished"] == "2025-01-01T00:01:00+00:00"
    assert "peak_device_memory" not in written({})  # bad input: no resources, no key


# ---------------------------------------------------------------- 8: on a GPU


@pytest.mark.cuda
def test_on_a_gpu_the_record_keeps_the_peak_and_every_device_is_listed(make_spec, tmp_path):
    events = run_to_the_end(engine.Runner(make_spec(train__device="cuda", data__n_train=32, train__epochs=3, probes__ntk_subset=16), tmp_path))
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    assert finished.state == "finished" and finished.resources["peak_device_memory"] > 0
    (record,) = [read_record(p) for p in tmp_path.glob("*/record.toml")]
    assert record.environment["peak_device_memory"] == finished.resources["peak_device_memory"]
    use = device_use()
    assert len(use) == torch.cuda.device_count()
    assert [d["device"] for d in use] == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    assert all(d["total"] > 0 and 0 <= d["used"] <= d["total"] for d in use)
    text = devices_text(use)
    assert "cuda:0" in text and "GiB" in text

"""Terminal hygiene, checked on the bytes: NO_COLOR is honoured by the CLI and the app on a real
(pseudo-)terminal, and what goes to a log (a file, a pipe, a detached worker's output) carries
no ANSI escape at all. Each NO_COLOR check has its control: the same run without NO_COLOR
does emit colour, so the check cannot pass by drawing nothing."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from rich.console import Console

from engine.events import PlanFinished
from engine.tail import Tail
from lplr_tui.progress import display_for

SCRIPT = Path(sys.executable).with_name("lplr-tui")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "lplr_tui"]
TINY = [
    "--preset", "mnist", "--device", "cpu",
    "--set", "data.source=synthetic", "--set", "data.n_train=32",
    "--set", "train.epochs=5", "--set", "probes.ntk_subset=16",
]  # a plan of one run that trains in well under a second: the time is the imports
ESC = b"\x1b"
SGR = re.compile(rb"\x1b\[([0-9;:]*)m")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without what decides colour, on a colour terminal: each test sets its own."""
    forced = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "COLORTERM")
    env = {k: v for k, v in os.environ.items() if k not in forced and not k.startswith("TEXTUAL_")}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def colours(data: bytes) -> list[tuple]:
    """Every colour an SGR sequence in data sets: ("basic", n), ("256", n) or ("rgb", r, g, b).
    Attributes (bold, dim, italic...) and the resets (0, 39, 49) are not colours."""
    found: list[tuple] = []
    for match in SGR.finditer(data):
        params = [int(p) if p else 0 for p in re.split(rb"[;:]", match.group(1))]
        i = 0
        while i < len(params):
            p = params[i]
            if 30 <= p <= 37 or 40 <= p <= 47 or 90 <= p <= 97 or 100 <= p <= 107:
                found.append(("basic", p))
            elif p in (38, 48, 58) and i + 1 < len(params):
                if params[i + 1] == 5:
                    found.append(("256", params[i + 2] if i + 2 < len(params) else 0))
                    i += 2
                elif params[i + 1] == 2:
                    found.append(("rgb", *params[i + 2 : i + 5]))
                    i += 4
            i += 1
    return found


def in_a_terminal(args: list[str], env: dict[str, str], cwd: Path, quiet: float | None = None, timeout: float = 120) -> tuple[int | None, bytes]:
    """Runs the command on a pseudo-terminal of 100 × 30 (stdin, stdout and stderr) and returns
    its exit code and every byte it wrote there: until it exits, or (quiet) until it has been
    silent that long after its first output, when it is killed and the code is None."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline, last = time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline:
            if quiet is not None and last is not None and time.monotonic() - last >= quiet:
                break
            if not select.select([master], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
            last = time.monotonic()
        else:
            raise AssertionError(f"{args}: still writing after {timeout} s")
    finally:
        if quiet is not None or process.poll() is None:
            process.kill()
        code = process.wait(timeout=30)
        os.close(master)
    return (None if quiet is not None else code), b"".join(chunks)


@pytest.fixture(scope="module")
def run_into_a_file(tmp_path_factory):
    """`lplr-tui run` of a tiny plan, its stdout and stderr files: a log as `> run.log 2>&1` makes."""
    where = tmp_path_factory.mktemp("into-a-file")
    with open(where / "stdout", "wb") as stdout, open(where / "stderr", "wb") as stderr:
        done = subprocess.run(COMMAND + ["run", *TINY, "--results", str(where / "results")], stdout=stdout, stderr=stderr,
                              stdin=subprocess.DEVNULL, env=clean_env(), cwd=where, timeout=300)
    said, complained = (where / "stdout").read_bytes(), (where / "stderr").read_bytes()
    assert done.returncode == 0, complained.decode(errors="replace")
    (plan_log,) = (where / "results").glob("*.plan.jsonl")
    return said, complained, plan_log


# ---------------------------------------------------------------- logs: no escape at all


def test_a_run_into_a_file_writes_no_escape(run_into_a_file):
    said, complained, _ = run_into_a_file
    assert b"run 1/1 m=128 \xce\xb7=1e-3: finished after 5 epochs" in said  # the progress lines are there
    assert b"Table 1" in said and b"verdicts" in said  # and the tables, with their styles
    assert ESC not in said and ESC not in complained
    assert b"\r" not in said  # no redraws either: a line is written once


def test_watch_into_a_pipe_writes_no_escape(run_into_a_file, tmp_path):
    *_, plan_log = run_into_a_file
    watched = subprocess.run(COMMAND + ["watch", str(plan_log)], capture_output=True, stdin=subprocess.DEVNULL,
                             env=clean_env(), cwd=tmp_path, timeout=120)
    assert watched.returncode == 0, watched.stderr
    assert b"finished after 5 epochs" in watched.stdout and b"plan finished" in watched.stdout
    assert ESC not in watched.stdout and ESC not in watched.stderr


@pytest.mark.parametrize("forced", [{}, {"FORCE_COLOR": "1"}], ids=["plain", "FORCE_COLOR"])
def test_the_detached_workers_output_has_no_escape(tmp_path, forced):
    """Its output is a log even when the shell that started it forces colour."""
    results = tmp_path / "results"
    started = subprocess.run(COMMAND + ["run", "--detach", *TINY, "--results", str(results)], capture_output=True,
                             stdin=subprocess.DEVNULL, env=clean_env(**forced), cwd=tmp_path, timeout=300)
    assert started.returncode == 0, started.stderr
    assert forced or (ESC not in started.stdout and ESC not in started.stderr)  # forced: this terminal asked for colour
    pid = int(re.search(rb"as pid (\d+)", started.stdout).group(1))
    output = Path(re.search(rb"output: +(\S+)", started.stdout).group(1).decode())
    deadline = time.monotonic() + 120
    while alive(pid):  # its last words (the tables) come after the plan's end in its log
        assert time.monotonic() < deadline, "the detached worker did not finish"
        time.sleep(0.1)
    (plan_log,) = results.glob("*.plan.jsonl")
    assert any(isinstance(e, PlanFinished) for e in Tail(plan_log).poll())
    logged = output.read_bytes()
    assert b"finished after 5 epochs" in logged and b"Table 1" in logged
    assert ESC not in logged and b"\r" not in logged


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_progress_into_a_file_is_lines_even_when_the_environment_forces_a_terminal(run_into_a_file, monkeypatch, variable):
    """A CI job's FORCE_COLOR, or one a detached worker inherits, makes rich take a file for a
    terminal: the progress display still writes plain lines there, never the bar's redraws."""
    *_, plan_log = run_into_a_file
    monkeypatch.setenv(variable, "1")
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, emoji=False)
    assert console.is_terminal  # what rich concludes from the variable
    with display_for(console) as display:
        for event in Tail(plan_log).poll():
            display.handle(event)
    written = buffer.getvalue()
    assert "\x1b" not in written and "\r" not in written
    assert "finished after 5 epochs" in written and "plan finished" in written


# ---------------------------------------------------------------- NO_COLOR on a terminal


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "control"])
def test_the_cli_on_a_terminal_honours_no_color(tmp_path, no_color):
    env = clean_env(**({"NO_COLOR": "1"} if no_color else {}))
    code, shown = in_a_terminal(COMMAND + ["run", *TINY, "--results", str(tmp_path / "results")], env, tmp_path)
    assert code == 0, shown.decode(errors="replace")
    assert b"\x1b[?25l" in shown  # the live bar drew (it hides the cursor): this was a terminal
    assert b"Table 1" in shown and b"\x1b[1m" in shown  # bold stays: NO_COLOR is about colour
    if no_color:
        assert colours(shown) == []
    else:  # the control: the very same run does colour its bar, marks and tables
        assert len(set(colours(shown))) >= 3


@pytest.mark.parametrize("no_color", [True, False], ids=["NO_COLOR", "control"])
def test_the_app_on_a_terminal_honours_no_color(tmp_path, no_color):
    """Textual's NO_COLOR is its Monochrome filter: every colour a grey (r = g = b)."""
    env = clean_env(COLORTERM="truecolor", **({"NO_COLOR": "1"} if no_color else {}))
    _, shown = in_a_terminal(COMMAND + ["--results", str(tmp_path / "results")], env, tmp_path, quiet=1.0, timeout=60)
    used = colours(shown)
    assert b"\x1b[?1049h" in shown and len(used) > 100  # the app took the screen and drew the picker
    greys = [c for c in used if c[0] == "rgb" and c[1] == c[2] == c[3]]
    if no_color:
        assert used == greys
    else:  # the control: the same screen in colour
        assert len(set(used) - set(greys)) >= 3

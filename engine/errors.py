"""Errors a user can fix: each names what was wrong and what is allowed."""

from __future__ import annotations

import re

# C0 and C1 control characters but tab and newline: an ESC in a label could drive the terminal
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text from files with its control characters written as \\xNN escapes."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class LplrError(Exception):
    """Bad input from the user. The CLI prints the message alone and exits 2."""


class ConfigError(LplrError):
    """A preset value (or override) that is not allowed."""

    def __init__(self, key: str, value: object, allowed: str, where: str = ""):
        self.key, self.value, self.allowed, self.where = key, value, allowed, where
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + self.bare)

    @property
    def bare(self) -> str:
        """The message without saying where the value came from."""
        return f"{self.key} = {show_value(self.value)}: {self.allowed}"


class DataError(LplrError):
    """A data set that cannot be found or loaded."""


def show_value(value: object) -> str:
    """A value as it would be written in a preset (TOML style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > 80:  # a pasted essay: enough to recognise it
            return f'"{printable(value[:60])}…" ({len(value)} characters)'
        return f'"{printable(value)}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def last_words(path) -> str:
    """What a process that ended wrote last to its output file: its `error:` line (without the
    prefix), else its last line (a traceback's exception); "" when there is nothing to read."""
    import os

    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 65536))
            lines = [line.strip() for line in fh.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1].removeprefix("error:").strip()

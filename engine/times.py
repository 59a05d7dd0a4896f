"""Times as records and logs write them (ISO 8601 with the zone) and as Unix time. Imports
nothing heavy: viewers use it."""

from __future__ import annotations

from datetime import datetime, timezone


def iso_time(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).astimezone().isoformat(timespec="seconds")


def unix_time(text: object) -> float | None:
    """An ISO time as Unix time (None when missing or unreadable)."""
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None

"""Small time helpers shared by the controller's modules."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float | None) -> str | None:
    """Unix seconds -> ISO 8601 UTC with 'Z' (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def hour_of_day(ts: float) -> float:
    """UTC hour of the day as a float in [0, 24)."""
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return d.hour + d.minute / 60 + d.second / 3600

"""Time helpers: aware UTC timestamps, their fixed-width text form, a monotonic clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already (as :func:`parse_time`)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """A fixed-width ISO-8601 UTC string, so text order is time order (naive means UTC)."""
    return as_utc(value).isoformat(timespec="microseconds")


_ISO_FIX = re.compile(r"(\.\d{6})\d+|Z$")


def parse_time(value: str) -> datetime:
    """Parse :func:`format_time` output (or any ISO-8601 string) to aware UTC.

    Naive times are taken as UTC; ``Z`` and more than six fractional digits (as chrono and
    other tools write) are accepted on every supported Python.
    """
    if not isinstance(value, str):
        raise TypeError(f"a time must be an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = datetime.fromisoformat(
            _ISO_FIX.sub(lambda m: m.group(1) or "+00:00", value.strip()))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


class MonotonicClock:
    """UTC timestamps that never repeat or go backwards within one store object."""

    def __init__(self) -> None:
        self._last: datetime | None = None

    def now(self) -> datetime:
        current = utc_now()
        if self._last is not None and current <= self._last:
            current = self._last + timedelta(microseconds=1)
        self._last = current
        return current

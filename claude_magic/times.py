"""Time helpers: aware UTC timestamps, their fixed-width text form, a monotonic clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import ValueOutOfRange


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


#: The times every store, time zone and pandas can hold: a day inside ``datetime``'s range,
#: so showing a stored time in any local zone never overflows.
MIN_TIME = datetime(1, 1, 2, tzinfo=timezone.utc)
MAX_TIME = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=timezone.utc)
_RANGE = "use a time between 0001-01-02 and 9999-12-30 (UTC)"


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already (as :func:`parse_time`).

    ``ValueError`` for a time outside :data:`MIN_TIME` .. :data:`MAX_TIME` (never
    ``OverflowError``, e.g. for ``0001-01-01T00:00:00+14:00``)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    elif value.tzinfo is not timezone.utc:
        try:
            value = value.astimezone(timezone.utc)
        except OverflowError:
            raise ValueOutOfRange(f"the time {value.isoformat()} is out of range; "
                                  f"{_RANGE}") from None
    if not MIN_TIME <= value <= MAX_TIME:
        raise ValueOutOfRange(f"the time {value.isoformat()} is out of range; {_RANGE}")
    return value


def format_time(value: datetime) -> str:
    """A fixed-width ISO-8601 UTC string, so text order is time order (naive means UTC)."""
    return as_utc(value).isoformat(timespec="microseconds")


_ISO_FIX = re.compile(r"(\.\d{6})\d+|Z$")


def parse_time(value: str) -> datetime:
    """Parse :func:`format_time` output (or any ISO-8601 string) to aware UTC.

    Naive times are taken as UTC; ``Z`` and more than six fractional digits (as chrono and
    other tools write) are accepted on every supported Python. Raises only ``TypeError`` /
    ``ValueError`` (also for times out of range, see :func:`as_utc`).
    """
    if not isinstance(value, str):
        raise TypeError(f"a time must be an ISO-8601 string, got {type(value).__name__}")
    if len(value) > 64:
        raise ValueError(f"not an ISO-8601 time: {value[:40]!r}...")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = datetime.fromisoformat(
            _ISO_FIX.sub(lambda m: m.group(1) or "+00:00", value.strip()))
    return as_utc(parsed)


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

"""Values that pass a naive check and break later are refused at the boundary, on every store.

Integers past 64 bits (what SQLite and pandas int64 hold), nesting past 100 levels, token or
cost totals that would overflow, times at the ends of the calendar (with offsets), ages that
reach before year 1: one-line ``ClaudeMagicError`` (``InvalidMetadata`` / ``ValueOutOfRange``),
nothing written.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from claude_magic.errors import ClaudeMagicError, InvalidMetadata, ValueOutOfRange
from claude_magic.manager import SessionManager, parse_age
from claude_magic.message import Message, Usage
from claude_magic.session import Session, SessionId

PLUS14, MINUS14 = timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))


def nested(depth: int) -> Any:
    value: Any = 1
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


BAD_VALUES = [2**63, -2**63 - 1, 10**5000, nested(101), {"deep": nested(100)}]
EDGE_TIMES = [datetime(1, 1, 1, tzinfo=PLUS14), datetime(9999, 12, 31, 23, 59, tzinfo=MINUS14),
              datetime(1, 1, 1, 12), datetime(9999, 12, 31, tzinfo=timezone.utc)]


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> None:
    text = str(exc.value)
    assert isinstance(exc.value, ClaudeMagicError) and "\n" not in text and len(text) < 400, text


def snapshot(manager: SessionManager) -> list[Any]:
    return [manager.get(i).to_dict() for i in manager.list()]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["2**63", "-2**63-1", "10**5000", "depth101",
                                                   "depth101b"])
def test_metadata_and_settings_out_of_range_are_refused(manager: SessionManager,
                                                        value: Any) -> None:
    manager.create_session("s").with_metadata("ok", [2**63 - 1, -2**63, nested(97)]).build()
    before = snapshot(manager)
    attempts = [
        lambda: manager.create_session("t").with_metadata("x", value),
        lambda: manager.create_session("t").with_setting("x", value),
        lambda: manager.update("s", metadata={"x": value}),
        lambda: manager.update("s", settings={"x": value}),
        lambda: manager.import_session(Session(id=SessionId("t"), metadata={"x": value})),
        lambda: manager.fork("s", "t", metadata={"x": value}),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidMetadata) as refused:
            attempt()
        one_line(refused)
    assert snapshot(manager) == before


def test_message_numbers_out_of_range_are_refused(manager: SessionManager) -> None:
    manager.create_session("s").build()
    for fields in ({"usage": {"input_tokens": 2**63}}, {"usage": {"output_tokens": 10**5000}},
                   {"cost_usd": 2**64}, {"duration_ms": -2**63 - 1}, {"seq": 2**63}):
        with pytest.raises(ValueOutOfRange) as refused:
            Message.from_dict({"role": "user", "content": "x",
                               "created_at": "2026-01-01T00:00:00+00:00", **fields})
        one_line(refused)
    assert manager.resume("s").messages == []


def test_totals_that_would_overflow_refuse_the_append(manager: SessionManager) -> None:
    manager.create_session("s").build()
    manager.append("s", Message("assistant", "a", usage=Usage(2**62, 2**62), cost_usd=2e18))
    before = snapshot(manager)
    for message in (Message("assistant", "b", usage=Usage(input_tokens=2**62)),
                    Message("assistant", "c", usage=Usage(output_tokens=2**62)),
                    Message("assistant", "d", cost_usd=8e18),
                    Message("assistant", "e", cost_usd=-3e18)):
        with pytest.raises(ValueOutOfRange) as refused:
            manager.append("s", message)
        one_line(refused)
    assert snapshot(manager) == before
    assert manager.summary("s").stats.input_tokens == 2**62
    manager.append("s", Message("user", "small", usage=Usage(input_tokens=1)))  # still works
    frame = manager.to_dataframe()
    assert str(frame["input_tokens"].dtype) == "int64"


def test_an_import_whose_totals_overflow_is_refused(manager: SessionManager) -> None:
    big = Message("assistant", "x", usage=Usage(input_tokens=2**62 + 1))
    with pytest.raises(ValueOutOfRange) as refused:
        manager.import_session(Session(id=SessionId("s"), messages=[big, big]))
    one_line(refused)
    assert manager.list() == []


@pytest.mark.parametrize("when", EDGE_TIMES, ids=["1-1-1+14", "9999-12-31-14", "1-1-1naive",
                                                  "9999-12-31utc"])
def test_times_at_the_ends_of_the_calendar_are_refused(manager: SessionManager,
                                                       when: datetime) -> None:
    manager.create_session("s").build()
    before = snapshot(manager)
    attempts = [
        lambda: Message("user", "x", created_at=when),
        lambda: manager.import_session(Session(id=SessionId("t"), created_at=when)),
        lambda: manager.import_session(Session(id=SessionId("t"), updated_at=when)),
        lambda: Session.from_dict({"id": "t", "created_at": when.isoformat(),
                                   "updated_at": "2026-01-01T00:00:00+00:00"}),
    ]
    for attempt in attempts:
        with pytest.raises(ValueOutOfRange) as refused:
            attempt()
        one_line(refused)
    assert snapshot(manager) == before


def test_times_just_inside_the_range_round_trip(manager: SessionManager) -> None:
    first = datetime(1, 1, 2, tzinfo=timezone.utc)
    last = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=timezone.utc)
    manager.import_session(Session(id=SessionId("edges"), created_at=first, updated_at=last,
                                   messages=[Message("user", "x", created_at=first)]))
    loaded = manager.resume("edges")
    assert (loaded.created_at, loaded.updated_at) == (first, last)
    frame = manager.to_dataframe()
    assert frame["created_at"].iloc[0].year == 1 and frame["updated_at"].iloc[0].year == 9999


@pytest.mark.parametrize("age", ["1000000d", "99999999999d", "9" * 400 + "w", float("inf"),
                                 float("nan"), 1e12, timedelta(days=999999)])
def test_ages_past_the_calendar_are_one_line(manager: SessionManager, age: Any) -> None:
    manager.create_session("s").build()
    with pytest.raises(ValueError) as refused:
        parse_age(age)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    with pytest.raises(ValueError):
        manager.prune(older_than=age)
    assert manager.list() == ["s"]

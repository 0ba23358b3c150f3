"""Generated input: hostile session ids never escape the store; metadata round-trips exactly."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_magic.errors import InvalidMetadata, InvalidSessionId, ValueOutOfRange
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionBuilder, SessionId
from claude_magic.storage import StorageBackend
from claude_magic.storage import sqlite as sqlite_store
from claude_magic.storage.sqlite import ID_OK
from claude_magic.times import MAX_TIME, MIN_TIME, as_utc, format_time, parse_time

from .conftest import KINDS, backend_for
from .test_contract import same_json

HOSTILE = [
    "../x", "..", ".", "./x", "x/..", "a/../b", "../../etc/passwd", "/etc/passwd", "/tmp/x",
    "//server/share", "C:\\x", "C:x", "a\\b", "..\\..\\x", "\\\\?\\C:\\x", "~", "~root", "$HOME",
    "\x00", "a\x00b", "x\x00/../y", " ", "a ", " a", "a.", "a..", ".a", "-a", "a-", "_a",
    "CON", "con", "Con.txt", "nul", "NUL.json", "aux", "prn", "COM1", "lpt9", "com10", "CONX",
    "conin$", "x" * 128, "x" * 129, "y" * 4096, "é", "\u212a", "\u017f", "\uff2b", "\u0130",
    "a\nb", "a\rb", "a\tb", "*", "?", "a:b", "a|b", "<a>", '"a"', "a;b", "a'b", "%2e%2e%2f",
    "x.json", "x.messages", "x.messages.jsonl", ".index", ".lock", ".tmp-1", "\u202eevil",
]
PIECES = ["..", ".", "/", "\\", "a", "Z", "0", "9", "-", "_", "\x00", "é", "CON", "~", ":", "*",
          " ", "\n", "json", "\u212a", "\U0001f980"]

ids = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.text(min_size=100, max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=24).map("".join),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,140}", fullmatch=True),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=130),
)


def snapshot(top: Path, skip: Path) -> set[str]:
    """Every path under ``top`` except those inside ``skip``."""
    found = set()
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        if here == skip or skip in here.parents:
            continue
        found.update(str(here / name) for name in dirs + files)
    return found


def sql_accepts(db: sqlite3.Connection, value: str) -> bool:
    return bool(db.execute(f"SELECT {ID_OK} FROM (SELECT ? AS id)", (value,)).fetchone()[0])


@pytest.mark.slow
def test_generated_ids_are_refused_or_stored_inside_the_directory() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp)
        (parent / "sibling.txt").write_text("outside the store")
        root = parent / "store" / "sessions"
        manager = SessionManager.with_storage(StorageBackend.file(root))
        before = snapshot(parent, root.parent)
        sql = sqlite3.connect(":memory:")
        stored: set[str] = set()
        counts = {"stored": 0, "refused": 0}

        @settings(max_examples=3000, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(ids)
        def check(value: str) -> None:
            try:
                session_id = SessionId(value)
            except InvalidSessionId as exc:
                counts["refused"] += 1
                assert "\n" not in str(exc)
                assert not sql_accepts(sql, value), value
                with pytest.raises(InvalidSessionId):
                    manager.create_session(value)
                with pytest.raises(InvalidSessionId):
                    manager.get(value)
                with pytest.raises(InvalidSessionId):
                    manager.delete(value)
                with pytest.raises(InvalidSessionId):
                    manager.import_session(Session(id=value))  # type: ignore[arg-type]
                return
            assert session_id == value and sql_accepts(sql, value), value
            if value.lower() not in stored:  # case-insensitive file systems: stay portable
                counts["stored"] += 1
                manager.create_session(value).build()
                stored.add(value.lower())
                manager.append(value, Message("user", "hi"))
                header = root / f"{value}.json"
                assert header.is_file() and header.resolve().parent == root.resolve()
                assert manager.resume(value).messages[0].content == "hi"

        check()
        manager.close()
        assert counts["stored"] > 100 and counts["refused"] > 1000, counts
        assert snapshot(parent, root.parent) == before  # nothing created outside the store
        assert [p.name for p in root.parent.iterdir()] == ["sessions"]
        for path in root.iterdir():
            assert path.is_file(), path
            assert path.name in (".lock", ".index.json") or path.name.endswith(
                (".json", ".messages.jsonl")), path
        assert len(list(root.glob("*.json"))) == counts["stored"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children,
                                                                        max_size=5),
    max_leaves=25,
)
metadata_dicts = st.dictionaries(st.text(), json_values, max_size=6)


@pytest.mark.parametrize("kind", KINDS)
def test_metadata_round_trips_exactly(kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manager = SessionManager.with_storage(backend_for(kind, Path(tmp)))
        counter = iter(range(10**6))

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(metadata=metadata_dicts, extra=metadata_dicts, prompt=st.text() | st.none())
        def check(metadata: dict[str, Any], extra: dict[str, Any], prompt: str | None) -> None:
            session_id = f"s{next(counter)}"
            builder = manager.create_session(session_id).with_system_prompt(prompt)
            for key, value in metadata.items():
                builder = builder.with_metadata(key, value)
            builder.build()
            loaded = manager.resume(session_id)
            assert same_json(loaded.metadata, metadata)
            assert loaded.system_prompt == prompt
            manager.update(session_id, metadata=extra, unset=[k for k in metadata
                                                              if k not in extra])
            assert same_json(manager.resume(session_id).metadata, extra)
            summary = next(s for s in manager.summaries() if s.id == session_id)
            assert same_json(summary.metadata, extra)

        check()
        manager.close()


@pytest.mark.parametrize("kind", KINDS)
def test_text_that_utf8_cannot_store_is_refused(kind: str, tmp_path: Path) -> None:
    with SessionManager.with_storage(backend_for(kind, tmp_path)) as manager:
        with pytest.raises(InvalidMetadata):
            manager.create_session("s").with_metadata("x", "lone \ud800 surrogate")
        with pytest.raises(InvalidMetadata):
            manager.create_session("s").with_metadata("\udc80", 1)
        with pytest.raises(ValueError):
            manager.create_session("s").with_system_prompt("\ud800")
        with pytest.raises(ValueError):
            Message("user", "bad \udfff")
        with pytest.raises(InvalidMetadata):
            manager.import_session(Session(id=SessionId("s"), metadata={"k": ["\ud800"]}))
        circular: dict[str, Any] = {}
        circular["self"] = circular
        with pytest.raises(InvalidMetadata):
            SessionBuilder().with_metadata("loop", circular)
        assert manager.list() == []


@settings(max_examples=500, deadline=None, database=None)
@given(st.datetimes(timezones=st.timezones()) | st.datetimes())
def test_every_time_we_write_passes_the_sqlite_readable_check(value: datetime) -> None:
    """Times in range are written in a form both SQL checks accept; others are refused with
    a ValueError (never OverflowError), before any store sees them."""
    utc = _utc_or_none(value)
    if utc is None or not MIN_TIME <= utc <= MAX_TIME:
        with pytest.raises(ValueOutOfRange, match="out of range"):
            format_time(value)
        return
    text = format_time(value)
    assert parse_time(text) == as_utc(value)
    with sqlite3.connect(":memory:") as db:
        for check in (sqlite_store._time_ok("t"), sqlite_store._plain_time("t")):
            assert db.execute(f"SELECT {check} FROM (SELECT ? AS t)", (text,)).fetchone() == (1,)


def _utc_or_none(value: datetime) -> datetime | None:
    """``value`` in UTC, or None when datetime cannot hold it there."""
    try:
        return value.replace(tzinfo=value.tzinfo or timezone.utc).astimezone(timezone.utc)
    except OverflowError:
        return None

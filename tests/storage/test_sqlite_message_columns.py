"""Migration 009: a message's usage, stop reason, duration and chain hash are columns, and the
stored ``plain`` column is SQL's check that a row reads as it is.

``data/before_009.db`` was made by claude_magic before this migration, with
``data/make_before_009.py`` (text, an image block, other backend ids, an incomplete and an
error message, and a row planted by another tool with an impossible usage);
``data/before_009.json`` is what that claude_magic read from it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest

from claude_magic.errors import StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage
from claude_magic.session import Session, SessionId

DATA = Path(__file__).parent / "data"
TIME = "2025-03-01T12:00:00.000000+00:00"


def raw(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run SQL the way another tool would (plain sqlite3, no claude_magic)."""
    db = sqlite3.connect(path)
    try:
        with db:
            return db.execute(sql, params).fetchall()
    finally:
        db.close()


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(DATA / "before_009.db", path)
    return path


def read_all(manager: SessionManager) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = {sid: [m.to_dict() for m in manager.resume(sid).messages]
                 for sid in ("chat", "other")}
    return found, [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]


def test_a_database_made_before_009_reads_exactly_as_before(old_db: Path) -> None:
    assert raw(old_db, "SELECT count(*) FROM _migrations") == [(8,)]
    with SessionManager(f"sqlite:///{old_db}") as manager:
        found, warned = read_all(manager)
        assert found == json.loads((DATA / "before_009.json").read_text())
        assert len(warned) == 1 and "other:1" in warned[0] and "input_tokens" in warned[0]
        assert manager.verify("chat").ok
        assert [(d.session_id, d.location.rsplit("#", 1)[1]) for d in manager.damaged()] == [
            ("other", "other:1")]
        assert [(h.session_id, h.seq) for h in manager.search("picture")] == [("chat", 3)]
    # the values moved out of ``extra``; the planted row kept its ``extra`` whole
    rows = raw(old_db, "SELECT session_id, seq, extra, stop_reason, duration_ms, "
                       "cache_creation_input_tokens, cache_read_input_tokens, length(hash), "
                       "plain FROM messages ORDER BY session_id, seq")
    assert rows[1] == ("chat", 1, '{"ids":{"message_id":"msg_01","request_id":"req_9"}}',
                       "end_turn", 812.5, 3, 7, 64, 1)
    assert [row[2] for row in rows if row[2] != "{}"] == [
        rows[1][2], rows[2][2], '{"usage": {"input_tokens": "many"}}']
    assert json.loads(rows[2][2]).keys() == {"blocks"}


def test_a_migrated_session_goes_on_chained(old_db: Path) -> None:
    with SessionManager(f"sqlite:///{old_db}") as manager:
        manager.append("chat", Message("user", "next"))
        manager.mark("chat", 3, "error", "stopped")
        manager.rename("chat", "renamed")
        assert manager.verify("renamed").ok
        session = manager.resume("renamed")
        assert [m.seq for m in session.messages] == [0, 1, 2, 3, 4, 5]
        assert session.messages[1].ids["message_id"] == "msg_01"
        assert session.messages[3].status == "error" and session.messages[3].duration_ms == 3
        assert type(session.messages[3].duration_ms) is int  # as the JSON it came from
    with SessionManager(f"sqlite:///{old_db}") as manager:  # opened again: nothing to migrate
        assert [m.to_dict() for m in manager.resume("renamed").messages] == [
            m.to_dict() for m in session.messages]


def test_a_row_from_before_009_that_kept_its_hash_in_extra_still_chains(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SessionManager(f"sqlite:///{path}") as manager:
        manager.create_session("s").build()
        first = manager.append("s", Message("user", "one"))
    digest = first.ids["hash"]
    raw(path, "UPDATE messages SET hash = NULL, extra = ? WHERE seq = 0",
        (json.dumps({"ids": {"hash": digest}}),))  # as a row no column could take
    with SessionManager(f"sqlite:///{path}") as manager:
        assert manager.resume("s").messages[0].ids == {"hash": digest}
        manager.append("s", Message("assistant", "two"))
        assert manager.verify("s").ok


#: one hand edit each, every value impossible for a message
EDITS = [
    ("cache_read_input_tokens = -5", "cache_read_input_tokens"),
    ("cache_creation_input_tokens = 'many'", "cache_creation_input_tokens"),
    ("input_tokens = 1.5", "input_tokens"),
    ("duration_ms = 'slow'", "duration_ms"),
    ("duration_ms = 1e999", "duration_ms"),
    ("stop_reason = x'01'", "stop_reason"),
    ("hash = x'00ff'", "hash"),
    ("created_at = '2025-02-30T12:00:00.000000+00:00'", "created_at"),
    ("extra = '{\"ids\": {\"message_id\": 5}}'", "ids"),
    ("extra = '{\"ids\": {\"k\": \"\\ud800\"}}'", "surrogate"),
    ("role = 'system'", "role"),
]


@pytest.mark.parametrize(("edit", "what"), EDITS, ids=[what for _, what in EDITS])
def test_a_hand_edited_impossible_value_is_reported_once_and_skipped(
        tmp_path: Path, edit: str, what: str) -> None:
    path = tmp_path / "s.db"
    messages = [Message("user", f"q{i}", usage=Usage(1, 2, 3, 4), duration_ms=5.5,
                        stop_reason="end_turn", ids={"message_id": f"m{i}"}) for i in range(3)]
    with SessionManager(f"sqlite:///{path}") as manager:
        manager.import_session(Session(SessionId("s"), messages=messages))
    raw(path, f"UPDATE messages SET {edit} WHERE seq = 1")
    with SessionManager(f"sqlite:///{path}") as manager:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = manager.resume("s").messages
            second = manager.get("s").messages  # type: ignore[union-attr]
        warned = [str(w.message) for w in caught if issubclass(w.category, StorageWarning)]
        assert [m.seq for m in first] == [m.seq for m in second] == [0, 2]
        assert len(warned) == 1 and "s:1" in warned[0] and "\n" not in warned[0]
        assert [d.location.rsplit("#", 1)[1] for d in manager.damaged()] == ["s:1"]
        assert manager.verify("s").ok is False  # the chain notices the missing message
    assert raw(path, "SELECT count(*) FROM messages") == [(3,)]  # the row stays


def test_every_message_our_writes_make_is_vouched_for(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    messages = [
        Message("user", "plain text 🦀 \x00"),
        Message("assistant", "answer", model="m", backend="anthropic",
                usage=Usage(2**63 - 1, 0, 5, 6), cost_usd=0.5, stop_reason="end_turn",
                duration_ms=7, ids={"message_id": "msg", "session_id": "s"}),
        Message("user", [{"type": "text", "text": "blocks"}]),
        Message("assistant", "cut", status="incomplete", duration_ms=2**62 + 1),
        Message("user", "failed", status="error", error="no"),
    ]
    with SessionManager(f"sqlite:///{path}") as manager:
        manager.import_session(Session(SessionId("s"), messages=messages))
        manager.append("s", Message("user", "appended", ids={"request_id": "r"}))
        stored = manager.resume("s").messages
    assert raw(path, "SELECT count(*) FROM messages WHERE plain = 1") == [(6,)]
    assert [m.content for m in stored[:5]] == [m.content for m in messages]
    assert stored[1].usage == Usage(2**63 - 1, 0, 5, 6)
    assert type(stored[1].duration_ms) is int and stored[1].duration_ms == 7
    assert stored[1].ids == {"message_id": "msg", "session_id": "s",
                             "hash": stored[1].ids["hash"]}
    assert stored[3].duration_ms == 2**62 + 1  # exact: the column has no type to round it
    assert stored[5].ids.keys() == {"request_id", "hash"}
    assert raw(path, "SELECT extra FROM messages WHERE seq IN (0, 3, 4)") == [("{}",)] * 3

"""Messages read back without re-checking each field are exactly those the checked path
reads, and a line or row that is not exactly as the store writes it still takes the checked
path (so damage is still reported)."""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path

import pytest

from claude_magic import SessionManager
from claude_magic.message import Message, Usage, stored_message_from_dict
from claude_magic.session import Session, SessionId


def sample() -> list[Message]:
    return [Message("user", "plain"), Message("assistant", "é ünïcode", model="m",
                                                  usage=Usage(1, 2, 3, 4), cost_usd=0.5,
                                                  stop_reason="end_turn", duration_ms=12,
                                                  ids={"message_id": "msg_1"}),
            Message("user", [{"type": "text", "text": "blocks"}]),
            Message("assistant", "failed", status="incomplete", error="cut")]


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_fast_and_checked_reads_agree(kind: str, tmp_path: Path) -> None:
    spec = str(tmp_path / "d") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"
    with SessionManager(spec) as manager:
        manager.import_session(Session(SessionId("s"), messages=sample()))
        loaded = manager.resume("s").messages
    expected = [Message.from_dict(json.loads(json.dumps(m.to_dict()))) for m in loaded]
    assert loaded == expected and [m.text for m in loaded] == [m.text for m in sample()]


@pytest.mark.parametrize("bad", [
    {"seq": 2**63}, {"usage": {"input_tokens": -1, "output_tokens": 0,
                               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}},
    {"role": "system"}, {"created_at": "2025-01-01T00:00:00+01:00"}, {"ids": {"a": 1}},
    {"cost_usd": True}, {"content": ["not", "blocks"]}])
def test_the_fast_path_refuses_what_is_not_exactly_written(bad: dict) -> None:
    line = {**Message("user", "x", seq=0).to_dict(), **bad}
    assert stored_message_from_dict(line) is None


def test_a_lone_surrogate_escape_takes_the_checked_path(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.import_session(Session(SessionId("s"), messages=sample()[:2]))
    path = tmp_path / "s.messages.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"plain"', b'"\\ud800"'))
    with SessionManager(str(tmp_path)) as manager, warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        messages = manager.resume("s").messages
    assert [m.seq for m in messages] == [1] and "s.messages.jsonl:1" in str(got[0].message)


def test_a_sqlite_extra_that_is_not_one_object_is_damage(tmp_path: Path) -> None:
    with SessionManager(f"sqlite:///{tmp_path}/s.db") as manager:
        manager.import_session(Session(SessionId("s"), messages=sample()[:2] * 2))
    with sqlite3.connect(tmp_path / "s.db") as db:  # two rows that only parse together
        db.execute("""UPDATE messages SET extra = '{"x":"}' WHERE seq = 0""")
        db.execute("""UPDATE messages SET extra = '{"}' WHERE seq = 1""")
    with SessionManager(f"sqlite:///{tmp_path}/s.db") as manager, \
            warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert [m.seq for m in manager.resume("s").messages] == [2, 3]

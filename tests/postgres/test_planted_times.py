"""Times another tool planted that PostgreSQL holds but Python cannot (``infinity``,
``-infinity``, years before 1 or after 9999) or that sit at the very edges of what the store
accepts: damaged entries reported once, or read as they are; never a crash."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone

import psycopg
import pytest

from claude_magic.errors import DamagedSession, StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message

#: PostgreSQL takes these, Python's datetime cannot hold them (or a time zone shifts them out).
OUT = {"inf": "infinity", "neg-inf": "-infinity", "year-1": "0001-01-01 00:00:00+00",
       "year-9999": "9999-12-31 23:59:59.999999+00", "bc": "0044-03-15 12:00:00+00 BC",
       "year-10000": "10000-01-01 00:00:00+00"}
#: The first and last instants the store accepts: read back exactly.
EDGES = {"first": ("0001-01-02 00:00:00+00", datetime(1, 1, 2, tzinfo=timezone.utc)),
         "last": ("9999-12-30 23:59:59.999999+00",
                  datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=timezone.utc))}


def _plant_sessions(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as tool:
        for name, value in {**OUT, **{k: v for k, (v, _) in EDGES.items()}}.items():
            for column in ("created", "updated"):
                created = value if column == "created" else "2026-01-01 00:00:00+00"
                updated = value if column == "updated" else "2026-01-01 00:00:00+00"
                tool.execute("INSERT INTO claude_magic.sessions (id, created_at, updated_at) "
                             "VALUES (%s, %s, %s)", (f"{column}-{name}", created, updated))


def _plant_messages(url: str, session_id: str, first_seq: int) -> dict[int, str]:
    """One message per planted time after the session's own; returns seq -> name."""
    planted = {}
    with psycopg.connect(url, autocommit=True) as tool:
        for seq, (name, value) in enumerate({**OUT, **{k: v for k, (v, _) in EDGES.items()}}
                                            .items(), start=first_seq):
            tool.execute("INSERT INTO claude_magic.messages (session_id, seq, role, content, "
                         "created_at) VALUES (%s, %s, 'user', %s, %s)",
                         (session_id, seq, f"planted {name}", value))
            planted[seq] = name
    return planted


def _warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "damaged" in str(w.message)]


def test_session_times_python_cannot_hold_are_damaged_entries(pg_url: str) -> None:
    with SessionManager.with_storage(pg_url) as manager:
        manager.create_session("good").build()
        _plant_sessions(pg_url)
        _plant_messages(pg_url, "created-inf", 0)
        bad = {f"{column}-{name}" for name in OUT for column in ("created", "updated")}
        edges = {f"{column}-{name}" for name in EDGES for column in ("created", "updated")}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            listed = manager.list()
            manager.list()  # a second listing reports nothing new
            assert sorted(listed) == sorted({"good", *edges})
            assert manager.count() == 1 + len(edges)
            assert sorted(s.id for s in manager.summaries()) == sorted(listed)
            assert sorted(manager.summary_columns().ids) == sorted(listed)
            assert {d.session_id for d in manager.damaged()} == bad
            assert manager.search("planted") == []  # nothing from a damaged session
        reported = _warnings(caught)
        for session_id in bad:  # once each, on one line
            assert sum(f"#{session_id}: " in text for text in reported) == 1, session_id
        assert all("\n" not in text for text in reported)
        for session_id in bad:
            with pytest.raises(DamagedSession, match="repair the row with SQL") as caught_error:
                manager.get(session_id)
            assert "move the file" not in str(caught_error.value)
            with pytest.raises(DamagedSession):
                manager.append(session_id, Message("user", "x"))
            with pytest.raises(DamagedSession):
                manager.update(session_id, metadata={"a": 1})
        for name, (_, expected) in EDGES.items():
            assert manager.get(f"created-{name}").created_at == expected
            assert manager.get(f"updated-{name}").updated_at == expected
        assert manager.clear() == 1 + len(edges)
        assert all(manager.exists(session_id) for session_id in bad)  # never removed
        manager.delete("created-inf")  # deleting is how a damaged row's id is freed
        manager.create_session("created-inf").build()


def test_message_times_python_cannot_hold_are_damaged_entries(pg_url: str) -> None:
    with SessionManager.with_storage(pg_url) as manager:
        manager.create_session("chat").build()
        manager.append("chat", Message("user", "question"))
        manager.append("chat", Message("assistant", "answer"))
        planted = _plant_messages(pg_url, "chat", 2)
        bad = {seq for seq, name in planted.items() if name in OUT}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            messages = manager.resume("chat").messages
            assert [m.content for m in messages] == ["question", "answer", "planted first",
                                                     "planted last"]
            assert [m.created_at for m in messages[2:]] == [EDGES["first"][1],
                                                            EDGES["last"][1]]
            manager.get("chat")
            damaged = manager.damaged()
            assert {(d.session_id, d.location.rsplit("#", 1)[1]) for d in damaged} == {
                ("chat", f"chat:{seq}") for seq in bad}
            hits = manager.search("planted")  # never a hit in a damaged row
            assert sorted(hit.seq for hit in hits) == sorted(
                seq for seq, name in planted.items() if name in EDGES)
            report = manager.verify("chat")
            assert not report.ok  # planted rows carry no hash
            manager.usage(by="day")
        reported = _warnings(caught)
        for seq in bad:
            assert sum(f"#chat:{seq}:" in text for text in reported) == 1, (seq, reported)
        manager.append("chat", Message("user", "still writable"))
        assert manager.resume("chat").messages[-1].content == "still writable"
        manager.fork("chat", "copy")  # a fork holds what could be read
        assert [m.content for m in manager.resume("copy").messages] == [
            "question", "answer", "planted first", "planted last", "still writable"]
        manager.rename("chat", "renamed")  # the planted rows move along, still reported
        with pytest.warns(StorageWarning, match="renamed:"):
            found = manager.damaged()
        assert {d.location.rsplit("#", 1)[1] for d in found} == {f"renamed:{seq}" for seq in bad}

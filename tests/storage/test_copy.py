"""``manager.copy_to``: sessions copied exactly between every ordered pair of store kinds."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claude_magic.chain import HASH_KEY
from claude_magic.compaction import summary_ids
from claude_magic.errors import SessionExists, SessionNotFound, StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage
from claude_magic.session import Session

from .conftest import KINDS, backend_for

PAIRS = [pair for pair in itertools.product(KINDS, KINDS) if pair[0] != pair[1]] + [
    (kind, kind) for kind in KINDS]  # and into another store of the same kind
WHEN = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=timezone.utc)


def rich_session(session_id: str, offset: int = 0) -> Session:
    """A session with everything a copy must keep: odd text, nested metadata, settings,
    statuses, usage, costs, backend ids, a compaction (summary) turn, exact times."""
    at = WHEN + timedelta(minutes=offset)
    messages = [
        Message("user", "first question \x00 with a NUL and \ue000", created_at=at),
        Message("assistant", "an answer", created_at=at + timedelta(seconds=1),
                model="claude-sonnet-4-5", backend="anthropic",
                usage=Usage(12, 34, 5, 6), cost_usd=0.000123, stop_reason="end_turn",
                duration_ms=812.5, ids={"message_id": "msg_1"}),
        Message("user", "this one failed", created_at=at + timedelta(seconds=2),
                status="error", error="overloaded"),
        Message("user", "summarise", created_at=at + timedelta(seconds=3), ids=summary_ids()),
        Message("assistant", "the summary", created_at=at + timedelta(seconds=4),
                model="claude-sonnet-4-5", ids=summary_ids(through=2)),
        Message("user", "go on", created_at=at + timedelta(seconds=5)),
        Message("assistant", "half an ans", created_at=at + timedelta(seconds=6),
                status="incomplete", error="connection lost"),
    ]
    return Session(id=session_id, system_prompt="You are exact.\nLine two \u00e9",
                   metadata={"project": "web", "n": -7, "ratio": -0.0, "big": 2**62,
                             "nested": {"a": [1, 2.5, None, True, "x"]}, "empty": {}},
                   settings={"model": "claude-opus-4-1", "max_tokens": 4096},
                   created_at=at, updated_at=at + timedelta(seconds=7), messages=messages)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SessionManager, ...]]:
    """``stores(kind)``: a fresh manager of that kind; several calls give separate stores."""
    opened: list[SessionManager] = []

    def make(kind: str) -> SessionManager:
        manager = SessionManager.with_storage(backend_for(kind, tmp_path / f"store{len(opened)}"))
        opened.append(manager)
        return manager

    yield make  # type: ignore[misc]
    for manager in opened:
        manager.close()


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS,
                         ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_copy_is_exact_between_every_pair_of_stores(stores, source_kind: str,
                                                   target_kind: str) -> None:
    source, target = stores(source_kind), stores(target_kind)
    for number, session_id in enumerate(("review", "notes", "empty")):
        session = rich_session(session_id, number)
        if session_id == "empty":
            session.messages, session.metadata, session.system_prompt = [], {}, None
        source.import_session(session)
    target.create_session("unrelated").build()
    report = source.copy_to(target)
    assert report.copied == ["empty", "notes", "review"]  # newest first, like list()
    assert report.messages == 14 and report.replaced == []
    assert str(report) == f"Copied 3 sessions (14 messages) to {target.location}."
    for session_id in ("review", "notes", "empty"):
        assert target.get(session_id) == source.get(session_id)
    copied = target.get("review").messages[4].ids
    assert copied.pop(HASH_KEY) == source.get("review").messages[4].ids[HASH_KEY]
    assert copied == summary_ids(through=2)  # the import chained it; nothing else added
    assert target.verify("review").ok
    assert target.summaries()[1:] == source.summaries()  # "unrelated" is newest
    assert set(target.list()) == {"review", "notes", "empty", "unrelated"}


@pytest.mark.parametrize("kind", KINDS)
def test_existing_ids_are_refused_unless_overwrite(stores, kind: str) -> None:
    source, target = stores("memory" if kind != "memory" else "directory"), stores(kind)
    for session_id in ("a", "b", "c"):
        source.import_session(rich_session(session_id))
    target.create_session("b").with_metadata("mine", True).build()
    target.create_session("c").build()
    with pytest.raises(StorageError, match=r"2 sessions \(c, b\) already in .*nothing was "
                                           r"copied.*--overwrite"):
        source.copy_to(target)
    with pytest.raises(SessionExists, match="'b' already exists"):
        source.copy_to(target, ["a", "b"])
    assert sorted(target.list()) == ["b", "c"] and target.get("b").metadata == {"mine": True}
    report = source.copy_to(target, ["b", "a", "b"], overwrite=True)
    assert report.copied == ["b", "a"] and report.replaced == ["b"]
    assert str(report).endswith("; replaced 1 there.")
    assert target.get("b") == source.get("b") and target.get("a") == source.get("a")
    assert target.get("c").messages == []


def test_missing_ids_and_the_same_store_are_refused(stores, tmp_path: Path) -> None:
    source, target = stores("directory"), stores("sqlite")
    source.import_session(rich_session("here"))
    with pytest.raises(SessionNotFound, match=r"1 session \(gone\) missing .*nothing was copied"):
        source.copy_to(target, ["here", "gone"])
    assert target.list() == []
    with pytest.raises(StorageError, match="onto itself"):
        source.copy_to(source)
    with pytest.raises(StorageError, match="onto itself"):
        source.copy_to(str(tmp_path / "store0" / "sessions"))  # the same folder, by its path


def test_copy_to_a_spec_opens_and_closes_the_target(stores, tmp_path: Path) -> None:
    source = stores("memory")
    source.import_session(rich_session("one"))
    spec = f"sqlite:///{tmp_path / 'out.db'}"
    assert source.copy_to(spec, "one").copied == ["one"]
    with SessionManager.with_storage(spec) as reopened:
        assert reopened.get("one") == source.get("one")


def test_an_error_midway_names_what_was_copied(stores) -> None:
    source, target = stores("memory"), stores("directory")
    for session_id in ("a", "b"):
        source.import_session(rich_session(session_id))
    (Path(target.location) / "b.json").mkdir()  # the target cannot take 'b'
    with pytest.raises(StorageError, match=r"copy stopped at .b. after 1 of 2 sessions"):
        source.copy_to(target, ["a", "b"], overwrite=True)

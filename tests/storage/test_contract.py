"""The storage contract: every manager operation, on memory, directory and SQLite stores."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from claude_magic.errors import (
    ClaudeMagicError,
    InvalidMetadata,
    InvalidSessionId,
    SessionExists,
    SessionNotFound,
)
from claude_magic.manager import SessionManager, parse_age
from claude_magic.message import Message, Usage
from claude_magic.session import Session, SessionBuilder, SessionId
from claude_magic.storage import StorageBackend
from claude_magic.times import utc_now

NESTED = {
    "project": "web-api",
    "tags": ["rust", "security", {"deep": [1, 2.5, None, True, {"x": "y"}]}],
    "owner": {"name": "Zoë", "team": {"id": 7, "ratio": -0.0, "big": 2**63 - 1, "small": -2**63}},
    "empty": {},
    "nothing": None,
    "flag": False,
}
UNICODE = "日本語 — emoji 🦀, RTL עברית, combining é, NUL \x00 and newline \n"


def assistant(text: str = "Hello", **extra: object) -> Message:
    fields: dict[str, object] = {
        "model": "claude-sonnet-4-5",
        "backend": "anthropic",
        "usage": Usage(input_tokens=12, output_tokens=5, cache_creation_input_tokens=1,
                       cache_read_input_tokens=2),
        "cost_usd": 0.000111,
        "stop_reason": "end_turn",
        "duration_ms": 138.5,
        "ids": {"message_id": "msg_01", "request_id": "req_9"},
    }
    fields.update(extra)
    return Message("assistant", text, **fields)  # type: ignore[arg-type]


def same_json(a: object, b: object) -> bool:
    """Equal and of the same JSON types all the way down (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


# --- create -------------------------------------------------------------------------------


def test_create_without_id_makes_a_uuid4_and_stores_it(manager: SessionManager) -> None:
    session = manager.create_session().with_system_prompt("be brief").build()
    assert isinstance(session.id, SessionId)
    assert uuid.UUID(session.id).version == 4
    assert manager.list() == [session.id]
    stored = manager.get(session.id)
    assert stored is not None
    assert stored.system_prompt == "be brief"
    assert stored.messages == []


def test_create_with_id(manager: SessionManager) -> None:
    session = manager.create_session("review-2024-001").with_metadata("k", 1).build()
    assert session.id == "review-2024-001"
    assert manager.resume("review-2024-001").metadata == {"k": 1}


def test_create_with_with_id_on_a_managed_builder(manager: SessionManager) -> None:
    session = manager.create_session().with_id("chosen.id_1").build()
    assert manager.list() == ["chosen.id_1"]
    assert session.id == "chosen.id_1"


def test_create_existing_id_raises_session_exists(manager: SessionManager) -> None:
    manager.create_session("dup").with_system_prompt("first").build()
    with pytest.raises(SessionExists) as caught:
        manager.create_session("dup").with_system_prompt("second").build()
    assert caught.value.session_id == "dup"
    assert "\n" not in str(caught.value) and "'dup'" in str(caught.value)
    assert "SessionId(" not in str(caught.value)
    assert manager.resume("dup").system_prompt == "first"
    assert manager.count() == 1


def test_overwrite_replaces_header_and_messages(manager: SessionManager) -> None:
    manager.create_session("dup").with_system_prompt("first").with_metadata("a", 1).build()
    manager.append("dup", Message("user", "old question"))
    replaced = (manager.create_session("dup").with_system_prompt("second")
                .with_metadata("b", 2).overwrite().build())
    stored = manager.resume("dup")
    assert stored.system_prompt == replaced.system_prompt == "second"
    assert stored.metadata == {"b": 2}
    assert stored.messages == []
    assert manager.summaries()[0].stats.message_count == 0
    assert manager.count() == 1


def test_builder_refuses_metadata_that_is_not_json_before_storing(
        manager: SessionManager) -> None:
    builder = manager.create_session("x")
    for bad in (object(), {1: "int key"}, float("nan"), float("inf"), {"s": {1, 2}}, b"bytes"):
        with pytest.raises(InvalidMetadata):
            builder.with_metadata("bad", bad)
    with pytest.raises(InvalidMetadata):
        builder.with_metadata(3, "value")  # type: ignore[arg-type]
    assert manager.list() == []
    builder.with_metadata("ok", (1, 2)).build()  # tuples become lists
    assert manager.resume("x").metadata == {"ok": [1, 2]}


def test_invalid_ids_are_refused_everywhere(manager: SessionManager) -> None:
    for bad in ("../x", "/etc/passwd", ".hidden", "a..b", "", "a/b", "CON", "x" * 129):
        with pytest.raises(InvalidSessionId):
            manager.create_session(bad)
        with pytest.raises(InvalidSessionId):
            manager.get(bad)
        with pytest.raises(InvalidSessionId):
            manager.delete(bad)
    assert manager.list() == []


# --- list, get, resume, delete, clear, count ---------------------------------------------


def test_list_is_most_recently_updated_first(manager: SessionManager) -> None:
    for name in ("a", "b", "c"):
        manager.create_session(name).build()
    assert manager.list() == ["c", "b", "a"]
    manager.update("a", system_prompt="changed")
    assert manager.list() == ["a", "c", "b"]
    manager.append("b", Message("user", "hi"))
    assert manager.list() == ["b", "a", "c"]
    assert [s.id for s in manager.summaries()] == manager.list()
    assert all(isinstance(i, SessionId) for i in manager.list())


def test_get_missing_is_none_and_resume_missing_raises(manager: SessionManager) -> None:
    assert manager.get("non-existent-session") is None
    with pytest.raises(SessionNotFound) as caught:
        manager.resume("non-existent-session")
    assert caught.value.session_id == "non-existent-session"
    assert isinstance(caught.value, ClaudeMagicError)
    message = str(caught.value)
    assert "\n" not in message and "'non-existent-session'" in message
    with pytest.raises(SessionNotFound) as caught:
        manager.resume(SessionId("non-existent-session"))
    assert "SessionId(" not in str(caught.value)
    with pytest.raises(IndexError) as index_error:
        manager.create_session("x").build()
        manager.mark(SessionId("x"), 3, "error")
    assert "SessionId(" not in str(index_error.value)


def test_resume_returns_the_whole_session(manager: SessionManager) -> None:
    session = manager.create_session().with_system_prompt("p").with_metadata("m", [1]).build()
    manager.append(session.id, Message("user", "q"))
    resumed = manager.resume(session.id)
    assert resumed.id == session.id
    assert resumed.created_at == session.created_at
    assert [m.content for m in resumed.messages] == ["q"]


def test_delete(manager: SessionManager) -> None:
    keep = manager.create_session().build()
    gone = manager.create_session().build()
    manager.append(gone.id, Message("user", "bye"))
    assert manager.delete(gone.id) is True
    assert manager.delete(gone.id) is False
    assert manager.get(gone.id) is None
    assert manager.list() == [keep.id]
    assert not manager.exists(gone.id) and manager.exists(keep.id)
    # the id can be used again, and starts empty
    again = manager.create_session(gone.id).build()
    assert manager.resume(again.id).messages == []


def test_clear_and_count(manager: SessionManager) -> None:
    assert manager.count() == 0
    assert manager.clear() == 0
    for _ in range(5):
        manager.create_session().build()
    assert manager.count() == 5
    assert manager.clear() == 5
    assert manager.count() == 0
    assert manager.list() == []
    assert manager.summaries() == []


# --- update -------------------------------------------------------------------------------


def test_update_prompt_metadata_and_settings(manager: SessionManager) -> None:
    session = (manager.create_session("u").with_system_prompt("old").with_metadata("a", 1)
               .with_metadata("b", 2).with_model("claude-x").build())
    manager.update("u", system_prompt="new", metadata={"c": {"n": [1]}, "a": 10}, unset=["b"],
                   settings={"max_tokens": 100}, unset_settings=["model"])
    stored = manager.resume("u")
    assert stored.system_prompt == "new"
    assert stored.metadata == {"a": 10, "c": {"n": [1]}}
    assert stored.settings == {"max_tokens": 100}
    assert stored.created_at == session.created_at
    assert stored.updated_at > session.updated_at
    manager.update("u", metadata={"z": True})  # the prompt is left alone when not given
    assert manager.resume("u").system_prompt == "new"
    manager.update("u", system_prompt=None)  # None clears it
    assert manager.resume("u").system_prompt is None
    manager.update("u", unset=["never-there"])  # unsetting a missing key is fine


def test_update_missing_or_invalid(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFound):
        manager.update("missing", system_prompt="x")
    manager.create_session("u").with_metadata("a", 1).build()
    before = manager.resume("u")
    with pytest.raises(InvalidMetadata):
        manager.update("u", metadata={"a": 2, "bad": object()})
    with pytest.raises(TypeError):
        manager.update("u", system_prompt=42)  # type: ignore[arg-type]
    assert manager.resume("u") == before


# --- append and mark ----------------------------------------------------------------------


def test_append_assigns_seq_and_round_trips_every_field(manager: SessionManager) -> None:
    manager.create_session("chat").build()
    first = manager.append("chat", Message("user", "Explain ownership"))
    second = manager.append("chat", assistant(UNICODE))
    third = manager.append("chat", Message("user", "again", status="error", error="overloaded"))
    assert (first.seq, second.seq, third.seq) == (0, 1, 2)
    messages = manager.resume("chat").messages
    assert [m.seq for m in messages] == [0, 1, 2]
    assert messages[1] == second
    got = messages[1]
    assert got.content == UNICODE
    assert got.usage == Usage(12, 5, 1, 2)
    assert got.ids == {"message_id": "msg_01", "request_id": "req_9",
                       "hash": second.ids["hash"]}  # the chain hash (chain.py)
    assert (got.model, got.backend, got.cost_usd) == ("claude-sonnet-4-5", "anthropic", 0.000111)
    assert (got.stop_reason, got.duration_ms) == ("end_turn", 138.5)
    assert got.created_at.tzinfo is not None
    assert (messages[2].status, messages[2].error) == ("error", "overloaded")
    assert [m.content for m in manager.resume("chat").context()] == [
        "Explain ownership", UNICODE]


def test_append_to_missing_session(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFound):
        manager.append("nobody", Message("user", "hi"))
    assert manager.list() == []


BAD_FIELDS: list[tuple[str, object, type[Exception], str]] = [
    ("cost_usd", "0.1", TypeError, "message cost_usd must be a number, got str"),
    ("cost_usd", float("nan"), ValueError, "message cost_usd must be a finite number"),
    ("cost_usd", True, TypeError, "message cost_usd must be a number, got bool"),
    ("cost_usd", 2**70, ValueError, "message cost_usd is too large"),
    ("duration_ms", "x", TypeError, "message duration_ms must be a number, got str"),
    ("duration_ms", float("inf"), ValueError, "message duration_ms must be a finite number"),
    ("ids", {"message_id": 7}, TypeError, r"message ids\['message_id'\] must be str, got int"),
    ("ids", {3: "x"}, TypeError, "message ids keys must be str, got int"),
    ("ids", ["x"], TypeError, "message ids must be a dict of str to str, got list"),
    ("model", 4, TypeError, "message model must be str, got int"),
    ("backend", b"api", TypeError, "message backend must be str, got bytes"),
    ("stop_reason", ["end"], TypeError, "message stop_reason must be str, got list"),
    ("error", 1, TypeError, "message error must be str, got int"),
    ("created_at", "2026-01-01", TypeError, "message created_at must be a datetime, got str"),
    ("seq", -1, ValueError, "message seq must be an int from 0"),
    ("seq", "3", TypeError, "message seq must be int, got str"),
    ("usage", {"input_tokens": 1}, TypeError, "message usage must be a Usage, got dict"),
]


@pytest.mark.parametrize(("name", "value", "error", "message"), BAD_FIELDS,
                         ids=[f"{b[0]}={b[1]!r}" for b in BAD_FIELDS])
def test_a_bad_message_is_refused_and_the_session_still_works(
        manager: SessionManager, name: str, value: object, error: type[Exception],
        message: str) -> None:
    manager.create_session("chat").build()
    manager.append("chat", Message("user", "q1"))
    with pytest.raises(error, match=message) as caught:  # refused when it is made...
        assistant("a1", **{name: value})
    assert "\n" not in str(caught.value)
    bad = assistant("a1")
    setattr(bad, name, value)  # ...and when it is changed afterwards and then appended
    before = manager.resume("chat")
    with pytest.raises(error, match=message):
        manager.append("chat", bad)
    after = manager.resume("chat")
    assert after.messages == before.messages and after.updated_at == before.updated_at
    assert manager.summaries()[0].stats == before.stats
    assert manager.damaged() == []
    assert manager.append("chat", assistant("a1")).seq == 1
    assert manager.append("chat", Message("user", "q2")).seq == 2
    assert [m.content for m in manager.resume("chat").messages] == ["q1", "a1", "q2"]
    assert manager.summaries()[0].stats == manager.resume("chat").stats


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"input_tokens": -1}, ValueError, "usage input_tokens must be an int from 0"),
    ({"output_tokens": "5"}, TypeError, "usage output_tokens must be int, got str"),
    ({"cache_read_input_tokens": 1.5}, TypeError, "usage cache_read_input_tokens must be int"),
    ({"cache_creation_input_tokens": True}, TypeError, "must be int, got bool"),
])
def test_bad_usage_is_refused(manager: SessionManager, fields: dict[str, object],
                              error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Usage(**fields)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        Usage.from_dict(fields)
    manager.create_session("chat").build()
    bad = assistant("a1")
    for key, value in fields.items():
        setattr(bad.usage, key, value)
    with pytest.raises(error, match=message):
        manager.append("chat", bad)
    assert manager.resume("chat").messages == []
    assert manager.summaries()[0].stats.message_count == 0


def test_append_takes_only_messages(manager: SessionManager) -> None:
    manager.create_session("chat").build()
    with pytest.raises(TypeError, match="append takes a Message, got dict"):
        manager.append("chat", {"role": "user", "content": "hi"})  # type: ignore[arg-type]
    assert manager.resume("chat").messages == []


def test_stats_in_summaries(manager: SessionManager) -> None:
    manager.create_session("s").build()
    manager.append("s", Message("user", "q1"))
    manager.append("s", assistant("a1"))
    manager.append("s", Message("user", "q2"))
    manager.append("s", assistant("a2", model="claude-opus", cost_usd=0.5))
    stats = manager.summaries()[0].stats
    assert stats.message_count == 4
    assert stats.turns == 2
    assert stats.input_tokens == 24 and stats.output_tokens == 10
    assert stats.cost_usd == pytest.approx(0.500111)
    assert stats.last_model == "claude-opus"
    assert manager.resume("s").stats == stats


def test_summary_of_one_session_matches_the_listing(manager: SessionManager) -> None:
    manager.create_session("one").with_metadata("k", [1, 2]).with_system_prompt("P").build()
    manager.append("one", Message("user", "q"))
    manager.append("one", assistant("a", model="m-2", cost_usd=0.5))
    manager.create_session("two").build()
    assert manager.summary("one") == manager.summaries()[1]
    assert manager.summary("one").stats.message_count == 2
    assert manager.summary("missing") is None
    copy = manager.summary("one")
    copy.metadata["k"].append(3)
    assert manager.summary("one").metadata == {"k": [1, 2]}


def test_summary_columns_match_summaries(manager: SessionManager) -> None:
    import pandas as pd

    manager.create_session("a").with_metadata("project", "x").with_system_prompt("P").build()
    manager.create_session("b").with_metadata("nested", {"k": [1, 2]}).build()
    manager.append("a", assistant("hello", model="m-1", cost_usd=0.25))
    table = manager.summary_columns()
    rows = manager.summaries()
    assert table.ids == [s.id for s in rows] == ["a", "b"]
    assert table.metadata == [s.metadata for s in rows]
    assert table.system_prompts == ["P", None]
    assert list(pd.to_datetime(table.updated_at, utc=True, format="ISO8601")) == \
        [s.updated_at for s in rows]
    assert (table.message_count, table.turns, table.last_model) == ([1, 0], [0, 0], ["m-1", None])
    assert table.cost_usd == [s.stats.cost_usd for s in rows]
    manager.clear()
    assert manager.summary_columns().ids == []


def test_summary_columns_of_an_empty_store_are_separate_lists(manager: SessionManager) -> None:
    table = manager.summary_columns()
    table.ids.append("x")
    table.turns.append(1)
    assert (table.system_prompts, table.created_at, table.cost_usd, table.last_model) == \
        ([], [], [], [])
    assert manager.summary_columns().ids == []


def test_mark(manager: SessionManager) -> None:
    manager.create_session("m").build()
    manager.append("m", Message("user", "q"))
    manager.append("m", assistant("partial"))
    before = manager.resume("m").updated_at
    manager.mark("m", 1, "incomplete", "stream cut")
    session = manager.resume("m")
    assert (session.messages[1].status, session.messages[1].error) == ("incomplete", "stream cut")
    assert session.messages[1].content == "partial"
    assert session.messages[0].status == "ok"
    assert session.updated_at > before
    manager.mark("m", 1, "ok")
    assert manager.resume("m").messages[1].error is None
    with pytest.raises(IndexError):
        manager.mark("m", 7, "error", "x")
    with pytest.raises(ValueError):
        manager.mark("m", 0, "bogus")  # type: ignore[arg-type]
    with pytest.raises(SessionNotFound):
        manager.mark("nobody", 0, "error", "x")
    assert manager.append("m", Message("user", "next")).seq == 2


# --- fork, find, prune, import ------------------------------------------------------------


def test_fork(manager: SessionManager) -> None:
    (manager.create_session("src").with_system_prompt("p").with_metadata("project", "x")
     .with_model("claude-x").build())
    manager.append("src", Message("user", "q"))
    manager.append("src", assistant("a"))
    fork = manager.fork("src", metadata={"branch": "try-2"})
    assert fork.id != "src" and uuid.UUID(fork.id).version == 4
    stored = manager.resume(fork.id)
    assert stored.system_prompt == "p"
    assert stored.settings == {"model": "claude-x"}
    assert stored.metadata == {"project": "x", "forked_from": "src", "branch": "try-2"}
    assert [(m.seq, m.content) for m in stored.messages] == [(0, "q"), (1, "a")]
    manager.append(fork.id, Message("user", "only in the fork"))
    assert len(manager.resume("src").messages) == 2
    named = manager.fork("src", "src-copy")
    assert named.id == "src-copy" and manager.exists("src-copy")
    with pytest.raises(SessionExists):
        manager.fork("src", "src-copy")
    with pytest.raises(SessionNotFound):
        manager.fork("nobody")
    with pytest.raises(InvalidMetadata):
        manager.fork("src", "bad-fork", metadata={"x": object()})
    assert not manager.exists("bad-fork")


def test_find(manager: SessionManager) -> None:
    manager.create_session("a").with_metadata("project", "web").with_metadata("n", 1).build()
    manager.create_session("b").with_metadata("project", "web").with_metadata("n", 2).build()
    manager.create_session("c").with_metadata("project", "cli").with_metadata(
        "tags", {"x": [1]}).build()
    assert manager.find(project="web") == ["b", "a"]
    assert manager.find({"project": "web", "n": 1}) == ["a"]
    assert manager.find({"tags": {"x": [1]}}) == ["c"]
    assert manager.find(project="none") == []
    assert manager.find() == ["c", "b", "a"]


def backdated(session_id: str, days: float, *, messages: int = 0) -> Session:
    when = utc_now() - timedelta(days=days)
    return Session(id=SessionId(session_id), metadata={"age": days}, created_at=when,
                   updated_at=when,
                   messages=[Message("user", f"m{i}", created_at=when) for i in range(messages)])


def test_prune_by_age(manager: SessionManager) -> None:
    for name, days in (("old", 40), ("older", 90), ("recent", 2)):
        manager.import_session(backdated(name, days))
    manager.create_session("new").build()
    assert manager.prune("30d", dry_run=True) == ["old", "older"]
    assert manager.count() == 4
    assert manager.prune(timedelta(days=30)) == ["old", "older"]
    assert manager.list() == ["new", "recent"]
    assert manager.prune(older_than=1) == ["recent"]  # a number means days
    assert manager.list() == ["new"]


def test_prune_keep_last(manager: SessionManager) -> None:
    for index in range(6):
        manager.import_session(backdated(f"s{index}", 100 - index))
    assert manager.prune(keep_last=2) == ["s3", "s2", "s1", "s0"]
    assert manager.list() == ["s5", "s4"]
    for index in range(6, 9):
        manager.import_session(backdated(f"s{index}", 50))
    # keep_last protects the newest even when they are old enough to prune
    assert set(manager.prune("10d", keep_last=3)) == {"s4", "s5"}
    assert manager.count() == 3


def test_prune_needs_a_rule(manager: SessionManager) -> None:
    with pytest.raises(ValueError):
        manager.prune()
    with pytest.raises(ValueError):
        manager.prune(keep_last=-1)
    with pytest.raises(ValueError):
        manager.prune("soon")
    with pytest.raises(ValueError):
        manager.prune(timedelta(days=-1))


def test_parse_age() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 12h ") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("2w") == timedelta(weeks=2)
    assert parse_age("1.5s") == timedelta(seconds=1.5)
    assert parse_age(2) == timedelta(days=2)


def test_import_session_round_trip(manager: SessionManager) -> None:
    created = datetime(2023, 5, 1, 12, 30, 0, 123456, tzinfo=timezone.utc)
    updated = datetime(2023, 5, 2, 8, 0, tzinfo=timezone.utc)
    original = Session(
        id=SessionId("imported"), system_prompt=UNICODE, metadata=NESTED,
        settings={"model": "claude-x", "max_tokens": 512}, created_at=created, updated_at=updated,
        messages=[Message("user", "q", created_at=created, seq=41),
                  assistant("a", created_at=updated, seq=None)])
    stored = manager.import_session(original)
    loaded = manager.resume("imported")
    assert loaded == stored
    assert (loaded.created_at, loaded.updated_at) == (created, updated)
    assert [m.seq for m in loaded.messages] == [0, 1]  # the store numbers messages
    assert loaded.system_prompt == UNICODE and same_json(loaded.metadata, NESTED)
    assert loaded.settings == {"model": "claude-x", "max_tokens": 512}
    assert Session.from_dict(loaded.to_dict()) == loaded
    with pytest.raises(SessionExists):
        manager.import_session(original)
    manager.import_session(Session(id=SessionId("imported")), overwrite=True)
    assert manager.resume("imported").messages == []
    with pytest.raises(InvalidSessionId):
        manager.import_session(Session(id="../escape"))  # type: ignore[arg-type]
    with pytest.raises(InvalidMetadata):
        manager.import_session(Session(id=SessionId("bad-meta"), metadata={"x": {1, 2}}))
    assert not manager.exists("bad-meta")


# --- timestamps, round trips, copies ------------------------------------------------------


def test_timestamps_are_utc_and_updated_at_moves(manager: SessionManager) -> None:
    before = utc_now()
    session = manager.create_session("t").build()
    assert session.created_at.tzinfo is not None
    assert session.created_at.utcoffset() == timedelta(0)
    assert before <= session.created_at == session.updated_at <= utc_now()
    stamps = [manager.resume("t").updated_at]
    manager.update("t", metadata={"k": 1})
    stamps.append(manager.resume("t").updated_at)
    manager.append("t", Message("user", "q"))
    stamps.append(manager.resume("t").updated_at)
    manager.mark("t", 0, "error", "x")
    stamps.append(manager.resume("t").updated_at)
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    loaded = manager.resume("t")
    assert loaded.created_at == session.created_at
    for value in (loaded.created_at, loaded.updated_at, loaded.messages[0].created_at,
                  manager.summaries()[0].updated_at):
        assert value.utcoffset() == timedelta(0)


def test_times_become_utc_and_naive_means_utc(manager: SessionManager) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2024, 6, 1, 14, 0, tzinfo=paris)
    naive = datetime(2024, 6, 1, 12, 0)
    stored = manager.import_session(Session(
        id=SessionId("tz"), created_at=local, updated_at=naive,
        messages=[Message("user", "q", created_at=naive)]))
    appended = manager.append("tz", Message("assistant", "a", created_at=local))
    loaded = manager.resume("tz")
    noon = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    for value in (stored.created_at, stored.messages[0].created_at, appended.created_at,
                  loaded.created_at, loaded.messages[0].created_at,
                  loaded.messages[1].created_at):
        assert value == noon and value.tzinfo is timezone.utc


def test_unicode_and_nested_metadata_round_trip(manager: SessionManager) -> None:
    with pytest.raises(InvalidSessionId):
        manager.create_session("\u00fc-nicode")  # ids are ASCII; everything else is free
    builder = manager.create_session("unicode").with_system_prompt(UNICODE)
    for key, value in NESTED.items():
        builder = builder.with_metadata(key, value)
    builder.with_metadata(UNICODE, UNICODE).build()
    expected = {**NESTED, UNICODE: UNICODE}
    loaded = manager.resume("unicode")
    assert same_json(loaded.metadata, expected)
    assert loaded.system_prompt == UNICODE
    summary = manager.summaries()[0]
    assert same_json(summary.metadata, expected)
    assert summary.system_prompt == UNICODE


def test_copies_are_returned(manager: SessionManager) -> None:
    source = (manager.create_session("c").with_metadata("list", [1]).with_metadata("d", {"k": 1})
              .build())
    message = Message("user", "q")
    appended = manager.append("c", message)
    # change everything we handed in or got back
    source.metadata["list"].append(2)
    source.metadata["new"] = True
    message.content = "changed"
    message.ids["x"] = "y"
    appended.usage.input_tokens = 999
    loaded = manager.resume("c")
    loaded.metadata["d"]["k"] = 2
    loaded.messages[0].ids["z"] = "w"
    loaded.messages.append(Message("user", "fake"))
    summary = manager.summaries()[0]
    summary.metadata["list"].append(3)
    summary.stats.message_count = 100
    fresh = manager.resume("c")
    assert fresh.metadata == {"list": [1], "d": {"k": 1}}
    assert [(m.content, m.ids, m.usage.input_tokens) for m in fresh.messages] == [
        ("q", {"hash": appended.ids["hash"]}, 0)]
    assert manager.summaries()[0].stats.message_count == 1
    # a session given to import_session is not shared either
    original = Session(id=SessionId("given"), metadata={"a": [1]},
                       messages=[Message("user", "x")])
    manager.import_session(original)
    original.metadata["a"].append(2)
    original.messages[0].content = "y"
    given = manager.resume("given")
    assert given.metadata == {"a": [1]} and given.messages[0].content == "x"


def test_listeners(manager: SessionManager) -> None:
    events: list[tuple[str, str | None]] = []
    manager.add_listener(lambda event, sid: events.append((event, sid)))
    manager.create_session("l").build()
    manager.update("l", metadata={"a": 1})
    manager.append("l", Message("user", "q"))
    manager.mark("l", 0, "error", "x")
    fork = manager.fork("l", "l2")
    manager.import_session(Session(id=SessionId("l3")))
    manager.delete("l")
    manager.delete("l")  # nothing deleted: no event
    manager.clear()
    assert events == [("created", "l"), ("updated", "l"), ("appended", "l"), ("marked", "l"),
                      ("created", fork.id), ("created", "l3"), ("deleted", "l"),
                      ("cleared", None)]

    def broken(event: str, session_id: str | None) -> None:
        raise RuntimeError("panel gone")

    manager.add_listener(broken)
    with pytest.warns(UserWarning, match="panel gone"):
        manager.create_session("still-stored").build()
    assert manager.exists("still-stored")
    manager.remove_listener(broken)
    manager.remove_listener(broken)  # removing twice is harmless
    manager.create_session("quiet").build()
    assert events[-1] == ("created", "quiet")


def test_persistence_across_managers(persistent_kind: str, open_manager) -> None:
    first = open_manager(persistent_kind)
    session = (first.create_session("kept").with_system_prompt(UNICODE)
               .with_metadata("nested", NESTED).build())
    first.create_session("other").build()
    first.append("kept", assistant("answer"))
    first.close()
    second = open_manager(persistent_kind)
    assert second.list() == ["kept", "other"]  # the append made "kept" the newest
    loaded = second.resume("kept")
    assert loaded.created_at == session.created_at
    assert same_json(loaded.metadata["nested"], NESTED)
    assert loaded.messages[0].content == "answer" and loaded.messages[0].seq == 0
    assert second.append("kept", Message("user", "more")).seq == 1
    third = open_manager(persistent_kind)  # two managers open on one store at once
    assert [m.content for m in third.resume("kept").messages] == ["answer", "more"]
    third.delete("other")
    assert second.list() == ["kept"]


def test_storage_specs(tmp_path) -> None:
    assert StorageBackend.parse("memory") == StorageBackend.memory()
    assert StorageBackend.parse("sqlite:///x.db") == StorageBackend.sqlite("x.db")
    assert StorageBackend.parse("sqlite:////abs/x.db") == StorageBackend.sqlite("/abs/x.db")
    assert StorageBackend.parse(str(tmp_path)) == StorageBackend.file(str(tmp_path))
    for spec, kind in ((f"sqlite:///{tmp_path}/s.db", "sqlite"), (str(tmp_path / "d"), "file"),
                       ("memory", "memory")):
        with SessionManager.with_storage(spec) as manager:
            manager.create_session("x").build()
            assert manager.list() == ["x"]
            assert StorageBackend.parse(spec).kind == kind
    assert (tmp_path / "s.db").is_file() and (tmp_path / "d" / "x.json").is_file()
    assert SessionManager().location == "memory"


def test_standalone_builder_is_not_stored(manager: SessionManager) -> None:
    standalone = SessionBuilder().with_system_prompt("reviewer").with_metadata("t", "cr").build()
    custom = SessionBuilder.with_id("review-2024-001").with_system_prompt("auth").build()
    assert custom.id == "review-2024-001"
    assert standalone.metadata == {"t": "cr"}
    assert manager.list() == []


def test_threads_sharing_one_manager(manager: SessionManager) -> None:
    """The magics and the panel call one manager from several threads."""
    import threading

    manager.create_session("shared").build()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for index in range(25):
                manager.append("shared", Message("user", f"{name}:{index}"))
                if index % 5 == 0:
                    manager.create_session(f"{name}-{index}").build()
                    manager.list()
                    manager.summaries()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    messages = manager.resume("shared").messages
    assert [m.seq for m in messages] == list(range(200))
    assert len({m.content for m in messages}) == 200
    assert manager.count() == 1 + 8 * 5


def test_a_compaction_survives_a_new_manager(persistent_kind: str, open_manager) -> None:
    """The summary turn (``kind`` summary, ``compacts_through``) is kept by every store, so a
    new manager sends the summary instead of the compacted turns."""
    from claude_magic.client import Client, Config
    from claude_magic.compaction import compacted_seqs, compacts_through, kind_of, visible_turns

    first = open_manager(persistent_kind)
    client = Client(Config(backend="echo"), manager=first)
    sid = first.create_session("compacted").build().id
    for text in ("one", "two", "three"):
        client.query(text).session(sid).send()
    client.compact(sid, keep_last=1)
    messages = open_manager(persistent_kind).resume(sid).messages
    assert [kind_of(m) for m in messages] == ["message"] * 6 + ["summary"] * 2
    assert compacts_through(messages[-1]) == 3 and compacted_seqs(messages) == {0, 1, 2, 3}
    shown = [q.content for q, a in visible_turns(messages)]
    assert shown[1:] == ["three"] and shown[0].startswith("Summarise our conversation")

"""Rows planted in a SQLite store by another tool that parse but hold impossible values.

SQL's ``readable`` column accepts them (valid id, JSON objects, ISO-looking times); Python
cannot hold them (times that overflow on conversion, JSON nested thousands deep, integers past
64 bits or past the int-to-str limit, wrong types). Each is a damaged entry: reported once,
skipped everywhere, never fatal, never changed by ``clear()`` or a write.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_magic.errors import DamagedSession, StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend

GOOD_TIME = "2026-01-01T00:00:00.000000+00:00"
DEEP = "{" + '"a":[' * 5000 + "1" + "]" * 5000 + "}"
#: column overrides for one planted row each: (name, {column: value})
PLANTED: list[tuple[str, dict[str, Any]]] = [
    ("early-offset", {"created_at": "0001-01-01T00:00:00+14:00"}),
    ("late-offset", {"updated_at": "9999-12-31T23:59:59-14:00"}),
    ("year-one", {"created_at": "0001-01-01T00:00:00.000000+00:00"}),
    ("deep-json", {"metadata": DEEP}),
    ("deep-settings", {"settings": "{" + '"s":{' * 150 + "}" * 150 + "}"}),
    ("huge-int", {"metadata": '{"n": ' + "9" * 5000 + "}"}),
    ("big-int", {"metadata": '{"n": 18446744073709551616}'}),
    ("huge-float", {"settings": '{"x": 1e400}'}),
    ("surrogate", {"metadata": '{"t": "\\ud800"}'}),
    ("tokens-real", {"input_tokens": 1e30}),
    ("tokens-text", {"output_tokens": "many"}),
    ("tokens-negative", {"message_count": -5}),
    ("cost-inf", {"cost_usd": float("inf")}),
    ("cost-text", {"cost_usd": "free"}),
    ("prompt-blob", {"system_prompt": b"\x00\x01"}),
]
COLUMNS = ("id", "system_prompt", "metadata", "settings", "created_at", "updated_at",
           "message_count", "turns", "input_tokens", "output_tokens", "cost_usd", "last_model")


def plant(path: Path, session_id: str, **values: Any) -> None:
    """Insert one session row the way another tool would: plain SQL, no claude_magic."""
    row = {"id": session_id, "system_prompt": None, "metadata": "{}", "settings": "{}",
           "created_at": GOOD_TIME, "updated_at": GOOD_TIME, "message_count": 0, "turns": 0,
           "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "last_model": None, **values}
    with sqlite3.connect(path) as db:
        db.execute(f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(COLUMNS))})", [row[c] for c in COLUMNS])
    db.close()


def raw_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        db.text_factory = bytes
        rows = db.execute("SELECT * FROM sessions ORDER BY id").fetchall()
    db.close()
    return rows


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        manager.create_session("good").with_metadata("k", 1).build()
        manager.append("good", Message("user", "hi"))
    return path


def test_planted_impossible_rows_are_damaged_entries(db_path: Path) -> None:
    for name, values in PLANTED:
        plant(db_path, name, **values)
    before = raw_rows(db_path)
    planted = sorted(name for name, _ in PLANTED)
    with SessionManager.with_storage(StorageBackend.sqlite(db_path)) as manager:
        with pytest.warns(StorageWarning) as caught:
            assert manager.list() == ["good"]
        reported = sorted({str(w.message).split("#", 1)[1].split(":", 1)[0] for w in caught})
        assert reported == planted  # once each
        assert all("\n" not in str(w.message) and len(str(w.message)) < 400 for w in caught)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # already reported: no second warning
            assert manager.count() == 1
            assert [s.id for s in manager.summaries()] == ["good"]
            assert manager.summary_columns().ids == ["good"]
            frame = manager.to_dataframe()
            assert list(frame["id"]) == ["good"]
            assert str(frame["input_tokens"].dtype) == "int64"
            assert sorted(e.session_id for e in manager.damaged()) == planted
            for name in planted:
                assert manager.get("good") is not None
                for call in (manager.get, manager.summary):
                    with pytest.raises(DamagedSession) as refused:
                        call(name)
                    assert "\n" not in str(refused.value)
                with pytest.raises(DamagedSession):
                    manager.update(name, metadata={"x": 1})
                with pytest.raises(DamagedSession):
                    manager.append(name, Message("user", "overwrite?"))
            assert manager.clear() == 1
            assert manager.list() == []
    assert raw_rows(db_path) == [row for row in before if row[0] != b"good"]


times = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                     "0001-01-01T00:00:00", "9999-12-31T23:59:59.999999+00:00", GOOD_TIME,
                     "2026-02-30T00:00:00", "2026-01-01T00:00:00Z"]),
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(lambda d, h, m: f"{d.isoformat()}T00:00:00{h:+03d}:{m:02d}",
              st.dates(), st.integers(-23, 23), st.integers(0, 59)),
)
json_texts = st.one_of(
    st.just("{}"),
    st.integers(0, 8000).map(lambda n: "{" + '"a":[' * n + "]" * n + "}" if n else "{}"),
    st.integers().map(lambda n: f'{{"n": {n}}}'),
    st.integers(1, 6000).map(lambda n: '{"n": ' + "7" * n + "}"),
    st.sampled_from(['{"f": 1e309}', '{"f": -1E+999}', '{"f": 1e-999}', '{"s": "\\udfff"}',
                     '{"s": "\\ud83d\\ude00"}', '[1]', '"x"', '{"a": NaN}']),
)
numbers = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=5),
                    st.binary(max_size=5), st.none())


@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(created=times, updated=times, metadata=json_texts, settings_text=json_texts,
       count=numbers, tokens=numbers, cost=numbers, prompt=st.none() | st.text() | st.binary())
def test_generated_planted_rows_never_break_the_store(
        tmp_path_factory: pytest.TempPathFactory, created: str, updated: str, metadata: str,
        settings_text: str, count: Any, tokens: Any, cost: Any, prompt: Any) -> None:
    path = tmp_path_factory.mktemp("planted") / "s.db"
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        manager.create_session("good").build()
        try:
            plant(path, "x", created_at=created, updated_at=updated, metadata=metadata,
                  settings=settings_text, message_count=count, input_tokens=tokens,
                  cost_usd=cost, system_prompt=prompt)
        except sqlite3.IntegrityError:  # NOT NULL refused it: nothing planted
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StorageWarning)
            ids = manager.list()
            summaries = manager.summaries()
            columns = manager.summary_columns()
            damaged = [e.session_id for e in manager.damaged()]
            frame = manager.to_dataframe()
            try:
                loaded = manager.get("x")
            except DamagedSession:
                loaded = None
        readable = loaded is not None
        # every view agrees on whether the row is readable
        assert ("x" in ids) == readable == ("x" not in damaged)
        assert [s.id for s in summaries] == ids == columns.ids == list(frame["id"])
        assert manager.count() == len(ids)
        if readable:
            assert isinstance(loaded.metadata, dict)
            manager.update("x", metadata={"seen": True})  # a readable row stays writable
        else:
            before = raw_rows(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", StorageWarning)
                manager.clear()
            assert raw_rows(path) == [row for row in before if row[0] == b"x"]


def test_planted_impossible_message_rows_are_skipped_and_kept(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        for seq, (created, extra) in enumerate([
                ("0001-01-01T00:00:00+14:00", "{}"),
                (GOOD_TIME, '{"usage": {"input_tokens": 99999999999999999999}}'),
                (GOOD_TIME, '{"duration_ms": 1e400}'),
                (GOOD_TIME, "{" + '"a":[' * 3000 + "]" * 3000 + "}")], start=1):
            db.execute("INSERT INTO messages (session_id, seq, role, content, created_at, extra) "
                       "VALUES ('good', ?, 'assistant', 'planted', ?, ?)", (seq, created, extra))
    db.close()
    with SessionManager.with_storage(StorageBackend.sqlite(db_path)) as manager:
        with pytest.warns(StorageWarning) as caught:
            session = manager.resume("good")
        assert [m.content for m in session.messages] == ["hi"]
        assert len(caught) == 4 and all("\n" not in str(w.message) for w in caught)
        frame = manager.messages_dataframe("good")
        assert list(frame["content"]) == ["hi"]
        stored = manager.append("good", Message("user", "after"))
        assert stored.seq == 5  # after the planted rows, which stay
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM messages WHERE content = 'planted'"
                          ).fetchone() == (4,)
    db.close()

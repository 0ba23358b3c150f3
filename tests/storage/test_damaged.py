"""Damaged files and rows are reported and skipped, never overwritten; unrelated files ignored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from claude_magic.errors import DamagedSession, SessionExists, StorageError, StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend


def fill(manager: SessionManager) -> None:
    """Two good sessions with messages."""
    for name in ("good1", "good2"):
        manager.create_session(name).with_metadata("name", name).build()
        manager.append(name, Message("user", f"q {name}"))
        manager.append(name, Message("assistant", f"a {name}"))


def header(root: Path, session_id: str) -> dict:
    return json.loads((root / f"{session_id}.json").read_text())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def directory(root: Path):
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        fill(manager)
        yield manager


DAMAGED = ("truncated", "garbage", "future", "noschema", "badtime", "wrongid")


def damage_headers(root: Path) -> dict[str, bytes]:
    """Write one damaged header of each kind next to the good ones; returns their bytes."""
    good = (root / "good1.json").read_bytes()
    future = header(root, "good1") | {"id": "future", "version": 99}
    files = {
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00\xff\xfe garbage \x89PNG",
        "future": json.dumps(future).encode(),
        "noschema": json.dumps({"format": "claude-magic/session", "version": 1,
                                "id": "noschema"}).encode(),
        "badtime": json.dumps(header(root, "good1") | {"id": "badtime",
                                                       "created_at": "yesterday"}).encode(),
        "wrongid": json.dumps(header(root, "good1") | {"id": "someone-else"}).encode(),
    }
    for name, data in files.items():
        (root / f"{name}.json").write_bytes(data)
    return files


def test_damaged_headers_are_reported_skipped_and_kept(directory: SessionManager,
                                                       root: Path) -> None:
    files = damage_headers(root)
    with pytest.warns(StorageWarning) as caught:
        ids = directory.list()
    assert sorted(ids) == ["good1", "good2"]
    assert len(caught) == len(DAMAGED)
    assert all("\n" not in str(w.message) for w in caught)
    assert "version 99" in " ".join(str(w.message) for w in caught)
    # reported once per change, not on every call
    assert directory.count() == 2
    assert [s.id for s in directory.summaries()] == directory.list()
    damaged = directory.damaged()
    assert sorted(entry.session_id for entry in damaged) == sorted(DAMAGED)
    assert all(str(root) in entry.location for entry in damaged)
    for name in ("good1", "good2"):
        assert [m.content for m in directory.resume(name).messages] == [f"q {name}",
                                                                        f"a {name}"]
    for name in DAMAGED:
        with pytest.raises(DamagedSession):
            directory.summary(name)
        with pytest.raises(DamagedSession) as error:
            directory.get(name)
        assert error.value.session_id == name and "\n" not in str(error.value)
        with pytest.raises(SessionExists):
            directory.create_session(name).build()
        assert directory.exists(name)
    assert directory.clear() == 2  # clear removes readable sessions only
    for name, data in files.items():
        assert (root / f"{name}.json").read_bytes() == data  # never overwritten
    # deleting a damaged session is how its id is freed
    assert directory.delete("garbage") is True
    directory.create_session("garbage").build()
    assert directory.list() == ["garbage"]


def test_a_fresh_manager_reports_damage_again(directory: SessionManager, root: Path) -> None:
    (root / "broken.json").write_text("{")
    with pytest.warns(StorageWarning, match="broken"):
        directory.list()
    with SessionManager.with_storage(StorageBackend.file(root)) as other, \
            pytest.warns(StorageWarning, match="broken"):
        assert sorted(other.list()) == ["good1", "good2"]


def test_garbage_line_in_messages(directory: SessionManager, root: Path) -> None:
    path = root / "good1.messages.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"{not json at all\n" + lines[1])
    with pytest.warns(StorageWarning, match="good1.messages.jsonl:2"):
        session = directory.resume("good1")
    assert [(m.seq, m.content) for m in session.messages] == [(0, "q good1"), (1, "a good1")]
    damaged = directory.damaged()  # already reported by this store: no second warning
    assert [(e.session_id, e.location.endswith("good1.messages.jsonl:2")) for e in damaged] == [
        ("good1", True)]
    assert sorted(directory.list()) == ["good1", "good2"]  # the session itself is readable
    assert directory.append("good1", Message("user", "after")).seq == 2
    assert [m.seq for m in directory.resume("good1").messages] == [0, 1, 2]
    with SessionManager.with_storage(StorageBackend.file(root)) as other, \
            pytest.warns(StorageWarning, match="good1.messages.jsonl:2"):
        assert [e.session_id for e in other.damaged()] == ["good1"]
    assert b"{not json at all\n" in path.read_bytes()  # kept for a human to look at


def test_unrelated_files_are_ignored(directory: SessionManager, root: Path) -> None:
    (root / "README.txt").write_text("notes")
    (root / "notes.md").write_text("# notes")
    (root / ".hidden.json").write_text("{")
    (root / "package.json").write_text(json.dumps({"name": "x", "version": "1.0"}))
    (root / "list.json").write_text("[1, 2, 3]")
    (root / "other-tool.json").write_text(json.dumps({"format": "other/tool", "id": "x"}))
    (root / "bad id!.json").write_text("{")
    # (a directory named like a session, sub.json, is damage: see test_links.py)
    (root / "orphan.messages.jsonl").write_text('{"seq": 0}\n')
    (root / "nested").mkdir()
    (root / "nested" / "inner.json").write_text("{")
    assert sorted(directory.list()) == ["good1", "good2"]  # no StorageWarning either
    assert directory.damaged() == []
    assert directory.count() == 2
    assert directory.clear() == 2
    assert (root / "package.json").exists() and (root / "orphan.messages.jsonl").exists()
    assert (root / "README.txt").read_text() == "notes"


def test_seed_style_header_without_format_is_read(root: Path) -> None:
    """Files written by the Rust crate (no format/version, chrono times) load."""
    root.mkdir(parents=True)
    (root / "from-rust.json").write_text(json.dumps({
        "id": "from-rust", "system_prompt": "You are a helpful Rust programming assistant",
        "metadata": {"project": "my-rust-app"},
        "created_at": "2024-03-01T10:20:30.123456789Z",
        "updated_at": "2024-03-01T10:20:31Z"}))
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        assert manager.list() == ["from-rust"]
        session = manager.resume("from-rust")
        assert session.metadata == {"project": "my-rust-app"}
        assert session.created_at.microsecond == 123456 and session.created_at.tzinfo
        manager.append("from-rust", Message("user", "hello"))
        assert manager.resume("from-rust").messages[0].content == "hello"


def test_directory_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError) as caught:
        SessionManager.with_storage(StorageBackend.file(tmp_path / "file"))
    assert "\n" not in str(caught.value)


# --- SQLite -------------------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
def database(db_path: Path):
    with SessionManager.with_storage(StorageBackend.sqlite(db_path)) as manager:
        fill(manager)
        manager.create_session("bad").with_metadata("x", 1).build()
        manager.create_session("badtime").build()
        manager.create_session("badlist").build()
        manager.create_session("feb30").build()
        yield manager


def raw(db_path: Path, sql: str, params: tuple = ()) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute(sql, params)


def test_damaged_sqlite_rows(database: SessionManager, db_path: Path) -> None:
    raw(db_path, "UPDATE sessions SET metadata = '{bad json' WHERE id = 'bad'")
    raw(db_path, "UPDATE sessions SET updated_at = 'yesterday' WHERE id = 'badtime'")
    raw(db_path, "UPDATE sessions SET created_at = '2024-02-30T10:00:00.000000+00:00' "
        "WHERE id = 'feb30'")  # SQLite's date functions would roll it over to March 1
    raw(db_path, "UPDATE sessions SET metadata = '[1, 2]' WHERE id = 'badlist'")
    with pytest.warns(StorageWarning) as caught:
        ids = database.list()
    assert sorted(ids) == ["good1", "good2"]
    assert {w.message.args[0].split("#")[1].split(":")[0] for w in caught} == {
        "bad", "badtime", "badlist", "feb30"}
    assert database.count() == 2
    assert [s.id for s in database.summaries()] == database.list()
    assert sorted(e.session_id for e in database.damaged()) == [
        "bad", "badlist", "badtime", "feb30"]
    assert database.resume("good1").messages[1].content == "a good1"
    for name in ("bad", "badtime", "badlist", "feb30"):
        with pytest.raises(DamagedSession):
            database.get(name)
        with pytest.raises(DamagedSession):
            database.summary(name)
        with pytest.raises(SessionExists):
            database.create_session(name).build()
    assert database.clear() == 2
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT metadata FROM sessions WHERE id = 'bad'").fetchone() == (
            "{bad json",)
    assert database.delete("bad") is True
    database.create_session("bad").build()


def test_damaged_sqlite_message_row(database: SessionManager, db_path: Path) -> None:
    raw(db_path, "UPDATE messages SET extra = 'nope' WHERE session_id = 'good1' AND seq = 0")
    with pytest.warns(StorageWarning, match="good1"):
        session = database.resume("good1")
    assert [(m.seq, m.content) for m in session.messages] == [(1, "a good1")]
    damaged = database.damaged()  # already reported by this store: no second warning
    assert [(e.session_id, e.location.endswith("#good1:0")) for e in damaged] == [("good1", True)]
    assert sorted(database.list()) == ["bad", "badlist", "badtime", "feb30", "good1", "good2"]
    assert database.append("good1", Message("user", "more")).seq == 2


def test_a_file_that_is_not_a_database(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just text\n" * 200)
    with pytest.raises(StorageError) as caught:
        SessionManager.with_storage(StorageBackend.sqlite(db_path))
    message = str(caught.value)
    assert "\n" not in message and str(db_path) in message
    assert db_path.read_bytes() == b"this is not a database, just text\n" * 200


def test_an_empty_file_becomes_a_database(db_path: Path) -> None:
    db_path.write_bytes(b"")
    with SessionManager.with_storage(StorageBackend.sqlite(db_path)) as manager:
        manager.create_session("x").build()
        assert manager.list() == ["x"]


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "sessions.db"
    with SessionManager.with_storage(f"sqlite:///{path}") as manager:
        manager.create_session("x").build()
    assert path.is_file()

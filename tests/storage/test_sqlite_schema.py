"""The SQLite store's schema and migrations, checked against a blank database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from claude_magic.errors import StorageError, StorageWarning
from claude_magic.message import Message
from claude_magic.storage import sqlite as sqlite_store
from claude_magic.storage.sqlite import SQLiteStorage
from claude_magic.times import parse_time

SESSIONS_COLUMNS = [
    # (name, type, notnull, default, pk, hidden: 0 plain, 3 stored generated)
    ("id", "TEXT", 0, None, 1, 0),
    ("system_prompt", "TEXT", 0, None, 0, 0),
    ("metadata", "TEXT", 1, "'{}'", 0, 0),
    ("settings", "TEXT", 1, "'{}'", 0, 0),
    ("created_at", "TEXT", 1, None, 0, 0),
    ("updated_at", "TEXT", 1, None, 0, 0),
    ("message_count", "INTEGER", 1, "0", 0, 0),
    ("turns", "INTEGER", 1, "0", 0, 0),
    ("input_tokens", "INTEGER", 1, "0", 0, 0),
    ("output_tokens", "INTEGER", 1, "0", 0, 0),
    ("cost_usd", "REAL", 1, "0", 0, 0),
    ("last_model", "TEXT", 0, None, 0, 0),
    ("readable", "INTEGER", 0, None, 0, 3),
    ("plain", "INTEGER", 0, None, 0, 3),
    ("epoch", "INTEGER", 0, None, 0, 0),
]
MESSAGES_COLUMNS = [
    ("id", "INTEGER", 0, None, 1, 0),
    ("session_id", "TEXT", 1, None, 0, 0),
    ("seq", "INTEGER", 1, None, 0, 0),
    ("role", "TEXT", 1, None, 0, 0),
    ("content", "TEXT", 1, None, 0, 0),
    ("created_at", "TEXT", 1, None, 0, 0),
    ("status", "TEXT", 1, "'ok'", 0, 0),
    ("error", "TEXT", 0, None, 0, 0),
    ("model", "TEXT", 0, None, 0, 0),
    ("backend", "TEXT", 0, None, 0, 0),
    ("input_tokens", "INTEGER", 1, "0", 0, 0),
    ("output_tokens", "INTEGER", 1, "0", 0, 0),
    ("cost_usd", "REAL", 0, None, 0, 0),
    ("extra", "TEXT", 1, "'{}'", 0, 0),
    ("cache_creation_input_tokens", "INTEGER", 1, "0", 0, 0),
    ("cache_read_input_tokens", "INTEGER", 1, "0", 0, 0),
    ("stop_reason", "TEXT", 0, None, 0, 0),
    ("duration_ms", "", 0, None, 0, 0),
    ("hash", "TEXT", 0, None, 0, 0),
    ("plain", "INTEGER", 0, None, 0, 3),
]
OBJECTS = [
    ("index", "messages_session_seq", "messages"),
    ("index", "sessions_listing", "sessions"),
    ("index", "sqlite_autoindex__migrations_1", "_migrations"),
    ("index", "sqlite_autoindex_assets_1", "assets"),
    ("index", "sqlite_autoindex_sessions_1", "sessions"),
    ("table", "_migrations", "_migrations"),
    ("table", "assets", "assets"),
    ("table", "fts_indexed", "fts_indexed"),
    ("table", "messages", "messages"),
    ("table", "messages_fts", "messages_fts"),
    ("table", "messages_fts_config", "messages_fts_config"),
    ("table", "messages_fts_data", "messages_fts_data"),
    ("table", "messages_fts_docsize", "messages_fts_docsize"),
    ("table", "messages_fts_idx", "messages_fts_idx"),
    ("table", "sessions", "sessions"),
    ("table", "sessions_fts", "sessions_fts"),
    ("table", "sessions_fts_config", "sessions_fts_config"),
    ("table", "sessions_fts_data", "sessions_fts_data"),
    ("table", "sessions_fts_docsize", "sessions_fts_docsize"),
    ("table", "sessions_fts_idx", "sessions_fts_idx"),
    ("trigger", "messages_fts_delete", "messages"),
    ("trigger", "messages_fts_insert", "messages"),
    ("trigger", "messages_fts_update", "messages"),
    ("trigger", "sessions_fts_delete", "sessions"),
    ("trigger", "sessions_fts_insert", "sessions"),
    ("trigger", "sessions_fts_update", "sessions"),
]


def schema(path: Path) -> dict[str, object]:
    """The schema as plain data: objects, columns, indexes, foreign keys."""
    with sqlite3.connect(path) as db:
        def columns(table: str) -> list[tuple[object, ...]]:
            return [tuple(row[1:]) for row in db.execute(f"PRAGMA table_xinfo({table})")]

        def indexes(table: str) -> list[tuple[object, ...]]:
            found = []
            for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})"):
                cols = [row[2] for row in db.execute(f"PRAGMA index_info({name})")]
                found.append((name, unique, origin, partial, cols))
            return sorted(found)

        return {
            "objects": db.execute("SELECT type, name, tbl_name FROM sqlite_master "
                                  "ORDER BY type, name").fetchall(),
            "sessions": columns("sessions"),
            "messages": columns("messages"),
            "_migrations": columns("_migrations"),
            "assets": columns("assets"),
            "sessions_indexes": indexes("sessions"),
            "messages_indexes": indexes("messages"),
            "messages_fks": [tuple(row[2:]) for row in
                             db.execute("PRAGMA foreign_key_list(messages)")],
            "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
        }


def test_a_blank_database_migrates_to_the_exact_schema(tmp_path: Path) -> None:
    path = tmp_path / "blank.db"
    SQLiteStorage(path).close()
    assert schema(path) == {
        "objects": OBJECTS,
        "sessions": SESSIONS_COLUMNS,
        "messages": MESSAGES_COLUMNS,
        "_migrations": [("name", "TEXT", 0, None, 1, 0), ("applied_at", "TEXT", 1, None, 0, 0)],
        "assets": [("sha256", "TEXT", 0, None, 1, 0), ("media_type", "TEXT", 1, None, 0, 0),
                   ("data", "BLOB", 1, None, 0, 0), ("created_at", "TEXT", 1, None, 0, 0)],
        "sessions_indexes": [("sessions_listing", 0, "c", 0, ["readable", "updated_at", "id",
                                                                "plain"]),
                             ("sqlite_autoindex_sessions_1", 1, "pk", 0, ["id"])],
        "messages_indexes": [("messages_session_seq", 1, "c", 0, ["session_id", "seq"])],
        "messages_fks": [("sessions", "session_id", "id", "NO ACTION", "CASCADE", "NONE")],
        "journal_mode": "wal",
    }
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, applied_at FROM _migrations").fetchall()
    assert [name for name, _ in rows] == [name for name, _ in sqlite_store.MIGRATIONS]
    assert parse_time(rows[0][1]).tzinfo is not None


def test_a_database_at_an_older_migration_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    """A store written before ``002_readable`` keeps its sessions and gains the listing index."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        name, first = sqlite_store.MIGRATIONS[0]
        first(db)
        db.execute("INSERT INTO _migrations VALUES (?, '2025-01-01T00:00:00+00:00')", (name,))
        for sid, when, meta in (("old", "2025-01-01", "{}"), ("new", "2025-02-01", '{"a":1}'),
                                ("bad", "2025-03-01", "{oops")):
            db.execute("INSERT INTO sessions (id, metadata, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?)", (sid, meta, f"{when}T00:00:00.000000+00:00",
                                               f"{when}T00:00:00.000000+00:00"))
        db.execute("INSERT INTO messages (session_id, seq, role, content, created_at) "
                   "VALUES ('old', 0, 'user', 'kept', '2025-01-01T00:00:00+00:00')")
    from claude_magic.manager import SessionManager

    with SessionManager.with_storage(f"sqlite:///{path}") as manager:
        with pytest.warns(StorageWarning, match="bad"):
            assert manager.list() == ["new", "old"]
        assert manager.resume("old").messages[0].content == "kept"
        assert manager.resume("new").metadata == {"a": 1}
    assert schema(path) == schema_of_blank(tmp_path)


def schema_of_blank(tmp_path: Path) -> dict[str, object]:
    blank = tmp_path / "blank-for-comparison.db"
    SQLiteStorage(blank).close()
    return schema(blank)


def test_reopening_applies_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as db:
        first = db.execute("SELECT * FROM _migrations").fetchall()
    store = SQLiteStorage(path)
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM _migrations").fetchall() == first


def test_new_migrations_run_in_order_once(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"
    SQLiteStorage(path).close()
    ran: list[str] = []

    def add_tags(db: sqlite3.Connection) -> None:
        ran.append("002")
        db.execute("ALTER TABLE sessions ADD COLUMN tags TEXT")

    def add_index(db: sqlite3.Connection) -> None:
        ran.append("003")
        db.execute("CREATE INDEX sessions_tags ON sessions (tags)")  # needs 002 first

    monkeypatch.setattr(sqlite_store, "MIGRATIONS",
                        (*sqlite_store.MIGRATIONS, ("900_tags", add_tags),
                         ("901_tags_index", add_index)))
    SQLiteStorage(path).close()
    SQLiteStorage(path).close()
    assert ran == ["002", "003"]
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")] == [
            "001_initial", "002_readable", "003_plain", "004_assets", "005_epoch", "006_search",
            "007_deferred_index", "008_stored_checks", "009_message_columns", "900_tags",
            "901_tags_index"]


def test_a_failing_migration_leaves_the_database_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"
    SQLiteStorage(path).close()
    before = schema(path)

    def broken(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE sessions ADD COLUMN half_done TEXT")
        db.execute("THIS IS NOT SQL")

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", (*sqlite_store.MIGRATIONS, ("900", broken)))
    with pytest.raises(StorageError) as caught:
        SQLiteStorage(path)
    assert "\n" not in str(caught.value)
    assert schema(path) == before


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO _migrations VALUES ('999_future', '2030-01-01T00:00:00+00:00')")
    with pytest.raises(StorageError, match="newer claude_magic"):
        SQLiteStorage(path)


def test_connection_settings_and_cascade(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "s.db", busy_timeout=7)
    db = store._db
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert db.execute("PRAGMA busy_timeout").fetchone() == (7000,)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO messages (session_id, seq, role, content, created_at) "
                   "VALUES ('nobody', 0, 'user', 'x', '2024-01-01T00:00:00+00:00')")
    from claude_magic.manager import SessionManager

    manager = SessionManager(store)
    manager.create_session("a").build()
    manager.append("a", Message("user", "q"))
    manager.delete("a")
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    manager.close()


def test_readable_column_follows_writes_by_other_tools(tmp_path: Path) -> None:
    from claude_magic.manager import SessionManager

    path = tmp_path / "s.db"
    with SessionManager.with_storage(f"sqlite:///{path}") as manager:
        manager.create_session("a").build()
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT readable FROM sessions").fetchone() == (1,)
            db.execute("UPDATE sessions SET id = '../evil'")
            assert db.execute("SELECT readable FROM sessions").fetchone() == (0,)
            db.execute("UPDATE sessions SET id = 'a', settings = '[]'")
            assert db.execute("SELECT readable FROM sessions").fetchone() == (0,)
            db.execute("UPDATE sessions SET settings = '{}'")
        assert manager.list() == ["a"]


def test_the_rebuild_to_stored_checks_keeps_every_row_and_the_search_index(
        tmp_path: Path) -> None:
    """A store at migration 007 (``readable`` and ``plain`` virtual) gains them stored: every
    session keeps its rowid (which ``sessions_fts`` points at), no message is deleted with
    the old table, a damaged row stays damaged, and foreign keys are on again."""
    path = tmp_path / "007.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, migration in sqlite_store.MIGRATIONS[:7]:
            migration(db)
            db.execute("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00+00:00')", (name,))
        when = "2026-01-0{}T00:00:00.000000+00:00"
        for n, (sid, meta) in enumerate((("a", '{"topic":"walnut"}'), ("gap", "{}"),
                                         ("b", '{"topic":"pecan"}'), ("bad", "{oops"))):
            db.execute("INSERT INTO sessions (id, metadata, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?)", (sid, meta, when.format(n + 1), when.format(n + 1)))
        db.execute("DELETE FROM sessions WHERE id = 'gap'")  # rowids 1, 3, 4: a gap
        for sid in ("a", "b", "bad"):
            db.execute("INSERT INTO messages (session_id, seq, role, content, created_at) "
                       "VALUES (?, 0, 'user', ?, '2026-01-01T00:00:00.000000+00:00')",
                       (sid, f"question in {sid}"))
        rowids = db.execute("SELECT id, rowid FROM sessions ORDER BY id").fetchall()
    db.close()
    from claude_magic.manager import SessionManager

    with SessionManager.with_storage(f"sqlite:///{path}") as manager:
        with pytest.warns(StorageWarning, match="bad"):
            assert manager.list() == ["b", "a"]
        assert [(h.session_id, h.role) for h in manager.search("pecan")] == [("b", "metadata")]
        assert [h.session_id for h in manager.search("walnut")] == ["a"]
        assert manager.resume("b").messages[0].content == "question in b"
        manager.append("a", Message("user", "more"))
        assert manager.storage._db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, rowid FROM sessions ORDER BY id").fetchall() == rowids
        assert db.execute("SELECT session_id, seq FROM messages ORDER BY session_id, seq"
                          ).fetchall() == [("a", 0), ("a", 1), ("b", 0), ("bad", 0)]
        assert db.execute("SELECT id, readable FROM sessions ORDER BY id").fetchall() == [
            ("a", 1), ("b", 1), ("bad", 0)]
        db.execute("INSERT INTO sessions_fts (sessions_fts, rank) VALUES ('integrity-check', 1)")
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()
    assert schema(path) == schema_of_blank(tmp_path)

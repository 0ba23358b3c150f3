"""SQLite storage: ``sessions`` and ``messages`` tables in one file, created when missing.

WAL journal, a busy timeout, foreign keys with cascade, ordered migrations recorded in a
``_migrations`` table, parameterized SQL only, and one ``BEGIN IMMEDIATE`` transaction per
logical write, so several kernels can share one database file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import DamagedSession, SessionExists, SessionNotFound, StorageError
from ..session import (
    Message,
    MonotonicClock,
    Session,
    SessionChanges,
    SessionId,
    SessionStats,
    SessionSummary,
    Status,
    Usage,
    check_json_value,
    format_time,
    parse_time,
)
from .base import DamagedEntry, warn_damaged

_SESSION_COLUMNS = ("id, system_prompt, metadata, settings, created_at, updated_at, "
                    "message_count, turns, input_tokens, output_tokens, cost_usd, last_model")
_MESSAGE_COLUMNS = ("seq, role, content, created_at, status, error, model, backend, "
                    "input_tokens, output_tokens, cost_usd, extra")

# Rows whose JSON columns parse: what list_ids() and count() show without decoding each row.
_READABLE = "json_valid(metadata) AND json_valid(settings)"


def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE sessions (
            id            TEXT PRIMARY KEY,
            system_prompt TEXT,
            metadata      TEXT NOT NULL DEFAULT '{}',
            settings      TEXT NOT NULL DEFAULT '{}',
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0,
            turns         INTEGER NOT NULL DEFAULT 0,
            input_tokens  INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd      REAL NOT NULL DEFAULT 0,
            last_model    TEXT
        )""")
    db.execute("CREATE INDEX sessions_updated_at ON sessions (updated_at)")
    db.execute("""
        CREATE TABLE messages (
            id            INTEGER PRIMARY KEY,
            session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            seq           INTEGER NOT NULL,
            role          TEXT NOT NULL,
            content       TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            status        TEXT NOT NULL DEFAULT 'ok',
            error         TEXT,
            model         TEXT,
            backend       TEXT,
            input_tokens  INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd      REAL,
            extra         TEXT NOT NULL DEFAULT '{}'
        )""")
    db.execute("CREATE UNIQUE INDEX messages_session_seq ON messages (session_id, seq)")


#: Ordered migrations; append new ones, never edit or reorder applied ones.
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("001_initial", _m001_initial),
)


class SQLiteStorage:
    """Sessions in a SQLite database file."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.location = f"sqlite:///{self.path}"
        self._mutex = threading.RLock()
        self._clock = MonotonicClock()
        self._reported: set[str] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open SQLite store {self.path}: {exc}") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except (sqlite3.Error, StorageError) as exc:
            self._db.close()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot open SQLite store {self.path}: {exc}; if the file is "
                               "damaged, move it aside and a new one is created") from None

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # --- transactions and migrations ------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; rolled back on any error."""
        with self._mutex:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> StorageError:
        if "locked" in str(exc) or "busy" in str(exc):
            return StorageError(f"SQLite store {self.path} is busy (locked by another process); "
                                "try again")
        return StorageError(f"SQLite store {self.path} failed: {exc}")

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations "
                       "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            applied = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            known = {name for name, _ in MIGRATIONS}
            if applied - known:
                raise StorageError(f"SQLite store {self.path} was written by a newer claude_magic "
                                   f"(migrations {sorted(applied - known)}); upgrade claude_magic")
            for name, migration in MIGRATIONS:
                if name not in applied:
                    migration(db)
                    db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                               (name, format_time(self._clock.now())))

    # --- rows <-> objects -----------------------------------------------------------------

    def _summary(self, row: tuple[Any, ...]) -> SessionSummary:
        session_id = SessionId(row[0])
        metadata = check_json_value(json.loads(row[2]), "metadata")
        settings = check_json_value(json.loads(row[3]), "settings")
        if not isinstance(metadata, dict) or not isinstance(settings, dict):
            raise ValueError("metadata and settings must be JSON objects")
        stats = SessionStats(row[6], row[7], row[8], row[9], row[10], row[11])
        return SessionSummary(session_id, row[1], metadata, settings, parse_time(row[4]),
                              parse_time(row[5]), stats)

    @staticmethod
    def _message_row(session_id: SessionId, message: Message) -> tuple[Any, ...]:
        extra = {
            "usage": message.usage.to_dict(),
            "stop_reason": message.stop_reason,
            "duration_ms": message.duration_ms,
            "ids": message.ids,
        }
        return (session_id, message.seq, message.role, message.content,
                format_time(message.created_at), message.status, message.error, message.model,
                message.backend, message.usage.input_tokens, message.usage.output_tokens,
                message.cost_usd, json.dumps(extra, ensure_ascii=False))

    @staticmethod
    def _message(row: tuple[Any, ...]) -> Message:
        extra = json.loads(row[11])
        return Message(role=row[1], content=row[2], created_at=parse_time(row[3]), status=row[4],
                       error=row[5], model=row[6], backend=row[7],
                       usage=Usage.from_dict(extra.get("usage")), cost_usd=row[10],
                       stop_reason=extra.get("stop_reason"), duration_ms=extra.get("duration_ms"),
                       ids=dict(extra.get("ids") or {}), seq=row[0])

    def _damaged(self, session_id: str, exc: Exception) -> DamagedEntry:
        entry = DamagedEntry(f"{self.location}#{session_id}", f"unreadable row ({exc})",
                             session_id)
        if session_id not in self._reported:
            self._reported.add(session_id)
            warn_damaged(entry)
        return entry

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.copy()
        if not preserve_times:
            stored.created_at = stored.updated_at = self._clock.now()
        for seq, message in enumerate(stored.messages):
            message.seq = seq
        stats = stored.stats
        with self._write() as db:
            exists = db.execute("SELECT 1 FROM sessions WHERE id = ?", (stored.id,)).fetchone()
            if exists and not overwrite:
                raise SessionExists(stored.id)
            db.execute("DELETE FROM sessions WHERE id = ?", (stored.id,))
            db.execute(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (stored.id, stored.system_prompt, json.dumps(stored.metadata, ensure_ascii=False),
                 json.dumps(stored.settings, ensure_ascii=False), format_time(stored.created_at),
                 format_time(stored.updated_at), stats.message_count, stats.turns,
                 stats.input_tokens, stats.output_tokens, stats.cost_usd, stats.last_model))
            db.executemany(
                f"INSERT INTO messages (session_id, {_MESSAGE_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [self._message_row(stored.id, m) for m in stored.messages])
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        with self._mutex:
            rows = self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?",
                              (session_id,))
            if not rows:
                return None
            message_rows = self._read(f"SELECT {_MESSAGE_COLUMNS} FROM messages "
                                      "WHERE session_id = ? ORDER BY seq", (session_id,))
        try:
            summary = self._summary(rows[0])
            messages = [self._message(row) for row in message_rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedSession(session_id, self.location, f"unreadable row ({exc})") from None
        return Session(summary.id, summary.system_prompt, summary.metadata, summary.created_at,
                       summary.updated_at, messages, summary.settings)

    def exists(self, session_id: SessionId) -> bool:
        return bool(self._read("SELECT 1 FROM sessions WHERE id = ?", (session_id,)))

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._write() as db:
            row = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
            if row is None:
                raise SessionNotFound(session_id)
            try:
                summary = self._summary(row)
            except (ValueError, TypeError) as exc:
                raise DamagedSession(session_id, self.location, f"unreadable row ({exc})") from None
            session = Session(summary.id, summary.system_prompt, summary.metadata,
                              summary.created_at, summary.updated_at, [], summary.settings)
            changes.apply(session, self._clock.now())
            db.execute("UPDATE sessions SET system_prompt = ?, metadata = ?, settings = ?, "
                       "updated_at = ? WHERE id = ?",
                       (session.system_prompt, json.dumps(session.metadata, ensure_ascii=False),
                        json.dumps(session.settings, ensure_ascii=False),
                        format_time(session.updated_at), session_id))

    def append(self, session_id: SessionId, message: Message) -> Message:
        stored = message.copy()
        with self._write() as db:
            row = db.execute("SELECT message_count FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
            if row is None:
                raise SessionNotFound(session_id)
            stored.seq = row[0]
            db.execute(f"INSERT INTO messages (session_id, {_MESSAGE_COLUMNS}) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", self._message_row(session_id, stored))
            db.execute(
                "UPDATE sessions SET updated_at = ?, message_count = message_count + 1, "
                "turns = turns + ?, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cost_usd = cost_usd + ?, "
                "last_model = COALESCE(?, last_model) WHERE id = ?",
                (format_time(self._clock.now()), int(stored.role == "user"),
                 stored.usage.input_tokens, stored.usage.output_tokens, stored.cost_usd or 0.0,
                 stored.model, session_id))
        return stored

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        with self._write() as db:
            changed = db.execute("UPDATE messages SET status = ?, error = ? "
                                 "WHERE session_id = ? AND seq = ?",
                                 (status, error, session_id, seq)).rowcount
            if not changed:
                if not db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                    raise SessionNotFound(session_id)
                raise IndexError(f"session {session_id!r} has no message {seq}")
            db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?",
                       (format_time(self._clock.now()), session_id))

    def delete(self, session_id: SessionId) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def clear(self) -> int:
        with self._write() as db:
            return db.execute("DELETE FROM sessions").rowcount

    def _ordered_rows(self) -> list[tuple[Any, ...]]:
        return self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions "
                          "ORDER BY updated_at DESC, id DESC")

    def summaries(self) -> list[SessionSummary]:
        result = []
        for row in self._ordered_rows():
            try:
                result.append(self._summary(row))
            except (ValueError, TypeError) as exc:
                self._damaged(row[0], exc)
        return result

    def list_ids(self) -> list[SessionId]:
        rows = self._read(f"SELECT id FROM sessions WHERE {_READABLE} "
                          "ORDER BY updated_at DESC, id DESC")
        return [SessionId(row[0]) for row in rows]

    def count(self) -> int:
        return self._read(f"SELECT count(*) FROM sessions WHERE {_READABLE}")[0][0]

    def damaged(self) -> list[DamagedEntry]:
        entries = []
        for row in self._ordered_rows():
            try:
                self._summary(row)
            except (ValueError, TypeError) as exc:
                entries.append(self._damaged(row[0], exc))
        return entries

    def close(self) -> None:
        with self._mutex:
            self._db.close()

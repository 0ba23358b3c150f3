"""SQLite storage: ``sessions`` and ``messages`` tables in one file, created when missing.

WAL journal, a busy timeout, foreign keys with cascade, ordered migrations recorded in a
``_migrations`` table, parameterized SQL only, and one ``BEGIN IMMEDIATE`` transaction per
logical write, so several kernels can share one database file.

Each session row carries ``readable``, a generated column SQLite itself computes (for our
writes and anyone else's): whether the id is valid and the JSON and time columns are well
formed. Listing and
counting read only ``(readable, updated_at, id)`` from an index, so they stay fast at 10,000
sessions, and a row damaged by another tool is skipped and reported instead of listed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import DamagedSession, SessionExists, SessionNotFound, StorageError
from ..message import Message, SessionStats, Status, Usage
from ..session import _RESERVED, Session, SessionChanges, SessionId, SessionSummary
from ..times import MonotonicClock, format_time, parse_time
from .base import DamagedEntry, SummaryColumns, warn_damaged

_SESSION_COLUMNS = ("id, system_prompt, metadata, settings, created_at, updated_at, "
                    "message_count, turns, input_tokens, output_tokens, cost_usd, last_model")
_MESSAGE_COLUMNS = ("seq, role, content, created_at, status, error, model, backend, "
                    "input_tokens, output_tokens, cost_usd, extra")
_NEWEST_FIRST = "ORDER BY updated_at DESC, id DESC"

_TIME = "'[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]*'"


def _time_ok(column: str) -> str:
    """A real ISO time: the pattern, an hour below 24, a date SQLite does not roll over."""
    return (f"typeof({column}) = 'text' AND CASE WHEN {column} GLOB {_TIME} "
            f"THEN substr({column}, 12, 2) < '24' "
            f"AND date(substr({column}, 1, 10), '+0 days') = substr({column}, 1, 10) "
            "ELSE 0 END")


def _json_object_ok(column: str) -> str:
    return f"typeof({column}) = 'text' AND substr({column}, 1, 1) = '{{' AND json_valid({column})"


_RESERVED_SQL = ", ".join(f"'{name}'" for name in sorted(_RESERVED))
#: The rules of :class:`SessionId`, in SQL (a test checks that both always agree).
ID_OK = (
    "typeof(id) = 'text' AND length(id) BETWEEN 1 AND 128 "
    "AND length(CAST(id AS BLOB)) = length(id) "  # ASCII only, no NUL
    "AND id NOT GLOB '*[^A-Za-z0-9._-]*' AND id NOT GLOB '[.-]*' AND id NOT GLOB '*.' "
    "AND id NOT GLOB '*..*' AND lower(CASE WHEN instr(id, '.') "
    f"THEN substr(id, 1, instr(id, '.') - 1) ELSE id END) NOT IN ({_RESERVED_SQL})"
)
_READABLE = (f"coalesce({ID_OK} AND {_json_object_ok('metadata')} AND "
             f"{_json_object_ok('settings')} AND {_time_ok('created_at')} AND "
             f"{_time_ok('updated_at')}, 0)")
_MESSAGE_OK = (f"typeof(extra) = 'text' AND json_valid(extra) AND role IN ('user', 'assistant') "
               f"AND status IN ('ok', 'error', 'incomplete') AND typeof(content) = 'text' "
               f"AND {_time_ok('created_at')}")


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


def _m002_readable(db: sqlite3.Connection) -> None:
    """``readable``, computed by SQLite, and the index that lists readable sessions by time."""
    db.execute("ALTER TABLE sessions ADD COLUMN readable INTEGER "
               f"GENERATED ALWAYS AS ({_READABLE}) VIRTUAL")
    db.execute("DROP INDEX sessions_updated_at")
    db.execute("CREATE INDEX sessions_listing ON sessions (readable, updated_at, id)")


#: Ordered migrations; append new ones, never edit or reorder released ones.
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("001_initial", _m001_initial),
    ("002_readable", _m002_readable),
)
#: Generated columns (``readable``, migration 002) need SQLite 3.31.
MIN_SQLITE = (3, 31, 0)


def _trusted_id(value: str) -> SessionId:
    """A SessionId for a value the ``readable`` column already validated (same rules)."""
    return str.__new__(SessionId, value)


_fromiso = datetime.fromisoformat


def _time(value: str) -> datetime:
    parsed = _fromiso(value)
    return parsed if parsed.tzinfo is timezone.utc else parse_time(value)


def _object(text: Any) -> dict[str, Any]:
    if text == "{}":
        return {}
    value = json.loads(text)
    if type(value) is not dict:
        raise TypeError("not a JSON object")
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class SQLiteStorage:
    """Sessions in a SQLite database file."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.location = f"sqlite:///{self.path}"
        self._mutex = threading.RLock()
        self._clock = MonotonicClock()
        self._reported: set[str] = set()
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StorageError(f"the SQLite store needs SQLite {'.'.join(map(str, MIN_SQLITE))} "
                               f"or newer, this Python has {sqlite3.sqlite_version}; use a "
                               "directory store instead")
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
                               "not a database, move it aside and a new one is created") from None

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # --- transactions and migrations ------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction (a write one by default); rolled back on any error."""
        with self._mutex:
            try:
                self._db.execute(begin)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
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
        with self._transaction() as db:
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

    @staticmethod
    def _summary(row: tuple[Any, ...]) -> SessionSummary:
        """A summary from a row the ``readable`` column passed; ValueError/TypeError if not."""
        prompt = row[1]
        if prompt is not None and type(prompt) is not str:
            raise TypeError("system_prompt is not text")
        stats = SessionStats(row[6], row[7], row[8], row[9], row[10], row[11])
        return SessionSummary(_trusted_id(row[0]), prompt, _object(row[2]), _object(row[3]),
                              _time(row[4]), _time(row[5]), stats)

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
                message.cost_usd, _dumps(extra))

    @staticmethod
    def _message(row: tuple[Any, ...]) -> Message:
        extra = _object(row[11])
        return Message(role=row[1], content=row[2], created_at=parse_time(row[3]), status=row[4],
                       error=row[5], model=row[6], backend=row[7],
                       usage=Usage.from_dict(extra.get("usage")), cost_usd=row[10],
                       stop_reason=extra.get("stop_reason"), duration_ms=extra.get("duration_ms"),
                       ids=dict(extra.get("ids") or {}), seq=row[0])

    def _report(self, session_id: str, reason: str, where: str = "") -> DamagedEntry:
        entry = DamagedEntry(f"{self.location}#{session_id}{where}", reason, session_id)
        if entry.location not in self._reported:
            self._reported.add(entry.location)
            warn_damaged(entry)
        return entry

    def _report_unreadable(self) -> list[DamagedEntry]:
        """Warn (once each) about rows the ``readable`` column rejects; returns them."""
        rows = self._read("SELECT id FROM sessions WHERE readable = 0")
        return [self._report(str(row[0]), "unreadable row (bad id, JSON or time)")
                for row in rows]

    def _check_writable(self, db: sqlite3.Connection, session_id: SessionId) -> None:
        row = db.execute("SELECT readable FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(str(session_id))
        if not row[0]:
            raise DamagedSession(str(session_id), self.location,
                                 "unreadable row (bad id, JSON or time)")

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.checked_copy()
        if not preserve_times:
            stored.created_at = stored.updated_at = self._clock.now()
        stats = stored.stats
        row = (stored.id, stored.system_prompt, _dumps(stored.metadata), _dumps(stored.settings),
               format_time(stored.created_at), format_time(stored.updated_at),
               stats.message_count, stats.turns, stats.input_tokens, stats.output_tokens,
               stats.cost_usd, stats.last_model)
        messages = [self._message_row(stored.id, m) for m in stored.messages]
        with self._transaction() as db:
            exists = db.execute("SELECT 1 FROM sessions WHERE id = ?", (stored.id,)).fetchone()
            if exists and not overwrite:
                raise SessionExists(str(stored.id))
            db.execute("DELETE FROM sessions WHERE id = ?", (stored.id,))
            db.execute(f"INSERT INTO sessions ({_SESSION_COLUMNS}) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)
            db.executemany(f"INSERT INTO messages (session_id, {_MESSAGE_COLUMNS}) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", messages)
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        with self._transaction("BEGIN") as db:  # one snapshot for the header and messages
            row = db.execute(f"SELECT {_SESSION_COLUMNS}, readable FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
            if row is None:
                return None
            message_rows = db.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages "
                                      "WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        try:
            if not row[-1]:
                raise ValueError("bad id, JSON or time")
            summary = self._summary(row)
        except (ValueError, TypeError) as exc:
            raise DamagedSession(str(session_id), self.location,
                                 f"unreadable row ({exc})") from None
        messages = []
        for message_row in message_rows:
            try:
                messages.append(self._message(message_row))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self._report(str(session_id), f"unreadable message ({exc})",
                             f":{message_row[0]}")
        return Session(summary.id, summary.system_prompt, summary.metadata, summary.created_at,
                       summary.updated_at, messages, summary.settings)

    def summary(self, session_id: SessionId) -> SessionSummary | None:
        rows = self._read(f"SELECT {_SESSION_COLUMNS}, readable FROM sessions WHERE id = ?",
                          (session_id,))
        if not rows:
            return None
        try:
            if not rows[0][-1]:
                raise ValueError("bad id, JSON or time")
            return self._summary(rows[0])
        except (ValueError, TypeError) as exc:
            raise DamagedSession(str(session_id), self.location,
                                 f"unreadable row ({exc})") from None

    def exists(self, session_id: SessionId) -> bool:
        return bool(self._read("SELECT 1 FROM sessions WHERE id = ?", (session_id,)))

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._transaction() as db:
            self._check_writable(db, session_id)
            row = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
            try:
                summary = self._summary(row)
            except (ValueError, TypeError) as exc:
                raise DamagedSession(str(session_id), self.location,
                                     f"unreadable row ({exc})") from None
            session = Session(summary.id, summary.system_prompt, summary.metadata,
                              summary.created_at, summary.updated_at, [], summary.settings)
            changes.apply(session, self._clock.now())
            db.execute("UPDATE sessions SET system_prompt = ?, metadata = ?, settings = ?, "
                       "updated_at = ? WHERE id = ?",
                       (session.system_prompt, _dumps(session.metadata),
                        _dumps(session.settings), format_time(session.updated_at), session_id))

    def append(self, session_id: SessionId, message: Message) -> Message:
        stored = message.copy()  # checks every field: a bad message is refused here
        with self._transaction() as db:
            self._check_writable(db, session_id)
            stored.seq = db.execute("SELECT coalesce(max(seq) + 1, 0) FROM messages "
                                    "WHERE session_id = ?", (session_id,)).fetchone()[0]
            db.execute(f"INSERT INTO messages (session_id, {_MESSAGE_COLUMNS}) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", self._message_row(session_id, stored))
            db.execute(
                "UPDATE sessions SET updated_at = ?, message_count = message_count + 1, "
                "turns = turns + ?, input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cost_usd = cost_usd + ?, "
                "last_model = coalesce(?, last_model) WHERE id = ?",
                (format_time(self._clock.now()), int(stored.role == "user"),
                 stored.usage.input_tokens, stored.usage.output_tokens, stored.cost_usd or 0.0,
                 stored.model, session_id))
        return stored.copy()

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        with self._transaction() as db:
            self._check_writable(db, session_id)
            changed = db.execute("UPDATE messages SET status = ?, error = ? "
                                 "WHERE session_id = ? AND seq = ?",
                                 (status, error, session_id, seq)).rowcount
            if not changed:
                raise IndexError(f"session {str(session_id)!r} has no message {seq}")
            db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?",
                       (format_time(self._clock.now()), session_id))

    def delete(self, session_id: SessionId) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def clear(self) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM sessions WHERE readable = 1").rowcount

    def summaries(self) -> list[SessionSummary]:
        with self._mutex:
            self._report_unreadable()
            rows = self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE readable = 1 "
                              f"{_NEWEST_FIRST}")
        # _summary() inlined: this loop is most of what reading every session's metadata costs
        result = []
        append, loads, new, utc = result.append, json.loads, str.__new__, timezone.utc
        for row in rows:
            try:
                prompt, metadata, settings = row[1], row[2], row[3]
                if prompt is not None and type(prompt) is not str:
                    raise TypeError("system_prompt is not text")
                metadata = {} if metadata == "{}" else loads(metadata)
                settings = {} if settings == "{}" else loads(settings)
                if type(metadata) is not dict or type(settings) is not dict:
                    raise TypeError("not a JSON object")
                created, updated = _fromiso(row[4]), _fromiso(row[5])
                if created.tzinfo is not utc or updated.tzinfo is not utc:
                    created, updated = parse_time(row[4]), parse_time(row[5])
                append(SessionSummary(new(SessionId, row[0]), prompt, metadata, settings,
                                      created, updated, SessionStats(*row[6:12])))
            except (ValueError, TypeError) as exc:
                self._report(str(row[0]), f"unreadable row ({exc})")
        return result

    def summary_columns(self) -> SummaryColumns:
        """One query, column by column; the ``readable`` column has checked ids, JSON and
        times, so only the metadata is parsed here (times stay ISO strings)."""
        with self._mutex:
            self._report_unreadable()
            rows = self._read("SELECT id, system_prompt, metadata, created_at, updated_at, "
                              "message_count, turns, input_tokens, output_tokens, cost_usd, "
                              f"last_model FROM sessions WHERE readable = 1 {_NEWEST_FIRST}")
        columns: list[Any] = ([list(column) for column in zip(*rows, strict=True)]
                              or [[] for _ in range(11)])  # 11 separate lists
        # every text is a JSON object (``readable`` checked it): one parse of them all, as an
        # array, costs a fraction of one json.loads call per row
        try:
            columns[2] = json.loads(f"[{','.join(columns[2])}]")
        except (TypeError, ValueError):  # a row SQLite accepts and Python does not: go row
            return SummaryColumns.of(self.summaries())  # by row, reporting it as damaged
        return SummaryColumns(*columns)

    def list_ids(self) -> list[SessionId]:
        with self._mutex:
            self._report_unreadable()
            rows = self._read(f"SELECT id FROM sessions WHERE readable = 1 {_NEWEST_FIRST}")
        new = str.__new__  # SessionId without re-checking: ``readable`` checked the id
        return [new(SessionId, row[0]) for row in rows]

    def count(self) -> int:
        return self._read("SELECT count(*) FROM sessions WHERE readable = 1")[0][0]

    def damaged(self) -> list[DamagedEntry]:
        """Rows that cannot be read: sessions, and messages of readable sessions."""
        with self._mutex:
            entries = self._report_unreadable()
            for row in self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE readable = 1"):
                try:
                    self._summary(row)
                except (ValueError, TypeError) as exc:
                    entries.append(self._report(str(row[0]), f"unreadable row ({exc})"))
            for session_id, seq in self._read(
                    f"SELECT session_id, seq FROM messages WHERE NOT ({_MESSAGE_OK}) "
                    "ORDER BY session_id, seq"):
                entries.append(self._report(str(session_id), "unreadable message", f":{seq}"))
        return entries

    def close(self) -> None:
        with self._mutex:
            self._db.close()

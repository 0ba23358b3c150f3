"""The SQLite store's schema: tables, the ``readable`` and ``plain`` generated columns (SQL's
own checks of rows anyone wrote), and the ordered migrations that build them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..checks import MAX_DEPTH
from ..session import _RESERVED
from ._sqlite_fts import m006_search, m007_deferred_index, session_triggers

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


#: The columns of ``sessions`` as migration 001 made them (008 makes them again).
_SESSION_DEFS = """
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
            last_model    TEXT"""


def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute(f"CREATE TABLE sessions ({_SESSION_DEFS}\n        )")
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


def _plain_json(column: str) -> str:
    """No text that might hold a value Python refuses: a digit run past 64 bits, a float
    exponent past its range, an escaped UTF-16 surrogate, more brackets than nesting allows."""
    digits = "[0-9]" * 19
    return (f"{column} NOT GLOB '*{digits}*' AND {column} NOT GLOB '*[eE][0-9][0-9][0-9]*' "
            f"AND {column} NOT GLOB '*[eE][-+][0-9][0-9][0-9]*' "
            rf"AND {column} NOT GLOB '*\u[dD][89a-fA-F]*' "
            f"AND length({column}) - length(replace(replace({column}, '[', ''), '{{', '')) "
            f"<= {MAX_DEPTH}")


def _plain_time(column: str) -> str:
    """The fixed-width UTC form we write, inside the range Python accepts."""
    return (f"length({column}) = 32 AND substr({column}, 20, 1) = '.' "
            f"AND substr({column}, 21, 6) NOT GLOB '*[^0-9]*' AND substr({column}, 27) = '+00:00' "
            f"AND {column} BETWEEN '0001-01-02' AND '9999-12-30T23:59:59.999999+00:00'")


_COUNTS = ("message_count", "turns", "input_tokens", "output_tokens")
#: Rows SQL can vouch for; the others a ``readable`` row may hold (values that overflow in
#: Python: big numbers, deep JSON, far times, wrong types) are checked in Python.
_PLAIN = (
    "coalesce(" + " AND ".join(
        [f"typeof({c}) = 'integer' AND {c} >= 0" for c in _COUNTS]
        + ["typeof(cost_usd) = 'real' AND cost_usd >= 0 AND cost_usd < 9223372036854775808.0",
           "typeof(system_prompt) IN ('null', 'text') AND typeof(last_model) IN ('null', 'text')",
           _plain_json("metadata"), _plain_json("settings"),
           _plain_time("created_at"), _plain_time("updated_at")]) + ", 0)"
)


def _m003_plain(db: sqlite3.Connection) -> None:
    """``plain``: SQL's guarantee that Python reads the row; the listing index carries it."""
    db.execute(f"ALTER TABLE sessions ADD COLUMN plain INTEGER GENERATED ALWAYS AS ({_PLAIN}) "
               "VIRTUAL")
    db.execute("DROP INDEX sessions_listing")
    db.execute("CREATE INDEX sessions_listing ON sessions (readable, updated_at, id, plain)")


def _m004_assets(db: sqlite3.Connection) -> None:
    """``assets``: images and PDFs of messages, once each, by SHA-256 (storage/_assets.py)."""
    db.execute("""
        CREATE TABLE assets (
            sha256     TEXT PRIMARY KEY,
            media_type TEXT NOT NULL,
            data       BLOB NOT NULL,
            created_at TEXT NOT NULL
        )""")


def _m005_epoch(db: sqlite3.Connection) -> None:
    """``epoch``: a random number a write sets anew whenever a session's stored messages
    change other than by an append (create, overwrite, mark); NULL (never trusted) for rows
    written before. A reader that saw an epoch reads only the messages appended since."""
    db.execute("ALTER TABLE sessions ADD COLUMN epoch INTEGER")


_COPIED = f"rowid, {_SESSION_COLUMNS}, epoch"


def _m008_stored_checks(db: sqlite3.Connection) -> None:
    """``readable`` and ``plain`` STORED: computed once when a row is written (by anyone),
    instead of on every read of the listing index and up to four times per update (the old
    and new index keys, the new row). SQLite cannot alter a column's kind, so the table is
    rebuilt with the same columns in the same order and every row copied with its rowid
    (which ``sessions_fts`` points at); the caller runs this with foreign keys off, so
    dropping the old table deletes no message. Its index and triggers are made again."""
    db.execute(f"""
        CREATE TABLE sessions_new ({_SESSION_DEFS},
            readable      INTEGER GENERATED ALWAYS AS ({_READABLE}) STORED,
            plain         INTEGER GENERATED ALWAYS AS ({_PLAIN}) STORED,
            epoch         INTEGER
        )""")
    db.execute(f"INSERT INTO sessions_new ({_COPIED}) SELECT {_COPIED} FROM sessions")
    db.execute("DROP TABLE sessions")
    db.execute("ALTER TABLE sessions_new RENAME TO sessions")
    db.execute("CREATE INDEX sessions_listing ON sessions (readable, updated_at, id, plain)")
    session_triggers(db)


#: Ordered migrations; append new ones, never edit or reorder released ones. They run in one
#: transaction with foreign keys off (008 rebuilds the table ``messages`` refers to).
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("001_initial", _m001_initial),
    ("002_readable", _m002_readable),
    ("003_plain", _m003_plain),
    ("004_assets", _m004_assets),
    ("005_epoch", _m005_epoch),
    ("006_search", m006_search),
    ("007_deferred_index", m007_deferred_index),
    ("008_stored_checks", _m008_stored_checks),
)
#: Generated columns (``readable``, migration 002) need SQLite 3.31.
MIN_SQLITE = (3, 31, 0)

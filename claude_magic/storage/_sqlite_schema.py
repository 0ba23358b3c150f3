"""The SQLite store's schema: tables, the ``readable`` and ``plain`` generated columns (SQL's
own checks of rows anyone wrote), and the ordered migrations that build them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..checks import MAX_DEPTH
from ..session import _RESERVED
from ._sqlite_fts import m006_search, m007_deferred_index, message_triggers, session_triggers

_SESSION_COLUMNS = ("id, system_prompt, metadata, settings, created_at, updated_at, "
                    "message_count, turns, input_tokens, output_tokens, cost_usd, last_model")
_MESSAGE_COLUMNS = ("seq, role, content, created_at, status, error, model, backend, "
                    "input_tokens, output_tokens, cost_usd, extra, cache_creation_input_tokens, "
                    "cache_read_input_tokens, stop_reason, duration_ms, hash")
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


#: The columns of ``messages`` as migration 001 made them (009 adds to them).
_MESSAGE_DEFS_001 = """
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
            extra         TEXT NOT NULL DEFAULT '{}'"""


def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute(f"CREATE TABLE sessions ({_SESSION_DEFS}\n        )")
    db.execute("CREATE INDEX sessions_updated_at ON sessions (updated_at)")
    db.execute(f"CREATE TABLE messages ({_MESSAGE_DEFS_001}\n        )")
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


_FINITE = "BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
_MESSAGE_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                   "cache_read_input_tokens")
#: Message rows SQL vouches Python reads as they are (migration 009): every column of the
#: type and range ``Message`` accepts, a UTC time of the form we write, and ``extra`` one
#: JSON object (``{}`` unless it holds other ids or content blocks).
_MESSAGE_PLAIN = (
    "coalesce(" + " AND ".join(
        ["typeof(seq) = 'integer' AND seq >= 0", "role IN ('user', 'assistant')",
         "status IN ('ok', 'error', 'incomplete')", "typeof(content) = 'text'"]
        + [f"typeof({c}) IN ('null', 'text')"
           for c in ("error", "model", "backend", "stop_reason", "hash")]
        + [f"typeof({c}) = 'integer' AND {c} >= 0" for c in _MESSAGE_COUNTS]
        + [f"(cost_usd IS NULL OR (typeof(cost_usd) = 'real' AND cost_usd {_FINITE}))",
           "(typeof(duration_ms) IN ('null', 'integer') "
           f"OR (typeof(duration_ms) = 'real' AND duration_ms {_FINITE}))"]
        + ["typeof(extra) = 'text' AND substr(extra, 1, 1) = '{' AND json_valid(extra)",
           _plain_time("created_at"), _time_ok("created_at")]) + ", 0)"
)

_MESSAGE_DEFS = _MESSAGE_DEFS_001 + """,
            cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
            stop_reason   TEXT,
            duration_ms,  -- no type: an int stays an int, a float a float
            hash          TEXT,
            plain         INTEGER GENERATED ALWAYS AS (PLAIN) STORED"""


def _json_is(path: str, *kinds: str) -> str:
    """Whether ``extra`` at ``path`` is missing or of one of ``kinds`` (JSON types)."""
    return f"coalesce(json_type(extra, '{path}'), 'null') IN ({', '.join(map(repr, kinds))})"


def _json_count(name: str) -> str:
    """A usage count in ``extra`` that fits a column (missing or null: 0)."""
    value = f"json_extract(extra, '$.usage.{name}')"
    return (f"{_json_is(f'$.usage.{name}', 'null', 'integer')} "
            f"AND typeof(coalesce({value}, 0)) = 'integer' AND coalesce({value}, 0) >= 0")


#: Rows whose ``extra`` holds only values the new columns take as they are (every row this
#: store wrote); the others keep ``extra`` unchanged, and reading them is as before.
_MOVABLE = " AND ".join(
    ["json_valid(extra) AND json_type(extra) = 'object'", _json_is("$.usage", "null", "object"),
     *[_json_count(name) for name in _MESSAGE_COUNTS],
     _json_is("$.stop_reason", "null", "text"),
     _json_is("$.duration_ms", "null", "integer", "real"),
     _json_is("$.ids", "null", "object"), _json_is("$.ids.hash", "null", "text")])
_LEAN = "json_remove(extra, '$.usage', '$.stop_reason', '$.duration_ms', '$.ids.hash')"


def _moved(column: str, value: str, default: str) -> str:
    return f"CASE WHEN movable THEN {value} ELSE {default} END AS {column}"


def _m009_message_columns(db: sqlite3.Connection) -> None:
    """Usage, stop reason, duration and chain hash as columns, and ``plain`` STORED (SQL's
    check, once per write, that Python reads the row as it is), instead of one JSON
    ``extra`` per row parsed and checked field by field on every read. The table is rebuilt
    (a STORED column cannot be added) with every row and its id (which ``messages_fts``
    points at); ``extra`` keeps other ids and content blocks. A row whose ``extra`` holds a
    value no column takes (written by another tool) keeps it whole and reads as before."""
    db.execute(f"CREATE TABLE messages_new ({_MESSAGE_DEFS.replace('PLAIN', _MESSAGE_PLAIN)}\n)")
    counts = [_moved(c, f"coalesce(json_extract(extra, '$.usage.{c}'), 0)", d)
              for c, d in zip(_MESSAGE_COUNTS, ("input_tokens", "output_tokens", "0", "0"),
                              strict=True)]
    db.execute(f"""
        INSERT INTO messages_new (id, session_id, seq, role, content, created_at, status, error,
            model, backend, cost_usd, {', '.join(_MESSAGE_COUNTS)}, stop_reason, duration_ms,
            hash, extra)
        SELECT id, session_id, seq, role, content, created_at, status, error, model, backend,
            cost_usd, {', '.join(counts)},
            {_moved("stop_reason", "json_extract(extra, '$.stop_reason')", "NULL")},
            {_moved("duration_ms", "json_extract(extra, '$.duration_ms')", "NULL")},
            {_moved("hash", "json_extract(extra, '$.ids.hash')", "NULL")},
            CASE WHEN NOT movable THEN extra
                 WHEN coalesce(json_extract(lean, '$.ids'), '{{}}') = '{{}}'
                 THEN json_remove(lean, '$.ids') ELSE lean END
        FROM (SELECT *, coalesce({_MOVABLE}, 0) AS movable,
                     CASE WHEN json_valid(extra) THEN {_LEAN} END AS lean FROM messages)""")
    db.execute("DROP TABLE messages")
    db.execute("ALTER TABLE messages_new RENAME TO messages")
    db.execute("CREATE UNIQUE INDEX messages_session_seq ON messages (session_id, seq)")
    message_triggers(db)


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
    ("009_message_columns", _m009_message_columns),
)
#: Generated columns (``readable``, migration 002) need SQLite 3.31.
MIN_SQLITE = (3, 31, 0)

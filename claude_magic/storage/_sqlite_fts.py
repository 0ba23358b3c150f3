"""The SQLite store's full-text index: FTS5 tables over message text and session headers.

Session headers are kept in sync by triggers (migration 006). Message text is indexed up to a
high-water mark instead (migration 007): ``fts_indexed.upto`` is the largest ``messages.id``
whose row the index holds, and the index holds exactly the rows with ``id <= upto``. An append
writes no index pages; :func:`catch_up` indexes the rows past the mark, in the transaction of
the search that needs them. Deletes and content updates of indexed rows still go through
triggers, and a row inserted at or below the mark (a reused id) is indexed by its trigger, so
every query sees exactly the committed messages. The query is in ``_fts_search``."""

from __future__ import annotations

import sqlite3

_TOKENIZE = "tokenize='unicode61 remove_diacritics 2'"
#: The condition under which an indexed message row's triggers run (see the module text).
_INDEXED = "(SELECT upto FROM fts_indexed)"


def _triggers(db: sqlite3.Connection, table: str, columns: tuple[str, ...], rowid: str,
              when: str = "") -> None:
    """Insert, delete and update triggers keeping ``<table>_fts`` equal to ``table``; for
    messages, only for rows at or below the mark (``when`` names the row's id)."""
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    delete = (f"INSERT INTO {table}_fts ({table}_fts, rowid, {names}) "
              f"VALUES ('delete', old.{rowid}, {old});")
    insert = f"INSERT INTO {table}_fts (rowid, {names}) VALUES (new.{rowid}, {new});"
    if_new = f" WHEN new.{when} <= {_INDEXED}" if when else ""
    if_old = f" WHEN old.{when} <= {_INDEXED}" if when else ""
    db.execute(f"CREATE TRIGGER {table}_fts_insert AFTER INSERT ON {table}{if_new} "
               f"BEGIN {insert} END")
    db.execute(f"CREATE TRIGGER {table}_fts_delete AFTER DELETE ON {table}{if_old} "
               f"BEGIN {delete} END")
    db.execute(f"CREATE TRIGGER {table}_fts_update AFTER UPDATE OF {names} ON {table}{if_old} "
               f"BEGIN {delete} {insert} END")


def m006_search(db: sqlite3.Connection) -> None:
    """``messages_fts`` (message text) and ``sessions_fts`` (system prompt, metadata), external
    content tables the triggers below keep equal to their tables; both built from the rows
    already stored."""
    db.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', "
               f"content_rowid='id', {_TOKENIZE})")
    db.execute("CREATE VIRTUAL TABLE sessions_fts USING fts5(system_prompt, metadata, "
               f"content='sessions', content_rowid='rowid', {_TOKENIZE})")
    for table, columns in (("messages", ("content",)), ("sessions", ("system_prompt", "metadata"))):
        _triggers(db, table, columns, "id" if table == "messages" else "rowid")
        db.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('rebuild')")


def session_triggers(db: sqlite3.Connection) -> None:
    """The triggers keeping ``sessions_fts`` equal to ``sessions`` (made again when the
    table is rebuilt: migration 008)."""
    _triggers(db, "sessions", ("system_prompt", "metadata"), "rowid")


def m007_deferred_index(db: sqlite3.Connection) -> None:
    """Message text indexed up to ``fts_indexed.upto`` (every row so far: the old triggers
    indexed them), caught up by searches instead of by each append."""
    db.execute("CREATE TABLE fts_indexed (upto INTEGER NOT NULL)")
    db.execute("INSERT INTO fts_indexed (upto) SELECT coalesce(max(id), 0) FROM messages")
    for trigger in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER messages_fts_{trigger}")
    message_triggers(db)


def message_triggers(db: sqlite3.Connection) -> None:
    """The triggers keeping ``messages_fts`` equal to the indexed rows of ``messages`` (made
    again when the table is rebuilt: migration 009)."""
    _triggers(db, "messages", ("content",), "id", when="id")


#: The mark and the largest message row id, as two result columns (see :func:`waiting`).
MARK_AND_TOP = f"{_INDEXED}, (SELECT max(id) FROM messages)"


def waiting(upto: int | None, top: int | None) -> int | None:
    """The mark when message rows past it wait to be indexed, else None."""
    return upto if top is not None and upto is not None and top > upto else None


def pending(db: sqlite3.Connection) -> int | None:
    """:func:`waiting`, read in the caller's transaction."""
    return waiting(*db.execute(f"SELECT {MARK_AND_TOP}").fetchone())


def catch_up(db: sqlite3.Connection) -> None:
    """Index the message rows past the mark and move it (in the caller's write transaction)."""
    upto, top = db.execute(f"SELECT {MARK_AND_TOP}").fetchone()
    if waiting(upto, top) is None:
        return
    db.execute("INSERT INTO messages_fts (rowid, content) SELECT id, content FROM messages "
               "WHERE id > ? AND id <= ?", (upto, top))
    db.execute("UPDATE fts_indexed SET upto = ?", (top,))


def index_pending(db: sqlite3.Connection, upto: int) -> None:
    """A private index (``temp.pending_fts``, this connection only) of the rows past the
    mark, for a store that cannot write the catch-up: rebuilt for each such search."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.pending_fts USING fts5(content, "
               f"{_TOKENIZE})")
    db.execute("DELETE FROM temp.pending_fts")
    db.execute("INSERT INTO temp.pending_fts (rowid, content) SELECT id, content "
               "FROM main.messages WHERE id > ?", (upto,))

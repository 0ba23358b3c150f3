"""The SQLite store's full-text index: FTS5 tables over message text and session headers,
kept in sync by triggers (so every writer, whatever its version, keeps them right), added by
migration 006, which indexes the rows already there. The query is in ``_fts_search``."""

from __future__ import annotations

import sqlite3


def m006_search(db: sqlite3.Connection) -> None:
    """``messages_fts`` (message text) and ``sessions_fts`` (system prompt, metadata), external
    content tables the triggers below keep equal to their tables; both built from the rows
    already stored."""
    db.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', "
               "content_rowid='id', tokenize='unicode61 remove_diacritics 2')")
    db.execute("CREATE VIRTUAL TABLE sessions_fts USING fts5(system_prompt, metadata, "
               "content='sessions', content_rowid='rowid', "
               "tokenize='unicode61 remove_diacritics 2')")
    for table, columns, when in (("messages", ("content",), "content"),
                                 ("sessions", ("system_prompt", "metadata"),
                                  "system_prompt, metadata")):
        names = ", ".join(columns)
        rowid = "id" if table == "messages" else "rowid"
        new = ", ".join(f"new.{c}" for c in columns)
        old = ", ".join(f"old.{c}" for c in columns)
        delete = (f"INSERT INTO {table}_fts ({table}_fts, rowid, {names}) "
                  f"VALUES ('delete', old.{rowid}, {old});")
        insert = f"INSERT INTO {table}_fts (rowid, {names}) VALUES (new.{rowid}, {new});"
        db.execute(f"CREATE TRIGGER {table}_fts_insert AFTER INSERT ON {table} BEGIN {insert} END")
        db.execute(f"CREATE TRIGGER {table}_fts_delete AFTER DELETE ON {table} BEGIN {delete} END")
        db.execute(f"CREATE TRIGGER {table}_fts_update AFTER UPDATE OF {when} ON {table} "
                   f"BEGIN {delete} {insert} END")
        db.execute(f"INSERT INTO {table}_fts ({table}_fts) VALUES ('rebuild')")

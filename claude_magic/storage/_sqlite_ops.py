"""Rename and re-hash for the SQLite store, each one transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import SessionExists
from ..session import SessionId
from ._fts_search import search
from .base import new_epoch

__all__ = ["rename", "search", "set_hashes"]

if TYPE_CHECKING:
    from ..message import Status
    from .sqlite import SQLiteStorage

_COPIED = ("system_prompt, metadata, settings, created_at, updated_at, message_count, turns, "
           "input_tokens, output_tokens, cost_usd, last_model")


def rename(store: SQLiteStorage, old: SessionId, new: SessionId, overwrite: bool) -> None:
    """Move the session row and its messages to the new id in one transaction."""
    with store._transaction() as db:
        store._checked_row(db, old)  # SessionNotFound / DamagedSession first
        if db.execute("SELECT 1 FROM sessions WHERE id = ?", (new,)).fetchone():
            if not overwrite:
                raise SessionExists(str(new))
            db.execute("DELETE FROM sessions WHERE id = ?", (new,))
        db.execute(f"INSERT INTO sessions (id, {_COPIED}) SELECT ?, {_COPIED} FROM sessions "
                   "WHERE id = ?", (new, old))
        db.execute("UPDATE messages SET session_id = ? WHERE session_id = ?", (new, old))
        db.execute("DELETE FROM sessions WHERE id = ?", (old,))
        _new_epoch(db, new)


def set_hashes(store: SQLiteStorage, session_id: SessionId, hashes: Mapping[int, str],
               mark: tuple[int, Status, str | None] | None = None) -> None:
    """Write ``ids.hash`` into the given messages' ``hash`` column (and, with ``mark``, a
    message's status and error) in one transaction."""
    with store._transaction() as db:
        store._checked_row(db, session_id)  # SessionNotFound / DamagedSession first
        db.executemany("UPDATE messages SET hash = ? WHERE session_id = ? AND seq = ?",
                       [(h, session_id, seq) for seq, h in hashes.items()])
        if mark is not None:
            store._mark(db, session_id, *mark)  # the epoch too
        else:
            _new_epoch(db, session_id)


def _new_epoch(db: sqlite3.Connection, session_id: str) -> None:
    """Tell incremental readers that messages changed other than by an append."""
    with contextlib.suppress(sqlite3.OperationalError):  # a store before the epoch column
        db.execute("UPDATE sessions SET epoch = ? WHERE id = ?", (new_epoch(), session_id))

"""The SQLite store's search: an FTS5 query over the tables ``_sqlite_fts`` keeps, messages
ranked by bm25, header hits checked in Python.

The message index is first caught up with the rows appended since the last search (in the
search's own write transaction); a store that cannot write then indexes those rows privately
for this search (a temporary FTS5 table), so every search sees every committed message.

Ranking is bm25 over every match, except for a query that matches more than ``CANDIDATES``
messages (counted without scoring, up to one more): bm25 barely tells so many matches apart,
and scoring them all costs about 1 ms per 1,000, so only the newest ``CANDIDATES`` matches are
ranked (by the same bm25 scores; their snippets are made in Python, as the directory store
makes them). A query with fewer matches is ranked exactly as before."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from ..search import CLOSE, OPEN, Matcher, SearchHit, Term, best, header_hits
from ._sqlite_fts import MARK_AND_TOP, catch_up, index_pending, pending, waiting
from .sqlite import fetch

if TYPE_CHECKING:
    from .sqlite import SQLiteStorage

_SNIPPET_TOKENS = 20
#: The newest matches ranked for a query matching more messages than this.
CANDIDATES = 5_000
#: How many messages match a query, counted up to the second parameter, with no scoring.
_MATCHES = ("(SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? "
            "LIMIT ?))")
#: How long a search waits for another writer before indexing the newer rows privately
#: (a search never waits a writer's whole transaction, as reads in WAL mode never do).
CATCH_UP_WAIT_MS = 200


def fts_query(terms: Sequence[Term]) -> str:
    """The FTS5 query of parsed terms: each a quoted phrase (words are ``\\w`` only), all of
    them required, ``*`` after a prefix."""
    return " ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in terms)


def _ids_clause(column: str, session_ids: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    if session_ids is None:
        return "", ()
    return (f" AND {column} IN (SELECT value FROM json_each(?))",
            (json.dumps(list(session_ids)),))


def search(store: SQLiteStorage, matcher: Matcher, limit: int,
           session_ids: Sequence[str] | None) -> list[SearchHit]:
    """The best ``limit`` hits: messages ranked by FTS5's bm25, headers checked in Python.

    When no message waits past the mark the queries read the index as it is (each its own
    snapshot, as reads were before the mark: a message committed meanwhile is one committed
    after the search). Else the search catches the index up in a write transaction, or, when
    it cannot write, indexes the waiting rows privately in a read transaction."""
    query = fts_query(matcher.terms)
    with store._mutex:
        try:
            upto, top, matches = fetch(store._db, f"SELECT {MARK_AND_TOP}, {_MATCHES}",
                                       (query, CANDIDATES + 1))[0]
            if waiting(upto, top) is None:
                return _hits(store._db, matcher, query, limit, session_ids,
                             matches > CANDIDATES, None)
        except sqlite3.Error as exc:
            raise store._error(exc) from None
        if store.read_only is None:
            found = _caught_up(store, matcher, query, limit, session_ids)
            if found is not None:
                return found
        with store._transaction("BEGIN") as db:
            return _hits(db, matcher, query, limit, session_ids, None, pending(db))


def _caught_up(store: SQLiteStorage, matcher: Matcher, query: str, limit: int,
               session_ids: Sequence[str] | None) -> list[SearchHit] | None:
    """The hits after indexing the waiting rows in a write transaction; None when the store
    cannot write now (busy past ``CATCH_UP_WAIT_MS``, full, read-only)."""
    waits = store._db.execute("PRAGMA busy_timeout").fetchone()[0]
    store._db.execute(f"PRAGMA busy_timeout = {CATCH_UP_WAIT_MS}")
    try:
        with store._transaction() as db:
            catch_up(db)
            return _hits(db, matcher, query, limit, session_ids, None, None)
    except StorageError:
        return None
    finally:
        store._db.execute(f"PRAGMA busy_timeout = {int(waits)}")


def _hits(db: sqlite3.Connection, matcher: Matcher, query: str, limit: int,
          session_ids: Sequence[str] | None, common: bool | None,
          upto: int | None) -> list[SearchHit]:
    """Message hits from the index (and from rows past ``upto``, indexed privately, when it
    is given) and header hits. ``common``: whether the query matches more than
    ``CANDIDATES`` indexed messages (None: count them here)."""
    if common is None:
        common = fetch(db, f"SELECT {_MATCHES}", (query, CANDIDATES + 1))[0][0] > CANDIDATES
    if common:
        hits = _newest_ranked(db, matcher, query, limit, session_ids)
    else:
        hits = _ranked(db, "messages_fts", query, limit, session_ids)
    if upto is not None:
        index_pending(db, upto)
        hits += _ranked(db, "pending_fts", query, limit, session_ids)
    return best(hits + _header_hits(db, matcher, query, limit, session_ids), limit)


def _ranked(db: sqlite3.Connection, table: str, query: str, limit: int,
            session_ids: Sequence[str] | None) -> list[SearchHit]:
    """The best ``limit`` matches in ``table`` by bm25, with FTS5's snippets."""
    where, extra = _ids_clause("m.session_id", session_ids)
    snippet = f"snippet({table}, 0, '{OPEN}', '{CLOSE}', '…', {_SNIPPET_TOKENS})"
    rows = fetch(db, f"SELECT m.session_id, m.seq, m.role, {snippet}, -bm25({table}) "
                     f"FROM {table} JOIN messages m ON m.id = {table}.rowid "
                     f"WHERE {table} MATCH ?{where} ORDER BY rank LIMIT ?",
                 (query, *extra, limit))
    return [SearchHit(str(r[0]), r[1], r[2], r[3], float(r[4])) for r in rows]


def _newest_ranked(db: sqlite3.Connection, matcher: Matcher, query: str, limit: int,
                   session_ids: Sequence[str] | None) -> list[SearchHit]:
    """The best ``limit`` by bm25 among the newest ``CANDIDATES`` matches (FTS5 yields
    matches by rowid without scoring them all); snippets made in Python for those only."""
    where, extra = _ids_clause("m.session_id", session_ids)
    rows = fetch(db, "SELECT m.session_id, m.seq, m.role, m.content, -newest.score FROM "
                     "(SELECT messages_fts.rowid AS id, bm25(messages_fts) AS score "
                     "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                     f"WHERE messages_fts MATCH ?{where} ORDER BY messages_fts.rowid DESC "
                     "LIMIT ?) AS newest JOIN messages m ON m.id = newest.id "
                     "ORDER BY newest.score, m.session_id, m.seq LIMIT ?",
                 (query, *extra, CANDIDATES, limit))
    return [SearchHit(str(r[0]), r[1], r[2], matcher.snippet(_text(r[3])), float(r[4]))
            for r in rows]


def _text(value: Any) -> str:
    """Message text as read (bytes that are not UTF-8 escaped rather than failing)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _header_hits(db: sqlite3.Connection, matcher: Matcher, query: str, limit: int,
                 session_ids: Sequence[str] | None) -> list[SearchHit]:
    """Hits in system prompts and metadata values (FTS5 finds the sessions, Python the
    values and snippets)."""
    where, extra = _ids_clause("s.id", session_ids)
    hits = []
    for sid, prompt, metadata, score in fetch(
            db, "SELECT s.id, s.system_prompt, s.metadata, -bm25(sessions_fts) "
            "FROM sessions_fts JOIN sessions s ON s.rowid = sessions_fts.rowid "
            f"WHERE sessions_fts MATCH ? AND s.readable{where} ORDER BY rank LIMIT ?",
            (query, *extra, limit)):
        try:
            meta = json.loads(metadata)
        except (TypeError, ValueError):
            meta = {}
        hits += [SearchHit(h.session_id, None, h.role, h.snippet, float(score))
                 for h in header_hits(matcher, str(sid), prompt, meta)]
    return hits

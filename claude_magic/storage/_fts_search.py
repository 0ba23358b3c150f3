"""The SQLite store's search: an FTS5 query over the tables ``_sqlite_fts`` keeps, messages
ranked by bm25, header hits checked in Python.

The message index is first caught up with the rows appended since the last search (in the
search's own write transaction); a store that cannot write then indexes those rows privately
for this search (a temporary FTS5 table), so every search sees every committed message.

Ranking is bm25 over every match, except for a query whose rarest term is in more than
``CANDIDATES`` messages (FTS5's ``fts5vocab`` gives those counts without a scan): bm25 barely
tells such matches apart, and scoring them all costs about 1 ms per 1,000, so only the
newest ``CANDIDATES`` matches are ranked (by the same bm25 scores)."""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from ..search import CLOSE, OPEN, Matcher, SearchHit, Term, best, header_hits
from ._sqlite_fts import catch_up, index_pending, pending
from .sqlite import fetch

if TYPE_CHECKING:
    from .sqlite import SQLiteStorage

_SNIPPET_TOKENS = 20
#: The newest matches ranked for a query whose every term is in more messages than this.
CANDIDATES = 5_000


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
    """The best ``limit`` hits: messages ranked by FTS5's bm25, headers checked in Python."""
    with store._mutex:
        if store.read_only is None:
            with store._transaction("BEGIN") as db:  # nothing to index: one read snapshot
                if pending(db) is None:
                    return _hits(db, matcher, limit, session_ids, None)
            try:
                with store._transaction() as db:
                    catch_up(db)
                    return _hits(db, matcher, limit, session_ids, None)
            except StorageError:  # cannot write now (busy, full, read-only): index privately
                pass
        with store._transaction("BEGIN") as db:
            return _hits(db, matcher, limit, session_ids, pending(db))


def _hits(db: sqlite3.Connection, matcher: Matcher, limit: int,
          session_ids: Sequence[str] | None, upto: int | None) -> list[SearchHit]:
    """Message hits from the index (and from rows past ``upto``, indexed privately, when it
    is given) and header hits, in the caller's transaction."""
    query = fts_query(matcher.terms)
    rows = _messages(db, "messages_fts", query, limit, session_ids,
                     _common(db, matcher.terms))
    if upto is not None:
        index_pending(db, upto)
        rows += _messages(db, "pending_fts", query, limit, session_ids, False)
    hits = [SearchHit(str(r[0]), r[1], r[2], r[3], float(r[4])) for r in rows]
    return best(hits + _header_hits(db, matcher, query, limit, session_ids), limit)


def _messages(db: sqlite3.Connection, table: str, query: str, limit: int,
              session_ids: Sequence[str] | None, newest_only: bool) -> list[Any]:
    """(session id, seq, role, snippet, score) of the best ``limit`` matches in ``table``;
    among the newest ``CANDIDATES`` matches only when ``newest_only``."""
    where, extra = _ids_clause("m.session_id", session_ids)
    snippet = f"snippet({table}, 0, '{OPEN}', '{CLOSE}', '…', {_SNIPPET_TOKENS})"
    if not newest_only:
        return fetch(db, f"SELECT m.session_id, m.seq, m.role, {snippet}, -bm25({table}) "
                     f"FROM {table} JOIN messages m ON m.id = {table}.rowid "
                     f"WHERE {table} MATCH ?{where} ORDER BY rank LIMIT ?",
                     (query, *extra, limit))
    join = f" JOIN messages m ON m.id = {table}.rowid" if session_ids is not None else ""
    return fetch(
        db, f"WITH newest AS (SELECT {table}.rowid AS id, bm25({table}) AS score "
        f"FROM {table}{join} WHERE {table} MATCH ?1{where.replace('?', '?2')} "
        f"ORDER BY {table}.rowid DESC LIMIT {CANDIDATES}), "
        "top AS (SELECT id, score FROM newest ORDER BY score LIMIT ?3) "
        f"SELECT m.session_id, m.seq, m.role, {snippet}, -top.score FROM top "
        f"JOIN {table} ON {table}.rowid = top.id JOIN messages m ON m.id = top.id "
        f"WHERE {table} MATCH ?1 ORDER BY top.score",
        (query, extra[0] if extra else None, limit))


def _common(db: sqlite3.Connection, terms: Sequence[Term]) -> bool:
    """Whether every term is in more than ``CANDIDATES`` indexed messages (an upper bound
    from ``fts5vocab``: a phrase is in no more messages than its rarest word)."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.messages_vocab "
               "USING fts5vocab(main, messages_fts, row)")
    for term in terms:
        counts = []
        for n, word in enumerate(term.words):
            token = _token(word)
            if term.prefix and n == len(term.words) - 1:
                found = db.execute("SELECT sum(doc) FROM temp.messages_vocab "
                                   "WHERE term >= ? AND term <= ?",
                                   (token, token + "\U0010ffff")).fetchone()[0]
            else:
                found = db.execute("SELECT doc FROM temp.messages_vocab WHERE term = ?",
                                   (token,)).fetchone()
                found = found and found[0]
            counts.append(found or 0)
        if min(counts, default=0) <= CANDIDATES:
            return False
    return True


def _token(word: str) -> str:
    """A query word as the index's tokenizer stores it (lower case, no diacritics)."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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

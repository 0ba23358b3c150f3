"""The SQLite store's search: an FTS5 query over the tables ``_sqlite_fts`` keeps, messages
ranked by bm25, header hits checked in Python."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..search import CLOSE, OPEN, Matcher, SearchHit, Term, best, header_hits

if TYPE_CHECKING:
    from .sqlite import SQLiteStorage

_SNIPPET_TOKENS = 20


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
    query = fts_query(matcher.terms)
    where, extra = _ids_clause("m.session_id", session_ids)
    rows = store._read(
        f"SELECT m.session_id, m.seq, m.role, snippet(messages_fts, 0, '{OPEN}', '{CLOSE}', "
        f"'…', {_SNIPPET_TOKENS}), -bm25(messages_fts) FROM messages_fts "
        "JOIN messages m ON m.id = messages_fts.rowid "
        f"WHERE messages_fts MATCH ?{where} ORDER BY rank LIMIT ?", (query, *extra, limit))
    hits = [SearchHit(str(r[0]), r[1], r[2], r[3], float(r[4])) for r in rows]
    where, extra = _ids_clause("s.id", session_ids)
    for sid, prompt, metadata, score in store._read(
            "SELECT s.id, s.system_prompt, s.metadata, -bm25(sessions_fts) FROM sessions_fts "
            "JOIN sessions s ON s.rowid = sessions_fts.rowid "
            f"WHERE sessions_fts MATCH ? AND s.readable{where} ORDER BY rank LIMIT ?",
            (query, *extra, limit)):
        try:
            meta = json.loads(metadata)
        except (TypeError, ValueError):
            meta = {}
        hits += [SearchHit(h.session_id, None, h.role, h.snippet, float(score))
                 for h in header_hits(matcher, str(sid), prompt, meta)]
    return best(hits, limit)

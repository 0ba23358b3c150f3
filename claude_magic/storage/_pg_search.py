"""Full-text search, rename and re-hashing for the PostgreSQL store.

Migration 004 adds a generated ``tsvector`` column to messages (their text) and sessions
(system prompt and metadata), each with a GIN index; PostgreSQL fills them for the rows
already stored and keeps them right on every write. The ``simple`` configuration (lower
case, no stemming) matches words as the other stores do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import SessionExists, StorageError
from ..search import Matcher, SearchHit, Term, best, header_hits
from . import _pg_text as text
from ._pg_names import SCHEMA

if TYPE_CHECKING:
    import psycopg

_S = f"{SCHEMA}.sessions"
_M = f"{SCHEMA}.messages"
_COPIED = ("owner, owner_role, visibility, system_prompt, metadata_json, settings_json, "
           "created_at, updated_at, message_count, turns, input_tokens, output_tokens, "
           "cost_usd, last_model")


def m005_search(cur: psycopg.Cursor[Any]) -> None:
    cur.execute(f"ALTER TABLE {_M} ADD COLUMN search tsvector GENERATED ALWAYS AS "
                "(to_tsvector('simple'::regconfig, content)) STORED")
    cur.execute(f"CREATE INDEX messages_search ON {_M} USING gin (search)")
    cur.execute(f"ALTER TABLE {_S} ADD COLUMN search tsvector GENERATED ALWAYS AS "
                "(to_tsvector('simple'::regconfig, coalesce(system_prompt, '') || ' ' || "
                "metadata_json::text)) STORED")
    cur.execute(f"CREATE INDEX sessions_search ON {_S} USING gin (search)")


def tsquery(terms: Sequence[Term]) -> str:
    """The ``to_tsquery`` text of parsed terms: phrases as ``<->``, prefixes as ``:*``,
    every term required (words are ``\\w`` only, quoted as lexemes)."""
    parts = []
    for term in terms:
        words = [f"'{w}'" for w in term.words]
        if term.prefix:
            words[-1] += ":*"
        parts.append("(" + " <-> ".join(words) + ")")
    return " & ".join(parts)


def search(cur: psycopg.Cursor[Any], matcher: Matcher, limit: int,
           session_ids: Sequence[str] | None, message_ok: str) -> list[SearchHit]:
    """The best ``limit`` hits the role may read (row-level security applies), in messages
    that pass ``message_ok`` (SQL) of readable sessions: never a damaged row."""
    query = tsquery(matcher.terms)
    only = "" if session_ids is None else " AND session_id = ANY(%s)"
    extra: tuple[Any, ...] = () if session_ids is None else (list(session_ids),)
    cur.execute(f"SELECT session_id, seq, role, content, ts_rank(search, q) AS r "
                f"FROM {_M} m, to_tsquery('simple', %s) q WHERE search @@ q{only} "
                f"AND {message_ok} AND EXISTS (SELECT 1 FROM {_S} s "
                "WHERE s.id = m.session_id AND s.readable) "
                "ORDER BY r DESC, session_id, seq LIMIT %s", (query, *extra, limit))
    hits = []
    for sid, seq, role, content, rank in cur.fetchall():
        body = text.dec(content) or ""
        hits.append(SearchHit(sid, seq, role, matcher.snippet(body), float(rank)))
    only = "" if session_ids is None else " AND id = ANY(%s)"
    cur.execute(f"SELECT id, system_prompt, metadata_json::text, ts_rank(search, q) AS r "
                f"FROM {_S}, to_tsquery('simple', %s) q WHERE search @@ q AND readable{only} "
                "ORDER BY r DESC, id LIMIT %s", (query, *extra, limit))
    for sid, prompt, metadata, rank in cur.fetchall():
        try:
            meta = text.loads(metadata)
        except (TypeError, ValueError):
            meta = {}
        hits += [SearchHit(h.session_id, None, h.role, h.snippet, float(rank))
                 for h in header_hits(matcher, sid, text.dec(prompt), meta)]
    return best(hits, limit)


def free_id(cur: psycopg.Cursor[Any], session_id: str, overwrite: bool) -> None:
    """Make ``session_id`` free for a new row in the caller's transaction: a row there is
    ``SessionExists`` unless ``overwrite``, another member's is ``StorageError``, this
    role's own is deleted."""
    cur.execute(f"SELECT owner_role = current_user, owner FROM {_S} WHERE id = %s",
                (session_id,))
    found = cur.fetchone()
    if found is not None and not overwrite:
        raise SessionExists(str(session_id))
    if found is not None and not found[0]:
        raise StorageError(f"session {str(session_id)!r} belongs to {text.dec(found[1])}; "
                           "pick another id")
    cur.execute(f"DELETE FROM {_S} WHERE id = %s", (session_id,))


@contextlib.contextmanager
def new_row(cur: psycopg.Cursor[Any], session_id: str) -> Iterator[None]:
    """A savepoint around inserting the row ``session_id``: an id taken by another member's
    private session (which stays invisible here) is ``SessionExists``."""
    import psycopg

    try:
        with cur.connection.transaction():
            yield
    except psycopg.errors.UniqueViolation:
        raise SessionExists(str(session_id)) from None


def rename(cur: psycopg.Cursor[Any], old: str, new: str, overwrite: bool) -> None:
    """Move a locked, owned session row and its messages to ``new`` (one transaction)."""
    free_id(cur, new, overwrite)
    with new_row(cur, new):
        cur.execute(f"INSERT INTO {_S} (id, {_COPIED}) SELECT %s, {_COPIED} FROM {_S} "
                    "WHERE id = %s", (new, old))
    cur.execute(f"UPDATE {_M} SET session_id = %s WHERE session_id = %s", (new, old))
    cur.execute(f"DELETE FROM {_S} WHERE id = %s", (old,))


def set_hashes(cur: psycopg.Cursor[Any], session_id: str, hashes: Mapping[int, str],
               mark: tuple[int, str, str | None] | None = None) -> None:
    """Write chain hashes (and, with ``mark``, a message's status and error) in the caller's
    transaction, the session row already locked."""
    if mark is not None:
        cur.execute(f"UPDATE {_M} SET status = %s, error = %s WHERE session_id = %s AND seq = %s",
                    (mark[1], text.enc(mark[2]), session_id, mark[0]))
        if not cur.rowcount:
            raise IndexError(f"session {str(session_id)!r} has no message {mark[0]}")
    if not hashes:
        return
    cur.executemany(f"UPDATE {_M} SET ids = (ids::jsonb || "
                    "jsonb_build_object('hash', %s::text))::json "
                    "WHERE session_id = %s AND seq = %s",
                    [(h, session_id, seq) for seq, h in hashes.items()])

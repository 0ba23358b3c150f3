"""The directory store's search index: SQLite tables of each session's texts and their words.

``sessions`` holds each indexed session with the identity of its two files when they were
read (inode, size, mtime_ns, ctime_ns) and whether that identity can be trusted (files older
than the trust margin); ``docs`` holds the texts (system prompt, metadata values, messages)
with what :meth:`Matcher.score` divides by; ``postings`` holds, per word key, each text's
count, its score for a one-word query (``nw``) and whether a loose word is among them. The
caller (``_dir_search``) keeps it current; this module stores and answers queries.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..search import Matcher, SearchHit
from ._search_words import Part, norm_of, plan, word_counts

FORMAT = "claude-magic/search-index"
VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sessions (sno INTEGER PRIMARY KEY, sid TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL, trusted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY, sno INTEGER NOT NULL,
    ord INTEGER NOT NULL, seq INTEGER, role TEXT NOT NULL, norm REAL NOT NULL,
    text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS docs_sno ON docs (sno);
CREATE TABLE IF NOT EXISTS postings (word TEXT NOT NULL, nw REAL NOT NULL, doc INTEGER NOT NULL,
    count INTEGER NOT NULL, loose INTEGER NOT NULL, PRIMARY KEY (word, nw, doc)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_doc ON postings (doc);
"""
TABLES = ("meta", "sessions", "docs", "postings")

#: A text of a session: (seq or None, role, text), in the order ties are broken.
Doc = tuple["int | None", str, str]
#: A scored text before its snippet: (score, session id, ord, doc).
Scored = tuple[float, str, int, int]


def prepare(conn: sqlite3.Connection) -> None:
    """Create the tables, or empty them when they hold another format or version."""
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: a first build writes ~1M rows
    conn.executescript(SCHEMA)
    stamp = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if stamp != {"format": FORMAT, "version": str(VERSION)}:
        with conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             (("format", FORMAT), ("version", str(VERSION))))


class SearchIndex:
    """Sessions' texts and words in one SQLite connection (a file, or memory)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._known: dict[str, tuple[int, str, bool]] = {}  # sid -> (sno, key, trusted)
        self._version: int | None = None  # PRAGMA data_version when _known was read
        self._grown = False  # many sessions were written in this transaction

    def close(self) -> None:
        self.conn.close()

    def refresh(self) -> bool:
        """Read the indexed sessions again if another connection changed the index since
        they were read (or they never were); whether it did."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return False
        self._known = {sid: (sno, key, bool(trusted)) for sno, sid, key, trusted in
                       self.conn.execute("SELECT sno, sid, key, trusted FROM sessions")}
        self._version = version
        return True

    def known(self) -> dict[str, tuple[int, str, bool]]:
        """Every indexed session: id -> (number, files' identity, trusted)."""
        self.refresh()
        return self._known

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the index's write lock: what is read, updated and searched inside is one
        consistent state (another process's search waits, up to the busy timeout)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            self._version = None
            raise
        self.conn.execute("COMMIT")
        if self._grown:  # a first build: give the WAL's space back
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._grown = False

    def update(self, fresh: dict[str, tuple[str, bool, list[Doc]]], gone: Iterable[str]) -> None:
        """Replace the given sessions (id -> (identity, trusted, texts)) and drop ``gone``
        (inside :meth:`transaction`)."""
        known = self.known()
        for sid in [*gone, *fresh]:
            entry = known.pop(sid, None)
            if entry is not None:
                _drop(self.conn, entry[0])
        self._grown = self._grown or len(fresh) > 100
        for sid, sno in _insert(self.conn, fresh).items():
            known[sid] = (sno, *fresh[sid][:2])

    def search(self, matcher: Matcher, limit: int,
               session_ids: Sequence[str] | None) -> list[SearchHit]:
        """The ``limit`` best hits, as the Matcher would rank them."""
        names = {sno: sid for sid, (sno, _, _) in self.known().items()}
        parts = plan(matcher)
        if parts is None:
            scored = self._scan(matcher, names, session_ids)
        elif len(parts) == 1 and parts[0].counted and not parts[0].prefix and session_ids is None:
            scored = self._best_of_word(matcher, parts[0].key, names, limit)
        else:
            scored = self._joined(matcher, parts, names, session_ids)
        scored.sort(key=lambda s: (-s[0], s[1], s[2]))
        return self._hits(matcher, scored[:limit])

    # --- the three ways to score ----------------------------------------------------------

    def _best_of_word(self, matcher: Matcher, key: str, names: dict[int, str],
                      limit: int) -> list[Scored]:
        """One word: its texts best first from the index, read until ``limit`` scores are
        above what the rest can reach (a tie with the last one is read too)."""
        rows = self.conn.execute(
            "SELECT p.nw, p.doc, p.loose, d.sno, d.ord FROM postings p JOIN docs d "
            "ON d.doc = p.doc WHERE p.word = ? ORDER BY p.nw DESC", (key,))
        scored: list[Scored] = []
        above: list[float] = []  # scores found so far, ascending
        for nw, doc, loose, sno, ord_ in rows:
            if len(above) - bisect.bisect_right(above, nw) >= limit:
                break  # limit scores beat anything from here on (a loose nw is an upper bound)
            score = self._verified(matcher, doc) if loose else nw
            if score and sno in names:
                scored.append((score, names[sno], ord_, doc))
                bisect.insort(above, score)
        rows.close()
        return scored

    def _joined(self, matcher: Matcher, parts: list[Part], names: dict[int, str],
                session_ids: Sequence[str] | None) -> list[Scored]:
        """Texts holding every part, found from the part (or the sessions asked for) with
        the fewest texts: scored from the counts when each term is one word and no word is
        loose, else checked with the Matcher."""
        sql, args = self._joined_sql(parts, session_ids)
        counted = [p.counted for p in parts]
        exact = all(counted)
        scored: list[Scored] = []
        for doc, sno, ord_, norm, *packed in self.conn.execute(sql, args):
            if sno not in names or None in packed:
                continue
            loose = any(x & 1 for x in packed)
            if exact and not loose:
                score = sum(x >> 1 for x in packed) / norm
            else:
                score = self._verified(matcher, doc)
            if score:
                scored.append((score, names[sno], ord_, doc))
        return scored

    def _joined_sql(self, parts: list[Part], session_ids: Sequence[str] | None
                    ) -> tuple[str, tuple[Any, ...]]:
        """SELECT doc, sno, ord, norm, then per part 2 x its count + any loose (NULL when
        the text lacks it)."""
        conds = [_condition(part) for part in parts]
        sizes = [self._size(f"SELECT 1 FROM postings WHERE {cond}", args)
                 for cond, args in conds]
        where, ids = _ids_where(session_ids)
        if ids and self._size(f"SELECT 1 FROM docs d WHERE 1{where}", ids) < min(sizes):
            driver, driver_args = f"SELECT doc FROM docs d WHERE 1{where}", ids
        else:
            cond, driver_args = conds[sizes.index(min(sizes))]
            driver = f"SELECT DISTINCT doc FROM postings WHERE {cond}"
        columns = ", ".join(f"(SELECT SUM(count) * 2 + MAX(loose) FROM postings "
                            f"WHERE doc = d.doc AND {cond})" for cond, _ in conds)
        args = [a for _, cond_args in conds for a in cond_args]
        sql = (f"SELECT d.doc, d.sno, d.ord, d.norm, {columns} FROM ({driver}) k "
               f"JOIN docs d ON d.doc = k.doc WHERE 1{where}")
        return sql, (*args, *driver_args, *ids)

    def _size(self, sql: str, args: Sequence[Any], cap: int = 20_000) -> int:
        """How many rows ``sql`` returns, counted up to ``cap``."""
        return self.conn.execute(f"SELECT count(*) FROM ({sql} LIMIT {cap})", args).fetchone()[0]

    def _scan(self, matcher: Matcher, names: dict[int, str],
              session_ids: Sequence[str] | None) -> list[Scored]:
        """Every text checked with the Matcher (a query the word keys cannot answer)."""
        where, args = _ids_where(session_ids)
        scored: list[Scored] = []
        for doc, sno, ord_, text in self.conn.execute(
                f"SELECT doc, sno, ord, text FROM docs d WHERE 1{where}", args):
            score = matcher.score(text) if sno in names else 0.0
            if score:
                scored.append((score, names[sno], ord_, doc))
        return scored

    def _verified(self, matcher: Matcher, doc: int) -> float:
        row = self.conn.execute("SELECT text FROM docs WHERE doc = ?", (doc,)).fetchone()
        return matcher.score(row[0]) if row is not None else 0.0

    def _hits(self, matcher: Matcher, top: list[Scored]) -> list[SearchHit]:
        hits = []
        for score, sid, _, doc in top:
            seq, role, text = self.conn.execute(
                "SELECT seq, role, text FROM docs WHERE doc = ?", (doc,)).fetchone()
            hits.append(SearchHit(sid, seq, role, matcher.snippet(text), score))
        return hits


def _drop(conn: sqlite3.Connection, sno: int) -> None:
    conn.execute("DELETE FROM postings WHERE doc IN (SELECT doc FROM docs WHERE sno = ?)", (sno,))
    conn.execute("DELETE FROM docs WHERE sno = ?", (sno,))
    conn.execute("DELETE FROM sessions WHERE sno = ?", (sno,))


def _insert(conn: sqlite3.Connection, fresh: dict[str, tuple[str, bool, list[Doc]]]
            ) -> dict[str, int]:
    """Insert sessions with their texts and words; their numbers by id."""
    sno, doc = conn.execute("SELECT (SELECT COALESCE(MAX(sno), 0) FROM sessions), "
                            "(SELECT COALESCE(MAX(doc), 0) FROM docs)").fetchone()
    numbers: dict[str, int] = {}
    sessions, docs, postings = [], [], []
    for sid, (key, trusted, texts) in fresh.items():
        sno += 1
        numbers[sid] = sno
        sessions.append((sno, sid, key, int(trusted)))
        for ord_, (seq, role, text) in enumerate(texts):
            if not text:
                continue
            doc += 1
            norm = norm_of(text)
            docs.append((doc, sno, ord_, seq, role, norm, text))
            postings += [(word, count / norm, doc, count, loose)
                         for word, (count, loose) in word_counts(text).items()]
        if len(postings) > 200_000:
            _write(conn, sessions, docs, postings)
    _write(conn, sessions, docs, postings)
    return numbers


def _write(conn: sqlite3.Connection, *batches: list[tuple[Any, ...]]) -> None:
    """Insert and empty batches of sessions, docs and postings rows."""
    batches[2].sort()  # in key order: B-tree pages are filled one after another
    for table, rows in zip(("sessions", "docs", "postings"), batches, strict=True):
        if rows:
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})",
                             rows)
            rows.clear()


def _ids_where(session_ids: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    if session_ids is None:
        return "", ()
    return (" AND d.sno IN (SELECT sno FROM sessions WHERE sid IN "
            "(SELECT value FROM json_each(?)))", (json.dumps(list(session_ids)),))


def _condition(part: Part) -> tuple[str, tuple[str, ...]]:
    if part.prefix:
        return "word >= ? AND word < ?", part.bounds()
    return "word = ?", (part.key,)

"""The directory store's search index: SQLite tables of each session's texts and their words.

``sessions`` holds each indexed session with the identity of its two files when they were
read (inode, size, mtime_ns, ctime_ns), whether that identity can be trusted (files older
than the trust margin), a digest of their bytes (a file read again unchanged is not indexed
again) and its word keys; ``docs`` holds its texts (system prompt, metadata
values, messages, numbered ``ord`` in the order ties are broken) with what
:meth:`Matcher.score` divides by; ``postings`` holds, per word key and session, each text's
count (``hits``: "ord count ord count ..."), the best one-word score among them and whether a
loose word is among them. One row per word and session, not per text, keeps the file small
and a first build short. The caller (``_dir_search``) keeps it current.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..search import Matcher, SearchHit, norm_of
from ._search_words import Part, plan, word_counts

FORMAT = "claude-magic/search-index"
VERSION = 3
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE sessions (sno INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL, trusted INTEGER NOT NULL, digest TEXT NOT NULL, words TEXT NOT NULL);
CREATE TABLE docs (sno INTEGER NOT NULL, ord INTEGER NOT NULL, seq INTEGER, role TEXT NOT NULL,
    norm REAL NOT NULL, text TEXT NOT NULL, PRIMARY KEY (sno, ord)) WITHOUT ROWID;
CREATE TABLE postings (word TEXT NOT NULL, sno INTEGER NOT NULL, best REAL NOT NULL,
    hits TEXT NOT NULL, loose INTEGER NOT NULL, PRIMARY KEY (word, sno)) WITHOUT ROWID;
CREATE INDEX postings_best ON postings (word, best);
"""
TABLES = ("meta", "sessions", "docs", "postings")

#: A text of a session: (seq or None, role, text), in the order ties are broken.
Doc = tuple["int | None", str, str]
#: An indexed session: number, files' identity, trusted, digest of their bytes.
Known = tuple[int, str, bool, str]
#: A session to index: files' identity, trusted, digest of their bytes, texts.
Fresh = tuple[str, bool, str, list[Doc]]
#: A scored text before its snippet: (score, session id, ord, session number).
Scored = tuple[float, str, int, int]
#: A session's texts holding a word: ord -> count, and whether a loose word is among them.
Found = tuple[dict[int, int], bool]


def prepare(conn: sqlite3.Connection) -> None:
    """Create the tables, or create them again when they hold another format or version."""
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: a first build writes many rows
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                         " AND name <> 'sqlite_sequence'")}
    stamp = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    if stamp == {"format": FORMAT, "version": str(VERSION)}:
        return
    with conn:
        for table in tables & set(TABLES):
            conn.execute(f"DROP TABLE {table}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                         (("format", FORMAT), ("version", str(VERSION))))


class SearchIndex:
    """Sessions' texts and words in one SQLite connection (a file, or memory)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._known: dict[str, Known] = {}
        self._names: dict[int, str] | None = None  # sno -> sid
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
        self._known = {sid: (sno, key, bool(trusted), digest) for sno, sid, key, trusted, digest
                       in self.conn.execute("SELECT sno, sid, key, trusted, digest FROM sessions")}
        self._names = None
        self._version = version
        return True

    def known(self) -> dict[str, Known]:
        """Every indexed session by id."""
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

    def update(self, fresh: dict[str, Fresh], gone: Iterable[str],
               touched: dict[str, tuple[str, bool]]) -> None:
        """Replace the ``fresh`` sessions, drop ``gone``, and give ``touched`` ones (read
        again, same bytes) their files' new identity and trust (inside :meth:`transaction`)."""
        known = self.known()
        for sid, (key, trusted) in touched.items():
            sno, _, _, digest = known[sid]
            self.conn.execute("UPDATE sessions SET key = ?, trusted = ? WHERE sno = ?",
                              (key, int(trusted), sno))
            known[sid] = (sno, key, trusted, digest)
        for sid in [*gone, *fresh]:
            entry = known.pop(sid, None)
            if entry is not None:
                _drop(self.conn, entry[0])
        self._grown = self._grown or len(fresh) > 100
        for sid, sno in _insert(self.conn, fresh).items():
            known[sid] = (sno, *fresh[sid][:3])
        self._names = None

    def search(self, matcher: Matcher, limit: int,
               session_ids: Sequence[str] | None) -> list[SearchHit]:
        """The ``limit`` best hits, as the Matcher would rank them."""
        if self._names is None:
            self._names = {entry[0]: sid for sid, entry in self.known().items()}
        names = self._names
        if session_ids is not None:
            wanted = set(session_ids)
            names = {sno: sid for sno, sid in names.items() if sid in wanted}
        parts = plan(matcher)
        if parts is None:
            scored = self._scan(matcher, names)
        elif (len(parts) == 1 and parts[0].counted and not parts[0].prefix
              and session_ids is None):
            scored = self._best_of_word(matcher, parts[0].key, names, limit)
        else:
            scored = self._joined(matcher, parts, names)
        scored.sort(key=lambda s: (-s[0], s[1], s[2]))
        return self._hits(matcher, scored[:limit])

    # --- the three ways to score ----------------------------------------------------------

    def _best_of_word(self, matcher: Matcher, key: str, names: dict[int, str],
                      limit: int) -> list[Scored]:
        """One word: its sessions by their best text (an upper bound when loose), read
        until ``limit`` sessions beat the rest; then their texts, best sessions first,
        until ``limit`` hits rank before anything the next session holds."""
        rows = self.conn.execute("SELECT sno, best, hits, loose FROM postings WHERE word = ? "
                                 "ORDER BY best DESC", (key,))
        sessions: list[tuple[float, str, int, str, int]] = []
        exact, last = 0, None  # sessions read whose best is a text's score, the last best
        for sno, best, hits, loose in rows:
            if best != last:
                if exact >= limit:
                    break  # that many texts score above the rest
                last = best
            if sno in names:
                sessions.append((best, names[sno], sno, hits, loose))
                exact += not loose
        rows.close()
        sessions.sort(key=lambda s: (-s[0], s[1]))
        scored: list[Scored] = []
        ranks: list[tuple[float, str]] = []  # (-score, session id) of the hits so far, sorted
        for best, sid, sno, hits, loose in sessions:
            if bisect.bisect_left(ranks, (-best, sid)) >= limit:
                break
            found = self._scored(matcher, sno, sid, [(_parse(hits), bool(loose))], True)
            for score in found:
                bisect.insort(ranks, (-score[0], sid))
            scored += found
        return scored

    def _joined(self, matcher: Matcher, parts: list[Part], names: dict[int, str]
                ) -> list[Scored]:
        """Texts holding every part, from the part (or the sessions asked for) with the
        fewest sessions."""
        words = [self._vocabulary(part) for part in parts]
        if not all(words):
            return []
        sizes = [self._size(ws) for ws in words]
        first = sizes.index(min(sizes))
        if len(names) <= sizes[first] and len(names) < len(self._known):
            candidates: dict[int, Found | None] = dict.fromkeys(names)
        else:
            candidates = {sno: found for sno, found in self._found(words[first]).items()
                          if sno in names}
        exact = all(part.counted for part in parts)
        scored: list[Scored] = []
        for sno, prefetched in candidates.items():
            each = []
            for i, ws in enumerate(words):
                found = prefetched if i == first and prefetched else self._found(ws, sno).get(sno)
                if found is None:
                    break
                each.append(found)
            else:
                scored += self._scored(matcher, sno, names[sno], each, exact)
        return scored

    def _scan(self, matcher: Matcher, names: dict[int, str]) -> list[Scored]:
        """Every text checked with the Matcher (a query the word keys cannot answer)."""
        scored: list[Scored] = []
        for sno, ord_, text in self.conn.execute("SELECT sno, ord, text FROM docs"):
            if sno in names:
                score = matcher.score(text)
                if score:
                    scored.append((score, names[sno], ord_, sno))
        return scored

    # --- helpers --------------------------------------------------------------------------

    def _scored(self, matcher: Matcher, sno: int, sid: str, each: list[Found],
                exact: bool) -> list[Scored]:
        """A session's texts holding every part: scored from the counts when ``exact`` and
        no word is loose, else with the Matcher."""
        ords = set(each[0][0]).intersection(*(found[0] for found in each[1:]))
        if not ords:
            return []
        scored: list[Scored] = []
        if exact and not any(found[1] for found in each):
            norms = dict(self.conn.execute("SELECT ord, norm FROM docs WHERE sno = ?", (sno,)))
            for ord_ in ords:
                scored.append((sum(found[0][ord_] for found in each) / norms[ord_], sid, ord_,
                               sno))
            return scored
        for ord_, text in self.conn.execute("SELECT ord, text FROM docs WHERE sno = ?", (sno,)):
            score = matcher.score(text) if ord_ in ords else 0.0
            if score:
                scored.append((score, sid, ord_, sno))
        return scored

    def _vocabulary(self, part: Part) -> list[str]:
        """The word keys a part covers (those in the index, for a prefix)."""
        if not part.prefix:
            return [part.key]
        return [w for (w,) in self.conn.execute(
            "SELECT DISTINCT word FROM postings WHERE word >= ? AND word < ?", part.bounds())]

    def _size(self, words: list[str], cap: int = 20_000) -> int:
        """How many sessions hold these words, counted up to ``cap``."""
        return self.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM postings WHERE word IN "
            f"(SELECT value FROM json_each(?)) LIMIT {cap})", (json.dumps(words),)).fetchone()[0]

    def _found(self, words: list[str], sno: int | None = None) -> dict[int, Found]:
        """Per session (or in session ``sno``), its texts holding any of ``words``."""
        sql = "SELECT sno, hits, loose FROM postings WHERE word IN (SELECT value FROM json_each(?))"
        args: tuple[Any, ...] = (json.dumps(words),)
        if sno is not None:
            sql, args = sql + " AND sno = ?", (*args, sno)
        result: dict[int, Found] = {}
        for row_sno, hits, loose in self.conn.execute(sql, args):
            counts, was_loose = result.get(row_sno, ({}, False))
            for ord_, count in _parse(hits).items():
                counts[ord_] = counts.get(ord_, 0) + count
            result[row_sno] = (counts, was_loose or bool(loose))
        return result

    def _hits(self, matcher: Matcher, top: list[Scored]) -> list[SearchHit]:
        hits = []
        for score, sid, ord_, sno in top:
            seq, role, text = self.conn.execute(
                "SELECT seq, role, text FROM docs WHERE sno = ? AND ord = ?", (sno, ord_)
            ).fetchone()
            hits.append(SearchHit(sid, seq, role, matcher.snippet(text), score))
        return hits


def _parse(hits: str) -> dict[int, int]:
    numbers = list(map(int, hits.split()))
    return dict(zip(numbers[::2], numbers[1::2], strict=True))


def _drop(conn: sqlite3.Connection, sno: int) -> None:
    row = conn.execute("SELECT words FROM sessions WHERE sno = ?", (sno,)).fetchone()
    words = json.loads(row[0]) if row is not None else []
    conn.executemany("DELETE FROM postings WHERE word = ? AND sno = ?", ((w, sno) for w in words))
    conn.execute("DELETE FROM docs WHERE sno = ?", (sno,))
    conn.execute("DELETE FROM sessions WHERE sno = ?", (sno,))


def _insert(conn: sqlite3.Connection, fresh: dict[str, Fresh]) -> dict[str, int]:
    """Insert sessions with their texts and words; their numbers by id."""
    sno = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence "  # never reused
                       "WHERE name = 'sessions'").fetchone()[0]
    numbers: dict[str, int] = {}
    batches: tuple[list[tuple[Any, ...]], ...] = ([], [], [])
    for sid, (key, trusted, digest, texts) in fresh.items():
        sno += 1
        numbers[sid] = sno
        words: dict[str, list[Any]] = {}  # word -> [hits, best, loose]
        for ord_, (seq, role, text) in enumerate(texts):
            if not text:
                continue
            norm = norm_of(text)
            batches[1].append((sno, ord_, seq, role, norm, text))
            for word, (count, loose) in word_counts(text).items():
                entry = words.get(word)
                if entry is None:
                    words[word] = [f"{ord_} {count}", count / norm, loose]
                else:
                    entry[0] += f" {ord_} {count}"
                    entry[1] = max(entry[1], count / norm)
                    entry[2] = entry[2] or loose
        batches[0].append((sno, sid, key, int(trusted), digest, json.dumps(list(words))))
        batches[2].extend((word, sno, best, hits, int(loose))
                          for word, (hits, best, loose) in words.items())
        if len(batches[2]) > 100_000:
            _write(conn, batches)
    _write(conn, batches)
    return numbers


def _write(conn: sqlite3.Connection, batches: tuple[list[tuple[Any, ...]], ...]) -> None:
    """Insert and empty batches of sessions, docs and postings rows."""
    batches[2].sort()  # in key order: B-tree pages are filled one after another
    for table, rows in zip(TABLES[1:], batches, strict=True):
        if rows:
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})",
                             rows)
            rows.clear()

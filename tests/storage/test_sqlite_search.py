"""The SQLite store's search index as a user meets it: appends are indexed by the next search
(up to a high-water mark, migration 007), every search sees every committed message (another
connection's, a reused row id, a read-only file), the index stays exactly equal to the table
(FTS5's own integrity check), and a word in very many messages ranks only the newest
``CANDIDATES`` matches while a rarer query keeps FTS5's bm25 order."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic.errors import DamagedSession
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session
from claude_magic.storage._fts_search import CANDIDATES
from claude_magic.storage._sqlite_fts import _triggers

from . import oslevel
from .oslevel import run_as_nobody

nobody_dir = oslevel.nobody_dir  # fixture


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "s.db"


@pytest.fixture
def manager(path: Path) -> Iterator[SessionManager]:
    with SessionManager(f"sqlite:///{path}") as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def mark_and_top(path: Path) -> tuple[int, int]:
    """``fts_indexed.upto`` and the largest message row id."""
    with raw(path) as db:
        return db.execute("SELECT (SELECT upto FROM fts_indexed), "
                          "(SELECT max(id) FROM messages)").fetchone()


def check_index(path: Path) -> None:
    """FTS5 compares the whole index with the messages table: raises if they differ."""
    db = raw(path)
    try:
        db.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        db.close()


def indexed_hits(path: Path, word: str) -> list[tuple[str, int]]:
    """What the index alone holds for ``word`` (a raw FTS5 query, no catch-up)."""
    with raw(path) as db:
        return db.execute("SELECT m.session_id, m.seq FROM messages_fts JOIN messages m "
                          "ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? "
                          "ORDER BY m.id", (word,)).fetchall()


def test_appends_are_indexed_by_the_next_search(manager: SessionManager, path: Path) -> None:
    manager.create_session("a").build()
    manager.append("a", Message("user", "where is the saffron"))
    manager.append("a", Message("assistant", "saffron is in the pantry"))
    upto, top = mark_and_top(path)
    assert upto < top and indexed_hits(path, "saffron") == []  # the append wrote no index
    assert [h.seq for h in manager.search("saffron")] == [0, 1]  # ... the search caught up
    assert mark_and_top(path) == (top, top)
    assert indexed_hits(path, "saffron") == [("a", 0), ("a", 1)]
    check_index(path)


def test_a_bulk_write_is_indexed_at_once(manager: SessionManager, path: Path) -> None:
    session = Session("imported", messages=[Message("user", f"line {n} of paprika")
                                            for n in range(30)])
    manager.import_session(session)
    upto, top = mark_and_top(path)
    assert upto == top and len(indexed_hits(path, "paprika")) == 30
    check_index(path)


def test_another_connections_appends_are_seen(path: Path) -> None:
    with SessionManager(f"sqlite:///{path}") as first, \
            SessionManager(f"sqlite:///{path}") as second:
        first.create_session("a").build()
        first.append("a", Message("user", "cumin first"))
        assert [h.seq for h in first.search("cumin")] == [0]
        second.append("a", Message("user", "cumin again, from another kernel"))
        second.append("a", Message("user", "and cumin a third time"))
        assert [h.seq for h in sorted(first.search("cumin"), key=lambda h: h.seq)] == [0, 1, 2]
        second.delete("a")
        assert first.search("cumin") == []
    check_index(path)


def test_a_search_does_not_wait_for_another_writer(manager: SessionManager,
                                                   path: Path) -> None:
    manager.create_session("a").build()
    manager.append("a", Message("user", "caraway, not indexed yet"))
    blocker = raw(path)
    blocker.execute("BEGIN IMMEDIATE")  # another process in a long write transaction
    try:
        start = time.monotonic()
        assert [h.seq for h in manager.search("caraway")] == [0]  # indexed privately
        assert time.monotonic() - start < 5  # not the store's 30 s busy timeout
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    upto, top = mark_and_top(path)
    assert upto < top  # it could not write the catch-up
    assert [h.seq for h in manager.search("caraway")] == [0]
    assert mark_and_top(path) == (top, top)
    check_index(path)


def test_a_reused_row_id_is_indexed_by_its_trigger(manager: SessionManager, path: Path) -> None:
    manager.create_session("keep").build()
    manager.append("keep", Message("user", "nutmeg stays"))
    manager.create_session("gone").build()
    for n in range(3):
        manager.append("gone", Message("user", f"clove {n}"))
    assert len(manager.search("clove")) == 3  # indexed: the mark is the newest row
    manager.delete("gone")  # the newest rows go: the next row id is at or below the mark
    manager.append("keep", Message("user", "mace arrives"))
    upto, top = mark_and_top(path)
    assert top <= upto
    assert indexed_hits(path, "mace") == [("keep", 1)]  # indexed by the insert trigger
    assert [h.seq for h in manager.search("mace")] == [1] and manager.search("clove") == []
    check_index(path)


def test_every_write_keeps_the_index_exact(manager: SessionManager, path: Path) -> None:
    manager.create_session("a").with_system_prompt("You cook").build()
    manager.append("a", Message("user", "fennel seeds"))
    manager.search("fennel")
    manager.append("a", Message("assistant", "fennel and anise"))  # past the mark
    manager.mark("a", 1, "error", "cut off")
    manager.rename("a", "b")
    manager.fork("b", "c")
    manager.append("c", Message("user", "anise only"))
    check_index_after = [h.session_id for h in manager.search("anise")]
    assert sorted(check_index_after) == ["b", "c", "c"]
    check_index(path)
    manager.delete("b")
    assert sorted(h.session_id for h in manager.search("fennel")) == ["c", "c"]
    check_index(path)


def test_a_database_from_before_the_mark_migrates_with_every_message(path: Path) -> None:
    with SessionManager(f"sqlite:///{path}") as manager:
        manager.create_session("old").build()
        manager.append("old", Message("user", "turmeric root"))
        manager.search("turmeric")
    db = raw(path)  # make it a database at migration 006: triggers index every insert
    for trigger in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER messages_fts_{trigger}")
    _triggers(db, "messages", ("content",), "id")
    db.execute("DROP TABLE fts_indexed")
    db.execute("DELETE FROM _migrations WHERE name = '007_deferred_index'")
    db.execute("INSERT INTO messages (session_id, seq, role, content, created_at, extra) "
               "VALUES ('old', 1, 'assistant', 'turmeric and ginger', "
               "'2026-01-01T00:00:00.000000+00:00', '{}')")  # written by the old version
    db.close()
    with SessionManager(f"sqlite:///{path}") as manager:
        assert mark_and_top(path)[0] == mark_and_top(path)[1]  # all indexed by 006's trigger
        assert [h.seq for h in sorted(manager.search("turmeric"), key=lambda h: h.seq)] == [0, 1]
        manager.append("old", Message("user", "ginger tea"))
        assert sorted(h.seq for h in manager.search("ginger")) == [1, 2]
    check_index(path)


READ_ONLY_SEARCH = """
from claude_magic.manager import SessionManager
manager = SessionManager("SPEC")
assert manager.storage.read_only, "expected a read-only store"
for word in ("oregano", "thyme", "basil"):
    print(word, sorted((h.session_id, h.seq) for h in manager.search(word)))
print("again", sorted((h.session_id, h.seq) for h in manager.search("thyme")))
"""


def test_a_read_only_file_searches_the_rows_past_the_mark(nobody_dir: Path) -> None:
    path = nobody_dir / "s.db"
    with SessionManager(f"sqlite:///{path}") as manager:
        manager.import_session(Session("a", messages=[Message("user", "oregano")]))
        manager.append("a", Message("user", "thyme, appended"))  # not indexed: no search
        manager.append("a", Message("assistant", "thyme and oregano"))
    before = mark_and_top(path)
    assert before[0] < before[1]
    path.chmod(0o444)
    result = run_as_nobody(READ_ONLY_SEARCH.replace("SPEC", f"sqlite:///{path}"),
                           cwd=nobody_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "oregano [('a', 0), ('a', 2)]", "thyme [('a', 1), ('a', 2)]", "basil []",
        "again [('a', 1), ('a', 2)]"]
    assert mark_and_top(path) == before  # nothing written


def test_an_append_after_another_connection_damaged_the_row_is_refused(
        manager: SessionManager, path: Path) -> None:
    manager.create_session("a").build()
    manager.append("a", Message("user", "one"))  # the fast path: the row checked in SQL
    with raw(path) as db:
        db.execute("UPDATE sessions SET metadata = '{not json' WHERE id = 'a'")
    with pytest.raises(DamagedSession):
        manager.append("a", Message("user", "two"))
    with raw(path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_the_chain_follows_another_connections_appends_and_marks(path: Path) -> None:
    with SessionManager(f"sqlite:///{path}") as first, \
            SessionManager(f"sqlite:///{path}") as second:
        first.create_session("a").build()
        first.append("a", Message("user", "one"))
        first.append("a", Message("assistant", "two"))  # the tip is kept from here on
        second.append("a", Message("user", "three"))
        first.append("a", Message("assistant", "four"))
        second.mark("a", 3, "error", "changed its hash")
        first.append("a", Message("user", "five"))
        assert first.verify("a").ok
        assert [m.content for m in first.resume("a").messages] == [
            "one", "two", "three", "four", "five"]


# --- ranking ------------------------------------------------------------------------------


def _session(sid: str, texts: list[str]) -> Session:
    return Session(sid, messages=[Message("user", text) for text in texts])


@pytest.fixture
def crowded(manager: SessionManager) -> SessionManager:
    """``old``: 1,000 short messages dense in ``sage`` (bm25 ranks them first); ``new``, after
    it: ``CANDIDATES`` long ones with ``sage`` once; both above the bound together. A few
    messages hold ``zephyr`` (rare) at different densities."""
    filler = " ".join(f"word{n}" for n in range(40))
    old = [f"sage sage sage {n}" for n in range(1000)]
    for n, text in ((10, "zephyr zephyr zephyr"), (20, "zephyr " + filler), (30, "zephyr x")):
        old[n] += " " + text
    manager.import_session(_session("old", old))
    manager.import_session(_session("new", [f"sage {filler} {n}" for n in range(CANDIDATES)]))
    return manager


def _raw_best(path: Path, query: str, limit: int, where: str = "") -> list[tuple[str, int]]:
    with raw(path) as db:
        return db.execute("SELECT m.session_id, m.seq FROM messages_fts JOIN messages m "
                          f"ON m.id = messages_fts.rowid WHERE messages_fts MATCH ?{where} "
                          "ORDER BY rank LIMIT ?", (query, limit)).fetchall()


def test_a_word_in_very_many_messages_ranks_the_newest(crowded: SessionManager,
                                                       path: Path) -> None:
    hits = crowded.search("sage", limit=10)
    assert len(hits) == 10 and {h.session_id for h in hits} == {"new"}
    assert {s for s, _ in _raw_best(path, "sage", 10)} == {"old"}  # bm25 over all differs
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all("«sage»" in h.snippet for h in hits)
    crowded.append("old", Message("user", "sage sage sage sage"))  # the newest match now
    assert (crowded.search("sage", limit=3)[0].session_id,
            crowded.search("sage", limit=3)[0].seq) == ("old", 1000)
    assert len(crowded.search("sage", limit=7)) == 7


def test_the_session_filter_ranks_within_its_sessions(crowded: SessionManager,
                                                      path: Path) -> None:
    hits = crowded.search("sage", limit=10, session_ids=["old"])
    assert [(h.session_id, h.seq) for h in hits] == _raw_best(
        path, "sage", 10, " AND m.session_id = 'old'")  # under the bound: bm25 over all


def test_a_rarer_query_keeps_bm25_order_and_fts5_snippets(crowded: SessionManager,
                                                          path: Path) -> None:
    hits = crowded.search("zephyr")
    assert [(h.session_id, h.seq) for h in hits] == _raw_best(path, "zephyr", 50)
    assert [h.seq for h in hits] == [10, 30, 20]
    with raw(path) as db:
        snippets = [r[0] for r in db.execute(
            "SELECT snippet(messages_fts, 0, '«', '»', '…', 20) FROM messages_fts "
            "WHERE messages_fts MATCH 'zephyr' ORDER BY rank")]
    assert [h.snippet for h in hits] == snippets
    assert [h.seq for h in crowded.search("zephyr", limit=2)] == [10, 30]
    assert crowded.search("zephyr", session_ids=["new"]) == []

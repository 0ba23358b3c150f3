"""Real processes and real failures on the PostgreSQL store: concurrent writers, SIGKILL, a
connection killed mid-write, a server restart, rows damaged by another tool."""

from __future__ import annotations

import random
import signal
import threading
import time

import psycopg
import pytest

from claude_magic.errors import DamagedSession, StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId
from claude_magic.storage._pg_schema import ID_OK, LOCK_KEY, migrate
from claude_magic.storage.postgres import PostgresStorage

from ..storage.test_processes import check_writers, read_acks, run_writers, start
from .pgserver import Server

WRITERS, APPENDS, CREATES = 8, 40, 10


@pytest.mark.slow
def test_eight_processes_lose_nothing(pg_url: str) -> None:
    # the store is not set up yet: all eight set it up at once (the advisory lock)
    run_writers(pg_url, WRITERS, APPENDS, CREATES)
    with SessionManager.with_storage(pg_url) as manager:
        check_writers(manager, WRITERS, APPENDS, CREATES)
        assert manager.summary("shared").stats.message_count == WRITERS * APPENDS


@pytest.mark.slow
def test_writer_killed_at_random_moments(pg_url: str) -> None:
    rng = random.Random(99)
    acked: dict[str, list] = {"A": [], "C": [], "U": [], "M": []}
    for round_number in range(10):
        writer = start("crash", pg_url, f"w{round_number}", str(round_number * 100_000))
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
        time.sleep(rng.uniform(0.05, 0.5))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == -signal.SIGKILL
        for ack in read_acks(out):
            acked[ack[0]].append(ack[1:])
        with SessionManager.with_storage(pg_url) as manager:
            assert manager.damaged() == []
            shared = manager.resume("shared")
            assert [m.seq for m in shared.messages] == list(range(len(shared.messages)))
            assert shared.stats == manager.summary("shared").stats  # totals never lag here
            by_seq = {m.seq: m for m in shared.messages}
            for seq, text in acked["A"]:
                assert by_seq[int(seq)].content.startswith(text)
            for (seq,) in acked["M"]:
                assert by_seq[int(seq)].status == "error"
            for (session_id,) in acked["C"]:
                assert [m.content for m in manager.resume(session_id).messages] == [
                    f"{session_id}:{i}" for i in range(3)]
            if acked["U"]:
                assert shared.metadata["counter"] >= max(int(c) for (c,) in acked["U"])
    assert len(acked["A"]) > 20 and acked["C"] and acked["U"], {
        key: len(value) for key, value in acked.items()}


def blocked_backend(server: Server, database: str, timeout: float = 10) -> int:
    """The pid of the backend waiting for our lock on the messages table."""
    deadline = time.time() + timeout
    with psycopg.connect(server.url("postgres", database), autocommit=True) as watcher:
        while time.time() < deadline:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO claude_magic.messages%'").fetchone()
            if row:
                return row[0]
            time.sleep(0.02)
    raise AssertionError("the write never reached the messages table")


def test_a_kernel_waiting_while_another_sets_the_store_up_finds_it_done(
        pg_server: Server, pg_url: str) -> None:
    """What made eight kernels opening a new store at once flaky: the waiting one had looked
    for the migrations table before the lock, and its catalog cache still said 'missing'."""
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    opened: list[object] = []

    def second_kernel() -> None:
        try:
            opened.append(PostgresStorage(pg_url))
        except BaseException as exc:
            opened.append(exc)

    with psycopg.connect(pg_url) as first:  # one transaction, committed at the end
        first.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        waiting = threading.Thread(target=second_kernel)
        waiting.start()
        deadline = time.time() + 30
        with psycopg.connect(pg_server.url("postgres", database), autocommit=True) as watcher:
            while not watcher.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                                      "AND NOT granted").fetchone():
                assert time.time() < deadline, "the second kernel never waited for the lock"
                time.sleep(0.02)
        migrate(first, "claude_magic_team", "test")
    waiting.join(60)
    assert len(opened) == 1 and isinstance(opened[0], PostgresStorage), opened
    opened[0].close()


@pytest.mark.parametrize("write", ["import", "append"])
def test_connection_killed_mid_write_leaves_nothing_half_written(
        pg_server: Server, pg_url: str, write: str) -> None:
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    manager = SessionManager.with_storage(pg_url)
    manager.create_session("kept").build()
    manager.append("kept", Message("user", "q", model="m"))
    before = manager.resume("kept")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if write == "import":
                manager.import_session(Session(id=SessionId("new"), messages=[
                    Message("user", "a"), Message("assistant", "b")]))
            else:
                manager.append("kept", Message("assistant", "answer", model="m2"))
        except BaseException as exc:
            errors.append(exc)

    with psycopg.connect(pg_server.url("postgres", database)) as locker:
        locker.execute("LOCK TABLE claude_magic.messages IN EXCLUSIVE MODE")
        writer = threading.Thread(target=run)
        writer.start()
        pid = blocked_backend(pg_server, database)  # the session row is already written
        locker.execute("SELECT pg_terminate_backend(%s)", (pid,))
        writer.join(30)
    assert len(errors) == 1 and type(errors[0]) is StorageError, errors
    message = str(errors[0])
    assert "\n" not in message and "connection" in message and "try again" in message
    assert not manager.exists("new")
    after = manager.resume("kept")
    assert after == before and manager.summary("kept").stats == before.stats
    assert manager.append("kept", Message("user", "next")).seq == 1  # the store goes on
    manager.close()


def test_server_restart(pg_server: Server, pg_url: str) -> None:
    store = PostgresStorage(pg_url, timeout=2)
    with SessionManager.with_storage(store) as manager:
        manager.create_session("before").build()
        pg_server.stop()
        try:
            with pytest.raises(StorageError) as caught:
                manager.append("before", Message("user", "lost"))
            assert "\n" not in str(caught.value)
        finally:
            pg_server.start()
        manager.append("before", Message("user", "after the restart"))
        assert [m.content for m in manager.resume("before").messages] == ["after the restart"]


def test_rows_damaged_by_another_tool_are_reported_and_skipped(pg_url: str) -> None:
    manager = SessionManager.with_storage(pg_url)
    manager.create_session("good").build()
    manager.append("good", Message("user", "fine"))
    with psycopg.connect(pg_url, autocommit=True) as tool:
        for session_id, metadata, created in (("../escape", "{}", "now()"),
                                              ("bad-json", "[1, 2]", "now()"),
                                              ("bad-time", "{}", "'infinity'")):
            tool.execute("INSERT INTO claude_magic.sessions (id, metadata_json, created_at, "
                         f"updated_at) VALUES (%s, %s, {created}, now())",
                         (session_id, metadata))
        tool.execute("INSERT INTO claude_magic.messages (session_id, seq, role, content, "
                     "created_at) VALUES ('good', 1, 'system', 'planted', now())")
    with pytest.warns(Warning, match="damaged"):
        assert manager.list() == ["good"]
    assert manager.count() == 1 and [s.id for s in manager.summaries()] == ["good"]
    assert manager.summary_columns().ids == ["good"]
    with pytest.warns(Warning, match="good:1: unreadable message"):
        found = manager.damaged()
    damaged = {(d.session_id, d.location.rsplit("#", 1)[1]) for d in found}
    assert damaged == {("../escape", "../escape"), ("bad-json", "bad-json"),
                       ("bad-time", "bad-time"), ("good", "good:1")}
    for session_id in ("bad-json", "bad-time"):
        with pytest.raises(DamagedSession):
            manager.get(session_id)
        with pytest.raises(DamagedSession):
            manager.append(session_id, Message("user", "x"))
    fresh = PostgresStorage(pg_url)  # a new store object reports again
    with pytest.warns(Warning, match="damaged"):
        assert [m.content for m in fresh.load(SessionId("good")).messages] == ["fine"]
    fresh.close()
    assert manager.clear() == 1 and manager.exists("bad-json")  # never removed silently
    manager.close()


def test_sql_id_rules_agree_with_session_id(pg_url: str) -> None:
    PostgresStorage(pg_url).close()
    candidates = ["a", "A-1", "_x", "x.y", "x" * 128, "x" * 129, ".a", "-a", "a.", "a..b",
                  "con", "CON.txt", "com1", "com10", "nul.tar.gz", "ü", "a b", "a/b", "",
                  "lpt9", "a_", "1.2.3", "a\n", "x-", "x." * 10 + "y"]
    with psycopg.connect(pg_url, autocommit=True) as raw:
        for candidate in candidates:
            try:
                SessionId(candidate)
                python_ok = True
            except ValueError:
                python_ok = False
            sql_ok = raw.execute(f"SELECT {ID_OK} FROM (SELECT %s::text AS id) t",
                                 (candidate,)).fetchone()[0]
            assert sql_ok == python_ok, candidate

"""The session store at scale: directory and SQLite stores beside raw baselines, same run.

Fills each store with N sessions of 10 messages (default 10,000), waits until every file is
older than the header cache's trust margin (as in real use, where sessions were written
earlier), then times, as medians:

- create: ``import_session`` of a session with its 10 messages (how the stores are filled) and
  ``create_session().build()`` of an empty one; beside plain ``sqlite3`` inserts (same pragmas:
  WAL, synchronous FULL, one transaction per session) and plain ``json.dump`` per file (no
  fsync, so not crash-safe: a floor, not a peer);
- ``list()``: cold (a new manager, i.e. a fresh kernel; the OS page cache is warm), warm (the
  same manager again) and, on the directory store, the first listing ever (no ``.index.json``);
  beside ``SELECT id ... ORDER BY updated_at`` and beside reading every JSON file and sorting;
- ``get()`` of a random session with its messages;
- append: the 1st message of an empty session vs the 1,001st of a session holding 1,000
  (interleaved, median of ``--appends`` each), beside the same with plain ``sqlite3`` and with
  a plain JSON file rewritten whole;
- ``summaries()`` (every session's metadata, what the panel and the DataFrame export read),
  cold and warm, beside ``SELECT`` of the same columns with ``json.loads`` of the metadata.

    python bench/bench_store.py [--sessions 10000] [--messages 10] [--appends 50] [--keep DIR]

Targets: ``list()`` <= 20 ms on SQLite and <= 150 ms on the directory store (cold and warm);
appending the 1,001st message <= 1.5x the 1st; ``summaries()`` <= 2x the raw ``sqlite3``
baseline on SQLite and <= 1.5 s on the directory store (cold).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sample_sessions import sample_session, session_id

from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId
from claude_magic.storage import StorageBackend
from claude_magic.storage._headers import INDEX_NAME, TRUST_MARGIN_NS
from claude_magic.times import format_time

LIST_MS = {"sqlite": 20.0, "directory": 150.0}
APPEND_RATIO = 1.5
SUMMARIES_RATIO_SQLITE = 2.0
SUMMARIES_MS_DIRECTORY = 1500.0


# --- data ---------------------------------------------------------------------------------


# --- timing -------------------------------------------------------------------------------


def median_ms(func: Callable[[], Any], runs: int,
              setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``func`` in ms; ``setup`` runs untimed before each run."""
    samples = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def once_ms(func: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    func(*args)
    return (time.perf_counter() - start) * 1000


# --- raw baselines ------------------------------------------------------------------------


class RawSQLite:
    """What a hand-written sqlite3 store does, with the same pragmas as ours."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, "
                        "system_prompt TEXT, metadata TEXT, settings TEXT, created_at TEXT, "
                        "updated_at TEXT, message_count INTEGER, turns INTEGER, "
                        "input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, "
                        "last_model TEXT)")
        self.db.execute("CREATE INDEX IF NOT EXISTS s_updated ON sessions (updated_at, id)")
        self.db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, "
                        "session_id TEXT, seq INTEGER, role TEXT, content TEXT, "
                        "created_at TEXT, data TEXT)")
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS m_seq ON messages (session_id, seq)")

    def create(self, session: Session) -> None:
        stats = session.stats
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            session.id, session.system_prompt, json.dumps(session.metadata),
            json.dumps(session.settings), format_time(session.created_at),
            format_time(session.updated_at), stats.message_count, stats.turns,
            stats.input_tokens, stats.output_tokens, stats.cost_usd, stats.last_model))
        self.db.executemany("INSERT INTO messages (session_id, seq, role, content, created_at, "
                            "data) VALUES (?,?,?,?,?,?)",
                            [(session.id, n, m.role, m.content, format_time(m.created_at),
                              json.dumps({"usage": m.usage.to_dict(), "model": m.model}))
                             for n, m in enumerate(session.messages)])
        self.db.execute("COMMIT")

    def list(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM sessions "
                                              "ORDER BY updated_at DESC, id DESC")]

    def get(self, sid: str) -> tuple[Any, ...]:
        row = self.db.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        messages = [(*r[:4], json.loads(r[4])) for r in self.db.execute(
            "SELECT seq, role, content, created_at, data FROM messages WHERE session_id = ? "
            "ORDER BY seq", (sid,))]
        return (*row[:2], json.loads(row[2]), json.loads(row[3]), *row[4:], messages)

    def append(self, sid: str, message: Message) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        seq = self.db.execute("SELECT coalesce(max(seq) + 1, 0) FROM messages "
                              "WHERE session_id = ?", (sid,)).fetchone()[0]
        self.db.execute("INSERT INTO messages (session_id, seq, role, content, created_at, data) "
                        "VALUES (?,?,?,?,?,?)", (sid, seq, message.role, message.content,
                                                 format_time(message.created_at), "{}"))
        self.db.execute("UPDATE sessions SET updated_at = ?, message_count = message_count + 1 "
                        "WHERE id = ?", (format_time(message.created_at), sid))
        self.db.execute("COMMIT")

    def metadata(self) -> list[tuple[Any, ...]]:
        return [(*row[:2], json.loads(row[2]), *row[3:]) for row in self.db.execute(
            "SELECT id, system_prompt, metadata, settings, created_at, updated_at, "
            "message_count, turns, input_tokens, output_tokens, cost_usd, last_model "
            "FROM sessions ORDER BY updated_at DESC, id DESC")]


class RawJSON:
    """One plain ``json.dump`` file per session, header and messages together (the seed's way)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def create(self, session: Session) -> None:
        with open(self.root / f"{session.id}.json", "w", encoding="utf-8") as handle:
            json.dump(session.to_dict(), handle)

    def _all(self) -> list[dict[str, Any]]:
        docs = []
        for name in os.listdir(self.root):
            with open(self.root / name, encoding="utf-8") as handle:
                docs.append(json.load(handle))
        return docs

    def list(self) -> list[str]:
        docs = self._all()
        docs.sort(key=lambda d: (d["updated_at"], d["id"]), reverse=True)
        return [d["id"] for d in docs]

    def get(self, sid: str) -> dict[str, Any]:
        with open(self.root / f"{sid}.json", encoding="utf-8") as handle:
            return json.load(handle)

    def append(self, sid: str, message: Message) -> None:
        doc = self.get(sid)
        doc["messages"].append(message.to_dict())
        with open(self.root / f"{sid}.json", "w", encoding="utf-8") as handle:
            json.dump(doc, handle)

    def metadata(self) -> list[dict[str, Any]]:
        return self._all()


# --- the run ------------------------------------------------------------------------------


Row = tuple[str, str, float, str, float | None, str, bool | None]


def bench_store(kind: str, work: Path, sessions: int, messages: int, appends: int,
                rows: list[Row]) -> None:
    if kind == "sqlite":
        backend = StorageBackend.sqlite(work / "ours.db")
        raw: RawSQLite | RawJSON = RawSQLite(work / "raw.db")
        raw_name = "sqlite3"
    else:
        backend = StorageBackend.file(work / "ours")
        raw = RawJSON(work / "raw-json")
        raw_name = "json.dump"

    def add(operation: str, ours: float, baseline: str = "", base: float | None = None,
            target: str = "", ok: bool | None = None) -> None:
        rows.append((kind, operation, ours, baseline, base, target, ok))
        shown = f"{ours:10.3f} ms" + (f"   ({baseline}: {base:.3f} ms)" if base else "")
        print(f"  {kind:9} {operation:40} {shown}", file=sys.stderr, flush=True)

    # fill: import_session of whole sessions, interleaved with the raw baseline
    ours_fill, raw_fill = [], []
    with SessionManager(backend) as manager:
        for i in range(sessions):  # made one at a time: the run holds no big object graph
            session = sample_session(i, messages)
            start = time.perf_counter()
            manager.import_session(session)
            middle = time.perf_counter()
            raw.create(session)
            ours_fill.append(middle - start)
            raw_fill.append(time.perf_counter() - middle)
        add(f"create with {messages} messages (import)", statistics.median(ours_fill) * 1000,
            raw_name if kind == "sqlite" else "json.dump, no fsync",
            statistics.median(raw_fill) * 1000)
        empty_ms = median_ms(lambda: manager.create_session().build(), 200)
        add("create_session().build(), empty", empty_ms)
        for extra in manager.list()[:200]:  # back to exactly N sessions
            if not extra.startswith("session-"):
                manager.delete(extra)
    time.sleep(TRUST_MARGIN_NS / 1e9 + 0.5)  # every file older than the trust margin

    # list()
    if kind == "directory":
        index = work / "ours" / INDEX_NAME

        def first_listing() -> None:
            with SessionManager(backend) as fresh:
                fresh.list()

        first = median_ms(first_listing, 3, setup=lambda: index.unlink(missing_ok=True))
        first_listing()  # leave an index behind for the cold runs
        add("list(), first ever (no .index.json)", first)
    opened: list[SessionManager] = []

    def open_fresh() -> None:
        opened.append(SessionManager(backend))

    open_ms = median_ms(open_fresh, 5)
    add("open the store (new manager)", open_ms)
    # the newest manager lists; all stay alive until the end, so no teardown is timed
    cold = median_ms(lambda: opened[-1].list(), 5, setup=open_fresh)
    for leftover in opened:
        leftover.close()
    opened.clear()
    raw_list = median_ms(raw.list, 3 if kind == "directory" else 20)
    add("list(), cold: new manager", cold, raw_name, raw_list, f"<= {LIST_MS[kind]:.0f} ms",
        cold <= LIST_MS[kind])
    manager = SessionManager(backend)
    ids = manager.list()
    assert len(ids) == sessions, (len(ids), sessions)
    warm = median_ms(manager.list, 20)
    add("list(), warm: same manager", warm, raw_name, raw_list, f"<= {LIST_MS[kind]:.0f} ms",
        warm <= LIST_MS[kind])

    # get()
    rng = random.Random(7)
    picks = [session_id(rng.randrange(sessions)) for _ in range(200)]
    ours_get = median_ms(lambda: manager.get(picks.pop()), 100)
    raw_picks = [session_id(rng.randrange(sessions)) for _ in range(200)]
    raw_get = median_ms(lambda: raw.get(raw_picks.pop()), 100)
    add(f"get() with {messages} messages", ours_get, raw_name, raw_get)

    # summaries(): every session's metadata
    def fresh_summaries() -> None:
        with SessionManager(backend) as fresh:
            assert len(fresh.summaries()) == sessions

    cold_meta = median_ms(fresh_summaries, 3)
    warm_meta = median_ms(manager.summaries, 5)
    raw_meta = median_ms(raw.metadata, 3 if kind == "directory" else 7)
    if kind == "sqlite":
        target, ok = f"<= {SUMMARIES_RATIO_SQLITE:.0f}x raw", cold_meta <= (
            SUMMARIES_RATIO_SQLITE * raw_meta)
    else:
        target, ok = f"<= {SUMMARIES_MS_DIRECTORY:.0f} ms", cold_meta <= SUMMARIES_MS_DIRECTORY
    add("summaries() (all metadata), cold", cold_meta, raw_name, raw_meta, target, ok)
    add("summaries() (all metadata), warm", warm_meta, raw_name, raw_meta)

    # append: 1st message vs 1,001st, interleaved
    big = [f"big-{k}" for k in range(appends)]
    for k, sid in enumerate(big):
        session = sample_session(k, 1000, sid)
        manager.import_session(session)
        raw.create(session)
    del session
    empty = [manager.create_session(f"empty-{k}").build().id for k in range(appends)]
    for sid in empty:
        raw.create(Session(id=SessionId(sid)))
    first_ms, later_ms, raw_first, raw_later = [], [], [], []
    note = Message("user", "one more question about the data " * 4)
    for short, long in zip(empty, big, strict=True):
        first_ms.append(once_ms(manager.append, short, note))
        later_ms.append(once_ms(manager.append, long, note))
        raw_first.append(once_ms(raw.append, short, note))
        raw_later.append(once_ms(raw.append, long, note))
    first_m, later_m = statistics.median(first_ms), statistics.median(later_ms)
    raw_f, raw_l = statistics.median(raw_first), statistics.median(raw_later)
    add("append 1st message", first_m, raw_name, raw_f)
    add("append 1,001st message", later_m, raw_name, raw_l)
    rows.append((kind, "append 1,001st / 1st (ratio)", later_m / first_m, f"{raw_name} ratio",
                 raw_l / raw_f, f"<= {APPEND_RATIO}x", later_m / first_m <= APPEND_RATIO))
    manager.close()
    if isinstance(raw, RawSQLite):
        raw.db.close()


def print_table(rows: list[Row], sessions: int, messages: int) -> bool:
    print(f"\nSession store, {sessions:,} sessions x {messages} messages "
          f"(Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}); "
          "medians in ms\n")
    header = ("store", "operation", "ours", "baseline", "base", "ours/base", "target", "result")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    all_ok = True
    for kind, operation, ours, baseline, base, target, ok in rows:
        ratio = "ratio" in operation
        ours_text = f"{ours:.2f}x" if ratio else f"{ours:.3f}"
        base_text = "" if base is None else (f"{base:.2f}x" if ratio else f"{base:.3f}")
        rel = "" if base is None or ratio else f"{ours / base:.2f}"
        result = "" if ok is None else ("PASS" if ok else "FAIL")
        all_ok = all_ok and ok is not False
        print(f"| {kind} | {operation} | {ours_text} | {baseline} | {base_text} | {rel} | "
              f"{target} | {result} |")
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--appends", type=int, default=50,
                        help="sessions of each kind in the append comparison")
    parser.add_argument("--stores", default="sqlite,directory")
    parser.add_argument("--keep", type=Path, help="build the stores here and keep them")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-store-"))
    rows: list[Row] = []
    try:
        for kind in args.stores.split(","):
            (work / kind).mkdir(parents=True, exist_ok=True)
            bench_store(kind, work / kind, args.sessions, args.messages, args.appends, rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    ok = print_table(rows, args.sessions, args.messages)
    print("\nall targets met" if ok else "\nsome targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Appending a turn (prompt + answer, durable) beside raw floors measured in the same run.

A turn is two ``SessionManager.append`` calls (the user message, then the answer), each
durable when it returns, as :meth:`Client.stream` stores them. Floors: on SQLite, two plain
``sqlite3`` transactions (same pragmas: WAL, ``synchronous = FULL``; each reads the next seq,
inserts the message and updates the session's totals); on the directory store, two lines
appended to a JSONL file, each ``fsync``'d. Sessions hold ``--messages`` messages first (the
turn is appended to the end of a long history), runs are interleaved, figures are medians.
Targets: SQLite <= 1.4x its floor, directory <= 2.5x its floor.

    python bench/bench_append.py [--runs 41] [--messages 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_store import RawSQLite
from sample_sessions import sample_session

from claude_magic import SessionManager
from claude_magic.message import Message
from claude_magic.times import format_time

TARGETS = {"sqlite": 1.4, "directory": 2.5}
PROMPT = "What does this function do? " * 4
ANSWER = "It reads the file and returns its lines. " * 20


def turn_of(manager: SessionManager, sid: str) -> Callable[[], None]:
    def turn() -> None:
        manager.append(sid, Message("user", PROMPT))
        manager.append(sid, Message("assistant", ANSWER, model="claude-sonnet-4-6"))
    return turn


def raw_sqlite_turn(raw: RawSQLite, sid: str) -> Callable[[], None]:
    def turn() -> None:
        raw.append(sid, Message("user", PROMPT))
        raw.append(sid, Message("assistant", ANSWER))
    return turn


def raw_jsonl_turn(path: Path) -> Callable[[], None]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    seq = [0]

    def line(role: str, text: str) -> bytes:
        seq[0] += 1
        return (json.dumps({"seq": seq[0], "role": role, "content": text,
                            "created_at": format_time(Message("user", "").created_at)})
                + "\n").encode()

    def turn() -> None:
        os.write(fd, line("user", PROMPT))
        os.fsync(fd)
        os.write(fd, line("assistant", ANSWER))
        os.fsync(fd)
    return turn


def attribute(kind: str, manager: SessionManager, turn: Callable[[], None],
              raw: RawSQLite) -> str:
    """What one turn does: fsyncs and renames (directory), SQL statements (SQLite)."""
    if kind == "directory":
        counts = {"fsync": 0, "rename": 0}
        fsync, replace = os.fsync, os.replace

        def counted_fsync(fd: int) -> None:
            counts["fsync"] += 1
            fsync(fd)

        def counted_replace(*args: Any) -> None:
            counts["rename"] += 1
            replace(*args)

        os.fsync, os.replace = counted_fsync, counted_replace  # type: ignore[assignment]
        try:
            turn()
        finally:
            os.fsync, os.replace = fsync, replace  # type: ignore[assignment]
        return f"{counts['fsync']} fsyncs + {counts['rename']} renames per turn (floor: 2 fsyncs)"
    statements: list[str] = []
    db = manager.storage._db  # type: ignore[attr-defined]
    db.set_trace_callback(statements.append)
    raw.db.set_trace_callback(statements.append)
    turn()
    ours = len(statements)
    statements.clear()
    raw_sqlite_turn(raw, "long")()
    db.set_trace_callback(None)
    raw.db.set_trace_callback(None)
    return (f"{ours} SQL statements per turn, none writing the FTS5 index "
            f"(floor: {len(statements)})")


def catch_up_ms(manager: SessionManager) -> str:
    """What the deferred index costs: the next search indexes every message appended here."""
    db = manager.storage._db  # type: ignore[attr-defined]
    upto, top = db.execute("SELECT (SELECT upto FROM fts_indexed), "
                           "(SELECT max(id) FROM messages)").fetchone()
    start = time.perf_counter()
    manager.search("zzzzzz")
    took = (time.perf_counter() - start) * 1000
    return (f"sqlite: the next search indexed the {top - upto:,} messages appended here in "
            f"{took:.1f} ms ({2 * took / max(top - upto, 1):.3f} ms per turn)")


def measure(sides: dict[str, Callable[[], None]], runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for run in range(runs + 3):
        for name in (list(sides) if run % 2 else list(reversed(sides))):
            start = time.perf_counter()
            sides[name]()
            if run >= 3:
                samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=41)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    ok = True
    notes = []
    print(f"one turn (2 durable appends) after {args.messages:,} messages, medians of "
          f"{args.runs} interleaved runs, ms\n")
    print("| store | ours | floor | floor ms | ratio | target | result |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = RawSQLite(root / "raw.db")
        session = sample_session(0, args.messages, "long")
        raw.create(session)
        indexed = RawSQLite(root / "raw-fts.db")  # the floor plus the same search index
        indexed.db.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(content, "
                           "content='messages', content_rowid='id')")
        indexed.db.execute("CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
                           "INSERT INTO messages_fts (rowid, content) VALUES (new.id, "
                           "new.content); END")
        indexed.create(session)
        floors = {"sqlite": ("2 sqlite3 transactions", raw_sqlite_turn(raw, session.id)),
                  "directory": ("2 fsynced JSONL lines", raw_jsonl_turn(root / "raw.jsonl"))}
        for kind, spec in {"sqlite": f"sqlite:///{tmp}/s.db", "directory": f"{tmp}/d"}.items():
            with SessionManager(spec) as manager:
                sid = manager.import_session(session).id
                name, floor = floors[kind]
                sides = {"ours": turn_of(manager, sid), "floor": floor}
                if kind == "sqlite":
                    sides["with FTS5"] = raw_sqlite_turn(indexed, session.id)
                got = measure(sides, args.runs)
                if kind == "sqlite":
                    notes.append(f"sqlite: the floor with an FTS5 index and insert trigger "
                                 f"(what appends paid before migration 007): "
                                 f"{got['with FTS5']:.3f} ms; ours / that: "
                                 f"{got['ours'] / got['with FTS5']:.2f}x")
                notes.append(f"{kind}: " + attribute(kind, manager, turn_of(manager, sid), raw))
                if kind == "sqlite":
                    notes.append(catch_up_ms(manager))
                ratio = got["ours"] / got["floor"]
                passed = ratio <= TARGETS[kind]
                ok &= passed
                print(f"| {kind} | {got['ours']:.3f} | {name} | {got['floor']:.3f} | "
                      f"{ratio:.2f}x | <= {TARGETS[kind]}x | {'PASS' if passed else 'FAIL'} |")
    print("\n" + "\n".join(notes))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

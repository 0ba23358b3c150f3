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
    print(f"one turn (2 durable appends) after {args.messages:,} messages, medians of "
          f"{args.runs} interleaved runs, ms\n")
    print("| store | ours | floor | floor ms | ratio | target | result |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = RawSQLite(root / "raw.db")
        session = sample_session(0, args.messages, "long")
        raw.create(session)
        floors = {"sqlite": ("2 sqlite3 transactions", raw_sqlite_turn(raw, session.id)),
                  "directory": ("2 fsynced JSONL lines", raw_jsonl_turn(root / "raw.jsonl"))}
        for kind, spec in {"sqlite": f"sqlite:///{tmp}/s.db", "directory": f"{tmp}/d"}.items():
            with SessionManager(spec) as manager:
                sid = manager.import_session(session).id
                name, floor = floors[kind]
                got = measure({"ours": turn_of(manager, sid), "floor": floor}, args.runs)
                ratio = got["ours"] / got["floor"]
                passed = ratio <= TARGETS[kind]
                ok &= passed
                print(f"| {kind} | {got['ours']:.3f} | {name} | {got['floor']:.3f} | "
                      f"{ratio:.2f}x | <= {TARGETS[kind]}x | {'PASS' if passed else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

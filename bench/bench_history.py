"""Reading history: a 10,000-message ``get`` beside raw floors, and what a warm turn reads.

- ``get()`` of a session of N messages (default 10,000) on SQLite beside raw ``sqlite3`` rows
  (``SELECT`` of the 12 columns every message had before migration 009, ``fetchall``; also,
  for information, of all 18 columns ``get()`` reads), and on the directory store beside
  ``json.loads`` of each line of its messages file. Targets: <= 3x and <= 2x.
- the client's history read before a warm turn (``Client._history``: the header and only the
  messages appended since), at 10 and at N messages, beside a full ``resume()``: what a turn
  costs before the request goes out. Target: the same at 10 and at N, well under 1 ms.

    python bench/bench_history.py [--messages 10000] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sample_sessions import sample_session

from claude_magic import Client, Config, SessionManager
from claude_magic.message import Message

#: The columns migration 009 added, which ``get()`` reads beside the 12 of the floor.
NEW_COLUMNS = ("cache_creation_input_tokens, cache_read_input_tokens, stop_reason, duration_ms, "
               "hash, plain")


def median_ms(func: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    ok = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = {"sqlite": f"sqlite:///{tmp}/s.db", "directory": f"{tmp}/d"}
        for kind, spec in specs.items():
            with SessionManager(spec) as manager:
                manager.import_session(sample_session(1, args.messages, "big"))
                manager.import_session(sample_session(2, 10, "small"))
                ours = median_ms(lambda m=manager: m.get("big"), args.runs)
                if kind == "sqlite":
                    db = sqlite3.connect(f"{tmp}/s.db")
                    sql = ("SELECT seq, role, content, created_at, status, error, model, backend,"
                           " input_tokens, output_tokens, cost_usd, extra FROM messages "
                           "WHERE session_id = ? ORDER BY seq")
                    floor = median_ms(lambda d=db, q=sql: d.execute(q, ("big",)).fetchall(),
                                      args.runs)
                    target, name = 3.0, "raw sqlite3 rows"
                    every = sql.replace(" FROM messages", f", {NEW_COLUMNS} FROM messages")
                    full = median_ms(lambda d=db, q=every: d.execute(q, ("big",)).fetchall(),
                                     args.runs)
                else:
                    path = f"{tmp}/d/big.messages.jsonl"

                    def raw_lines(path: str = path) -> list[Any]:
                        with open(path, "rb") as f:
                            return [json.loads(line) for line in f.read().split(b"\n") if line]
                    floor = median_ms(raw_lines, args.runs)
                    target, name = 2.0, "json.loads per line"
                ratio = ours / floor
                ok &= ratio <= target
                rows.append((kind, f"get() {args.messages:,} messages", ours, name, floor,
                             f"{ratio:.2f}x", f"<= {target:g}x",
                             "PASS" if ratio <= target else "FAIL"))
                if kind == "sqlite":
                    rows.append((kind, f"get() {args.messages:,} messages", ours,
                                 "raw rows of all 18 columns get() reads", full,
                                 f"{ours / full:.2f}x", "", ""))
                client = Client(Config(backend="echo"), manager=manager)
                for sid, count in (("small", 10), ("big", args.messages)):
                    client._history(sid)
                    manager.append(sid, Message("user", "q"))
                    manager.append(sid, Message("assistant", "a"))
                    warm = median_ms(lambda s=sid, c=client: c._history(s), args.runs * 10)
                    full = median_ms(lambda s=sid, m=manager: m.resume(s), args.runs)
                    rows.append((kind, f"warm turn's history read, {count:,} messages", warm,
                                 "resume() (before)", full, f"{warm / full:.3f}x", "", ""))
    print("| store | operation | ours (ms) | baseline | base (ms) | ratio | target | result |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, what, ours, name, base, ratio, target, result in rows:
        print(f"| {kind} | {what} | {ours:.3f} | {name} | {base:.3f} | {ratio} | {target} | "
              f"{result} |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

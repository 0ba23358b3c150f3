"""Search and verify: full-text search over many sessions on SQLite (beside a raw FTS5 query
on the same database) and on the directory store (a new manager: cold; the same one again:
warm), and verifying a long session's hash chain beside hashing the same bytes with hashlib.

    python bench/bench_search.py                         # 10,000 sessions x 10 messages
    python bench/bench_search.py --sessions 500 --runs 3 # a quick run
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sample_sessions import sample_session

from claude_magic.chain import HASH_KEY, canonical, chain, verify_messages
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.search import parse_query
from claude_magic.session import Session
from claude_magic.storage._fts_search import fts_query

RARE = ["zephyr", "quokka", "marzipan", "obsidian", "tamarind"]
QUERIES = ['zephyr', 'quokka marzipan', '"topic 42"', 'obsid*', 'lorem']


def hashed(session: Session, i: int) -> Session:
    """The sample session, one in 50 with two rare words in one message, with its hashes."""
    messages = session.messages
    if i % 50 == 0:
        # every pair of rare words occurs: the first cycles every 50 sessions, the second
        # every 250 (i % 5 is always 0 here, so it cannot pick them)
        messages[i % len(messages)].content += f" {RARE[(i // 50) % 5]} {RARE[(i // 250) % 5]}"
    for message, value in zip(messages, chain(messages), strict=True):
        message.ids[HASH_KEY] = value
    return session


def fill(spec: str, sessions: int, messages: int) -> None:
    with SessionManager(spec) as manager:
        for i in range(sessions):
            manager.import_session(hashed(sample_session(i, messages), i))


def median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


#: The raw FTS5 baselines: the best 50 messages' ids alone; and the same columns a search
#: hit carries (session, seq, role, FTS5's snippet, bm25) plus the header table's matches.
RAW_IDS = ("SELECT m.session_id, m.seq FROM messages_fts JOIN messages m "
           "ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? ORDER BY rank LIMIT 50")
RAW_HITS = ("SELECT m.session_id, m.seq, m.role, snippet(messages_fts, 0, '«', '»', '…', 20), "
            "bm25(messages_fts) FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
            "WHERE messages_fts MATCH ? ORDER BY rank LIMIT 50")
RAW_HEADERS = ("SELECT s.id, s.system_prompt, s.metadata, bm25(sessions_fts) FROM sessions_fts "
               "JOIN sessions s ON s.rowid = sessions_fts.rowid WHERE sessions_fts MATCH ? "
               "ORDER BY rank LIMIT 50")


def bench_sqlite(root: Path, sessions: int, messages: int, runs: int) -> list[str]:
    spec = f"sqlite:///{root}/s.db"
    fill(spec, sessions, messages)
    rows = []
    raw = sqlite3.connect(root / "s.db")
    with SessionManager(spec) as manager:
        for query in QUERIES:
            fts = fts_query(parse_query(query))
            ids = median_ms(lambda fts=fts: raw.execute(RAW_IDS, (fts,)).fetchall(), runs)
            base = median_ms(lambda fts=fts: (raw.execute(RAW_HITS, (fts,)).fetchall(),
                                              raw.execute(RAW_HEADERS, (fts,)).fetchall()),
                             runs)
            ours = median_ms(lambda: manager.search(query), runs)  # noqa: B023
            ok = ours <= 50 and ours <= 3 * base
            rows.append(f"| SQLite `{query}` | {ours:.2f} ms | raw FTS5 hits {base:.2f} ms "
                        f"({ours / base:.1f}x); ids only {ids:.2f} ms ({ours / ids:.1f}x) | "
                        f"<= 50 ms, <= 3x the hits: {verdict(ok)} |")
    raw.close()
    return rows


def bench_directory(root: Path, sessions: int, messages: int, runs: int) -> list[str]:
    spec = str(root / "sessions")
    fill(spec, sessions, messages)
    start = time.perf_counter()
    with SessionManager(spec) as first:
        first.search("zephyr")  # a store from before the index: the first search builds it
    build_ms = (time.perf_counter() - start) * 1000
    size = sum(p.stat().st_size for p in Path(spec).glob(".search.sqlite*"))
    store = sum(p.stat().st_size for p in Path(spec).glob("*.json*"))
    rows = [f"| directory: first search, builds `.search.sqlite` | {build_ms:,.0f} ms | "
            f"| (once per store; {size / 1e6:.0f} MB beside {store / 1e6:.0f} MB of sessions) |"]
    floor_ms = median_ms(lambda: lstat_all(Path(spec)), runs)
    grep_ms = median_ms(lambda: grep_all(Path(spec), b"zephyr"), runs)
    rows.append(f"| directory: `lstat` of every file (floor of a search that sees every "
                f"change) | {floor_ms:.0f} ms | raw grep (read every file, `lower()`, find) "
                f"{grep_ms:.0f} ms | |")
    for query in QUERIES:
        def cold() -> None:
            with SessionManager(spec) as fresh:
                fresh.search(query)  # noqa: B023
        cold_ms = median_ms(cold, runs)
        with SessionManager(spec) as manager:
            manager.search(query)
            warm_ms = median_ms(lambda: manager.search(query), runs)  # noqa: B023
        ok = cold_ms <= 1000 and warm_ms <= 150
        rows.append(f"| directory `{query}` | cold {cold_ms:.0f} ms, warm {warm_ms:.0f} ms | "
                    f"grep {grep_ms:.0f} ms ({cold_ms / grep_ms:.2f}x, {warm_ms / grep_ms:.2f}x) "
                    f"| <= 1 s cold, <= 150 ms warm: {verdict(ok)} |")
    return rows


def lstat_all(folder: Path) -> int:
    with os.scandir(folder) as entries:
        return sum(1 for entry in entries if entry.stat(follow_symlinks=False))


def grep_all(folder: Path, needle: bytes) -> int:
    """Files holding ``needle``, case-insensitively: a scan with no parsing at all."""
    found = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith((".json", ".jsonl")) and not entry.name.startswith("."):
                with open(entry.path, "rb") as file:
                    found += needle in file.read().lower()
    return found


MARKDOWN = ('Here is the fix:\n\n```python\ndef load(path: str) -> dict:\n'
            '    with open(path) as f:\n        return json.load(f)  # "strict" by default\n'
            '```\n\nThen call `load("a.json")`.')  # an answer the JSON encoder must escape


def verify_row(manager: SessionManager, session: Session, label: str, runs: int) -> str:
    """Verify ``session``'s chain beside hashlib over the same canonical bytes."""
    for message, value in zip(session.messages, chain(session.messages), strict=True):
        message.ids[HASH_KEY] = value
    manager.import_session(session, overwrite=True)
    loaded: list[Message] = manager.resume(session.id).messages
    previous = ["", *(m.ids[HASH_KEY] for m in loaded[:-1])]
    data = [canonical(p, m.role, m.status, m.content) for p, m in zip(previous, loaded,
                                                                      strict=True)]
    sha = hashlib.sha256
    base = median_ms(lambda: [sha(b).hexdigest() for b in data], runs)
    ours = median_ms(lambda: verify_messages(session.id, loaded), runs)
    assert verify_messages(session.id, loaded).ok
    return (f"| verify {len(loaded):,} {label} (chain check) | {ours:.1f} ms | hashlib alone "
            f"{base:.1f} ms ({ours / base:.2f}x) | <= 2x: {verdict(ours <= 2 * base)} |")


def bench_verify(root: Path, count: int, runs: int) -> list[str]:
    with SessionManager(f"sqlite:///{root}/v.db") as manager:
        rows = [verify_row(manager, sample_session(0, count, "long"), "messages", runs)]
        whole = median_ms(lambda: manager.verify("long"), runs)
        rows.append(f"| manager.verify incl. reading them from SQLite | {whole:.1f} ms | "
                    "| (context) |")
        code = sample_session(1, count, "code")
        for message in code.messages[1::2]:
            message.content = MARKDOWN
        rows.append(verify_row(manager, code, "messages, answers in Markdown with code", runs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--verify-messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", choices=("verify", "sqlite", "directory"))
    args = parser.parse_args()
    print(f"{args.sessions:,} sessions x {args.messages} messages; medians of {args.runs} runs\n")
    print("| | ours | baseline | target |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only in (None, "verify"):
            for row in bench_verify(root, args.verify_messages, args.runs):
                print(row, flush=True)
        for name, bench in (("sqlite", bench_sqlite), ("directory", bench_directory)):
            if args.only in (None, name):
                for row in bench(root, args.sessions, args.messages, args.runs):
                    print(row, flush=True)


if __name__ == "__main__":
    main()

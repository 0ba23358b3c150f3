"""The PostgreSQL team store at scale, beside raw psycopg and the SQLite store, same run.

Starts a throwaway local server (Debian's initdb / pg_ctl, as tests/postgres does), fills it
with N sessions x 10 messages (default 100,000; filled with COPY, then VACUUM ANALYZE, as a
store that has lived a while), then times, as medians:

- ``list()`` through the store vs the same ``SELECT id ... ORDER BY updated_at DESC`` on a raw
  psycopg connection of the same role (row-level security applies to both);
- ``summaries()`` vs a raw ``SELECT`` of the same columns;
- append: the 1st message of an empty session vs the 1,001st of a session holding 1,000
  (interleaved);
- 8 writer processes (``tests/storage/worker.py concurrent``) on PostgreSQL vs on a SQLite
  file: appends + creates per second;
- NOTIFY: from just before an append in this process until a listener process
  (``tests/postgres/listener.py``) prints the event.

    python bench/bench_postgres.py [--sessions 100000] [--messages 10] [--appends 50]

Targets (issue 13): ``list()`` <= 50 ms and <= 2x raw; the 1,001st append <= 1.5x the 1st;
NOTIFY <= 100 ms; the writers' ratio is reported.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "postgres"))

import pgserver  # noqa: E402
import psycopg  # noqa: E402

from claude_magic.manager import SessionManager  # noqa: E402
from claude_magic.message import Message  # noqa: E402

WORKER = str(ROOT / "tests" / "storage" / "worker.py")
LISTENER = str(ROOT / "tests" / "postgres" / "listener.py")


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def fill(url: str, sessions: int, messages: int) -> None:
    """N sessions of the database owner with their messages, written with COPY by the
    superuser (COPY does not run under row-level security)."""
    owner = pgserver.OWNER
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        header, rows = io.StringIO(), io.StringIO()
        for n in range(sessions):
            second = f"2025-01-{1 + n // 86400:02d} {n // 3600 % 24:02d}:{n // 60 % 60:02d}:" \
                     f"{n % 60:02d}+00"
            metadata = f'{{"project": "p{n % 50}", "n": {n}}}'
            header.write(f"s{n:06d}\t{owner}\t{owner}\t{metadata}\t{second}\t"
                         f"{second}\t{messages}\t{messages // 2}\t{messages * 10}\t"
                         f"{messages * 20}\t0.01\tclaude-x\n")
            for seq in range(messages):
                role = "user" if seq % 2 == 0 else "assistant"
                rows.write(f"s{n:06d}\t{seq}\t{role}\tmessage {seq} of session {n}, "
                           f"some ordinary text\t{second}\n")
        with cur.copy("COPY claude_magic.sessions (id, owner, owner_role, metadata_json, "
                      "created_at, updated_at, message_count, turns, input_tokens, "
                      "output_tokens, cost_usd, last_model) "
                      "FROM STDIN") as copy:
            copy.write(header.getvalue())
        with cur.copy("COPY claude_magic.messages (session_id, seq, role, content, created_at) "
                      "FROM STDIN") as copy:
            copy.write(rows.getvalue())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE claude_magic.sessions")
        conn.execute("VACUUM ANALYZE claude_magic.messages")


def writers(spec: str, count: int = 8, appends: int = 50, creates: int = 10) -> float:
    """Acknowledged writes per second of ``count`` processes on one store."""
    procs = [subprocess.Popen([sys.executable, WORKER, "concurrent", spec, f"p{n}",
                               str(appends), str(creates)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(count)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert out == "done\n", err
    return count * (appends + creates) / (time.perf_counter() - start)


def notify_latency(manager: SessionManager, url: str, repeat: int = 20) -> tuple[float, float]:
    """Median ms from just before a write until another process prints its event, and the
    median time of the write itself."""
    listener = subprocess.Popen([sys.executable, LISTENER, url], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
    manager.create_session("live").build()
    manager.storage.set_visibility("live", "team")  # type: ignore[attr-defined]
    listener.stdout.readline()  # the created and updated events
    listener.stdout.readline()
    latencies, writes = [], []
    for _ in range(repeat):
        sent = time.time()
        manager.append("live", Message("user", "ping"))
        writes.append((time.time() - sent) * 1000)
        line: list[str] = []
        reader = threading.Thread(target=lambda out=line: out.append(
            listener.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(5)
        latencies.append((float(line[0].split()[-1]) - sent) * 1000)
        time.sleep(0.05)
    listener.communicate("", timeout=30)
    return statistics.median(latencies), statistics.median(writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--appends", type=int, default=50)
    args = parser.parse_args()
    server = pgserver.start_server()
    try:
        run(server, args)
    finally:
        pgserver.stop_server(server)


def run(server: pgserver.Server, args: argparse.Namespace) -> None:
    url = server.create_database("bench")
    SessionManager.with_storage(url).close()  # sets the store up
    start = time.perf_counter()
    fill(server.url("postgres", "bench"), args.sessions, args.messages)
    print(f"filled {args.sessions:,} sessions x {args.messages} messages in "
          f"{time.perf_counter() - start:.1f} s (COPY + VACUUM ANALYZE)")
    manager = SessionManager.with_storage(url)
    raw = psycopg.connect(url, autocommit=True)
    assert len(manager.list()) == args.sessions

    def raw_list() -> list[tuple[str]]:
        return raw.execute("SELECT id FROM claude_magic.sessions "
                           "ORDER BY updated_at DESC, id DESC").fetchall()

    def raw_summaries() -> list[tuple[object, ...]]:
        return raw.execute("SELECT id, system_prompt, metadata_json, settings_json, created_at, "
                           "updated_at, message_count, turns, input_tokens, output_tokens, "
                           "cost_usd, last_model FROM claude_magic.sessions "
                           "ORDER BY updated_at DESC, id DESC").fetchall()

    results = []
    ours, base = median_ms(manager.list, 7), median_ms(raw_list, 7)
    results.append(("list()", ours, "raw psycopg SELECT id", base, "<= 50 ms, <= 2x raw"))
    ours, base = median_ms(manager.summaries, 3), median_ms(raw_summaries, 3)
    results.append(("summaries()", ours, "raw psycopg SELECT (json parsed)", base, ""))

    manager.create_session("long").build()
    for index in range(1000):
        manager.append("long", Message("user", f"m{index}"))
    firsts, laters = [], []
    for index in range(args.appends):
        manager.create_session(f"empty-{index}").build()
        firsts.append(median_ms(lambda i=index: manager.append(f"empty-{i}",
                                                               Message("user", "first")), 1))
        laters.append(median_ms(lambda: manager.append("long", Message("user", "later")), 1))
    first, later = statistics.median(firsts), statistics.median(laters)
    results.append(("append, 1,001st message", later, "append, 1st message", first,
                    "<= 1.5x"))

    with tempfile.TemporaryDirectory() as tmp:
        sqlite_rate = writers(f"sqlite:///{tmp}/writers.db")
    pg_rate = writers(server.create_database("writers"))
    latency, write = notify_latency(manager, url)
    manager.close()
    raw.close()

    print(f"\n{'measure':<26}{'ours':>12}  {'baseline':<34}{'base':>10}{'ratio':>8}  target")
    for name, ours, base_name, base, target in results:
        print(f"{name:<26}{ours:>9.2f} ms  {base_name:<34}{base:>7.2f} ms{ours / base:>7.2f}x"
              f"  {target}")
    print(f"{'8 writers (writes/s)':<26}{pg_rate:>12.0f}  {'SQLite store, 8 writers':<34}"
          f"{sqlite_rate:>10.0f}{pg_rate / sqlite_rate:>7.2f}x  (report)")
    print(f"{'NOTIFY to another process':<26}{latency:>9.2f} ms  {'(the append itself)':<34}"
          f"{write:>7.2f} ms{'':>8}  <= 100 ms")


if __name__ == "__main__":
    main()

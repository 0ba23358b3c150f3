"""What a kernel holds in claude_magic objects after many turns in one session (tracemalloc).

A session of ``--messages`` messages (default 1,000) is imported into a SQLite store; a client
then runs ``--turns`` turns in it (default 1,000) through the ``anthropic`` backend against the
fake Messages API server (in its own process, so its memory is not counted). Afterwards, with
garbage collected, the memory still allocated from ``claude_magic`` source files (the store's
cache, the client's kept history and request dicts, the manager's tips) is set beside the
session's own size: its JSON (``Session.to_dict()``), UTF-8 encoded. Target: <= 2x.

    python bench/bench_memory.py [--messages 1000] [--turns 1000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

from bench_stream import KEY, MODEL, fake_server
from sample_sessions import sample_session

TARGET = 2.0
REPLY = "An answer of about the size a short answer has, a sentence or two of text. " * 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=1000)
    args = parser.parse_args()
    package = str(Path(__import__("claude_magic").__file__).parent)
    testing = os.path.join(package, "testing")
    with fake_server(REPLY) as url, tempfile.TemporaryDirectory() as tmp:
        os.environ["ANTHROPIC_API_KEY"] = KEY
        os.environ["ANTHROPIC_BASE_URL"] = url
        tracemalloc.start()
        from claude_magic import Client, Config, SessionManager

        manager = SessionManager(f"sqlite:///{tmp}/s.db")
        sid = manager.import_session(sample_session(0, args.messages, "memory")).id
        client = Client(Config(backend="anthropic", model=MODEL, retries=0,
                               context_window=10**9), manager)
        for _ in range(args.turns):
            client.query("Tell me more about it.").session(sid).send()
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        held = sum(stat.size for stat in snapshot.statistics("filename")
                   if stat.traceback[0].filename.startswith(package)
                   and not stat.traceback[0].filename.startswith(testing))
        top = [s for s in snapshot.statistics("lineno")
               if s.traceback[0].filename.startswith(package)][:6]
        session = manager.resume(sid)
        size = len(json.dumps(session.to_dict(), ensure_ascii=False).encode())
        manager.close()
    ratio = held / size
    print(f"session: {len(session.messages):,} messages, {size / 1e6:.2f} MB as JSON")
    print(f"held in claude_magic objects after {args.turns:,} turns: {held / 1e6:.2f} MB "
          f"= {ratio:.2f}x the session (<= {TARGET:g}x: {'PASS' if ratio <= TARGET else 'FAIL'})")
    print("largest allocation sites:")
    for stat in top:
        frame = stat.traceback[0]
        print(f"  {stat.size / 1e6:7.2f} MB  {os.path.relpath(frame.filename, package)}:"
              f"{frame.lineno}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())

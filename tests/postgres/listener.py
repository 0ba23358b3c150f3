"""A process that follows a PostgreSQL store (run as a script by test_live.py).

    python listener.py <url>

Prints ``ready`` once subscribed, then ``<event> <session id or -> <time.time()>`` per change,
until its stdin closes.
"""

from __future__ import annotations

import sys
import time

from claude_magic.storage.postgres import PostgresStorage


def main(url: str) -> None:
    store = PostgresStorage(url)

    def show(event: str, session_id: str | None) -> None:
        print(f"{event} {session_id or '-'} {time.time():.6f}", flush=True)

    store.subscribe(show)
    print("ready", flush=True)
    sys.stdin.read()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])

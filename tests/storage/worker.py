"""A writer process for the concurrency and crash tests (run as a script, not collected).

    python worker.py concurrent <store spec> <name> <appends> <creates>
    python worker.py crash <store spec> <name> <first counter>

Both print ``ready`` once the store is open and the shared session exists. ``concurrent`` then
waits for a line on stdin (so all writers start together) and prints ``done``. ``crash`` writes
until it is killed and prints one line per write *after* the store acknowledged it:
``A <seq> <text>``, ``C <id>``, ``U <counter>``, ``M <seq>``.
"""

from __future__ import annotations

import contextlib
import random
import sys

from claude_magic.errors import SessionExists
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId

SHARED = "shared"


def open_store(spec: str) -> SessionManager:
    manager = SessionManager.with_storage(spec)
    with contextlib.suppress(SessionExists):
        manager.create_session(SHARED).build()
    print("ready", flush=True)
    return manager


def concurrent(spec: str, name: str, appends: int, creates: int) -> None:
    manager = open_store(spec)
    sys.stdin.readline()  # start together
    every = max(1, appends // max(creates, 1))
    created = 0
    for index in range(max(appends, creates * every)):
        if index < appends:
            manager.append(SHARED, Message("user", f"{name}:{index}"))
        if index % every == 0 and created < creates:
            manager.create_session(f"{name}-{created}").with_metadata("by", name).build()
            created += 1
    print("done", flush=True)


def crash(spec: str, name: str, counter: int) -> None:
    manager = open_store(spec)
    rng = random.Random()
    while True:
        counter += 1
        size = rng.choice((0, 10, 1000, 20_000, 100_000))
        text = f"{name}:{counter}:"
        message = manager.append(SHARED, Message("assistant", text + "x" * size, model="m"))
        print(f"A {message.seq} {text}", flush=True)
        if counter % 5 == 0:
            session_id = f"{name}-{counter}"
            manager.import_session(Session(
                id=SessionId(session_id), metadata={"counter": counter, "pad": "y" * size},
                messages=[Message("user", f"{session_id}:{i}") for i in range(3)]))
            print(f"C {session_id}", flush=True)
        if counter % 7 == 0:
            manager.update(SHARED, metadata={"counter": counter})
            print(f"U {counter}", flush=True)
        if counter % 11 == 0:
            manager.mark(SHARED, message.seq or 0, "error", f"marked {counter}")
            print(f"M {message.seq}", flush=True)


if __name__ == "__main__":
    command, spec, name, *numbers = sys.argv[1:]
    if command == "concurrent":
        concurrent(spec, name, int(numbers[0]), int(numbers[1]))
    elif command == "crash":
        crash(spec, name, int(numbers[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")

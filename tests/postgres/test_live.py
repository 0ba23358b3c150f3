"""Live across kernels: a change committed in one process reaches another within a second."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from claude_magic.manager import SessionManager
from claude_magic.message import Message

from .pgserver import Server
from .test_team import member

LISTENER = str(Path(__file__).with_name("listener.py"))


def next_line(process: subprocess.Popen[str], timeout: float = 5.0) -> str:
    """One line of the listener's output, or '' when none comes in time."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""


def test_notify_reaches_another_process_within_a_second(pg_url: str) -> None:
    with SessionManager.with_storage(pg_url) as manager:
        listener = subprocess.Popen([sys.executable, LISTENER, pg_url], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert next_line(listener, 30) == "ready", listener.stderr
            steps = [
                (lambda: manager.create_session("live").build(), "created -"),  # private
                (lambda: manager.storage.set_visibility("live", "team"), "updated live"),
                (lambda: manager.append("live", Message("user", "hi")), "appended live"),
                (lambda: manager.mark("live", 0, "error", "x"), "marked live"),
                (lambda: manager.update("live", metadata={"a": 1}), "updated live"),
                (lambda: manager.delete("live"), "deleted live"),
                (lambda: manager.clear(), "cleared -"),
            ]
            for change, expected in steps:
                sent = time.time()
                change()
                line = next_line(listener)
                assert line.rsplit(" ", 1)[0] == expected, (line, expected)
                assert float(line.rsplit(" ", 1)[1]) - sent < 1.0
        finally:
            listener.communicate("", timeout=30)
        assert listener.returncode == 0, listener.stderr


def test_subscribers_hear_others_not_themselves_nor_private_sessions(
        pg_server: Server, pg_url: str) -> None:
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    with SessionManager.with_storage(pg_url):  # the owner sets the store up
        alice, bob = member(pg_server, "alice"), member(pg_server, "bob")
    heard: dict[str, list[tuple[str, str | None]]] = {"alice": [], "bob": [], "alice2": []}
    with SessionManager.with_storage(pg_server.url(alice, database)) as alice_store, \
            SessionManager.with_storage(pg_server.url(alice, database)) as alice_kernel2, \
            SessionManager.with_storage(pg_server.url(bob, database)) as bob_store:
        alice_store.storage.subscribe(lambda e, s: heard["alice"].append((e, s)))
        alice_kernel2.storage.subscribe(lambda e, s: heard["alice2"].append((e, s)))
        stop = bob_store.storage.subscribe(lambda e, s: heard["bob"].append((e, s)))
        alice_store.create_session("secret").build()
        alice_store.create_session("shared").build()
        alice_store.storage.set_visibility("shared", "team")
        alice_store.append("shared", Message("user", "q"))
        deadline = time.time() + 5
        while len(heard["bob"]) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert heard["alice"] == []  # its own writes: the manager reported them already
        assert heard["alice2"] == [("created", None), ("created", None), ("updated", "shared"),
                                   ("appended", "shared")]
        assert heard["bob"] == [("updated", "shared"), ("appended", "shared")]
        stop()
        stop()  # twice is harmless
        alice_store.append("shared", Message("user", "again"))
        time.sleep(0.5)
        assert len(heard["bob"]) == 2

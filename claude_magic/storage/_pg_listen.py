"""Following a PostgreSQL store live: ``LISTEN`` on a dedicated connection, in a thread."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ._pg_names import CHANNEL
from ._pg_url import PostgresURL

Callback = Callable[[str, "str | None"], None]
_POLL = 0.2  # seconds between checks for stop(); notifications themselves arrive at once
_RETRY = 1.0  # seconds before reconnecting after the connection is lost


class Subscription:
    """Calls ``callback(event, session_id)`` for each change another store object commits.

    Own changes (same ``token``) are skipped: the manager already reported them. Changes to
    another role's private sessions are skipped; one's own private sessions come with
    ``session_id`` None (their ids are never broadcast). After a lost connection it
    reconnects and reports ``("changed", None)``: something may have been missed.
    """

    def __init__(self, url: PostgresURL, token: str, callback: Callback,
                 ready_timeout: float = 15.0) -> None:
        self._url, self._token, self._callback = url, token, callback
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claude_magic-listen",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(ready_timeout)  # LISTEN is active when subscribe() returns

    def stop(self) -> None:
        """Stop listening (idempotent); returns once the thread has ended."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        reconnected = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    role = conn.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]
                    self._ready.set()
                    if reconnected:
                        self._fire("changed", None)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_POLL):
                            self._handle(note.payload, role)
            except psycopg.Error:
                self._ready.set()  # do not keep subscribe() waiting on a server that is down
                reconnected = True
                self._stop.wait(_RETRY)

    def _handle(self, payload: str, role: str) -> None:
        try:
            note: dict[str, Any] = json.loads(payload)
        except ValueError:
            return  # someone else's NOTIFY on our channel
        if not isinstance(note, dict) or note.get("by") == self._token:
            return
        event, session_id = str(note.get("e")), note.get("id")
        if session_id is None and event != "cleared" and note.get("role") != role:
            return  # another member's private session
        self._fire(event, session_id if isinstance(session_id, str) else None)

    def _fire(self, event: str, session_id: str | None) -> None:
        try:
            self._callback(event, session_id)
        except Exception as exc:  # a broken front end must not stop the listener
            warnings.warn(f"claude_magic listener {self._callback!r} failed: {exc}",
                          stacklevel=2)

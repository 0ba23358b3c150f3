"""In-process storage: nothing persists; readers get copies; safe across threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime

from ..checks import clone_json
from ..errors import SessionExists, SessionNotFound
from ..message import Message, SessionStats, Status
from ..session import Session, SessionChanges, SessionId, SessionSummary
from ..times import MonotonicClock, as_utc
from .base import DamagedEntry, Position, Since, SummaryColumns, new_epoch, newest_first


class MemoryStorage:
    """Sessions in a dict, guarded by a lock. The default store of ``SessionManager()``."""

    location = "memory"

    def __init__(self) -> None:
        self._sessions: dict[SessionId, Session] = {}
        self._stats: dict[SessionId, SessionStats] = {}
        #: id -> (the session object, its epoch): new on create and mark (see Position), and
        #: whenever the id holds another object (a rename moved one there)
        self._epochs: dict[SessionId, tuple[Session, int]] = {}
        self._assets: dict[str, bytes] = {}  # SHA-256 -> bytes (see _assets.py)
        self._asset_times: dict[str, float] = {}  # SHA-256 -> when last stored
        self._lock = threading.RLock()
        self._clock = MonotonicClock()

    def __repr__(self) -> str:
        return "MemoryStorage()"

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.checked_copy()
        stats = stored.stats  # refuses totals past 64 bits before anything changes
        with self._lock:
            if stored.id in self._sessions and not overwrite:
                raise SessionExists(str(stored.id))
            if not preserve_times:
                stored.created_at = stored.updated_at = self._clock.now()
            self._sessions.pop(stored.id, None)  # re-insert so ties keep insertion order
            self._sessions[stored.id] = stored
            self._stats[stored.id] = stats
            self._epochs[stored.id] = (stored, new_epoch())
            return stored.copy()

    def load(self, session_id: SessionId) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            return session.copy() if session is not None else None

    def load_since(self, session_id: SessionId, since: Position | None) -> Since | None:
        """The header, with copies of only the messages appended after ``since`` when none
        was marked (or the session replaced) since; else of all of them."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            epoch = self._epoch(session_id, session)
            partial = since is not None and since.epoch == epoch
            start = since.next if partial else 0
            copy = Session(session.id, session.system_prompt, clone_json(session.metadata),
                           session.created_at, session.updated_at,
                           [m.copy() for m in session.messages[start:]],
                           clone_json(session.settings))
            return copy, Position(epoch, len(session.messages)), partial

    def _epoch(self, session_id: SessionId, session: Session) -> int:
        known = self._epochs.get(session_id)
        if known is None or known[0] is not session:
            known = self._epochs[session_id] = (session, new_epoch())
        return known[1]

    def exists(self, session_id: SessionId) -> bool:
        return session_id in self._sessions

    def _get(self, session_id: SessionId) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(str(session_id))
        return session

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._lock:
            changes.apply(self._get(session_id), self._clock.now())

    def append(self, session_id: SessionId, message: Message) -> Message:
        with self._lock:
            session = self._get(session_id)
            stored = message.copy()  # checks every field: a bad message is refused here
            stored.seq = len(session.messages)
            stats = self._stats[session_id].copy()
            stats.add(stored)  # before any change, so a failure changes nothing
            session.messages.append(stored)
            self._stats[session_id] = stats
            session.updated_at = self._clock.now()
            return stored.copy()

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        with self._lock:
            session = self._get(session_id)
            if not 0 <= seq < len(session.messages):
                raise IndexError(f"session {str(session_id)!r} has no message {seq}")
            session.messages[seq].status = status
            session.messages[seq].error = error
            self._epochs[session_id] = (session, new_epoch())
            session.updated_at = self._clock.now()

    def delete(self, session_id: SessionId, *, if_updated_at: datetime | None = None) -> bool:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return False
            if if_updated_at is not None and session.updated_at != as_utc(if_updated_at):
                return False
            del self._sessions[session_id], self._stats[session_id]
            self._epochs.pop(session_id, None)
            return True

    def clear(self) -> int:
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            self._stats.clear()
            self._epochs.clear()
            return count

    def summary_columns(self) -> SummaryColumns:
        return SummaryColumns.of(self.summaries())

    def list_ids(self) -> list[SessionId]:
        return [s.id for s in self.summaries()]

    def _summary(self, s: Session) -> SessionSummary:
        return SessionSummary(s.id, s.system_prompt, clone_json(s.metadata),
                              clone_json(s.settings), s.created_at, s.updated_at,
                              self._stats[s.id].copy())

    def summary(self, session_id: SessionId) -> SessionSummary | None:
        with self._lock:
            session = self._sessions.get(session_id)
            return self._summary(session) if session is not None else None

    def summaries(self) -> list[SessionSummary]:
        with self._lock:
            rows = [self._summary(s) for s in self._sessions.values()]
        return newest_first(rows)

    def count(self) -> int:
        return len(self._sessions)

    def damaged(self) -> list[DamagedEntry]:
        return []

    # --- assets (storage/_assets.py) ------------------------------------------------------

    def put_asset(self, sha256: str, media_type: str, data: bytes) -> None:
        with self._lock:
            self._assets.setdefault(sha256, bytes(data))
            self._asset_times[sha256] = time.time()

    def get_asset(self, sha256: str, media_type: str) -> bytes | None:
        return self._assets.get(sha256)

    def asset_ids(self) -> set[str]:
        with self._lock:
            return set(self._assets)

    def asset_times(self) -> dict[str, float]:
        with self._lock:
            return dict(self._asset_times)

    def delete_assets(self, sha256s: Iterable[str]) -> int:
        with self._lock:
            wanted = set(sha256s)
            for sha in wanted:
                self._asset_times.pop(sha, None)
            return sum(self._assets.pop(sha, None) is not None for sha in wanted)

    def close(self) -> None:
        """Nothing to release."""

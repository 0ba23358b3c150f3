"""Rename and re-hash for the in-process store, each under its lock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import SessionExists
from ..search import Matcher, SearchHit, scan
from .base import new_epoch

if TYPE_CHECKING:
    from ..message import Status
    from ..session import SessionId
    from .memory import MemoryStorage


def rename(store: MemoryStorage, old: SessionId, new: SessionId, overwrite: bool) -> None:
    with store._lock:
        session = store._get(old)
        if new in store._sessions and not overwrite:
            raise SessionExists(str(new))
        store._sessions.pop(new, None)
        store._stats.pop(new, None)
        stats = store._stats.pop(old)
        del store._sessions[old]
        session.id = new
        store._sessions[new] = session
        store._stats[new] = stats


def set_hashes(store: MemoryStorage, session_id: SessionId, hashes: Mapping[int, str],
               mark: tuple[int, Status, str | None] | None = None) -> None:
    """Write chain hashes (and, with ``mark``, a message's status and error) in one step."""
    from ..chain import HASH_KEY

    with store._lock:  # reentrant: the mark and the hashes are one step
        if mark is not None:
            store.mark(session_id, *mark)
        session = store._get(session_id)
        by_seq = {m.seq: m for m in session.messages}
        for seq, value in hashes.items():
            by_seq[seq].ids[HASH_KEY] = value
        # readers of messages since a Position read them all again
        store._epochs[session_id] = (session, new_epoch())


def search(store: MemoryStorage, matcher: Matcher, limit: int,
           session_ids: Iterable[str] | None) -> list[SearchHit]:
    """A scan of every (or each given) session."""
    with store._lock:
        ids = list(store._sessions) if session_ids is None else [
            i for i in session_ids if i in store._sessions]
        sessions = [store._sessions[i] for i in ids]
        return scan(sessions, matcher, limit)

"""What a turn reads of its session, kept between turns so a turn costs O(new messages).

A :class:`HistoryCache` (one per :class:`~claude_magic.client.Client`) keeps each session's
messages as last read, with the store's :class:`~claude_magic.storage.base.Position`. Each turn
asks the store for the session's header and only the messages appended since
(``load_since``); the store reads everything again, and the cache starts over, whenever
anything else changed them (a mark, an overwrite, a delete and re-create: a new *epoch*), so
a write by another manager, kernel or process is always seen. The header (system prompt,
settings) is read anew every turn. A store without ``load_since`` is read whole each turn.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .backends.caching import Prebuilt, sent_message
from .compaction import Turn, is_summary, visible_turns
from .errors import SessionNotFound
from .message import Message, answered_turns

if TYPE_CHECKING:
    from .manager import SessionManager
    from .session import Session
    from .storage.base import Position


class SessionHistory:
    """One session as a turn needs it: ``session`` (header and every message, oldest first),
    ``turns`` (the answered turns a model sees, echo's left out), ``answered`` (how many
    answered turns it has stored, compacted ones included) and ``spent`` (its recorded cost).
    The turns' messages are also kept flat with their request dicts (:meth:`request_history`),
    each built once. Shared with the cache: read, never change."""

    def __init__(self, session: Session, position: Position | None) -> None:
        self.session = session
        self.position = position
        self.spent = 0.0
        self.turns: list[Turn] = []
        self.answered = 0
        self._question: Message | None = None  # an ok question still waiting for its answer
        self._summary = False  # compacted: the turns are worked out from every message
        self._flat: list[Message] = []  # flatten(turns), with each message's request dict
        self._built: list[dict[str, Any] | None] = []
        self._unbuilt: list[int] = []
        self._add(session.messages)

    def request_history(self) -> Prebuilt:
        """The history a request carries (``flatten(turns)``), its dicts built ahead."""
        return Prebuilt(self._flat, self._built, self._unbuilt)

    def _keep(self, turns: list[Turn]) -> None:
        """Append ``turns``' messages and their request dicts to the flat history."""
        for turn in turns:
            for message in turn:
                sent = sent_message(message)
                if sent is None:
                    self._unbuilt.append(len(self._flat))
                self._flat.append(message)
                self._built.append(sent)

    def extend(self, session: Session, position: Position | None) -> None:
        """Take the header of ``session`` and append its messages (the new ones)."""
        messages = self.session.messages
        messages.extend(session.messages)
        new = session.messages
        session.messages = messages
        self.session, self.position = session, position
        self._add(new)

    def _add(self, new: list[Message]) -> None:
        for message in new:
            self.spent += message.cost_usd or 0.0
            self._summary = self._summary or is_summary(message)
        if self._summary:  # rare: a compacted session's turns come from all its messages
            messages = self.session.messages
            self.answered = len(answered_turns(messages))
            self.turns = [t for t in visible_turns(messages) if t[1].backend != "echo"]
            self._flat, self._built, self._unbuilt = [], [], []
            self._keep(self.turns)
            return
        kept = len(self.turns)
        question = self._question  # answered_turns(), carried on from where it stopped
        for message in new:
            if message.status != "ok":
                continue
            if message.role == "user":
                question = message
            elif question is not None:
                self.answered += 1
                if message.backend != "echo":
                    self.turns.append((question, message))
                question = None
        self._question = question
        self._keep(self.turns[kept:])


class HistoryCache:
    """Each session's :class:`SessionHistory` as last read from one store."""

    def __init__(self) -> None:
        self._store: object = None
        self._entries: dict[str, SessionHistory] = {}
        self._lock = threading.Lock()

    def read(self, manager: SessionManager, session_id: str) -> SessionHistory:
        """The session now: only what changed is read; :class:`SessionNotFound` if missing."""
        storage = manager.storage
        load_since = getattr(storage, "load_since", None)
        if load_since is None:
            return SessionHistory(manager.resume(session_id), None)
        with self._lock:
            if storage is not self._store:  # another store: nothing known carries over
                self._store, self._entries = storage, {}
            entry = self._entries.pop(session_id, None)
            found = load_since(session_id, entry.position if entry is not None else None)
            if found is None:
                raise SessionNotFound(str(session_id))
            session, position, partial = found
            if partial and entry is not None:
                entry.extend(session, position)
            else:
                entry = SessionHistory(session, position)
            if position is not None:
                self._entries[session_id] = entry
            return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

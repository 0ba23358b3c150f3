"""The contract every store fulfils, and the small pieces the stores share."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..errors import StorageWarning
from ..message import Message, Status
from ..session import Session, SessionChanges, SessionId, SessionSummary


@dataclass(frozen=True, slots=True)
class DamagedEntry:
    """Something a store found but could not read; it is skipped, never overwritten silently."""

    location: str
    reason: str
    session_id: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass(slots=True)
class SummaryColumns:
    """Every readable session's header and totals as columns, newest first: what a DataFrame
    of sessions is built from. Times are aware datetimes or ISO-8601 strings."""

    ids: list[str]
    system_prompts: list[str | None]
    metadata: list[dict[str, Any]]
    created_at: list[Any]
    updated_at: list[Any]
    message_count: list[int]
    turns: list[int]
    input_tokens: list[int]
    output_tokens: list[int]
    cost_usd: list[float]
    last_model: list[str | None]

    @classmethod
    def of(cls, summaries: list[SessionSummary]) -> SummaryColumns:
        """The columns of a list of summaries (for stores with no faster way)."""
        return cls(
            [str(s.id) for s in summaries], [s.system_prompt for s in summaries],
            [s.metadata for s in summaries], [s.created_at for s in summaries],
            [s.updated_at for s in summaries], [s.stats.message_count for s in summaries],
            [s.stats.turns for s in summaries], [s.stats.input_tokens for s in summaries],
            [s.stats.output_tokens for s in summaries], [s.stats.cost_usd for s in summaries],
            [s.stats.last_model for s in summaries])


class Position(NamedTuple):
    """Where a reader of one session's messages stopped, as :meth:`load_since` returns it;
    opaque to callers, who only pass it back. ``epoch`` changes whenever stored messages
    change other than by an append (create, overwrite, mark); ``next`` is the seq (SQLite,
    memory) or line (directory) after the last one read, ``offset`` / ``inode`` locate it in
    a messages file."""

    epoch: int
    next: int
    offset: int = 0
    inode: int = 0


#: What the optional ``load_since(session_id, since: Position | None) -> Since | None`` of a
#: store returns (memory, directory and SQLite have it; the client reads a store without it
#: with ``load``): the session's header read now with only the messages appended after
#: ``since`` when nothing else changed them (else all), in one consistent read, or None when
#: the session is missing. ``Since`` is: the session (header, and all its messages or only the new
#: ones), the position to pass next time (None: the store cannot vouch, read it all again),
#: and whether the messages are only those after the position given.
Since = tuple[Session, "Position | None", bool]


def new_epoch() -> int:
    """A fresh, unpredictable epoch (63 bits: fits SQLite's INTEGER)."""
    import secrets

    return secrets.randbits(62) + 1


@runtime_checkable
class Storage(Protocol):
    """Where sessions live. Every method is atomic; readers get copies.

    Implementations: :class:`~claude_magic.storage.memory.MemoryStorage`,
    :class:`~claude_magic.storage.files.DirectoryStorage`,
    :class:`~claude_magic.storage.sqlite.SQLiteStorage`. ``tests/storage/test_contract.py``
    is the definition of correct behaviour.
    """

    location: str

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        """Store a new session with its messages; ``SessionExists`` unless ``overwrite``.

        The store stamps ``created_at``/``updated_at`` unless ``preserve_times`` (imports).
        Returns a copy of what was stored.
        """

    def load(self, session_id: SessionId) -> Session | None:
        """The whole session with its messages, or ``None``; ``DamagedSession`` if unreadable."""

    def exists(self, session_id: SessionId) -> bool:
        """Whether a readable or damaged session with this id is present."""

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        """Apply header changes atomically; ``SessionNotFound`` if missing."""

    def append(self, session_id: SessionId, message: Message) -> Message:
        """Append one message (cheap, whatever the history length); returns it with ``seq``."""

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        """Change the status (and error text) of one stored message."""

    def delete(self, session_id: SessionId, *, if_updated_at: datetime | None = None) -> bool:
        """Remove a session; ``True`` if it existed and was removed.

        With ``if_updated_at``, remove it only if its stored ``updated_at`` equals that time,
        decided inside the store's transaction or under its lock (``False`` otherwise): how
        ``prune`` never deletes a session another process changed after listing it."""

    def clear(self) -> int:
        """Remove every readable session; returns how many."""

    def list_ids(self) -> list[SessionId]:
        """Ids of readable sessions, most recently updated first."""

    def summaries(self) -> list[SessionSummary]:
        """Headers and totals of readable sessions, most recently updated first."""

    def summary(self, session_id: SessionId) -> SessionSummary | None:
        """One session's header and totals, without reading its messages (None if missing;
        ``DamagedSession`` if unreadable)."""

    def summary_columns(self) -> SummaryColumns:
        """What :meth:`summaries` returns, as columns (the DataFrame export reads this)."""

    def count(self) -> int:
        """How many readable sessions there are."""

    def damaged(self) -> list[DamagedEntry]:
        """What the store skipped because it could not read it."""

    def close(self) -> None:
        """Release files and connections; the object is unusable afterwards."""


def warn_damaged(entry: DamagedEntry) -> None:
    """Tell the user, once per finding, that something was skipped."""
    warnings.warn(f"claude_magic skipped a damaged session: {entry}", StorageWarning,
                  stacklevel=4)


class DamageLog:
    """Reports each damaged entry once (a :class:`StorageWarning`), however often it is met."""

    def __init__(self) -> None:
        self._reported: set[str] = set()

    def report(self, location: str, reason: str, session_id: str | None) -> DamagedEntry:
        entry = DamagedEntry(location, reason, session_id)
        if location not in self._reported:
            self._reported.add(location)
            warn_damaged(entry)
        return entry


def newest_first(summaries: list[SessionSummary]) -> list[SessionSummary]:
    """Sort by ``updated_at`` descending; ties broken by id so the order is stable."""
    summaries.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
    return summaries


def metadata_matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when every wanted key is present with an equal value."""
    return all(key in metadata and metadata[key] == value for key, value in wanted.items())

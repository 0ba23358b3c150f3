"""SessionManager: the seed's session operations, plus update, append, fork, find and prune."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .checks import check_text
from .errors import SessionNotFound
from .message import Message, Status, check_status
from .session import _UNSET, Session, SessionBuilder, SessionChanges, SessionId, SessionSummary
from .storage import StorageBackend, open_storage
from .storage.base import metadata_matches
from .times import utc_now

if TYPE_CHECKING:
    import pandas

    from .storage.base import DamagedEntry, Storage, SummaryColumns

Listener = Callable[[str, "str | None"], None]

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: timedelta | str | float) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"2w"``, ``"45s"``, a number of days, or a timedelta.

    ``ValueError`` (one line) for text it cannot read, a negative age, or an age reaching back
    before the calendar starts (``"1000000d"``)."""
    age = value if isinstance(value, timedelta) else _age(value)
    if age < timedelta(0):
        raise ValueError(f"the age {_shown(value)} is negative; use e.g. 30d")
    try:
        utc_now() - age
    except OverflowError:
        raise ValueError(f"the age {_shown(value)} reaches back before year 1; use a smaller "
                         "age such as 3650d") from None
    return age


def _age(value: str | float) -> timedelta:
    """A number of days or a ``<number><unit>`` text as a timedelta (``ValueError`` if not)."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return timedelta(days=value)
        match = _DURATION.fullmatch(str(value))
        if match:
            return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    except (OverflowError, ValueError):
        raise ValueError(f"the age {_shown(value)} is not a usable length of time; "
                         "use e.g. 30d, 12h, 90m, 2w or 45s") from None
    raise ValueError(f"cannot read the age {_shown(value)}; use e.g. 30d, 12h, 90m, 2w or 45s")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SessionManager:
    """Create, find, change and remove sessions in one store.

    ``SessionManager()`` keeps sessions in memory; ``SessionManager.with_storage(...)`` takes a
    :class:`StorageBackend`, a spec string (``"sqlite:///x.db"``, ``"memory"``, a directory) or a
    store object. Every method reads or writes the store directly: there is no hidden cache
    to go stale, so several managers (or processes) can share one store.
    """

    def __init__(self, storage: Storage | StorageBackend | str | os.PathLike[str] | None = None):
        self.storage: Storage = open_storage(storage)
        self._listeners: list[Listener] = []

    @classmethod
    def with_storage(cls, backend: Storage | StorageBackend | str | os.PathLike[str]
                     ) -> SessionManager:
        """A manager over the given store."""
        return cls(backend)

    def __repr__(self) -> str:
        return f"SessionManager({self.storage.location!r})"

    def __enter__(self) -> SessionManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, session_id)`` after each change made through this manager.

        Events: ``created``, ``updated``, ``appended``, ``marked``, ``deleted``, ``cleared``.
        ``session_id`` is ``None`` for ``cleared``. Front ends (the panel) use this to follow
        changes without polling; a failing listener never breaks the write.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _changed(self, event: str, session_id: str | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, session_id)
            except Exception as exc:  # a broken front end must not lose a write
                warnings.warn(f"claude_magic listener {listener!r} failed: {exc}", stacklevel=3)

    @property
    def location(self) -> str:
        """Where the sessions are: a directory, ``sqlite:///path`` or ``memory``."""
        return self.storage.location

    # --- the seed's operations ------------------------------------------------------------

    def create_session(self, session_id: str | None = None) -> SessionBuilder:
        """A builder that stores the session on ``build()`` (a fresh UUID4 id by default)."""
        return SessionBuilder(session_id, store=self.storage,
                              on_build=lambda s: self._changed("created", s.id))

    def list(self) -> list[SessionId]:
        """Ids of all sessions, most recently updated first."""
        return self.storage.list_ids()

    def get(self, session_id: str) -> Session | None:
        """The session with its messages, or ``None`` when there is none with this id."""
        return self.storage.load(SessionId(session_id))

    def resume(self, session_id: str) -> Session:
        """The session with its messages; raises :class:`SessionNotFound` when missing."""
        session = self.get(session_id)
        if session is None:
            raise SessionNotFound(str(session_id))
        return session

    def delete(self, session_id: str, *, if_updated_at: datetime | None = None) -> bool:
        """Remove a session; returns whether it existed (and was removed).

        With ``if_updated_at``, remove it only if it was last updated at exactly that time
        (decided atomically by the store), so a session changed meanwhile is kept."""
        deleted = self.storage.delete(SessionId(session_id), if_updated_at=if_updated_at)
        if deleted:
            self._changed("deleted", session_id)
        return deleted

    def clear(self) -> int:
        """Remove every session; returns how many were removed."""
        count = self.storage.clear()
        self._changed("cleared", None)
        return count

    # --- beyond the seed ------------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        return self.storage.exists(SessionId(session_id))

    def count(self) -> int:
        """How many sessions the store holds."""
        return self.storage.count()

    def summaries(self) -> list[SessionSummary]:
        """Every session's header and totals (no messages), most recently updated first."""
        return self.storage.summaries()

    def summary(self, session_id: str) -> SessionSummary | None:
        """One session's header and totals, without its messages (None when missing)."""
        return self.storage.summary(SessionId(session_id))

    def summary_columns(self) -> SummaryColumns:
        """:meth:`summaries` as columns, read the fastest way the store has (for DataFrames)."""
        return self.storage.summary_columns()

    def damaged(self) -> list[DamagedEntry]:
        """Files or rows the store skipped because it could not read them."""
        return self.storage.damaged()

    def update(self, session_id: str, *, system_prompt: str | None = _UNSET,
               metadata: Mapping[str, Any] | None = None, unset: Iterable[str] = (),
               settings: Mapping[str, Any] | None = None,
               unset_settings: Iterable[str] = ()) -> None:
        """Change the system prompt, set or unset metadata keys and settings, atomically."""
        changes = SessionChanges(system_prompt=system_prompt, set_metadata=dict(metadata or {}),
                                 unset_metadata=tuple(unset),
                                 set_settings=dict(settings or {}),
                                 unset_settings=tuple(unset_settings))
        self.storage.update(SessionId(session_id), changes)
        self._changed("updated", session_id)

    def append(self, session_id: str, message: Message) -> Message:
        """Add a message at the end of a session; returns the stored message with its ``seq``.

        A message with an ill-typed field is refused (``TypeError`` / ``ValueError``) and
        nothing is written."""
        if not isinstance(message, Message):
            raise TypeError(f"append takes a Message, got {type(message).__name__}")
        stored = self.storage.append(SessionId(session_id), message)
        self._changed("appended", session_id)
        return stored

    def mark(self, session_id: str, seq: int, status: Status, error: str | None = None) -> None:
        """Set a stored message's status (``ok``, ``error``, ``incomplete``) and error text."""
        check_status(status)
        check_text(error, "message error", optional=True)
        self.storage.mark(SessionId(session_id), seq, status, error)
        self._changed("marked", session_id)

    def fork(self, session_id: str, new_id: str | None = None, *,
             metadata: Mapping[str, Any] | None = None) -> Session:
        """A new session with a copy of this one's prompt, metadata, settings and messages.

        The fork records ``forked_from`` in its metadata; ``metadata`` adds or overrides keys.
        """
        source = self.resume(session_id)
        fork = Session(
            id=SessionId.new(new_id),
            system_prompt=source.system_prompt,
            metadata={**source.metadata, "forked_from": str(source.id), **dict(metadata or {})},
            settings=source.settings,
            messages=source.messages,
        )
        stored = self.storage.create(fork)
        self._changed("created", stored.id)
        return stored

    def import_session(self, session: Session, *, overwrite: bool = False) -> Session:
        """Store a session exactly as given (times and messages), e.g. from a JSON export."""
        stored = self.storage.create(session, overwrite=overwrite, preserve_times=True)
        self._changed("created", stored.id)
        return stored

    def find(self, metadata: Mapping[str, Any] | None = None, /, **equals: Any) -> list[SessionId]:
        """Ids of sessions whose metadata has all the given values, newest first.

        ``manager.find(project="web-api")`` or ``manager.find({"project": "web-api"})``.
        """
        wanted = {**dict(metadata or {}), **equals}
        return [s.id for s in self.summaries() if metadata_matches(s.metadata, wanted)]

    def prune(self, older_than: timedelta | str | float | None = None, *, keep_last: int = 0,
              dry_run: bool = False) -> list[SessionId]:
        """Delete sessions not updated within ``older_than``, always keeping the newest
        ``keep_last``. Without ``older_than`` only ``keep_last`` applies. Returns the ids
        deleted (or that would be, with ``dry_run``).

        A session another process changes after prune listed it is kept: each delete happens
        only if the session's ``updated_at`` is still the one listed (checked by the store in
        its transaction or under its lock)."""
        if type(keep_last) is not int or keep_last < 0:
            raise ValueError(f"keep_last must be an int, 0 or more, got {_shown(keep_last)}")
        if older_than is None and not keep_last:
            raise ValueError("prune needs older_than (e.g. '30d') or keep_last; "
                             "use clear() to delete every session")
        cutoff = utc_now() - parse_age(older_than) if older_than is not None else None
        candidates = self.summaries()[keep_last:]
        doomed = [s for s in candidates if cutoff is None or s.updated_at < cutoff]
        if dry_run:
            return [s.id for s in doomed]
        deleted = []
        for summary in doomed:
            if self.storage.delete(summary.id, if_updated_at=summary.updated_at):
                deleted.append(summary.id)
                self._changed("deleted", summary.id)
        return deleted

    def usage(self, by: str = "session", session_ids: str | Iterable[str] | None = None
              ) -> pandas.DataFrame:
        """The usage ledger: turns, input / cache-write / cache-read / output tokens and cost
        per session, model or day (see :mod:`claude_magic.ledger`)."""
        from .ledger import usage

        return usage(self, by, session_ids)

    def to_dataframe(self) -> pandas.DataFrame:
        """One row per session: header, ``meta.<key>`` columns, turns, tokens, cost."""
        from .export import to_dataframe

        return to_dataframe(self)

    def messages_dataframe(self, session_ids: str | Iterable[str] | None = None
                           ) -> pandas.DataFrame:
        """One row per message of one session, several, or all (``None``)."""
        from .export import messages_dataframe

        return messages_dataframe(self, session_ids)

    def close(self) -> None:
        """Release the store's files or connection."""
        self.storage.close()

"""SessionManager: the seed's session operations, plus update, append, fork, find, prune,
copy between stores, and (on a team store) owners, visibility and live remote changes."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from .chain import HASH_KEY, VerifyReport, chain, message_hash, verify_messages
from .checks import check_text
from .errors import ClaudeMagicError, SessionExists, SessionNotFound, StorageError
from .message import Message, Status, check_status
from .search import Matcher, SearchHit, check_limit, parse_query, scan
from .session import _UNSET, Session, SessionBuilder, SessionChanges, SessionId, SessionSummary
from .storage import StorageBackend, open_storage
from .storage._assets import collect, portable, store_assets, store_session_assets
from .storage._ops import store_op
from .storage.base import metadata_matches
from .times import utc_now

if TYPE_CHECKING:
    import pandas

    from .storage.base import DamagedEntry, Storage, SummaryColumns
    from .storage.postgres import Sharing

Listener = Callable[[str, "str | None"], None]
Scope = Literal["all", "mine", "team"]
NO_OWNERS = "sharing needs a PostgreSQL store"

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


def _id_list(session_ids: str | Iterable[str]) -> list[SessionId]:
    """One id or several as validated ids, each once, in the order given."""
    given = [session_ids] if isinstance(session_ids, str) else list(session_ids)
    return list(dict.fromkeys(SessionId(i) for i in given))


def _some(ids: list[SessionId]) -> str:
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return f"{len(ids)} session{'' if len(ids) == 1 else 's'} ({shown})"


def _missing_hashes(messages: list[Message], start: int, *,
                    rewrite: bool = False) -> dict[int, str]:
    """The hashes, by seq, that messages from seq ``start`` (or from the first one without a
    hash, if earlier) should carry and do not (``rewrite``: every one from there)."""
    first = next((i for i, m in enumerate(messages)
                  if HASH_KEY not in m.ids or (m.seq or 0) >= start), len(messages))
    return {m.seq or 0: h for m, h in _chain_from(messages, first)
            if rewrite or m.ids.get(HASH_KEY) != h}


def _chain_from(messages: list[Message], first: int) -> Iterable[tuple[Message, str]]:
    """Each message from index ``first`` on with the hash it should carry, chained after
    the hash the message before it carries."""
    previous = messages[first - 1].ids.get(HASH_KEY, "") if first else ""
    rest = messages[first:]
    return zip(rest, chain(rest, previous), strict=True)


def _chained(session: Session) -> Session:
    """``session`` with chain hashes on the messages that lack one (an import from before
    hashes, or a hand-made file): the first append then has none to write. Hashes the
    import carries are kept as they are, so ``verify`` judges them."""
    first = next((i for i, m in enumerate(session.messages) if HASH_KEY not in m.ids), None)
    if first is None:
        return session
    session = session.copy()
    for message, value in _chain_from(session.messages, first):
        message.ids[HASH_KEY] = value
    return session


def _up_to(session: Session, at: int) -> list[Message]:
    """The messages up to and including answer ``at``; ValueError naming the answers."""
    messages = session.messages
    if type(at) is not int or not 0 <= at < len(messages) or messages[at].role != "assistant":
        answers = [m.seq for m in messages if m.role == "assistant"]
        shown = ", ".join(map(str, answers[-10:])) or "none yet"
        raise ValueError(f"session {str(session.id)!r} has no answer at turn {at!r}; "
                         f"its answers are at turns {shown}")
    from .backends.claude_code import SESSION_ID_KEY

    kept = [m.copy() for m in messages[: at + 1]]
    for message in kept:  # the CLI cannot cut its history: the fork starts a new conversation
        message.ids.pop(SESSION_ID_KEY, None)
    return kept


@dataclass(frozen=True)
class CopyReport:
    """What :meth:`SessionManager.copy_to` copied: ids, how many messages, and where to."""

    target: str
    copied: list[SessionId]
    messages: int
    replaced: list[SessionId]

    def __str__(self) -> str:
        count = len(self.copied)
        text = (f"Copied {count} session{'' if count == 1 else 's'} ({self.messages} "
                f"message{'' if self.messages == 1 else 's'}) to {self.target}")
        return text + (f"; replaced {len(self.replaced)} there." if self.replaced else ".")


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
        self._unsubscribe: Callable[[], None] | None = None
        #: session -> (message count, updated_at, next seq, last hash) after this manager's append
        self._tips: dict[SessionId, tuple[int, datetime, int, str]] = {}

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

        On a store that reports other kernels' changes (PostgreSQL), the first listener also
        subscribes to them: listeners then fire, from a listener thread, for remote changes
        too (``session_id`` ``None`` when unknown: re-read everything). A manager with no
        listener opens no extra connection.
        """
        self._listeners.append(listener)
        subscribe = getattr(self.storage, "subscribe", None)
        if subscribe is not None and self._unsubscribe is None:
            self._unsubscribe = subscribe(self._changed)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
        if not self._listeners:
            self._stop_following()

    def _stop_following(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

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

    def list(self, scope: Scope = "all") -> list[SessionId]:
        """Ids of all sessions, most recently updated first (``scope``: see :meth:`sharing`)."""
        return self.storage.list_ids(**self._scoped(scope))

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
            collect(self.storage)  # images and PDFs no session references any more
            self._changed("deleted", session_id)
        return deleted

    def clear(self) -> int:
        """Remove every session; returns how many were removed."""
        count = self.storage.clear()
        collect(self.storage)
        self._changed("cleared", None)
        return count

    # --- beyond the seed ------------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        return self.storage.exists(SessionId(session_id))

    def count(self, scope: Scope = "all") -> int:
        """How many sessions the store holds."""
        return self.storage.count(**self._scoped(scope))

    def summaries(self, scope: Scope = "all") -> list[SessionSummary]:
        """Every session's header and totals (no messages), most recently updated first."""
        return self.storage.summaries(**self._scoped(scope))

    def summary(self, session_id: str) -> SessionSummary | None:
        """One session's header and totals, without its messages (None when missing)."""
        return self.storage.summary(SessionId(session_id))

    def summary_columns(self, scope: Scope = "all") -> SummaryColumns:
        """:meth:`summaries` as columns, read the fastest way the store has (for DataFrames)."""
        return self.storage.summary_columns(**self._scoped(scope))

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
        """Add a message at the end of a session; returns the stored message with its ``seq``
        and its chain hash in ``ids["hash"]`` (:mod:`claude_magic.chain`).

        A message with an ill-typed field is refused (``TypeError`` / ``ValueError``) and
        nothing is written."""
        if not isinstance(message, Message):
            raise TypeError(f"append takes a Message, got {type(message).__name__}")
        sid = SessionId(session_id)
        message = store_assets(self.storage, message).copy()
        following, previous, pending = self._chain_tip(sid)
        if pending:  # messages stored before hashes existed: their hashes go first, so the
            self._write_hashes(sid, pending)  # tip the store reads next time is never ahead
        message.ids[HASH_KEY] = message_hash(previous, message.role, message.status,
                                             message.content)
        stored = self.storage.append(sid, message)
        self._after_append(sid, stored, following)
        self._changed("appended", session_id)
        return stored

    def _chain_tip(self, session_id: SessionId) -> tuple[int, str, dict[int, str]]:
        """The seq the next message should get, the hash it follows, and the hashes of
        messages stored before hashes existed (written after the append: the migration)."""
        tip = store_op(self.storage, "chain_tip")  # the newest message alone: one read, O(1)
        found = tip(session_id) if tip is not None else None
        if found is not None:  # it carries a hash, so every message before it does too
            return found[0], found[1], {}  # (a missing session: the append raises)
        summary = self.storage.summary(session_id)
        if summary is None:
            raise SessionNotFound(str(session_id))
        cached = self._tips.get(session_id)
        if cached is not None and cached[:2] == (summary.stats.message_count, summary.updated_at):
            return cached[2], cached[3], {}  # nothing written since this manager's append
        messages = self.resume(session_id).messages
        pending = _missing_hashes(messages, len(messages))
        last = messages[-1] if messages else None
        previous = "" if last is None else pending.get(last.seq, last.ids.get(HASH_KEY, ""))
        return (0 if last is None else (last.seq or 0) + 1), previous, pending

    def _after_append(self, session_id: SessionId, stored: Message, following: int) -> None:
        """After the append committed: re-link the chain if another writer appended
        meanwhile. Never raises: the message is stored either way."""
        self._tips.pop(session_id, None)
        try:
            if stored.seq != following:  # another writer got in between
                self._rehash(session_id, following)
        except ClaudeMagicError as exc:
            warnings.warn(f"claude_magic stored the message but could not re-link the hash "
                          f"chain of session {str(session_id)!r} after another writer's append "
                          f"({exc}); verify() reports it until a mark re-hashes the session",
                          stacklevel=3)
            return
        if store_op(self.storage, "chain_tip") is not None:
            return  # the next append reads the tip from the store: no cache to keep
        with contextlib.suppress(ClaudeMagicError):  # only a cache: the next append reads
            summary = self.storage.summary(session_id)
            if summary is not None and stored.seq == following:
                self._tips[session_id] = (summary.stats.message_count, summary.updated_at,
                                          (stored.seq or 0) + 1, stored.ids[HASH_KEY])

    def _write_hashes(self, session_id: SessionId, hashes: dict[int, str],
                      mark: tuple[int, Status, str | None] | None = None) -> bool:
        """Store hashes (and a mark) in one write; False when the store cannot."""
        set_hashes = store_op(self.storage, "set_hashes")
        if set_hashes is None:
            return False
        set_hashes(session_id, hashes, mark)
        return True

    def _rehash(self, session_id: SessionId, start: int) -> None:
        """Write the chain hashes of message ``start`` and every later one."""
        changed = _missing_hashes(self.resume(session_id).messages, start)
        if changed:
            self._write_hashes(session_id, changed)

    def mark(self, session_id: str, seq: int, status: Status, error: str | None = None) -> None:
        """Set a stored message's status (``ok``, ``error``, ``incomplete``) and error text;
        the marked message and every later one are re-hashed in the same write (the chain
        covers statuses)."""
        check_status(status)
        check_text(error, "message error", optional=True)
        sid = SessionId(session_id)
        messages = [m.copy() for m in self.resume(sid).messages]
        for message in messages:
            if message.seq == seq:
                message.status, message.error = status, error
        hashes = _missing_hashes(messages, seq, rewrite=True)
        if not any(m.seq == seq for m in messages) or not self._write_hashes(
                sid, hashes, (seq, status, error)):
            self.storage.mark(sid, seq, status, error)  # IndexError for a missing message
        self._tips.pop(sid, None)
        self._changed("marked", session_id)

    def verify(self, session_id: str) -> VerifyReport:
        """Check the session's hash chain: ``ok``, or the first message whose stored role,
        status or content no longer matches its hash (``first_bad_seq``) and why."""
        return verify_messages(str(session_id), self.resume(session_id).messages)

    def search(self, text: str, *, limit: int = 50,
               session_ids: Iterable[str] | None = None) -> list[SearchHit]:
        """Hits for ``text`` (words, ``"phrases"``, ``prefix*``), best first: prompts, answers,
        system prompts and metadata values; snippets mark matches as ``«match»``."""
        matcher = Matcher(parse_query(text))
        ids = None if session_ids is None else [str(i) for i in _id_list(session_ids)]
        search = store_op(self.storage, "search")
        if search is None:
            return scan((s for s in map(self.get, ids or self.list()) if s is not None),
                        matcher, check_limit(limit))
        return search(matcher, check_limit(limit), ids)

    def rename(self, old: str, new: str, *, overwrite: bool = False) -> None:
        """Give a session another id, atomically (after a crash exactly one of the two names
        exists, with every message); created time, messages, settings and backend ids are
        kept. An existing ``new`` is :class:`SessionExists` unless ``overwrite``."""
        old_id, new_id = SessionId(old), SessionId(new)
        if old_id == new_id:
            if not self.exists(old_id):
                raise SessionNotFound(str(old_id))
            return
        rename = store_op(self.storage, "rename")
        if rename is None:
            raise StorageError(f"{self.location} cannot rename sessions; copy the session "
                               "under the new id and delete the old one")
        rename(old_id, new_id, overwrite)
        self._tips.pop(old_id, None)
        self._tips.pop(new_id, None)
        self._changed("deleted", str(old_id))
        self._changed("created", str(new_id))

    def fork(self, session_id: str, new_id: str | None = None, *,
             metadata: Mapping[str, Any] | None = None, at: int | None = None) -> Session:
        """A new session with a copy of this one's prompt, metadata, settings and messages.

        With ``at`` (the ``turn`` the output metadata shows: an answer's seq), the fork holds
        the conversation up to and including that answer. The fork records ``forked_from``
        (and ``forked_at``) in its metadata; ``metadata`` adds or overrides keys. With ``at``
        the Claude Code conversation id is left behind (the CLI cannot cut its history): the
        fork's first ``claude-code`` turn starts a new CLI conversation given the transcript.
        """
        source = self.resume(session_id)
        messages = source.messages if at is None else _up_to(source, at)
        extra = {"forked_from": str(source.id)}
        if at is not None:
            extra["forked_at"] = at
        fork = Session(
            id=SessionId.new(new_id),
            system_prompt=source.system_prompt,
            metadata={**source.metadata, **extra, **dict(metadata or {})},
            settings=source.settings,
            messages=messages,
        )
        stored = self.storage.create(fork)
        self._changed("created", stored.id)
        return stored

    def import_session(self, session: Session, *, overwrite: bool = False) -> Session:
        """Store a session exactly as given (times and messages), e.g. from a JSON export."""
        session = _chained(store_session_assets(self.storage, session))
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
        if deleted:
            collect(self.storage)
        return deleted

    # --- owners and visibility (team stores) ----------------------------------------------

    @property
    def has_owners(self) -> bool:
        """Whether sessions here have owners and a visibility (a PostgreSQL team store)."""
        return hasattr(self.storage, "sharing")

    def _scoped(self, scope: Scope) -> dict[str, Any]:
        """The store's ``scope`` argument: ``mine`` / ``team`` need a store with owners."""
        if scope == "all":
            return {}
        if scope not in ("mine", "team"):
            raise ValueError(f"scope must be 'all', 'mine' or 'team', got {_shown(scope)}")
        if not self.has_owners:
            raise StorageError(f"{NO_OWNERS} (owners and visibility); {self.location} keeps "
                               "every session private to whoever can read it")
        return {"scope": scope}

    def sharing(self, scope: Scope = "all") -> dict[SessionId, Sharing]:
        """Each visible session's ``Sharing(owner, visibility, mine)``; ``scope`` ``mine``
        (sessions this role owns), ``team`` (shared with the team) or ``all``."""
        if not self.has_owners:
            raise StorageError(f"{NO_OWNERS}; {self.location} has no owners")
        return self.storage.sharing(**self._scoped(scope))  # type: ignore[attr-defined]

    def share(self, session_id: str, visibility: Literal["team", "private"] = "team") -> None:
        """Share one of your sessions with the team (``"private"``: take it back)."""
        if not self.has_owners:
            raise StorageError(f"{NO_OWNERS}; {self.location} has no team to share with")
        self.storage.set_visibility(SessionId(session_id), visibility)  # type: ignore[attr-defined]
        self._changed("updated", session_id)

    # --- moving sessions ------------------------------------------------------------------

    def copy_to(self, other: SessionManager | Storage | StorageBackend | str | os.PathLike[str],
                session_ids: str | Iterable[str] | None = None, *,
                overwrite: bool = False) -> CopyReport:
        """Copy sessions exactly (ids, times, messages with their statuses and ids, metadata,
        settings) into another store; every session when ``session_ids`` is None.

        Before anything is written, a missing id is :class:`SessionNotFound` and ids the
        target already holds are :class:`SessionExists` unless ``overwrite``. Each session
        is written in one step; an error midway names how many were copied before it.
        """
        target = other if isinstance(other, SessionManager) else SessionManager(other)
        try:
            return self._copy_into(target, session_ids, overwrite)
        finally:
            if target is not other:
                target.close()

    def _copy_into(self, target: SessionManager, session_ids: str | Iterable[str] | None,
                   overwrite: bool) -> CopyReport:
        same_place = target.location == self.location and self.location != "memory"
        if target.storage is self.storage or same_place:
            raise StorageError(f"cannot copy {self.location} onto itself; name another store")
        ids = self.list() if session_ids is None else _id_list(session_ids)
        missing = [i for i in ids if not self.exists(i)]
        if missing:
            raise SessionNotFound(missing[0], f"{_some(missing)} missing in {self.location}; "
                                  "nothing was copied")
        taken = [i for i in ids if target.exists(i)]
        if taken and not overwrite:
            raise SessionExists(taken[0]) if len(taken) == 1 else StorageError(
                f"{_some(taken)} already in {target.location}; nothing was copied: "
                "pass overwrite=True (--overwrite) to replace them, or name other sessions")
        copied: list[SessionId] = []
        messages = 0
        for session_id in ids:
            try:
                session = self.get(session_id)
                if session is None:  # deleted meanwhile by another kernel
                    continue
                target.import_session(portable(self.storage, session), overwrite=overwrite)
            except ClaudeMagicError as exc:
                raise StorageError(f"copy stopped at {str(session_id)!r} after {len(copied)} of "
                                   f"{len(ids)} sessions (each one copied is complete): "
                                   f"{exc}") from exc
            copied.append(session_id)
            messages += len(session.messages)
        return CopyReport(target.location, copied, messages,
                          [i for i in taken if i in copied])

    def usage(self, by: str = "session", session_ids: str | Iterable[str] | None = None
              ) -> pandas.DataFrame:
        """The usage ledger: turns, input / cache-write / cache-read / output tokens and cost
        per session, model or day (see :mod:`claude_magic.ledger`)."""
        from .ledger import usage

        return usage(self, by, session_ids)

    def to_dataframe(self) -> pandas.DataFrame:
        """One row per session: header, ``meta.<key>`` columns, turns, tokens, cost; on a
        team store also ``owner`` and ``visibility`` (after ``id``)."""
        from .export import to_dataframe

        frame = to_dataframe(self)
        if self.has_owners:
            sharing = self.sharing()
            found = [sharing.get(i) for i in frame["id"]]
            frame.insert(1, "owner", [s.owner if s else None for s in found])
            frame.insert(2, "visibility", [s.visibility if s else None for s in found])
        return frame

    def messages_dataframe(self, session_ids: str | Iterable[str] | None = None
                           ) -> pandas.DataFrame:
        """One row per message of one session, several, or all (``None``)."""
        from .export import messages_dataframe

        return messages_dataframe(self, session_ids)

    def close(self) -> None:
        """Release the store's files or connection (and stop following remote changes)."""
        self._stop_following()
        self.storage.close()

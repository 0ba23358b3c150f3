"""The data model: session ids, sessions and the session builder (messages: message.py).

No I/O here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .checks import (
    check_metadata,
    check_settings,
    check_text,
    clone_json,
    json_object,
    required_field,
    time_field,
)
from .errors import InvalidSessionId
from .message import Message, SessionStats
from .times import as_utc, format_time, utc_now

if TYPE_CHECKING:
    from .storage.base import Storage

_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# Names Windows reserves for devices; refused so a store can be copied to any OS.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{n}" for p in ("com", "lpt") for n in range(10)}
# All the rules in one regex (the fast path); the checks in SessionId.__new__ explain a refusal.
_VALID_ID = re.compile(
    r"(?!(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\.|\Z))(?!.*\.\.)"
    r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_-])?\Z",
    re.ASCII | re.IGNORECASE,
)


class SessionId(str):
    """A validated session id: a plain ``str`` that is safe as a file name and a SQL value.

    Allowed: 1-128 ASCII letters, digits, ``-``, ``_`` and ``.``; not starting with ``.`` or
    ``-``, not ending with ``.``; no ``..``; not a Windows device name (``CON``, ``nul.txt``).
    New ids are UUID4 strings.
    """

    MAX_LENGTH = 128
    __slots__ = ()

    def __new__(cls, value: object) -> SessionId:
        if type(value) is str and _VALID_ID.match(value):  # the fast path: one regex
            return str.__new__(cls, value)
        if isinstance(value, SessionId):
            return value
        if not isinstance(value, str):
            raise InvalidSessionId(value, f"expected a string, got {type(value).__name__}")
        if not value:
            raise InvalidSessionId(value, "it is empty")
        if len(value) > cls.MAX_LENGTH:
            raise InvalidSessionId(value, f"it is longer than {cls.MAX_LENGTH} characters")
        if value[0] in ".-":
            raise InvalidSessionId(value, f"it starts with {value[0]!r}")
        if value.endswith("."):
            raise InvalidSessionId(value, "it ends with '.'")
        if not _ID_PATTERN.fullmatch(value):
            raise InvalidSessionId(value, "it contains a character that is not allowed")
        if ".." in value:
            raise InvalidSessionId(value, "it contains '..'")
        if value.split(".", 1)[0].lower() in _RESERVED:
            raise InvalidSessionId(value, "it is a reserved device name on Windows")
        if not _VALID_ID.match(value):  # pragma: no cover - the two checks agree (tested)
            raise InvalidSessionId(value, "it is not allowed")
        return super().__new__(cls, str(value))

    @classmethod
    def new(cls, value: str | None = None) -> SessionId:
        """``SessionId.new("x")`` validates ``x``; ``SessionId.new()`` makes a fresh UUID4 id."""
        return cls(value) if value is not None else cls(str(uuid.uuid4()))

    def __repr__(self) -> str:
        return f"SessionId({str.__repr__(self)})"


@dataclass(slots=True)
class Session:
    """A named conversation: system prompt, metadata, settings and its messages.

    ``settings`` holds per-session defaults such as ``model`` and ``backend``.
    """

    id: SessionId
    system_prompt: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    messages: list[Message] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id = SessionId(self.id)
        check_text(self.system_prompt, "system prompt", optional=True)
        self.created_at = as_utc(self.created_at)
        self.updated_at = as_utc(self.updated_at)

    @property
    def stats(self) -> SessionStats:
        """Totals over the messages: count, turns, tokens, cost."""
        return SessionStats.of(self.messages)

    def checked_copy(self) -> Session:
        """A deep copy after checking every field a store writes; raises before any write.

        The id is validated, the prompt must be text, metadata and settings plain JSON, times
        become UTC (naive ones are taken as UTC) and messages are renumbered ``0..n-1``.
        Stores call this first in ``create``.
        """
        messages = []
        for seq, message in enumerate(self.messages):
            if not isinstance(message, Message):
                raise TypeError(f"session messages must be Message, got {type(message).__name__}")
            copied = message.copy()
            copied.seq = seq
            copied.created_at = as_utc(copied.created_at)
            messages.append(copied)
        return replace(
            self,
            id=SessionId(self.id),
            created_at=as_utc(self.created_at),
            updated_at=as_utc(self.updated_at),
            system_prompt=check_text(self.system_prompt, "system prompt", optional=True),
            metadata=check_metadata(self.metadata),
            settings=check_settings(self.settings),
            messages=messages,
        )

    def context(self) -> list[Message]:
        """The messages a model sees: only ``ok`` ones, so failed turns are never replayed."""
        return [m for m in self.messages if m.status == "ok"]

    def copy(self) -> Session:
        """A deep copy that shares nothing mutable with this session."""
        return replace(self, metadata=clone_json(self.metadata), settings=clone_json(self.settings),
                       messages=[m.copy() for m in self.messages])

    def header_dict(self) -> dict[str, Any]:
        """The JSON-ready header fields (no messages)."""
        return {
            "id": str(self.id),
            "system_prompt": self.system_prompt,
            "metadata": self.metadata,
            "settings": self.settings,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole session as JSON-ready data (header plus messages)."""
        data = self.header_dict()
        data["messages"] = [m.to_dict() for m in self.messages]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        """Reverse :meth:`to_dict`. Ill-typed data raises ``TypeError`` / ``ValueError`` (or
        their subclasses ``InvalidSessionId``, ``InvalidMetadata``) naming the field."""
        data = json_object(data, "a session")
        messages = data.get("messages")
        if messages is None:
            messages = []
        elif not isinstance(messages, list):
            raise TypeError(f"session messages must be a list, got {type(messages).__name__}")
        parsed = []
        for index, item in enumerate(messages):
            try:
                parsed.append(Message.from_dict(item))
            except (TypeError, ValueError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError
                raise kind(f"messages[{index}]: {exc}") from None
        metadata, settings = data.get("metadata"), data.get("settings")
        return cls(
            id=SessionId(required_field(data, "id", "session")),
            system_prompt=check_text(data.get("system_prompt"), "system_prompt", optional=True),
            metadata=check_metadata({} if metadata is None else metadata),
            settings=check_settings({} if settings is None else settings),
            created_at=time_field(data, "created_at", "session"),
            updated_at=time_field(data, "updated_at", "session"),
            messages=parsed,
        )




@dataclass(slots=True)
class SessionSummary:
    """A session's header and totals, without messages: one row of a listing."""

    id: SessionId
    system_prompt: str | None
    metadata: dict[str, Any]
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    stats: SessionStats


_UNSET: Any = object()


@dataclass(slots=True)
class SessionChanges:
    """A header update applied atomically by a store: prompt, metadata keys, settings keys."""

    system_prompt: str | None = _UNSET
    set_metadata: dict[str, Any] = field(default_factory=dict)
    unset_metadata: tuple[str, ...] = ()
    set_settings: dict[str, Any] = field(default_factory=dict)
    unset_settings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.system_prompt is not _UNSET:
            check_text(self.system_prompt, "system prompt", optional=True)
        self.set_metadata = check_metadata(self.set_metadata)
        self.set_settings = check_settings(self.set_settings)
        self.unset_metadata = tuple(self.unset_metadata)
        self.unset_settings = tuple(self.unset_settings)

    def apply(self, session: Session, when: datetime) -> None:
        """Change ``session`` in place and stamp ``updated_at``."""
        if self.system_prompt is not _UNSET:
            session.system_prompt = self.system_prompt
        session.metadata.update(clone_json(self.set_metadata))
        for key in self.unset_metadata:
            session.metadata.pop(key, None)
        session.settings.update(clone_json(self.set_settings))
        for key in self.unset_settings:
            session.settings.pop(key, None)
        session.updated_at = when


class _BothWays:
    """A method that works on the class (a new builder) and on an instance (chained)."""

    def __init__(self, func: Callable[..., SessionBuilder]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, instance: SessionBuilder | None, owner: type[SessionBuilder]) -> Any:
        target = instance if instance is not None else owner()
        return self.func.__get__(target, owner)


class SessionBuilder:
    """Fluent construction of a :class:`Session`.

    ``SessionBuilder().with_system_prompt(...).build()`` makes a standalone session;
    ``SessionBuilder.with_id("review-001")`` starts from a chosen id; builders returned by
    ``SessionManager.create_session()`` store the session when ``build()`` is called.
    """

    def __init__(self, session_id: str | None = None, *, store: Storage | None = None,
                 on_build: Callable[[Session], None] | None = None) -> None:
        self._id = SessionId(session_id) if session_id is not None else None
        self._system_prompt: str | None = None
        self._metadata: dict[str, Any] = {}
        self._settings: dict[str, Any] = {}
        self._overwrite = False
        self._store = store
        self._on_build = on_build

    @_BothWays
    def with_id(self, session_id: str) -> SessionBuilder:
        """Use this id instead of a fresh UUID4 (validated now)."""
        self._id = SessionId(session_id)
        return self

    def with_system_prompt(self, prompt: str | None) -> SessionBuilder:
        self._system_prompt = check_text(prompt, "system prompt", optional=True)
        return self

    def with_metadata(self, key: str, value: Any) -> SessionBuilder:
        """Add one metadata entry; refused at once if it is not plain JSON."""
        self._metadata.update(check_metadata({key: value}))
        return self

    def with_setting(self, key: str, value: Any) -> SessionBuilder:
        """Add a per-session default such as ``model``, ``backend`` or ``max_tokens``."""
        self._settings.update(check_settings({key: value}))
        return self

    def with_model(self, model: str) -> SessionBuilder:
        return self.with_setting("model", model)

    def with_backend(self, backend: str) -> SessionBuilder:
        return self.with_setting("backend", backend)

    def overwrite(self, enabled: bool = True) -> SessionBuilder:
        """Replace an existing session with the same id instead of raising ``SessionExists``."""
        self._overwrite = enabled
        return self

    def build(self) -> Session:
        """Make the session; a managed builder also stores it (atomically)."""
        now = utc_now()
        session = Session(
            id=self._id if self._id is not None else SessionId.new(),
            system_prompt=self._system_prompt,
            metadata=clone_json(self._metadata),
            settings=clone_json(self._settings),
            created_at=now,
            updated_at=now,
        )
        if self._store is None:
            return session
        stored = self._store.create(session, overwrite=self._overwrite)
        if self._on_build is not None:
            self._on_build(stored)
        return stored

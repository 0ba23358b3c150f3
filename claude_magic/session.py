"""The data model: session ids, sessions, messages and the session builder. No I/O here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .checks import (
    check_count,
    check_metadata,
    check_number,
    check_settings,
    check_text,
    clone_json,
)
from .errors import InvalidSessionId
from .times import as_utc, format_time, parse_time, utc_now

if TYPE_CHECKING:
    from .storage.base import Storage

Role = Literal["user", "assistant"]
Status = Literal["ok", "error", "incomplete"]
ROLES: tuple[str, ...] = ("user", "assistant")
STATUSES: tuple[str, ...] = ("ok", "error", "incomplete")

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


def check_status(status: Any) -> Status:
    """Return ``status`` if it is ``ok``, ``error`` or ``incomplete``; else ``ValueError``."""
    if status not in STATUSES:
        raise ValueError(f"message status must be one of {STATUSES}, got {status!r}")
    return status


def _required(data: Mapping[str, Any], key: str, what: str) -> Any:
    """``data[key]``, or a ``ValueError`` naming the missing field."""
    try:
        return data[key]
    except KeyError:
        raise ValueError(f"{what} has no {key!r}") from None


def _time_field(data: Mapping[str, Any], key: str, what: str) -> datetime:
    """``data[key]`` parsed as an ISO-8601 time; errors name the field."""
    value = _required(data, key, what)
    try:
        return parse_time(value)
    except TypeError:
        raise TypeError(f"{what} {key} must be an ISO-8601 string, "
                        f"got {type(value).__name__}") from None
    except ValueError:
        raise ValueError(f"{what} {key} is not an ISO-8601 time: {str(value)[:40]!r}") from None


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                 "cache_read_input_tokens")


@dataclass(slots=True)
class Usage:
    """Token usage of one model call: non-negative ints (checked on construction)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __post_init__(self) -> None:
        self.input_tokens = check_count(self.input_tokens, "usage input_tokens")
        self.output_tokens = check_count(self.output_tokens, "usage output_tokens")
        self.cache_creation_input_tokens = check_count(self.cache_creation_input_tokens,
                                                       "usage cache_creation_input_tokens")
        self.cache_read_input_tokens = check_count(self.cache_read_input_tokens,
                                                   "usage cache_read_input_tokens")

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        """From a JSON object; a missing or ``null`` count is 0, other keys are ignored."""
        if data is None:
            return cls()
        data = _mapping(data, "usage")
        return cls(*[0 if data.get(name) is None else data[name] for name in _USAGE_FIELDS])


@dataclass(slots=True)
class Message:
    """One message of a conversation, with what the backend reported about it.

    ``status`` is ``ok``, ``error`` (the turn failed; ``error`` says why) or ``incomplete``
    (text streamed before a failure). Only ``ok`` messages are sent back to the model.
    ``seq`` is the message's position in its session, assigned by the store.
    """

    role: Role
    content: str
    created_at: datetime = field(default_factory=utc_now)
    status: Status = "ok"
    error: str | None = None
    model: str | None = None
    backend: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    stop_reason: str | None = None
    duration_ms: float | None = None
    ids: dict[str, str] = field(default_factory=dict)
    seq: int | None = None

    def __post_init__(self) -> None:
        """Check every field, so no store ever writes a message it cannot read back."""
        if self.role not in ROLES:
            raise ValueError(f"message role must be one of {ROLES}, got {self.role!r}")
        check_status(self.status)
        if not isinstance(self.created_at, datetime):
            raise TypeError("message created_at must be a datetime, "
                            f"got {type(self.created_at).__name__}")
        self.created_at = as_utc(self.created_at)
        check_text(self.content, "message content")
        check_text(self.error, "message error", optional=True)
        check_text(self.model, "message model", optional=True)
        check_text(self.backend, "message backend", optional=True)
        check_text(self.stop_reason, "message stop_reason", optional=True)
        if not isinstance(self.usage, Usage):
            raise TypeError(f"message usage must be a Usage, got {type(self.usage).__name__}")
        check_number(self.cost_usd, "message cost_usd", optional=True)
        check_number(self.duration_ms, "message duration_ms", optional=True)
        self.ids = _check_ids(self.ids)
        if self.seq is not None:
            self.seq = check_count(self.seq, "message seq")

    def copy(self) -> Message:
        """A copy that shares nothing mutable with this message; checks every field again."""
        usage, ids = self.usage, self.ids
        return replace(self, usage=replace(usage) if isinstance(usage, Usage) else usage,
                       ids=dict(ids) if isinstance(ids, Mapping) else ids)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reverses it exactly."""
        return {
            "seq": self.seq,
            "role": self.role,
            "content": self.content,
            "created_at": format_time(self.created_at),
            "status": self.status,
            "error": self.error,
            "model": self.model,
            "backend": self.backend,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "stop_reason": self.stop_reason,
            "duration_ms": self.duration_ms,
            "ids": dict(self.ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Reverse :meth:`to_dict`; ``TypeError`` / ``ValueError`` name a bad field."""
        data = _mapping(data, "a message")
        ids = data.get("ids")
        return cls(
            role=_required(data, "role", "message"),
            content=_required(data, "content", "message"),
            created_at=_time_field(data, "created_at", "message"),
            status=data.get("status") or "ok",
            error=data.get("error"),
            model=data.get("model"),
            backend=data.get("backend"),
            usage=Usage.from_dict(data.get("usage")),
            cost_usd=data.get("cost_usd"),
            stop_reason=data.get("stop_reason"),
            duration_ms=data.get("duration_ms"),
            ids={} if ids is None else ids,
            seq=data.get("seq"),
        )


def _check_ids(ids: Any) -> dict[str, str]:
    """A message's backend ids: a dict of str to str (a copy when another mapping is given)."""
    if type(ids) is not dict:
        if not isinstance(ids, Mapping):
            raise TypeError(f"message ids must be a dict of str to str, got {type(ids).__name__}")
        ids = dict(ids)
    for key, value in ids.items():
        if type(key) is not str:
            raise TypeError(f"message ids keys must be str, got {type(key).__name__} {key!r}")
        check_text(key, "message ids key")
        check_text(value, f"message ids[{key!r}]")
    return ids


def answered_turns(messages: Iterable[Message]) -> list[tuple[Message, Message]]:
    """The answered turns, oldest first: each ``ok`` user message with the ``ok`` answer that
    follows it. A user message left without an answer (a failed turn, a kernel that died
    mid-turn) is skipped, so the turns always alternate question / answer."""
    turns: list[tuple[Message, Message]] = []
    question: Message | None = None
    for message in messages:
        if message.status != "ok":
            continue
        if message.role == "user":
            question = message
        elif question is not None:
            turns.append((question, message))
            question = None
    return turns


@dataclass(slots=True)
class SessionStats:
    """Totals over a session's messages, kept by every store so listings need no messages."""

    message_count: int = 0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    last_model: str | None = None

    def add(self, message: Message) -> None:
        self.message_count += 1
        if message.role == "user":
            self.turns += 1
        self.input_tokens += message.usage.input_tokens
        self.output_tokens += message.usage.output_tokens
        self.cost_usd += message.cost_usd or 0.0
        if message.model:
            self.last_model = message.model

    @classmethod
    def of(cls, messages: Iterable[Message]) -> SessionStats:
        stats = cls()
        for message in messages:
            stats.add(message)
        return stats

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def copy(self) -> SessionStats:
        return SessionStats(self.message_count, self.turns, self.input_tokens,
                            self.output_tokens, self.cost_usd, self.last_model)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SessionStats:
        data = data or {}
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


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
        data = _mapping(data, "a session")
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
            id=SessionId(_required(data, "id", "session")),
            system_prompt=check_text(data.get("system_prompt"), "system_prompt", optional=True),
            metadata=check_metadata({} if metadata is None else metadata),
            settings=check_settings({} if settings is None else settings),
            created_at=_time_field(data, "created_at", "session"),
            updated_at=_time_field(data, "updated_at", "session"),
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

"""Messages: one turn's user prompt or answer, its token usage, and totals over many."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Literal

from .blocks import check_blocks, text_of
from .checks import (
    check_count,
    check_number,
    check_text,
    json_object,
    required_field,
    time_field,
)
from .errors import ValueOutOfRange
from .times import MAX_TIME, MIN_TIME, as_utc, format_time, utc_now

Role = Literal["user", "assistant"]
Status = Literal["ok", "error", "incomplete"]
ROLES: tuple[str, ...] = ("user", "assistant")
STATUSES: tuple[str, ...] = ("ok", "error", "incomplete")


def check_status(status: Any) -> Status:
    """Return ``status`` if it is ``ok``, ``error`` or ``incomplete``; else ``ValueError``."""
    if status not in STATUSES:
        raise ValueError(f"message status must be one of {STATUSES}, got {status!r}")
    return status


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
        data = json_object(data, "usage")
        return cls(*[0 if data.get(name) is None else data[name] for name in _USAGE_FIELDS])


@dataclass(slots=True)
class Message:
    """One message of a conversation, with what the backend reported about it.

    ``status`` is ``ok``, ``error`` (the turn failed; ``error`` says why) or ``incomplete``
    (text streamed before a failure). Only ``ok`` messages are sent back to the model.
    ``seq`` is the message's position in its session, assigned by the store.
    ``content`` is text, or a list of content blocks in the Messages API's shapes
    (:mod:`claude_magic.blocks`); :attr:`text` and :attr:`blocks` read either.
    """

    role: Role
    content: str | list[dict[str, Any]]
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
        if isinstance(self.content, str):
            check_text(self.content, "message content")
        else:
            self.content = check_blocks(self.content)  # a checked deep copy
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

    @property
    def text(self) -> str:
        """The text of the message: the content, or its text blocks joined."""
        return self.content if isinstance(self.content, str) else text_of(self.content)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """The content as a list of blocks (text content as one text block; none if empty)."""
        if isinstance(self.content, str):
            return [{"type": "text", "text": self.content}] if self.content else []
        return self.content

    def copy(self) -> Message:
        """A copy that shares nothing mutable with this message; checks every field again."""
        values = list(_message_fields(self))  # every field, in order (dataclasses.replace
        usage, ids = self.usage, self.ids     # does the same, slower: once per append)
        values[_USAGE_AT] = Usage(*_usage_fields(usage)) if isinstance(usage, Usage) else usage
        values[_IDS_AT] = dict(ids) if isinstance(ids, Mapping) else ids
        return type(self)(*values)

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
        data = json_object(data, "a message")
        ids = data.get("ids")
        return cls(
            role=required_field(data, "role", "message"),
            content=required_field(data, "content", "message"),
            created_at=time_field(data, "created_at", "message"),
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


_NAMES = [f.name for f in fields(Message)]
_message_fields, _usage_fields = attrgetter(*_NAMES), attrgetter(*_USAGE_FIELDS)
_USAGE_AT, _IDS_AT = _NAMES.index("usage"), _NAMES.index("ids")
_LIMIT = 2**63
_UTC = timezone.utc
_fromiso = datetime.fromisoformat
_new = object.__new__


def stored_message(role: Any, content: Any, created_at: Any, status: Any, error: Any,
                   model: Any, backend: Any, usage: Any, cost_usd: Any, stop_reason: Any,
                   duration_ms: Any, ids: Any, seq: Any) -> Message | None:
    """A :class:`Message` built without :meth:`Message.__post_init__`, for values a store read
    back, when each already has exactly the type and range those checks accept (text content,
    a UTC ISO time, four 64-bit token counts, ids of str to str, a seq); ``None`` when any
    does not: the caller then takes the checked path (:meth:`Message.from_dict`), which names
    the bad field. The caller vouches that no text holds a lone surrogate (text SQLite or a
    strict UTF-8 decoder produced, and JSON with no ``\\ud800``-``\\udfff`` escape)."""
    if (role not in ROLES or status not in STATUSES or type(content) is not str
            or type(seq) is not int or not 0 <= seq < _LIMIT):
        return None
    for text in (error, model, backend, stop_reason):
        if text is not None and type(text) is not str:
            return None
    if not (_plain_number(cost_usd) and _plain_number(duration_ms)):
        return None
    if type(ids) is not dict or type(usage) is not dict or len(usage) != 4:
        return None
    for key, value in ids.items():
        if type(key) is not str or type(value) is not str:
            return None
    try:
        counts = (usage["input_tokens"], usage["output_tokens"],
                  usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"])
        when = _fromiso(created_at) if type(created_at) is str and len(created_at) <= 64 else None
    except (KeyError, ValueError):
        return None
    if when is None or when.tzinfo is not _UTC or not MIN_TIME <= when <= MAX_TIME:
        return None
    for count in counts:
        if type(count) is not int or not 0 <= count < _LIMIT:
            return None
    # as vouched_message builds it, inline: a call less per message (3 of the directory
    # store's 66 ms for 10,000 messages, near its 2x target)
    tokens = _new(Usage)
    (tokens.input_tokens, tokens.output_tokens, tokens.cache_creation_input_tokens,
     tokens.cache_read_input_tokens) = counts
    message = _new(Message)
    message.role, message.content, message.created_at, message.status = (
        role, content, when, status)
    message.error, message.model, message.backend, message.usage = error, model, backend, tokens
    message.cost_usd, message.stop_reason, message.duration_ms = cost_usd, stop_reason, duration_ms
    message.ids, message.seq = ids, seq
    return message


def vouched_message(role: Any, content: Any, created_at: datetime, status: Any, error: Any,
                    model: Any, backend: Any, input_tokens: int, output_tokens: int,
                    cache_creation_input_tokens: int, cache_read_input_tokens: int,
                    cost_usd: Any, stop_reason: Any, duration_ms: Any, ids: dict[str, str],
                    seq: int) -> Message:
    """A :class:`Message` of values the caller vouches are exactly what its checks accept
    (:func:`stored_message`'s checks, or a store's own, such as SQL's on the way in)."""
    tokens = _new(Usage)
    (tokens.input_tokens, tokens.output_tokens, tokens.cache_creation_input_tokens,
     tokens.cache_read_input_tokens) = (input_tokens, output_tokens,
                                        cache_creation_input_tokens, cache_read_input_tokens)
    message = _new(Message)
    message.role, message.content, message.created_at, message.status = (
        role, content, created_at, status)
    message.error, message.model, message.backend, message.usage = error, model, backend, tokens
    message.cost_usd, message.stop_reason, message.duration_ms = cost_usd, stop_reason, duration_ms
    message.ids, message.seq = ids, seq
    return message


def _plain_number(value: Any) -> bool:
    """What ``check_number(value, optional=True)`` accepts: None, a finite float, a 64-bit int."""
    kind = type(value)
    return (value is None or (kind is float and math.isfinite(value))
            or (kind is int and -_LIMIT <= value < _LIMIT))


_STORED_KEYS = frozenset(("seq", "role", "content", "created_at", "status", "error", "model",
                          "backend", "usage", "cost_usd", "stop_reason", "duration_ms", "ids"))


def stored_message_from_dict(data: Any) -> Message | None:
    """:func:`stored_message` of a dict exactly as :meth:`Message.to_dict` writes it (text
    content); ``None`` for anything else."""
    if type(data) is not dict or data.keys() != _STORED_KEYS:
        return None
    return stored_message(data["role"], data["content"], data["created_at"], data["status"],
                          data["error"], data["model"], data["backend"], data["usage"],
                          data["cost_usd"], data["stop_reason"], data["duration_ms"],
                          data["ids"], data["seq"])


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


_COST_LIMIT = float(2**63)  # what every store reads back as a session's total cost
_TOTAL_LIMIT = 2**63  # what SQLite's INTEGER and pandas int64 hold


@dataclass(slots=True)
class SessionStats:
    """Totals over a session's messages, kept by every store so listings need no messages.

    Counts are ints from 0 to 2**63 - 1 and the cost a float from 0 to 2**63 (checked on
    construction, so a store reading totals written by another tool gets ``TypeError`` /
    ``ValueError``).
    """

    message_count: int = 0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    last_model: str | None = None

    def __post_init__(self) -> None:
        for name in ("message_count", "turns", "input_tokens", "output_tokens"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value < _TOTAL_LIMIT:
                setattr(self, name, check_count(value, f"session {name}"))
        cost = self.cost_usd
        if type(cost) is not float or not 0.0 <= cost < _COST_LIMIT:
            cost = float(check_number(cost, "session cost_usd"))
            if not 0.0 <= cost < _COST_LIMIT:
                raise ValueOutOfRange(f"session cost_usd must be from 0 to 2**63, got {cost}")
            self.cost_usd = cost
        if self.last_model is not None and type(self.last_model) is not str:
            check_text(self.last_model, "session last_model")

    def add(self, message: Message) -> None:
        """Count ``message`` in; ``ValueOutOfRange`` (nothing changed) when a total would pass
        2**63 - 1 or the total cost would leave 0 .. 2**63."""
        usage = message.usage
        input_tokens = self.input_tokens + usage.input_tokens
        output_tokens = self.output_tokens + usage.output_tokens
        cost = self.cost_usd + (message.cost_usd or 0.0)
        if (input_tokens >= _TOTAL_LIMIT or output_tokens >= _TOTAL_LIMIT
                or self.message_count + 1 >= _TOTAL_LIMIT or not 0.0 <= cost < _COST_LIMIT):
            raise ValueOutOfRange(
                "the session's token or cost totals would overflow with this message "
                f"(input {input_tokens}, output {output_tokens}, cost {cost}); "
                "check its usage and cost, or start a new session")
        self.message_count += 1
        if message.role == "user":
            self.turns += 1
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cost_usd = cost
        if message.model and message.role == "assistant":  # the model that answered
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
        """From a JSON object (missing keys are 0); ``TypeError`` / ``ValueError`` if ill-typed."""
        data = json_object(data or {}, "session stats")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

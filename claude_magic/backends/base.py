"""What every backend shares: the request of one turn, its result, and the Backend protocol.

A backend's ``stream_turn(request)`` is a generator: it yields the answer's text chunks (``str``)
as they arrive and, last, one :class:`TurnResult`. It raises a
:class:`~claude_magic.errors.BackendError` subclass with a one-line message on failure. When the
consumer stops early the generator is closed, and the backend releases what it holds (an HTTP
stream, a process). The client, not the backend, writes to the session store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BackendError
from ..message import Message, Usage

if TYPE_CHECKING:
    from ..config import Config
    from ..manager import SessionManager

_WORD = re.compile(r"\s*\S+|\s+")


@dataclass
class TurnRequest:
    """Everything a backend needs for one turn. ``history`` holds only answered turns
    (``ok`` user/assistant pairs), oldest first, as the model is to see them (after a
    compaction the summary comes first); ``prompt`` is the new user message. ``turn_index``
    counts every answered turn the session has stored, compacted ones included. ``blocks``:
    the whole new user message as content blocks (images, documents: base64) when it holds
    more than text, else None. ``thinking``: an extended-thinking budget in tokens,
    ``"adaptive"``, or None."""

    prompt: str
    history: Sequence[Message]
    system: str | None
    model: str
    max_tokens: int
    config: Config
    session_id: str | None = None
    manager: SessionManager | None = None
    offline_reason: str | None = None
    turn_index: int | None = None
    blocks: list[dict[str, Any]] | None = None
    thinking: int | str | None = None

    def expanded(self, message: Message) -> str | list[dict[str, Any]]:
        """A history message's content with its stored assets back as base64."""
        if isinstance(message.content, str) or self.manager is None:
            return message.content
        from ..storage._assets import expand

        return expand(self.manager.storage, message.content)


class Aside(str):
    """A chunk that is not answer text: ``kind`` ``thinking`` (streamed reasoning) or
    ``tool`` (one line per tool call of Claude Code). Streams yield them only when asked
    (``Query.asides()``); they are never part of the answer text."""

    kind: str

    def __new__(cls, text: str, kind: str) -> Aside:
        obj = super().__new__(cls, text)
        obj.kind = kind
        return obj


@dataclass
class TurnResult:
    """What a backend reports once the answer is complete. ``text`` is the full answer when
    the backend knows it (used only if no chunks were streamed); ``final_text``, when set, is
    the answer to store instead of the streamed chunks (which held text of an attempt that
    was retried). ``blocks``, when set, is the whole answer as content blocks (thinking, tool
    calls and their results, text) to store instead of its text."""

    text: str | None = None
    final_text: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    ids: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    blocks: list[dict[str, Any]] | None = None


def attach_result(error: BackendError, result: TurnResult) -> BackendError:
    """Let a failed turn still report what it cost (read by the client for the record)."""
    error.result = result  # type: ignore[attr-defined]
    return error


class Backend(Protocol):
    """How one turn reaches a model (or, for echo and replay, does not)."""

    name: str

    def stream_turn(self, request: TurnRequest) -> Iterator[str | TurnResult]:
        """Yield text chunks, then one :class:`TurnResult`."""
        ...


def cut_short(what: str, chars: int, request: TurnRequest, detail: str = "") -> str:
    """The one-line message for an answer that stopped before it was complete: ``what``
    happened, how much text had arrived (and ``detail``), what was kept, what to do."""
    got = f"after {chars} characters" if chars else "before any text"
    kept = "; the partial answer is kept as incomplete" if chars and request.session_id else ""
    return f"{what} ({got}{'; ' if detail else ''}{detail}){kept}; send the prompt again"


def split_words(text: str) -> list[str]:
    """Word-sized chunks whose concatenation is ``text`` (for backends that have the whole
    answer at once but should still stream it)."""
    return _WORD.findall(text) or [text]


def one_line(text: object, limit: int = 240) -> str:
    """Collapse whitespace to one line, hide the API key if it appears, cut to ``limit``."""
    line = " ".join(str(text).split())
    key = os.environ.get("ANTHROPIC_API_KEY")
    if key and len(key) >= 8 and key in line:
        line = line.replace(key, "***")
    return line if len(line) <= limit else line[: limit - 1] + "…"

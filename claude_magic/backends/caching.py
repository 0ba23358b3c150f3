"""The Messages API request of one turn, with prompt-caching breakpoints.

With caching on (``Config.cache`` ``"5m"`` or ``"1h"``), the newest user message is sent as a
list with one text block carrying ``cache_control``: the API caches the whole prefix up to it
(system prompt and history), and the next turn, which resends that prefix, reads it from the
cache. The system prompt gets its own breakpoint when it reaches the model's minimum cacheable
length, so it stays cached when the history changes (compaction, truncation). That is two of
the four breakpoints the API allows. With ``cache=None`` no request carries ``cache_control``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..message import Message

MAX_BREAKPOINTS = 4
# The shortest prefix the API caches, in tokens, by model family (first match wins).
MIN_CACHEABLE: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-5", 4096), ("claude-opus-4-6", 4096), ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048), ("claude-3-haiku", 2048), ("haiku", 2048),
)
DEFAULT_MIN_CACHEABLE = 1024  # Sonnet, older Opus


def min_cacheable_tokens(model: str | None) -> int:
    """The model's minimum cacheable prompt length in tokens (1024 when not listed)."""
    name = (model or "").lower()
    return next((size for prefix, size in MIN_CACHEABLE if prefix in name),
                DEFAULT_MIN_CACHEABLE)


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: about four characters a token."""
    return (len(text) + 3) // 4


def cache_control(ttl: str | None) -> dict[str, str] | None:
    """``{"type": "ephemeral"}`` (5 minutes), with ``"ttl": "1h"`` for ``"1h"``; None if off."""
    if ttl is None:
        return None
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


Content = str | list[dict[str, Any]]
_SENT = {"user": ("text", "image", "document"), "assistant": ("text", "thinking",
                                                              "redacted_thinking")}


def history_content(message: Message, content: Content) -> Content:
    """What the model is sent of a stored message: a user's text, images and documents; an
    answer's text and signed thinking. Tool calls Claude Code ran are its own business (the
    API would refuse a tool_use without its tool_result), so only their text goes."""
    if isinstance(content, str):
        return content
    kept = [b for b in content if b["type"] in _SENT[message.role]
            and not (b["type"] == "text" and not b["text"])
            and not (b["type"] == "thinking" and not b.get("signature"))]
    if message.role == "assistant" and all(b["type"] == "text" for b in kept):
        return message.text
    return kept or message.text


class Prebuilt(list):  # type: ignore[type-arg]
    """A history (a list of Messages) carrying its text messages' request dicts, built when
    they were first read (kept between turns by :mod:`claude_magic.history`), so a request
    costs O(new messages): ``built[i]`` is message ``i``'s dict, or None for the indices in
    ``unbuilt``, built per request (content blocks: their assets are expanded, never kept)."""

    __slots__ = ("built", "unbuilt")

    def __init__(self, messages: Sequence[Message], built: list[dict[str, Any] | None],
                 unbuilt: list[int]) -> None:
        super().__init__(messages)
        self.built, self.unbuilt = built, unbuilt


def sent_message(message: Message) -> dict[str, Any] | None:
    """``message`` as the request carries it, when that needs no asset (text); else None."""
    content = message.content
    return {"role": message.role, "content": content} if type(content) is str else None


def build_messages(history: Sequence[Message], prompt: str, ttl: str | None,
                   content: list[dict[str, Any]] | None = None,
                   expand: Callable[[Message], Content] | None = None) -> list[dict[str, Any]]:
    """The ``messages`` list: history then the prompt (``content`` blocks when it has more
    than text), its last block marked for the cache. ``expand`` gives a stored message's
    content with its assets back as base64. A :class:`Prebuilt` history's dicts are reused
    (shared between requests: never changed)."""
    built = history.built if isinstance(history, Prebuilt) else None
    if built is not None and len(built) == len(history):
        messages: list[dict[str, Any]] = list(built)  # type: ignore[arg-type]
        for index in history.unbuilt:  # type: ignore[union-attr]
            m = history[index]
            messages[index] = {"role": m.role,
                               "content": history_content(m, expand(m) if expand else m.content)}
    else:
        messages = [{"role": m.role,
                     "content": history_content(m, expand(m) if expand else m.content)}
                    for m in history]
    control = cache_control(ttl)
    blocks = [dict(b) for b in content] if content else None
    if control is None:
        messages.append({"role": "user", "content": blocks or prompt})
    elif blocks:
        blocks[-1]["cache_control"] = control
        messages.append({"role": "user", "content": blocks})
    else:
        messages.append({"role": "user", "content": [
            {"type": "text", "text": prompt, "cache_control": control}]})
    return messages


def build_system(system: str | None, model: str,
                 ttl: str | None) -> str | list[dict[str, Any]] | None:
    """The ``system`` value: a string, or one cached text block when it is long enough."""
    if not system:
        return None
    control = cache_control(ttl)
    if control is None or approx_tokens(system) < min_cacheable_tokens(model):
        return system
    return [{"type": "text", "text": system, "cache_control": control}]


def build_request(model: str, max_tokens: int, system: str | None,
                  history: Sequence[Message], prompt: str, ttl: str | None, *,
                  content: list[dict[str, Any]] | None = None,
                  expand: Callable[[Message], Content] | None = None,
                  thinking: int | str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``messages.stream`` / ``messages.create``. ``thinking``: a
    budget (``max_tokens`` grows to hold it and 1,024 more tokens of answer) or
    ``"adaptive"``."""
    kwargs: dict[str, Any] = {"model": model, "max_tokens": max_tokens,
                              "messages": build_messages(history, prompt, ttl, content, expand)}
    if thinking == "adaptive":
        kwargs["thinking"] = {"type": "adaptive"}
    elif thinking is not None:
        kwargs["thinking"] = {"type": "enabled", "budget_tokens": int(thinking)}
        kwargs["max_tokens"] = max(max_tokens, int(thinking) + 1024)
    system_value = build_system(system, model, ttl)
    if system_value is not None:
        kwargs["system"] = system_value
    return kwargs


def count_breakpoints(kwargs: dict[str, Any]) -> int:
    """How many blocks of a request carry ``cache_control`` (the API allows four)."""
    blocks: list[Any] = []
    if isinstance(kwargs.get("system"), list):
        blocks += kwargs["system"]
    for message in kwargs.get("messages") or []:
        if isinstance(message.get("content"), list):
            blocks += message["content"]
    return sum(1 for block in blocks if isinstance(block, dict) and "cache_control" in block)

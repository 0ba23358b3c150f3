"""The context window: how big a model's window is, and how big the next request will be.

The estimate needs no API call: the last answer's reported input (uncached, cache writes and
reads) plus its output is what the resent prefix costs, and new text counts about four
characters a token. When that answer no longer describes the prefix (the session was compacted
since, or turns are left out), every message is estimated from its text instead.
``Config.count_tokens=True`` asks the API instead (see the client).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .backends.caching import approx_tokens
from .compaction import Turn, is_summary
from .message import Message

DEFAULT_WINDOW = 200_000
WARN_FRACTION = 0.8
MESSAGE_OVERHEAD = 4  # role and framing tokens per message
BINARY_TOKENS = 1600  # an image (about 1.15 megapixels) or a PDF page, roughly
# Context windows in tokens by model name prefix (first match wins); unknown: DEFAULT_WINDOW.
CONTEXT_WINDOWS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4", 200_000), ("claude-sonnet-4", 200_000), ("claude-haiku-4", 200_000),
    ("claude-3-7-sonnet", 200_000), ("claude-3-5", 200_000), ("claude-3", 200_000),
    ("claude-2.1", 200_000), ("claude-2", 100_000), ("claude-instant", 100_000),
)


def window_of(model: str | None, override: int | None = None) -> int:
    """The context window in tokens: ``override``, else the table, else 200,000."""
    if override is not None:
        return override
    name = (model or "").strip().lower()
    return next((size for prefix, size in CONTEXT_WINDOWS if name.startswith(prefix)),
                DEFAULT_WINDOW)


def message_tokens(message: Message) -> int:
    return approx_tokens(message.text) + MESSAGE_OVERHEAD + BINARY_TOKENS * sum(
        1 for block in message.blocks if block["type"] in ("image", "document"))


def reported_prefix(history: Sequence[Message]) -> int | None:
    """Tokens of ``history`` as the last answer's usage reports them, when that answer ends
    the history and was given on this very prefix (not a summary, none after it). A history
    as a model sees it has its summary turn first (:func:`~claude_magic.compaction.
    visible_turns`): only that turn is looked at, so this is O(1)."""
    if not history or history[-1].role != "assistant" or is_summary(history[-1]):
        return None
    last = history[-1]
    usage = last.usage
    sent = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    if sent == 0:
        return None
    summary = next((m for m in history[:2] if is_summary(m)), None)
    if summary is not None and (last.seq or 0) < (summary.seq or 0):
        return None  # answered before the compaction: its prefix was longer
    return sent + usage.output_tokens


def estimate(system: str | None, history: Sequence[Message], prompt: str, *,
             trust_usage: bool = True) -> int:
    """Input tokens of a request with this system prompt, history and new prompt."""
    base = reported_prefix(history) if trust_usage else None
    if base is None:
        base = approx_tokens(system or "") + sum(map(message_tokens, history))
    return base + approx_tokens(prompt) + MESSAGE_OVERHEAD


def truncate(turns: Sequence[Turn], system: str | None, prompt: str,
             limit: int) -> tuple[list[Turn], int]:
    """The newest turns that fit in ``limit`` with the prompt, and how many were left out."""
    sizes = [message_tokens(q) + message_tokens(a) for q, a in turns]
    total = approx_tokens(system or "") + approx_tokens(prompt) + MESSAGE_OVERHEAD + sum(sizes)
    dropped = 0
    while dropped < len(turns) and total > limit:
        total -= sizes[dropped]
        dropped += 1
    return list(turns[dropped:]), dropped


@dataclass
class ContextReport:
    """What one turn's request held, for the status line: ``tokens`` of ``window``, and
    ``notes`` on what was done to make it fit (compacted, turns left out)."""

    tokens: int = 0
    window: int = DEFAULT_WINDOW
    policy: str = "warn"
    notes: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return self.tokens / self.window if self.window else 0.0

    @property
    def near_full(self) -> bool:
        return self.fraction > WARN_FRACTION

    def describe(self) -> str:
        """``context 42% of 200k`` plus a warning and the fix past 80%."""
        text = f"context {self.fraction:.0%} of {_short(self.window)}"
        if self.near_full and self.policy == "warn":
            text += (" — nearly full: `%claude_session compact` (or context='compact' / "
                     "'truncate')")
        return text


def _short(count: int) -> str:
    return f"{count / 1000:g}k" if count >= 1000 else str(count)

"""The fake server's prompt cache and context window, behaving as the Messages API does.

A request is a sequence of blocks: the system prompt's, then each message's content blocks (a
string content is one text block). A block with ``cache_control`` is a breakpoint (at most 4,
else HTTP 400). The cache key of a prefix covers the model and every block up to it, with
``cache_control`` itself left out, so ``"hi"`` and ``[{"type": "text", "text": "hi"}]`` are the
same prefix. For each breakpoint the longest live cached prefix ending at it or up to 20 blocks
before it is *read*; every breakpoint past that whose prefix reaches the model's minimum
cacheable length is *written* with its TTL (5 minutes, or 1 hour for ``"ttl": "1h"``); a read
refreshes an entry's TTL. Usage then reports, as the API does, ``cache_read_input_tokens``
(the prefix read), ``cache_creation_input_tokens`` (from there to the last written
breakpoint, split by TTL in ``cache_creation``) and ``input_tokens`` (the rest, uncached).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .wire import estimate_tokens, text_of

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK = 20
MAX_BREAKPOINTS = 4


class RequestRefused(Exception):
    """A request the API would answer with HTTP 400 ``invalid_request_error``."""


def too_long(tokens: int, window: int) -> str:
    """The API's message for a prompt over the context window."""
    return f"prompt is too long: {tokens} tokens > {window} maximum"


def min_cacheable(model: str | None) -> int:
    """The shortest cacheable prefix for ``model`` (tokens), as the client's table has it."""
    from ..backends.caching import min_cacheable_tokens

    return min_cacheable_tokens(model)


@dataclass
class _Block:
    canonical: str
    tokens: int
    ttl: str | None  # "5m" / "1h" for a breakpoint


def blocks_of(body: dict[str, Any]) -> list[_Block]:
    """The request's blocks in the order the cache sees them: system, then messages."""
    blocks: list[_Block] = []
    system = body.get("system")
    if system:
        items = system if isinstance(system, list) else [{"type": "text", "text": system}]
        blocks += [_block("system", b) for b in items if isinstance(b, dict)]
    for message in body.get("messages") or []:
        content = message.get("content")
        items = content if isinstance(content, list) else [{"type": "text", "text": content}]
        blocks += [_block(str(message.get("role")), b) for b in items if isinstance(b, dict)]
    return blocks


def _block(role: str, block: dict[str, Any]) -> _Block:
    control = block.get("cache_control")
    ttl = None
    if isinstance(control, dict):
        ttl = control.get("ttl") or "5m"
        if ttl not in TTL_SECONDS:
            raise RequestRefused(f"cache_control.ttl: Input should be '5m' or '1h', got {ttl!r}")
    bare = {k: v for k, v in block.items() if k != "cache_control"}
    canonical = json.dumps([role, bare], sort_keys=True, ensure_ascii=False)
    return _Block(canonical, estimate_tokens(text_of([bare])), ttl)


class PromptCache:
    """Cached prefixes by key, with their expiry on ``clock()`` (seconds)."""

    def __init__(self, clock: Callable[[], float], min_tokens: int | None = None) -> None:
        self.clock = clock
        self.min_tokens = min_tokens  # None: the model's minimum
        self._entries: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def account(self, body: dict[str, Any], window: int | None = None) -> dict[str, Any]:
        """Read and write the cache for one request; its input usage. ``RequestRefused`` for
        more than 4 breakpoints or (``window``) a prompt longer than the context window."""
        blocks = blocks_of(body)
        marks = [i for i, b in enumerate(blocks) if b.ttl is not None]
        if len(marks) > MAX_BREAKPOINTS:
            raise RequestRefused(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may "
                                 f"be provided. Found {len(marks)}.")
        keys, totals = _prefixes(str(body.get("model")), blocks)
        total = totals[-1] if totals else 0
        if window is not None and total > window:
            raise RequestRefused(too_long(total, window))
        minimum = self.min_tokens if self.min_tokens is not None else min_cacheable(
            body.get("model"))
        with self._lock:
            now = self.clock()
            read = self._read(keys, marks, now)
            written, hour = self._write(keys, totals, blocks, marks, read, minimum, now)
        read_tokens = totals[read - 1] if read else 0
        creation = (totals[written - 1] if written else 0) - read_tokens
        return {"input_tokens": total - read_tokens - creation,
                "cache_creation_input_tokens": creation, "cache_read_input_tokens": read_tokens,
                "cache_creation": {"ephemeral_5m_input_tokens": creation - hour,
                                   "ephemeral_1h_input_tokens": hour}}

    def _read(self, keys: list[str], marks: list[int], now: float) -> int:
        """How many leading blocks are read from the cache (0: none); refreshes what it reads."""
        best = 0
        for mark in marks:
            for j in range(mark, max(-1, mark - LOOKBACK), -1):
                entry = self._entries.get(keys[j])
                if entry is not None and entry[0] > now:
                    best = max(best, j + 1)
                    self._entries[keys[j]] = (now + TTL_SECONDS[entry[1]], entry[1])
                    break
        return best

    def _write(self, keys: list[str], totals: list[int], blocks: list[_Block],
               marks: list[int], read: int, minimum: int, now: float) -> tuple[int, int]:
        """Write each breakpoint past ``read`` that is long enough: (blocks covered by the
        writes and reads, tokens written at the 1-hour TTL)."""
        end, hour = read, 0
        for mark in marks:
            if mark < read or totals[mark] < minimum:
                continue
            ttl = blocks[mark].ttl or "5m"
            self._entries[keys[mark]] = (now + TTL_SECONDS[ttl], ttl)
            if ttl == "1h":
                hour += totals[mark] - (totals[end - 1] if end else 0)
            end = mark + 1
        return end, hour


def _prefixes(model: str, blocks: list[_Block]) -> tuple[list[str], list[int]]:
    """Each prefix's cache key (a hash chain from the model) and cumulative tokens."""
    keys: list[str] = []
    totals: list[int] = []
    digest = hashlib.sha256(model.encode()).hexdigest()
    running = 0
    for block in blocks:
        digest = hashlib.sha256((digest + block.canonical).encode()).hexdigest()
        running += block.tokens
        keys.append(digest)
        totals.append(running)
    return keys, totals

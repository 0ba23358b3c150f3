"""The ``anthropic`` backend: the official SDK, streaming Messages API.

Every request carries the session's system prompt and its answered history (after compaction:
the summary and the turns after it), with prompt-caching breakpoints (:mod:`.caching`). The key and
base URL are read from the environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``) at each
turn and handed to the SDK only; they are never stored. The SDK retries 408/409/429/5xx/529
and connection errors ``Config.retries`` times, honouring ``retry-after(-ms)``. The SDK is
imported on the first turn.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthenticationError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    ContextWindowExceeded,
    OverloadedError,
    RateLimitError,
)
from ..message import Usage
from .base import Aside, TurnRequest, TurnResult, attach_result, cut_short, one_line
from .caching import build_request
from .pricing import estimate_cost

TOO_LONG = "prompt is too long"
OVERFLOW_FIXES = ("compact the session (`%claude_session compact` / client.compact(id)) or "
                  "leave old turns out (Config(context='truncate') / "
                  "%config ClaudeMagics.context = 'truncate')")

if TYPE_CHECKING:
    import anthropic

    from ..config import Config

NO_KEY = ("no API key: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN), or use "
          "Config(backend='echo') to work offline")


class AnthropicBackend:
    """Streams one turn through ``client.messages.stream(...)`` of the ``anthropic`` SDK."""

    name = "anthropic"

    def __init__(self) -> None:
        # One SDK client per (key fingerprint, base URL, retries, timeout), so connections are
        # reused between turns. Only a hash of the key is kept as the cache key.
        self._clients: dict[tuple[Any, ...], anthropic.Anthropic] = {}

    def __repr__(self) -> str:
        return "AnthropicBackend()"

    def _sdk(self, config: Config) -> anthropic.Anthropic:
        try:
            import anthropic
        except ImportError as exc:
            raise BackendUnavailable(
                "the anthropic package is not installed; run `pip install anthropic`") from exc
        key = os.environ.get("ANTHROPIC_API_KEY") or None
        base_url = config.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        fingerprint = hashlib.sha256(key.encode()).hexdigest() if key else None
        cache_key = (fingerprint, base_url, config.retries, config.timeout)
        sdk = self._clients.get(cache_key)
        if sdk is None:
            try:
                sdk = anthropic.Anthropic(api_key=key, base_url=base_url,
                                          max_retries=config.retries, timeout=config.timeout)
            except anthropic.AnthropicError as exc:
                raise AuthenticationError(f"{NO_KEY} ({one_line(exc)})") from exc
            self._clients.clear()  # keep only the current client
            self._clients[cache_key] = sdk
        return sdk

    def stream_turn(self, request: TurnRequest) -> Iterator[str | TurnResult]:
        import anthropic

        config = request.config
        sdk = self._sdk(config)
        reading = _Reading(config.cache)
        try:
            with sdk.messages.stream(**_arguments(request)) as stream:
                yield from reading.texts(stream)
        except Exception as exc:
            ours = isinstance(exc, (anthropic.AnthropicError, TypeError, OSError, ValueError))
            if not (ours or _is_transport_error(exc)):
                raise
            if not reading.complete:  # a transport hiccup after message_stop loses nothing
                raise attach_result(map_error(exc, config, str(sdk.base_url), reading, request),
                                    reading.result()) from exc
        if not reading.complete:  # the SDK ends quietly on a clean EOF: not an answer
            raise attach_result(BackendError(cut_short(
                "the Messages API stream ended before message_stop", reading.chars, request)),
                reading.result())
        yield reading.result()


    def count_tokens(self, request: TurnRequest) -> int:
        """The request's input tokens by ``POST /v1/messages/count_tokens`` (no answer made)."""
        import anthropic

        sdk = self._sdk(request.config)
        kwargs = _arguments(request)
        kwargs.pop("max_tokens")
        try:
            return int(sdk.messages.count_tokens(**kwargs).input_tokens)
        except (anthropic.AnthropicError, OSError, TypeError, ValueError) as exc:
            raise map_error(exc, request.config, str(sdk.base_url), _Reading(None),
                            request) from exc


def _arguments(request: TurnRequest) -> dict[str, Any]:
    """The ``messages.stream(...)`` keyword arguments: model, limit, history, prompt, system,
    with the cache breakpoints of ``Config.cache``."""
    return build_request(request.model, request.max_tokens, request.system, request.history,
                         request.prompt, request.config.cache, content=request.blocks,
                         expand=request.expanded, thinking=request.thinking)


class _Reading:
    """What one streamed answer has delivered so far: its text length, the SDK's message
    snapshot (from ``message_start`` on, updated in place) and whether ``message_stop`` came.
    Only an answer that reached ``message_stop`` is complete; the SDK itself ends quietly when
    the body ends early (a clean EOF or a clean end of the chunked body)."""

    def __init__(self, cache: str | None) -> None:
        self.cache = cache
        self.chars = 0
        self.snapshot: Any = None
        self.complete = False
        self.request_id: str | None = None

    def texts(self, stream: Any) -> Iterator[str]:
        """The text deltas of ``stream`` (a ``MessageStream``), noting what arrives."""
        self.request_id = stream.request_id
        for event in stream:
            if event.type == "message_start":
                self.snapshot = stream.current_message_snapshot
            elif event.type == "message_stop":
                self.complete = self.snapshot is not None
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                self.chars += len(event.delta.text)
                yield event.delta.text
            elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                yield Aside(event.delta.thinking, "thinking")

    def result(self) -> TurnResult:
        """What the answer reported (and so cost) so far; final once ``complete``."""
        ids = {"request_id": self.request_id} if self.request_id else {}
        message = self.snapshot
        if message is None:
            return TurnResult(ids=ids)
        reported = message.usage.model_dump()
        usage = Usage.from_dict(reported)
        return TurnResult(model=message.model, stop_reason=message.stop_reason, usage=usage,
                          cost_usd=estimate_cost(message.model, usage,
                                                 hour_writes(reported, self.cache)),
                          ids={"message_id": message.id, **ids},
                          blocks=answer_blocks(message.content) if self.complete else None)


def answer_blocks(content: Any) -> list[dict[str, Any]] | None:
    """The answer's blocks to store when it holds more than text (thinking, with the
    signature the API needs when it is sent back); None for a text-only answer."""
    blocks = [block.model_dump(exclude_none=True) for block in content]
    if all(b.get("type") == "text" for b in blocks):
        return None
    return [{k: v for k, v in b.items() if k != "citations"} for b in blocks]


def hour_writes(usage: dict[str, Any], cache: str | None) -> int:
    """Cache-write tokens billed at the 1-hour rate: from the API's ``cache_creation`` split
    when it reports one, else all writes when the request asked for ``"1h"``."""
    split = usage.get("cache_creation")
    if isinstance(split, dict) and split.get("ephemeral_1h_input_tokens") is not None:
        return int(split["ephemeral_1h_input_tokens"])
    return int(usage.get("cache_creation_input_tokens") or 0) if cache == "1h" else 0


def _is_transport_error(exc: BaseException) -> bool:
    """An error of the SDK's HTTP library (httpx / httpx2) raised while reading a stream."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")


def _is_timeout(exc: BaseException) -> bool:
    return any("Timeout" in cls.__name__ for cls in type(exc).__mro__) or isinstance(
        exc, TimeoutError)


def map_error(exc: BaseException, config: Config, base_url: str, reading: _Reading,
              request: TurnRequest) -> BackendError:
    """Translate an SDK exception into our error family, with a one-line message."""
    import anthropic

    if isinstance(exc, ValueError):  # an event the SDK could not decode or parse
        return BackendError(cut_short("the Messages API sent a damaged stream before "
                                      "message_stop", reading.chars, request,
                                      one_line(exc, 120)))
    if _is_transport_error(exc) or isinstance(exc, OSError):
        if _is_timeout(exc):
            return BackendTimeout(cut_short(
                f"the Messages API at {base_url} stopped sending for {config.timeout:g} s "
                "mid-answer (raise Config(timeout=...) if it is slow)", reading.chars, request))
        return BackendUnavailable(cut_short(
            f"the connection to the Messages API at {base_url} broke before message_stop",
            reading.chars, request, one_line(exc, 120)))
    if isinstance(exc, TypeError):
        if "authentication" in str(exc).lower():
            return AuthenticationError(NO_KEY)
        return BackendError(f"the anthropic SDK failed: {one_line(exc)}")
    if isinstance(exc, anthropic.APITimeoutError):
        return BackendTimeout(
            f"the Messages API at {base_url} did not answer within {config.timeout:g} s "
            f"(after {config.retries} retries); try again or raise Config(timeout=...)")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = one_line(exc.__cause__ or exc)
        return BackendUnavailable(
            f"cannot reach the Messages API at {base_url} ({cause}); check the network "
            "and ANTHROPIC_BASE_URL")
    if not isinstance(exc, anthropic.APIStatusError):
        return BackendError(f"the anthropic SDK failed: {one_line(exc)}")
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind = exc.type or error.get("type") or ""
    detail = one_line(exc.api_message or error.get("message") or exc.message)
    where = f"HTTP {status} {kind}".strip() if status != 200 else f"{kind or 'error'} mid-stream"
    retried = f" after {config.retries} retries" if status != 200 and config.retries else ""
    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        return AuthenticationError(
            f"the Messages API refused the credentials ({where}: {detail}); check "
            "ANTHROPIC_API_KEY")
    if status == 429 or kind == "rate_limit_error":
        return RateLimitError(f"rate limited by the Messages API ({where}: {detail}){retried}; "
                              "wait a moment and try again")
    if status >= 500 or kind in ("overloaded_error", "api_error"):
        return OverloadedError(f"the Messages API is overloaded or failing ({where}: {detail})"
                               f"{retried}; try again shortly")
    if status in (400, 413) and TOO_LONG in detail.lower():
        return ContextWindowExceeded(
            f"the request does not fit the context window of {request.model} ({detail}); "
            f"{OVERFLOW_FIXES}")
    if status in (400, 404, 413, 422) or kind in (
            "invalid_request_error", "not_found_error", "request_too_large"):
        return BadRequest(f"the Messages API rejected the request ({where}: {detail})")
    return BackendError(f"the Messages API failed ({where}: {detail})")

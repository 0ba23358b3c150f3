"""The ``anthropic`` backend: the official SDK, streaming Messages API.

Every request carries the session's system prompt and its whole answered history. The key and
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
    OverloadedError,
    RateLimitError,
)
from ..message import Usage
from .base import TurnRequest, TurnResult, one_line
from .pricing import estimate_cost

if TYPE_CHECKING:
    import anthropic

    from ..client import Config

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
        messages = [{"role": m.role, "content": m.content} for m in request.history]
        messages.append({"role": "user", "content": request.prompt})
        kwargs: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens,
                                  "messages": messages}
        if request.system:
            kwargs["system"] = request.system
        try:
            with sdk.messages.stream(**kwargs) as stream:
                yield from stream.text_stream
                final = stream.get_final_message()
                request_id = stream.request_id
        except (anthropic.AnthropicError, TypeError, OSError) as exc:
            raise map_error(exc, config, str(sdk.base_url)) from exc
        except Exception as exc:
            if not _is_transport_error(exc):
                raise
            raise map_error(exc, config, str(sdk.base_url)) from exc
        usage = Usage.from_dict(final.usage.model_dump())
        ids = {"message_id": final.id}
        if request_id:
            ids["request_id"] = request_id
        yield TurnResult(model=final.model, stop_reason=final.stop_reason, usage=usage,
                         cost_usd=estimate_cost(final.model, usage), ids=ids)


def _is_transport_error(exc: BaseException) -> bool:
    """An error of the SDK's HTTP library (httpx / httpx2) raised while reading a stream."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")


def _is_timeout(exc: BaseException) -> bool:
    return any("Timeout" in cls.__name__ for cls in type(exc).__mro__) or isinstance(
        exc, TimeoutError)


def map_error(exc: BaseException, config: Config, base_url: str) -> BackendError:
    """Translate an SDK exception into our error family, with a one-line message."""
    import anthropic

    if _is_transport_error(exc) or isinstance(exc, OSError):
        if _is_timeout(exc):
            return BackendTimeout(
                f"the Messages API at {base_url} stopped sending for {config.timeout:g} s "
                "mid-answer; try again or raise Config(timeout=...)")
        return BackendUnavailable(f"the connection to the Messages API at {base_url} broke "
                                  f"mid-answer ({one_line(exc)}); try again")
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
    if status in (400, 404, 413, 422) or kind in (
            "invalid_request_error", "not_found_error", "request_too_large"):
        return BadRequest(f"the Messages API rejected the request ({where}: {detail})")
    return BackendError(f"the Messages API failed ({where}: {detail})")

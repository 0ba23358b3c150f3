"""A fake Anthropic Messages API server on 127.0.0.1, for tests and offline demos.

Real HTTP (:mod:`._http`), real server-sent events, in the formats of ``wire-formats.md``
(:mod:`.wire`): point the official SDK (``base_url=server.url``), the Claude Code CLI or a
notebook (``ANTHROPIC_BASE_URL``) at it::

    with FakeMessagesServer(context_window=50_000) as server:
        server.reply("Hello", chunks=["Hel", "lo"])
        server.fail(529, times=2, retry_after_ms=1)
        server.end_early("Partial", after=1, how="eof")   # no message_stop: cut short
        client = anthropic.Anthropic(api_key="test", base_url=server.url)
        ...
        server.message_requests[-1].messages       # plain role/content, for assertions
        server.advance(301)                        # 5-minute cache entries expire

Scripted replies and failures are used in order, one per ``POST /v1/messages``; when the script
is empty the server gives a default answer that says it comes from no model. It keeps a prompt
cache (:mod:`.prompt_cache`: ``cache_control`` breakpoints, TTLs, minimum cacheable length,
usage reported as the API does), refuses a prompt over ``context_window`` with the API's 400
``prompt is too long`` body, and answers ``POST /v1/messages/count_tokens``. Run it alone with
``python -m claude_magic.testing.fake_server [--port N] [--context-window N]``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from typing import Any

from ..backends.base import split_words
from ._http import Handler
from .prompt_cache import PromptCache, RequestRefused
from .wire import (  # noqa: F401  (re-exported: tests and users import them from here)
    CUT_POINTS,
    DEFAULT_PREFIX,
    ENDINGS,
    ERROR_TYPES,
    STATUS_OF_TYPE,
    Failure,
    RecordedRequest,
    Reply,
    bad_signature,
    cut_here,
    default_message,
    error_body,
    estimate_tokens,
    events_of,
    input_tokens_of,
    last_user_text,
    message_of,
    text_of,
)


class FakeMessagesServer:
    """A threaded Messages API server on an ephemeral port of 127.0.0.1.

    ``api_key=None`` accepts any non-empty key (``x-api-key`` or ``Authorization: Bearer``);
    a string accepts only that key; ``require_auth=False`` accepts requests without one.
    ``default_reply`` replaces the built-in answer given when the script is empty.
    ``context_window``: prompts over it (tokens) get the API's 400 ``prompt is too long``;
    ``min_cacheable_tokens`` overrides the model's minimum cacheable prefix; ``prompt_cache``
    off ignores ``cache_control`` (every token uncached).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None,
                 require_auth: bool = True, model: str = "claude-sonnet-4-6",
                 default_reply: str | None = None, context_window: int | None = None,
                 min_cacheable_tokens: int | None = None, prompt_cache: bool = True) -> None:
        self.api_key = api_key
        self.context_window = context_window
        self.prompt_cache = prompt_cache
        self._clock_offset = 0.0
        self.cache = PromptCache(self.now, min_cacheable_tokens)
        self.default_reply = default_reply
        self.require_auth = require_auth
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply | Failure] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeMessagesServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05}, daemon=True,
                                            name="fake-messages-server")
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeMessagesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeMessagesServer({self.url!r}, {len(self._script)} scripted)"

    # --- the prompt cache's clock -----------------------------------------------------------

    def now(self) -> float:
        """The cache's clock: monotonic seconds, moved on by :meth:`advance`."""
        return time.monotonic() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the cache's clock on (``advance(301)`` expires 5-minute entries)."""
        self._clock_offset += seconds

    def _prompt_usage(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Input usage from the prompt cache (``RequestRefused`` for an invalid request)."""
        if not self.prompt_cache:
            tokens = input_tokens_of(body)
            if self.context_window is not None and tokens > self.context_window:
                from .prompt_cache import too_long

                raise RequestRefused(too_long(tokens, self.context_window))
            return None
        return self.cache.account(body, self.context_window)

    # --- scripting ------------------------------------------------------------------------

    def reply(self, text: str, *, chunks: Iterable[str] | None = None,
              usage: dict[str, int] | None = None, stop_reason: str = "end_turn",
              model: str | None = None, delay: float = 0.0,
              thinking: str | None = None) -> FakeMessagesServer:
        """Queue an answer. ``"".join(chunks)`` must equal ``text`` when chunks are given.
        ``thinking``: the reasoning streamed (and signed) before the text when the request
        enables thinking; without it such a request gets a short default reasoning."""
        chunk_list = list(chunks) if chunks is not None else None
        if chunk_list is not None and "".join(chunk_list) != text:
            raise ValueError("the chunks do not add up to the text")
        return self._push(Reply(text, chunk_list, dict(usage or {}), stop_reason, model, delay,
                                thinking=thinking))

    def fail(self, status: int, *, error_type: str | None = None, message: str | None = None,
             retry_after: float | None = None, retry_after_ms: float | None = None,
             should_retry: bool | None = None, headers: dict[str, str] | None = None,
             times: int = 1) -> FakeMessagesServer:
        """Queue an HTTP error (401, 429, 500, 529...) returned ``times`` times in a row."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = _number(retry_after)
        if retry_after_ms is not None:
            extra["retry-after-ms"] = _number(retry_after_ms)
        if should_retry is not None:
            extra["x-should-retry"] = "true" if should_retry else "false"
        kind = error_type or ERROR_TYPES.get(status, "api_error")
        return self._push(Failure(status, kind, message or default_message(kind), extra, times))

    def fail_mid_stream(self, text: str = "Partial answer", *, after: int | None = None,
                        error_type: str = "overloaded_error", message: str = "Overloaded",
                        chunks: Iterable[str] | None = None) -> FakeMessagesServer:
        """Queue a streamed answer (HTTP 200) that sends an ``error`` event after ``after``
        chunks (default: all of ``text``)."""
        chunk_list = list(chunks) if chunks is not None else split_words(text)
        count = len(chunk_list) if after is None else after
        return self._push(Reply(text, chunk_list, error_after=count, error_type=error_type,
                                error_message=message))

    def end_early(self, text: str = "Partial answer", *, after: str | int = "message_start",
                  how: str = "chunked", chunks: Iterable[str] | None = None
                  ) -> FakeMessagesServer:
        """Queue a streamed answer (HTTP 200) that stops before ``message_stop``.

        ``after``: an event name (``message_start``, ``content_block_start``,
        ``content_block_stop``, ``message_delta``) or a number of text chunks sent first.
        ``how``: ``chunked`` (a clean end of the chunked body, the connection kept), ``eof``
        (a body without length or chunking, ended by closing the connection cleanly),
        ``truncate`` (the connection closed without the last chunk) or ``reset`` (a TCP
        reset). A non-streamed request gets half of its JSON body, then the same ending."""
        if how not in ENDINGS:
            raise ValueError(f"how must be one of {', '.join(ENDINGS)}")
        if not ((isinstance(after, int) and after >= 0) or after in CUT_POINTS):
            raise ValueError(f"after must be a number of chunks or one of {', '.join(CUT_POINTS)}")
        chunk_list = list(chunks) if chunks is not None else split_words(text)
        if isinstance(after, int) and after > len(chunk_list):
            raise ValueError(f"after={after} but the text has only {len(chunk_list)} chunks")
        return self._push(Reply(text, chunk_list, cut_after=after, cut_how=how))

    def slow(self, text: str, delay: float, **kwargs: Any) -> FakeMessagesServer:
        """Queue an answer that waits ``delay`` seconds before each chunk."""
        return self.reply(text, delay=delay, **kwargs)

    def _push(self, item: Reply | Failure) -> FakeMessagesServer:
        with self._lock:
            self._script.append(item)
        return self

    def pending(self) -> int:
        """How many scripted items are still unused."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script, the recorded requests and the prompt cache."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
        self.cache.clear()

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """Recorded ``POST /v1/messages`` requests, in order."""
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/messages"]

    # --- used by the handler --------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self, body: dict[str, Any]) -> Reply | Failure:
        with self._lock:
            if self._script:
                item = self._script[0]
                if isinstance(item, Failure) and item.times > 1:
                    item.times -= 1
                else:
                    self._script.popleft()
                return item
        if self.default_reply is not None:
            return Reply(self.default_reply)
        return Reply(f"{DEFAULT_PREFIX} You said: {last_user_text(body)}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m claude_magic.testing.fake_server",
                                     description="Run a fake Anthropic Messages API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--reply", default=None,
                        help="answer every request with this text (default: a labelled echo)")
    parser.add_argument("--context-window", type=int, default=None,
                        help="refuse prompts over this many tokens, as the API does")
    args = parser.parse_args(argv)
    server = FakeMessagesServer(args.host, args.port, api_key=args.api_key,
                                default_reply=args.reply,
                                context_window=args.context_window).start()
    print(server.url, flush=True)
    print(f"# export ANTHROPIC_BASE_URL={server.url} ANTHROPIC_API_KEY=any-test-key "
          "(answers say they come from no model); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

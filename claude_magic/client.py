"""Client, Config and Query: ``client.query(text).session(id).send()`` or ``.stream()``.

A turn in a session: the user message is stored first; the backend is called with the session's
system prompt and its answered history; the answer is stored with model, usage, cost, ids and
timing. If the turn fails, the user message is marked ``error`` with the reason and any text
streamed before the failure is kept as an ``incomplete`` answer; neither is sent to the model
again. A query without ``.session()`` is a one-off: nothing is stored.

Model, backend and max_tokens come from the query, else the session's ``settings``, else the
:class:`Config`. Importing this module does not import the ``anthropic`` SDK.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .backends import BACKEND_CLASSES, Backend, TurnRequest, TurnResult, create_backend
from .backends.base import one_line
from .errors import BackendError, BackendUnavailable, ClaudeMagicError
from .manager import SessionManager
from .message import Message, Usage, answered_turns
from .session import SessionId

DEFAULT_MODEL = "claude-sonnet-4-6"
BACKENDS = ("auto", *BACKEND_CLASSES)
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
_ALIASES = {"claude_code": "claude-code", "cli": "claude-code", "api": "anthropic"}


@dataclass
class Config:
    """Defaults for every turn, and backend options. Holds no secret: the API key and base URL
    are read from ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL`` at each turn.

    ``backend``: ``auto`` (``anthropic`` when ``ANTHROPIC_API_KEY`` is set, else the offline
    ``echo``), ``anthropic``, ``claude-code``, ``replay`` or ``echo``. ``timeout`` is in
    seconds (per HTTP read for ``anthropic``, per turn for ``claude-code``); ``retries`` is the
    SDK's retry count. ``base_url`` overrides ``ANTHROPIC_BASE_URL`` for ``anthropic``.
    Claude Code: ``claude_binary``, ``permission_mode``, ``allowed_tools``, ``max_turns``,
    ``cwd`` (default: the current directory), ``fork_session``. Replay: ``replay_source``.
    """

    backend: str = "auto"
    model: str = DEFAULT_MODEL
    max_tokens: int = 4096
    timeout: float = 600.0
    retries: int = 2
    base_url: str | None = None
    claude_binary: str | None = None
    permission_mode: str = "default"
    allowed_tools: list[str] | None = None
    max_turns: int | None = None
    cwd: str | None = None
    fork_session: bool = True
    replay_source: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` for a setting that cannot work."""
        if _ALIASES.get(self.backend, self.backend) not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of "
                             f"{', '.join(BACKENDS)}")
        if self.permission_mode not in PERMISSION_MODES:
            raise ValueError(f"permission_mode {self.permission_mode!r} is not one of "
                             f"{', '.join(PERMISSION_MODES)}")
        for name in ("max_tokens", "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.retries < 0 or (self.max_turns is not None and self.max_turns < 1):
            raise ValueError("retries must be >= 0 and max_turns >= 1")
        if isinstance(self.allowed_tools, str):
            self.allowed_tools = [self.allowed_tools]

    @property
    def api_key_set(self) -> bool:
        """Whether ``ANTHROPIC_API_KEY`` is set now (the key itself is never kept)."""
        return bool(os.environ.get("ANTHROPIC_API_KEY"))

    def resolve_backend(self, name: str | None = None) -> tuple[str, str | None]:
        """``(backend, offline_reason)`` for ``name`` (default: this config's backend);
        ``auto`` becomes ``anthropic`` or, without a key, ``echo`` with the reason."""
        resolved = _backend_name(name or self.backend)
        if resolved != "auto":
            return resolved, None
        if self.api_key_set:
            return "anthropic", None
        return "echo", "ANTHROPIC_API_KEY is not set"


def _backend_name(name: str) -> str:
    resolved = _ALIASES.get(name, name)
    if resolved not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return resolved


class Response(str):
    """The answer text, with what the backend reported about it.

    ``model``, ``stop_reason``, ``usage`` (:class:`~claude_magic.session.Usage`), ``cost_usd``,
    ``ids`` (backend ids), ``session_id``, ``turn`` (the stored answer's ``seq``), ``backend``,
    ``offline`` (True when no model was called now: echo, replay), ``duration`` and
    ``time_to_first_chunk`` (seconds).
    """

    model: str | None
    stop_reason: str | None
    usage: Usage
    cost_usd: float | None
    ids: dict[str, str]
    session_id: str | None
    turn: int | None
    backend: str
    offline: bool
    duration: float
    time_to_first_chunk: float | None

    def __new__(cls, text: str = "", **meta: Any) -> Response:
        obj = super().__new__(cls, text)
        obj.__dict__.update(model=None, stop_reason=None, usage=Usage(), cost_usd=None, ids={},
                            session_id=None, turn=None, backend="", offline=False, duration=0.0,
                            time_to_first_chunk=None)
        obj.__dict__.update(meta)
        return obj

    @property
    def text(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        return str(self)


class Client:
    """Sends queries through a backend and keeps sessions in ``manager``.

    ``Client(Config(backend="anthropic"), manager=manager)``; without a manager the client
    keeps its own in-memory one. ``client.config`` may be changed between turns.
    """

    def __init__(self, config: Config | None = None, manager: SessionManager | None = None):
        self.config = config if config is not None else Config()
        self.manager = manager if manager is not None else SessionManager()
        self._backends: dict[str, Backend] = {}

    def __repr__(self) -> str:
        return f"Client({self.config!r}, manager={self.manager!r})"

    def query(self, text: str) -> Query:
        """Start a query; chain ``.session(id)`` and overrides, then ``.send()`` or
        ``.stream()``."""
        if not isinstance(text, str):
            raise TypeError(f"the prompt must be str, got {type(text).__name__}")
        return Query(self, text)

    def backend(self, name: str) -> Backend:
        """The backend object for ``name`` (created on first use, then reused)."""
        backend = self._backends.get(name)
        if backend is None:
            backend = self._backends[name] = create_backend(name)
        return backend


class Query:
    """One prompt and its options; each method returns the query, for chaining."""

    def __init__(self, client: Client, text: str) -> None:
        self.client = client
        self.text = text
        self.session_id: SessionId | None = None
        self.overrides: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Query({one_line(self.text, 40)!r}, session={self.session_id!r})"

    def session(self, session_id: str) -> Query:
        """Send in this stored session (its prompt and history go with it; the turn is kept)."""
        self.session_id = SessionId(session_id)
        return self

    def model(self, model: str) -> Query:
        self.overrides["model"] = model
        return self

    def system(self, prompt: str) -> Query:
        """Use this system prompt for this turn instead of the session's."""
        self.overrides["system"] = prompt
        return self

    def max_tokens(self, count: int) -> Query:
        self.overrides["max_tokens"] = int(count)
        return self

    def backend(self, name: str) -> Query:
        self.overrides["backend"] = name
        return self

    def stream(self) -> Stream:
        """An iterator of text chunks; ``stream.response`` holds the :class:`Response` after."""
        return Stream(_Turn(self))

    def send(self) -> Response:
        """Run the turn to the end and return the :class:`Response`."""
        with self.stream() as stream:
            for _ in stream:
                pass
        return stream.response


class Stream:
    """Text chunks as they arrive. Closing it early (or an error) stores what arrived as an
    ``incomplete`` answer and marks the prompt ``error``; use it as a context manager, or call
    :meth:`close`, so that happens at once."""

    def __init__(self, turn: _Turn) -> None:
        self._turn = turn
        self._chunks = turn.run()

    def __iter__(self) -> Iterator[str]:
        return self._chunks  # the turn's generator itself: no extra call per chunk

    def __next__(self) -> str:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._turn.chunks)

    @property
    def error(self) -> BaseException | None:
        """Why the turn failed, if it did."""
        return self._turn.error

    @property
    def response(self) -> Response:
        """The :class:`Response`, once the stream has been read to the end."""
        if self._turn.response is None:
            state = "failed" if self._turn.error is not None else "has not finished"
            raise BackendError(f"the stream {state}; there is no response"
                               + ("" if self._turn.error is None else f": {self._turn.error}"))
        return self._turn.response


def answered_history(messages: Sequence[Message]) -> list[Message]:
    """The history a model sees: ``ok`` user messages each followed by an ``ok`` answer.

    A user message left without an answer (a kernel that died mid-turn) is dropped, so the
    history always alternates user/assistant. Turns answered by the offline ``echo`` backend
    are dropped too: no model wrote them, so no model is told it did.
    """
    return [message for question, answer in answered_turns(messages)
            if answer.backend != "echo" for message in (question, answer)]


class _Turn:
    """The lifecycle of one turn; :meth:`run` is the generator a :class:`Stream` drives."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self.chunks: list[str] = []
        self.response: Response | None = None
        self.error: BaseException | None = None

    def _request(self) -> tuple[str, TurnRequest]:
        client, query = self.query.client, self.query
        config, overrides = client.config, query.overrides
        session = client.manager.resume(query.session_id) if query.session_id else None
        settings = session.settings if session is not None else {}
        name, offline_reason = config.resolve_backend(
            overrides.get("backend") or settings.get("backend"))
        default_system = session.system_prompt if session is not None else None
        system = overrides.get("system", default_system)
        return name, TurnRequest(
            prompt=query.text,
            history=answered_history(session.messages) if session is not None else [],
            system=system,
            model=overrides.get("model") or settings.get("model") or config.model,
            max_tokens=int(overrides.get("max_tokens") or settings.get("max_tokens")
                           or config.max_tokens),
            config=config, session_id=query.session_id, manager=client.manager,
            offline_reason=offline_reason)

    def run(self) -> Iterator[str]:
        manager = self.query.client.manager
        name, request = self._request()
        sid = request.session_id
        start = time.perf_counter()
        user = manager.append(sid, Message("user", request.prompt, model=request.model,
                                           backend=name)) if sid else None
        first: float | None = None
        result: TurnResult | None = None
        backend_turn: Iterator[str | TurnResult] | None = None
        try:
            backend_turn = self.query.client.backend(name).stream_turn(request)
            for item in backend_turn:
                if isinstance(item, TurnResult):
                    result = item
                elif item:
                    if first is None:
                        first = time.perf_counter() - start
                    self.chunks.append(item)
                    yield item
            if result is None:
                raise BackendError(f"the {name} backend ended without a result")
            if not self.chunks and result.text:
                first = time.perf_counter() - start
                self.chunks.append(result.text)
                yield result.text
            duration = time.perf_counter() - start
            text = "".join(self.chunks) if result.final_text is None else result.final_text
            turn = None
            if sid is not None:  # inside the try: if storing the answer fails, the failure
                stored = manager.append(sid, Message(  # path marks the prompt, keeps the text
                    "assistant", text, model=result.model, backend=name, usage=result.usage,
                    cost_usd=result.cost_usd, stop_reason=result.stop_reason,
                    duration_ms=round(duration * 1000, 3), ids=dict(result.ids)))
                turn = stored.seq
        except BaseException as exc:
            if backend_turn is not None:
                backend_turn.close()  # release the HTTP stream or the process first
            error = _as_backend_error(exc, name)
            self.error = error or exc
            if sid is not None and user is not None:
                self._record_failure(sid, user.seq, name, request.model, start, self.error,
                                     result)
            if error is not None and error is not exc:
                raise error from exc
            raise
        self.response = Response(
            text, model=result.model, stop_reason=result.stop_reason, usage=result.usage,
            cost_usd=result.cost_usd, ids=dict(result.ids), session_id=sid, turn=turn,
            backend=name, offline=result.offline, duration=duration, time_to_first_chunk=first)

    def _record_failure(self, sid: str, user_seq: int | None, name: str, model: str,
                        start: float, exc: BaseException, result: TurnResult | None) -> None:
        """Best effort: mark the prompt ``error`` and keep any text as an ``incomplete`` answer
        (with what the turn cost, when known); a store failure here is only a warning, so it
        never hides the turn's own error."""
        reason = _reason(exc)
        manager = self.query.client.manager
        # what the turn cost: from a backend error (e.g. the CLI's), or the finished result
        # when it was storing the answer that failed
        spent: TurnResult | None = getattr(exc, "result", None) or result
        partial = "".join(self.chunks)
        duration_ms = round((time.perf_counter() - start) * 1000, 3)

        def answer(report: TurnResult) -> Message:
            return Message("assistant", partial, status="incomplete", error=reason,
                           model=report.model or model, backend=name, usage=report.usage,
                           cost_usd=report.cost_usd, stop_reason=report.stop_reason,
                           duration_ms=duration_ms, ids=dict(report.ids))

        try:
            if user_seq is not None:
                manager.mark(sid, user_seq, "error", reason)
            if partial or (spent is not None and spent.cost_usd):
                try:
                    message = answer(spent or TurnResult())
                except (TypeError, ValueError):  # the backend's figures were what was refused
                    message = answer(TurnResult())
                manager.append(sid, message)
        except Exception as store_exc:  # never hide the turn's own error behind this one
            warnings.warn(f"claude_magic could not record the failed turn in session {sid!r}: "
                          f"{one_line(store_exc)}", stacklevel=3)


def _as_backend_error(exc: BaseException, name: str) -> ClaudeMagicError | None:
    """The error to raise for ``exc``: itself if ours (a backend's, or the store's when the
    answer could not be stored), wrapped if another Exception, None for GeneratorExit /
    KeyboardInterrupt (re-raised as they are)."""
    if isinstance(exc, ClaudeMagicError):
        return exc
    if isinstance(exc, Exception):
        return BackendError(f"the {name} backend failed: {type(exc).__name__}: {one_line(exc)}")
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):
        return "stopped: the stream was closed before the answer finished"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted before the answer finished"
    return one_line(exc, 500)


__all__ = ["BACKENDS", "DEFAULT_MODEL", "Client", "Config", "Query", "Response", "Stream",
           "answered_history"]

"""One turn's lifecycle: the budget and context-window checks, then store, call, store.

A turn in a session: its budget is checked first (refused before anything is stored or sent);
for the ``anthropic`` backend the request's size is estimated and the context policy applied
(``warn``, ``compact``, ``truncate``); the user message is stored; the backend is called with
the session's system prompt and the history a model sees (:mod:`.compaction`); the answer is
stored with model, usage, cost, ids and timing. If the turn fails, the user message is marked
``error`` with the reason and any text streamed before the failure is kept as an
``incomplete`` answer; neither is sent to the model again.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .backends import TurnRequest, TurnResult
from .backends.base import Aside, one_line
from .compaction import Turn, flatten, visible_turns
from .errors import BackendError, BudgetExceeded, ClaudeMagicError, ContextWindowExceeded
from .message import Message, Usage
from .window import WARN_FRACTION, ContextReport, estimate, truncate, window_of

if TYPE_CHECKING:
    from .client import Query
    from .session import Session

OFFLINE_BACKENDS = ("echo", "replay")
FIT_POLICY_BACKENDS = ("anthropic",)  # the CLI keeps (and compacts) its own context


class Response(str):
    """The answer text, with what the backend reported about it.

    ``model``, ``stop_reason``, ``usage`` (:class:`~claude_magic.session.Usage`), ``cost_usd``,
    ``ids`` (backend ids), ``session_id``, ``turn`` (the stored answer's ``seq``), ``backend``,
    ``offline`` (True when no model was called now: echo, replay), ``duration`` and
    ``time_to_first_chunk`` (seconds), ``context`` (a
    :class:`~claude_magic.window.ContextReport`: the request's size against the window, and
    notes on what was done to make it fit; None when not measured), ``blocks`` (the answer
    as stored content blocks when it holds more than text: thinking, tool calls; else None).
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
    context: ContextReport | None

    def __new__(cls, text: str = "", **meta: Any) -> Response:
        obj = super().__new__(cls, text)
        obj.__dict__.update(model=None, stop_reason=None, usage=Usage(), cost_usd=None, ids={},
                            session_id=None, turn=None, backend="", offline=False, duration=0.0,
                            time_to_first_chunk=None, context=None, blocks=None)
        obj.__dict__.update(meta)
        return obj

    @property
    def text(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        return str(self)


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
    history always alternates user/assistant. After a compaction the summary turn comes
    first and the compacted turns are left out. Turns answered by the offline ``echo``
    backend are dropped too: no model wrote them, so no model is told it did.
    """
    return flatten(model_turns(messages))


def model_turns(messages: Sequence[Message]) -> list[Turn]:
    """:func:`answered_history` as (question, answer) turns."""
    return [turn for turn in visible_turns(messages) if turn[1].backend != "echo"]


class _Turn:
    """The lifecycle of one turn; :meth:`run` is the generator a :class:`Stream` drives.

    ``compaction``: for the summarising turn of :meth:`Client.compact`, the turns to
    summarise and the last ``seq`` they cover (no window policy; stored as ``summary``)."""

    def __init__(self, query: Query, compaction: tuple[list[Turn], int] | None = None,
                 retried: bool = False, shrink: float = 1.0) -> None:
        self.query = query
        self.compaction = compaction
        self.retried = retried
        self.shrink = shrink  # < 1 after the API said our estimate was too small
        self.chunks: list[str] = []
        self.response: Response | None = None
        self.error: BaseException | None = None
        self.turns: list[Turn] = []
        self.session: Session | None = None
        self.spent = 0.0  # the session's recorded cost, for the budget

    def _request(self) -> tuple[str, TurnRequest]:
        client, query = self.query.client, self.query
        config, overrides = client.config, query.overrides
        history = client._history(query.session_id) if query.session_id else None
        session = history.session if history is not None else None
        self.session = session
        self.spent = history.spent if history is not None else 0.0
        settings = session.settings if session is not None else {}
        name, offline_reason = config.resolve_backend(
            overrides.get("backend") or settings.get("backend"))
        default_system = session.system_prompt if session is not None else None
        system = overrides.get("system", default_system)
        if self.compaction is not None:
            self.turns = [t for t in self.compaction[0] if t[1].backend != "echo"]
        else:
            self.turns = list(history.turns) if history is not None else []
        return name, TurnRequest(
            prompt=query.text,
            history=(history.request_history() if history is not None and self.compaction is None
                     else flatten(self.turns)),
            system=system,
            model=overrides.get("model") or settings.get("model") or config.model,
            max_tokens=int(overrides.get("max_tokens") or settings.get("max_tokens")
                           or config.max_tokens),
            config=config, session_id=query.session_id, manager=client.manager,
            offline_reason=offline_reason,
            turn_index=history.answered if history is not None else 0,
            blocks=query.blocks,
            thinking=overrides.get("thinking", getattr(config, "thinking", None)))

    # --- before anything is stored or sent ---------------------------------------------------

    def _check_budget(self, name: str, request: TurnRequest) -> None:
        """BudgetExceeded when the session's recorded cost reached its budget (offline
        backends cost nothing and are never refused)."""
        session = self.session
        if session is None or name in OFFLINE_BACKENDS:
            return
        config = request.config
        budget = session.settings.get("budget_usd", config.budget_usd)
        if budget is None:
            return
        spent = self.spent
        if spent >= budget:
            where = ("its setting: %claude_session settings budget_usd=<more>"
                     if "budget_usd" in session.settings else
                     "Config(budget_usd=...) / %config ClaudeMagics.budget_usd = <more>")
            raise BudgetExceeded(
                f"session {session.id!r} has spent ${spent:.4f} of its ${float(budget):.4f} "
                f"budget; the turn was not sent; raise the budget with {where}, or unset it")

    def _measure(self, name: str, request: TurnRequest, trust_usage: bool = True) -> int:
        """The request's input tokens: counted by the API with ``Config.count_tokens``,
        else estimated."""
        backend = self.query.client.backend(name)
        if request.config.count_tokens and hasattr(backend, "count_tokens"):
            return int(backend.count_tokens(request))
        return estimate(request.system, request.history, request.prompt,
                        trust_usage=trust_usage)

    def _fit(self, name: str, request: TurnRequest) -> tuple[TurnRequest, ContextReport | None,
                                                             ContextWindowExceeded | None]:
        """Apply the context policy: the request to send, its report, and the overflow error
        to record (the prompt is then stored, marked failed) when it cannot fit."""
        if name not in FIT_POLICY_BACKENDS or self.compaction is not None:
            return request, None, None
        config = request.config
        window = window_of(request.model, config.context_window)
        report = ContextReport(window=window, policy=config.context)
        # truncated requests differ turn to turn: the last answer's usage does not describe
        # the next prefix, so they are always estimated from the text
        tokens = self._measure(name, request, trust_usage=config.context != "truncate")
        if config.context == "compact" and tokens > WARN_FRACTION * window and self.turns:
            summarised = self._auto_compact()
            if summarised:
                report.notes.append(f"compacted {summarised} earlier turn(s) into a summary "
                                    "first")
                name, request = self._request()
                tokens = self._measure(name, request)
        elif config.context == "truncate" and tokens > window * self.shrink:
            kept, dropped = truncate(self.turns, request.system, request.prompt,
                                     int(window * self.shrink))
            if dropped:
                self.turns = kept
                request.history = flatten(kept)
                report.notes.append(f"left the {dropped} oldest turn(s) out of the request "
                                    "(the transcript keeps them)")
                tokens = self._measure(name, request, trust_usage=False)
        report.tokens = tokens
        if tokens <= window:
            return request, report, None
        from .backends.anthropic_api import OVERFLOW_FIXES

        return request, report, ContextWindowExceeded(
            f"the request would take about {tokens:,} tokens but the context window of "
            f"{request.model} is {window:,}; it was not sent; {OVERFLOW_FIXES}")

    def _auto_compact(self) -> int:
        """Compact the session before sending (policy ``compact``); how many turns were
        summarised (0 when there was nothing to compact)."""
        query = self.query
        try:
            response = query.client.compact(query.session_id,
                                            keep_last=query.client.config.keep_last)
        except ClaudeMagicError as exc:
            if "nothing to compact" in str(exc):
                return 0
            raise
        return int(getattr(response, "compacted", 0))

    # --- the turn ----------------------------------------------------------------------------

    def run(self) -> Iterator[str]:
        manager = self.query.client.manager
        name, request = self._request()
        self._check_budget(name, request)
        request, report, overflow = self._fit(name, request)
        sid = request.session_id
        start = time.perf_counter()
        user_ids, answer_ids = self._kind_ids()
        user = manager.append(sid, Message("user", request.blocks or request.prompt,
                                           model=request.model, backend=name,
                                           ids=user_ids)) if sid else None
        first: float | None = None
        result: TurnResult | None = None
        backend_turn: Iterator[str | TurnResult] | None = None
        try:
            if overflow is not None:
                raise overflow
            backend_turn = self.query.client.backend(name).stream_turn(request)
            for item in backend_turn:
                if isinstance(item, TurnResult):
                    result = item
                elif isinstance(item, Aside):
                    if self.query.want_asides:
                        yield item
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
                    "assistant", result.blocks or text, model=result.model, backend=name,
                    usage=result.usage, cost_usd=result.cost_usd, stop_reason=result.stop_reason,
                    duration_ms=round(duration * 1000, 3), ids={**result.ids, **answer_ids}))
                turn = stored.seq
                result.ids = {**result.ids, "hash": stored.ids["hash"]}  # chain.py
        except BaseException as exc:
            if backend_turn is not None:
                backend_turn.close()  # release the HTTP stream or the process first
            error = _as_backend_error(exc, name)
            self.error = error or exc
            if sid is not None and user is not None:
                self._record_failure(sid, user.seq, name, request.model, start, self.error,
                                     result)
            if self._recoverable(self.error):
                yield from self._retry()
                return
            if error is not None and error is not exc:
                raise error from exc
            raise
        if report is not None and result.usage.input_tokens:
            usage = result.usage
            report.tokens = (usage.input_tokens + usage.cache_creation_input_tokens
                             + usage.cache_read_input_tokens)
        self.response = Response(
            text, model=result.model, stop_reason=result.stop_reason, usage=result.usage,
            cost_usd=result.cost_usd, ids=dict(result.ids), session_id=sid, turn=turn,
            backend=name, offline=result.offline, duration=duration, time_to_first_chunk=first,
            context=report, blocks=result.blocks)

    def _kind_ids(self) -> tuple[dict[str, str], dict[str, str]]:
        """The ``ids`` marking the prompt and the answer (a summary's, for a compaction)."""
        if self.compaction is None:
            return {}, {}
        from .compaction import summary_ids

        return summary_ids(), summary_ids(self.compaction[1])

    def _recoverable(self, error: BaseException) -> bool:
        """An API "prompt is too long" (the estimate was wrong) before any text, in a session
        whose policy compacts or truncates: compact, then send the prompt again once."""
        return (isinstance(error, ContextWindowExceeded) and not self.chunks
                and not self.retried and self.compaction is None
                and self.query.session_id is not None
                and self.query.client.config.context in ("compact", "truncate")
                and "not sent" not in str(error))

    def _retry(self) -> Iterator[str]:
        """The prompt again, after compacting, or with a smaller size target for
        ``truncate`` (the failed attempt stays, marked error)."""
        if self.query.client.config.context == "compact":
            done = f"compacted {self._auto_compact()} earlier turn(s)"
            again = _Turn(self.query, retried=True)
        else:
            done = "left more old turns out"
            again = _Turn(self.query, retried=True, shrink=_shrink(str(self.error)))
        yield from again.run()
        self.chunks, self.error, self.response = again.chunks, again.error, again.response
        if self.response is not None and self.response.context is not None:
            self.response.context.notes.insert(
                0, f"the API found the prompt too long; {done} and sent it again")

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


def _shrink(message: str) -> float:
    """How much smaller the request must be, from the API's "N tokens > W maximum"."""
    import re

    found = re.search(r"(\d+) tokens > (\d+)", message)
    if not found:
        return 0.5
    return max(0.05, min(0.95, int(found.group(2)) / int(found.group(1)) * 0.9))


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



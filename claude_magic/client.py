"""Client and Query: ``client.query(text).session(id).send()`` or ``.stream()``, and
``client.compact(session_id)``.

A turn's lifecycle (budget, context window, store, call, store) is in :mod:`.turn`. Model,
backend and max_tokens come from the query, else the session's ``settings``, else the
:class:`~claude_magic.config.Config`. A query without ``.session()`` is a one-off: nothing is
stored. Importing this module does not import the ``anthropic`` SDK.
"""

from __future__ import annotations

from typing import Any

from .backends import Backend, create_backend
from .backends.base import one_line
from .blocks import check_blocks, text_of
from .compaction import Turn, flatten, is_summary, summary_prompt, visible_turns
from .config import BACKENDS, DEFAULT_MODEL, PERMISSION_MODES, Config, check_thinking
from .errors import ClaudeMagicError
from .history import HistoryCache, SessionHistory
from .manager import SessionManager
from .session import SessionId
from .turn import Response, Stream, _Turn, answered_history
from .window import WARN_FRACTION, estimate, window_of


class Client:
    """Sends queries through a backend and keeps sessions in ``manager``.

    ``Client(Config(backend="anthropic"), manager=manager)``; without a manager the client
    keeps its own in-memory one. ``client.config`` may be changed between turns.
    """

    def __init__(self, config: Config | None = None, manager: SessionManager | None = None):
        self.config = config if config is not None else Config()
        self.manager = manager if manager is not None else SessionManager()
        self._backends: dict[str, Backend] = {}
        self._histories = HistoryCache()

    def __repr__(self) -> str:
        return f"Client({self.config!r}, manager={self.manager!r})"

    def query(self, text: str | list[dict[str, Any]]) -> Query:
        """Start a query; chain ``.session(id)`` and overrides, then ``.send()`` or
        ``.stream()``. ``text`` is the prompt, or a list of content blocks (text, image,
        document: base64 sources; see :mod:`claude_magic.blocks`), checked now."""
        if isinstance(text, str):
            return Query(self, text)
        if not isinstance(text, list):
            raise TypeError(f"the prompt must be str or a list of content blocks, got "
                            f"{type(text).__name__}")
        blocks = check_blocks(text, "the prompt")
        query = Query(self, text_of(blocks))
        query.blocks = blocks
        return query

    def backend(self, name: str) -> Backend:
        """The backend object for ``name`` (created on first use, then reused)."""
        backend = self._backends.get(name)
        if backend is None:
            backend = self._backends[name] = create_backend(name)
        return backend

    def _history(self, session_id: SessionId) -> SessionHistory:
        """The session as a turn reads it: kept between turns, and only what changed in the
        store since is read (see :mod:`claude_magic.history`)."""
        return self._histories.read(self.manager, session_id)

    def compact(self, session_id: str, keep_last: int = 2,
                instructions: str | None = None) -> Response:
        """Summarise every answered turn of the session but the last ``keep_last``, with the
        session's own backend, and store the summary (``kind`` ``summary``): later requests
        carry it instead of those turns, which stay in the store, marked compacted.

        Returns the summary's :class:`Response`; ``response.compacted`` is how many turns it
        replaced. A history too long for one summarising request is summarised in parts.
        ``ClaudeMagicError`` when there is nothing to compact."""
        if type(keep_last) is not int or keep_last < 0:
            raise ValueError(f"keep_last must be an int, 0 or more, got {keep_last!r}")
        sid = SessionId(session_id)
        prompt = summary_prompt(instructions)
        total, response = 0, None
        while True:
            pending = self._to_summarise(sid, keep_last)
            if not pending:
                break
            part = self._fitting_part(sid, pending, prompt)
            through = max(a.seq or 0 for q, a in part if not is_summary(a))
            query = Query(self, prompt).session(sid)
            response = query._send_turn(_Turn(query, compaction=(part, through)))
            total += sum(1 for q, a in part if not is_summary(a))
            if len(part) == len(pending):
                break
        if response is None:
            raise ClaudeMagicError(
                f"nothing to compact in session {str(sid)!r}: it has no answered turn before "
                f"the last {keep_last} (that are not already summarised); use a smaller "
                "keep_last / --keep-last")
        response.__dict__["compacted"] = total
        return response

    def _to_summarise(self, sid: SessionId, keep_last: int) -> list[Turn]:
        """The turns a compaction would summarise now: all but the last ``keep_last``
        (empty when that is only the previous summary)."""
        turns = visible_turns(self.manager.resume(sid).messages)
        pending = turns[: max(0, len(turns) - keep_last)]
        return [] if all(is_summary(a) for q, a in pending) else pending

    def _fitting_part(self, sid: SessionId, pending: list[Turn], prompt: str) -> list[Turn]:
        """The oldest turns of ``pending`` whose summarising request fits 80% of the window
        (at least one turn besides a previous summary)."""
        session = self.manager.resume(sid)
        model = session.settings.get("model") or self.config.model
        limit = WARN_FRACTION * window_of(model, self.config.context_window)
        count = len(pending)
        while count > 1 and estimate(session.system_prompt, flatten(pending[:count]), prompt,
                                     trust_usage=False) > limit:
            count -= 1
        least = 2 if is_summary(pending[0][1]) else 1
        return pending[: max(count, min(least, len(pending)))]


class Query:
    """One prompt and its options; each method returns the query, for chaining."""

    def __init__(self, client: Client, text: str) -> None:
        self.client = client
        self.text = text
        self.session_id: SessionId | None = None
        self.overrides: dict[str, Any] = {}
        self.blocks: list[dict[str, Any]] | None = None
        self.want_asides = False

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

    def think(self, budget: int | str | None) -> Query:
        """Extended thinking for this turn: a budget of at least 1,024 tokens, ``"adaptive"``
        (models that support it), or None (off); overrides ``Config.thinking``."""
        self.overrides["thinking"] = check_thinking(budget)
        return self

    def asides(self, on: bool = True) -> Query:
        """Make :meth:`stream` also yield :class:`~claude_magic.backends.base.Aside` chunks:
        thinking as it streams, and one line per tool call of Claude Code."""
        self.want_asides = on
        return self

    def stream(self) -> Stream:
        """An iterator of text chunks; ``stream.response`` holds the :class:`Response` after."""
        return Stream(_Turn(self))

    def send(self) -> Response:
        """Run the turn to the end and return the :class:`Response`."""
        return self._send_turn(_Turn(self))

    def _send_turn(self, turn: _Turn) -> Response:
        with Stream(turn) as stream:
            for _ in stream:
                pass
        return stream.response


__all__ = ["BACKENDS", "DEFAULT_MODEL", "PERMISSION_MODES", "Client", "Config", "Query",
           "Response", "Stream", "answered_history"]

"""The ``replay`` backend: answers from a recorded session, turn by turn, with no model.

``Config(backend="replay", replay_source=...)`` names the recording: a session id in the same
store, or a JSON file holding one exported session (``export_session(..., "json")`` /
``%claude_session export --format json``, or a bare ``Session.to_dict()``: ``{"id": ...,
"messages": [...]}``). Turn *n* of the session being run (counted over its answered turns) must
ask exactly the recording's turn *n* (surrounding whitespace ignored); the answer is the recorded
one, streamed word by word. Anything else raises :class:`ReplayMismatch` naming both prompts.
Only answered (``ok``) turns of the recording are replayed. A recorded answer carrying its
chain hash (:mod:`claude_magic.chain`) is served only if it still matches it (content, role and
status, linked to the stored hash of the message before it); one edited since it was recorded
raises :class:`ReplayMismatch`. The hash served is kept as the new answer's
``ids["replayed_hash"]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import BackendUnavailable, ClaudeMagicError, ReplayMismatch
from ..message import Message, answered_turns
from ..session import Session
from ..storage import _jsonio
from .base import TurnRequest, TurnResult, one_line, split_words


def load_recording(source: str, request: TurnRequest) -> Session:
    """The recorded session: a JSON file when ``source`` is a file (or ends in ``.json``),
    else a session id in the request's store."""
    if source.endswith(".json") or os.path.isfile(source):
        try:
            data = _jsonio.loads(Path(source).read_bytes())
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(f"cannot read the replay file {source!r}: "
                                     f"{one_line(exc, 120)}") from exc
        if isinstance(data, dict) and isinstance(data.get("sessions"), list):
            if len(data["sessions"]) != 1:
                raise BackendUnavailable(f"the replay file {source!r} holds "
                                         f"{len(data['sessions'])} sessions; export just one")
            data = data["sessions"][0]
        elif isinstance(data, dict) and "format" in data and isinstance(data.get("session"), dict):
            data = data["session"]  # a JSON export: {"format": ..., "session": {...}}
        try:
            return Session.from_dict(data)
        except (KeyError, TypeError, ValueError, ClaudeMagicError) as exc:
            raise BackendUnavailable(f"the replay file {source!r} is not an exported session: "
                                     f"{one_line(exc, 120)}") from exc
    if request.manager is None:
        raise BackendUnavailable(f"replay source {source!r} is neither a JSON file nor a session")
    try:
        return request.manager.resume(source)
    except ClaudeMagicError as exc:
        raise BackendUnavailable(f"replay source {source!r}: {exc}") from exc


def check_recorded(source: str, session: Session, answer: Message) -> str | None:
    """The answer's stored hash after checking it (None when it carries none); an answer
    whose content no longer matches raises :class:`ReplayMismatch`."""
    from ..blocks import binary_sources
    from ..chain import HASH_KEY, message_hash

    stored = answer.ids.get(HASH_KEY)
    if stored is None:
        return None
    if not isinstance(answer.content, str) and any(binary_sources(answer.content)):
        return stored  # an export embeds images as base64; the store hashed their references
    before = [m for m in session.messages if m.seq is not None and m.seq == (answer.seq or 0) - 1]
    previous = before[0].ids.get(HASH_KEY, "") if before else ""
    if message_hash(previous, answer.role, answer.status, answer.content) != stored:
        raise ReplayMismatch(f"the recorded answer {answer.seq} in {source!r} no longer matches "
                             "its hash (it was changed after it was recorded); check it with "
                             "%claude_session verify")
    return stored


def recorded_turns(session: Session) -> list[tuple[Message, Message]]:
    """The recording's answered turns: each ``ok`` user message with the ``ok`` answer after it."""
    return answered_turns(session.messages)


class ReplayBackend:
    """Answers turn *n* with the recording's answer to turn *n*, if the prompts match."""

    name = "replay"

    def stream_turn(self, request: TurnRequest) -> Iterator[str | TurnResult]:
        source = request.config.replay_source
        if not source:
            raise BackendUnavailable("the replay backend needs a recording: "
                                     "Config(replay_source=<session id or exported JSON file>)")
        source = os.fspath(source)
        recording = load_recording(source, request)
        turns = recorded_turns(recording)
        index = request.turn_index
        if index is None:
            index = sum(1 for m in request.history if m.role == "user")
        if index >= len(turns):
            raise ReplayMismatch(
                f"turn {index + 1} ({one_line(request.prompt, 60)!r}) is not in the recording "
                f"{source!r}, which has {len(turns)} turn(s)")
        question, answer = turns[index]
        if question.text.strip() != request.prompt.strip():  # images: the text decides
            raise ReplayMismatch(
                f"turn {index + 1} differs from the recording {source!r}: asked "
                f"{one_line(request.prompt, 60)!r}, recorded {one_line(question.text, 60)!r}")
        checked = check_recorded(source, recording, answer)
        ids = {"replayed_from": f"{source}#{answer.seq}"}
        if checked is not None:
            ids["replayed_hash"] = checked
        yield from split_words(answer.text)
        yield TurnResult(model=answer.model, stop_reason=answer.stop_reason, offline=True,
                         ids=ids,
                         blocks=None if isinstance(answer.content, str) else answer.content)

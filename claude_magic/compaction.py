"""Compaction, as data: which stored messages a model still sees after a session was compacted.

Compacting stores one more answered turn: a user message asking for a summary and the
model's answer, both marked ``kind`` ``summary`` in their ``ids`` (a field every store keeps),
the answer also with ``compacts_through``: the last ``seq`` it summarises. From then on a
request carries that summary turn first, then the answered turns after ``compacts_through``;
the messages at or below it stay in the store, *compacted* (shown greyed / collapsed), and
are never sent again. Compacting again summarises the previous summary too, and an older
summary turn is itself compacted. No storage operation is needed beyond ``append``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .message import Message, answered_turns

KIND_KEY = "kind"
THROUGH_KEY = "compacts_through"
SUMMARY = "summary"
SUMMARY_PROMPT = (
    "Summarise our conversation so far for your own later use: the goals, decisions, facts, "
    "code and open questions, so the conversation can continue from the summary alone. "
    "Answer with the summary only.")

Turn = tuple[Message, Message]


def kind_of(message: Message) -> str:
    """``summary`` for the messages of a compaction, else ``message``."""
    return SUMMARY if message.ids.get(KIND_KEY) == SUMMARY else "message"


def is_summary(message: Message) -> bool:
    return message.ids.get(KIND_KEY) == SUMMARY


def compacts_through(message: Message) -> int | None:
    """The last ``seq`` a summary answer covers (None for any other message)."""
    value = message.ids.get(THROUGH_KEY) if is_summary(message) else None
    return int(value) if value is not None and value.isdigit() else None


def summary_ids(through: int | None = None) -> dict[str, str]:
    """The ``ids`` that mark a summary prompt (``through=None``) or answer."""
    ids = {KIND_KEY: SUMMARY}
    if through is not None:
        ids[THROUGH_KEY] = str(through)
    return ids


def summary_prompt(instructions: str | None = None) -> str:
    """What the summarising call asks; ``instructions`` are added to it."""
    return SUMMARY_PROMPT + (f"\n\nAlso: {instructions.strip()}" if instructions else "")


def latest_summary(messages: Sequence[Message]) -> Message | None:
    """The newest ``ok`` summary answer of a session, if it was ever compacted."""
    for message in reversed(messages):
        if message.role == "assistant" and message.status == "ok" \
                and compacts_through(message) is not None:
            return message
    return None


def _seq(message: Message) -> int:
    return message.seq if message.seq is not None else -1


def visible_turns(messages: Sequence[Message]) -> list[Turn]:
    """The answered turns a model sees, in the order it sees them: the latest summary turn
    first, then every answered turn after what it covers (other summary turns left out)."""
    turns = answered_turns(messages)
    summary = latest_summary(messages)
    if summary is None:
        return turns
    through = compacts_through(summary) or 0
    head = [turn for turn in turns if turn[1] is summary]
    rest = [(q, a) for q, a in turns
            if _seq(q) > through and not is_summary(q) and not is_summary(a)]
    return head + rest


def compacted_seqs(messages: Sequence[Message]) -> set[int]:
    """The ``seq`` of every compacted message: at or below the latest summary's
    ``compacts_through``, or part of an older summary turn."""
    summary = latest_summary(messages)
    if summary is None:
        return set()
    through = compacts_through(summary) or 0
    own = {_seq(summary), _seq(summary) - 1}  # the summary answer and the prompt before it
    return {_seq(m) for m in messages
            if _seq(m) <= through or (is_summary(m) and _seq(m) not in own)}


def flatten(turns: Iterable[Turn]) -> list[Message]:
    return [message for turn in turns for message in turn]

"""Rows of the PostgreSQL store <-> sessions and messages (the column lists in one place)."""

from __future__ import annotations

from typing import Any

from ..checks import loads_checked
from ..message import Message, SessionStats, Usage
from ..session import SessionId, SessionSummary
from . import _pg_text as text
from ._pg_names import SCHEMA

SESSION_COLUMNS = ("id, system_prompt, metadata_json::text, settings_json::text, created_at, "
                   "updated_at, message_count, turns, input_tokens, output_tokens, cost_usd, "
                   "last_model")
#: The same, with the times read only when ``readable`` (a planted year 10000 stays unread).
GUARDED_COLUMNS = SESSION_COLUMNS.replace(
    "created_at, updated_at", "CASE WHEN readable THEN created_at END, "
    "CASE WHEN readable THEN updated_at END")
LISTING_COLUMNS = SESSION_COLUMNS.replace("settings_json::text, ", "")
MESSAGE_COLUMNS = ("seq, role, content, created_at, status, error, model, backend, "
                   "input_tokens, output_tokens, cache_creation_input_tokens, "
                   "cache_read_input_tokens, cost_usd, stop_reason, duration_ms, ids::text, "
                   "blocks::text")
INSERT_MESSAGE = (f"INSERT INTO {SCHEMA}.messages "
                  f"(session_id, {MESSAGE_COLUMNS.replace('::text', '')}) "
                  f"VALUES ({', '.join(['%s'] * (MESSAGE_COLUMNS.count(',') + 2))})")


def trusted_id(value: str) -> SessionId:
    """A SessionId for a value the ``readable`` column already validated (same rules)."""
    return str.__new__(SessionId, value)


def json_object(value: str, what: str = "metadata") -> dict[str, Any]:
    """A stored JSON object, checked as our writes are: ints within 64 bits, finite floats,
    nesting at most 100 (``ValueError`` / ``TypeError``)."""
    parsed = {} if value == "{}" else loads_checked(text.json_text(value), what)
    if type(parsed) is not dict:
        raise TypeError("not a JSON object")
    return parsed


def summary_of(row: tuple[Any, ...]) -> SessionSummary:
    """A summary from a row the ``readable`` column passed; ValueError/TypeError if not."""
    stats = SessionStats(row[6], row[7], row[8], row[9], row[10], text.dec(row[11]))
    return SessionSummary(trusted_id(row[0]), text.dec(row[1]), json_object(row[2]),
                          json_object(row[3], "settings"), row[4], row[5], stats)


def message_row(session_id: str, message: Message) -> tuple[Any, ...]:
    usage = message.usage
    blocks = None if isinstance(message.content, str) else text.dumps(message.content)
    return (session_id, message.seq, message.role, text.enc(message.text),
            message.created_at, message.status, text.enc(message.error),
            text.enc(message.model), text.enc(message.backend), usage.input_tokens,
            usage.output_tokens, usage.cache_creation_input_tokens,
            usage.cache_read_input_tokens, message.cost_usd, text.enc(message.stop_reason),
            message.duration_ms, text.dumps(message.ids), blocks)


def message_of(row: tuple[Any, ...]) -> Message:
    """A message from its row (its blocks, when it has them, are its content)."""
    content = (text.dec(row[2]) if row[16] is None
               else loads_checked(text.json_text(row[16]), "content blocks"))
    return Message(role=row[1], content=content, created_at=row[3], status=row[4],
                   error=text.dec(row[5]), model=text.dec(row[6]), backend=text.dec(row[7]),
                   usage=Usage(row[8], row[9], row[10], row[11]), cost_usd=row[12],
                   stop_reason=text.dec(row[13]), duration_ms=row[14],
                   ids=json_object(row[15], "ids"), seq=row[0])


"""The usage ledger: what a store's sessions used and cost, grouped by session, model or day.

``usage(manager, by="session")`` is a pandas DataFrame (pandas imported on first use) with one
row per group and the columns of :data:`COLUMNS`: ``turns`` (prompts sent), ``input_tokens``
(uncached), ``cache_write_tokens``, ``cache_read_tokens``, ``output_tokens`` and ``cost_usd``
(offline backends cost nothing). :func:`with_total` adds a ``total`` row for display.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .message import Message
from .session import SessionId

if TYPE_CHECKING:
    import pandas

    from .manager import SessionManager

COLUMNS = ("turns", "input_tokens", "cache_write_tokens", "cache_read_tokens",
           "output_tokens", "cost_usd")
GROUPINGS = ("session", "model", "day")


def _key(by: str, session_id: str, message: Message) -> str:
    if by == "session":
        return session_id
    if by == "model":
        return message.model or "(none)"
    return message.created_at.date().isoformat()


def _add(row: list[float], message: Message) -> None:
    usage = message.usage
    row[0] += message.role == "user"
    row[1] += usage.input_tokens
    row[2] += usage.cache_creation_input_tokens
    row[3] += usage.cache_read_input_tokens
    row[4] += usage.output_tokens
    row[5] += message.cost_usd or 0.0


def ledger_rows(manager: SessionManager, by: str = "session",
                session_ids: str | Iterable[str] | None = None) -> dict[str, list[float]]:
    """Sums per group (``by``: session, model or day), each a list in :data:`COLUMNS` order.
    ``session_ids``: one id, several, or every session (``None``); a missing id raises
    :class:`~claude_magic.errors.SessionNotFound`."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    if session_ids is None:
        ids: list[str] = list(manager.list())
    else:
        ids = [session_ids] if isinstance(session_ids, str) else list(session_ids)
        ids = [SessionId(i) for i in ids]
    rows: dict[str, list[float]] = {}
    for session_id in ids:
        session = manager.resume(session_id) if session_ids is not None else \
            manager.get(session_id)
        if session is None:  # deleted meanwhile
            continue
        if by == "session":
            rows.setdefault(str(session.id), [0] * 5 + [0.0])
        for message in session.messages:
            _add(rows.setdefault(_key(by, str(session.id), message), [0] * 5 + [0.0]),
                 message)
    return rows


def usage(manager: SessionManager, by: str = "session",
          session_ids: str | Iterable[str] | None = None) -> pandas.DataFrame:
    """The ledger as a DataFrame indexed by ``by`` (sorted), columns :data:`COLUMNS`."""
    import pandas

    rows = ledger_rows(manager, by, session_ids)
    frame = pandas.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS))
    frame = frame.astype({name: "int64" for name in COLUMNS[:-1]} | {"cost_usd": "float64"})
    frame.index.name = by
    return frame.sort_index()


def with_total(frame: pandas.DataFrame) -> pandas.DataFrame:
    """``frame`` with a ``total`` row of the column sums (for display)."""
    import pandas

    total = frame.sum(numeric_only=True).to_frame("total").T.astype(frame.dtypes.to_dict())
    return pandas.concat([frame, total])


def status_line(response: object) -> str:
    """One line after an answer: tokens in (cached) / out, cost, how full the window is,
    and what was done to make the request fit."""
    usage_ = getattr(response, "usage", None)
    parts = []
    if usage_ is not None:
        sent = (usage_.input_tokens + usage_.cache_creation_input_tokens
                + usage_.cache_read_input_tokens)
        parts.append(f"in {sent:,} tokens ({usage_.cache_read_input_tokens:,} cached, "
                     f"{usage_.cache_creation_input_tokens:,} written) / out "
                     f"{usage_.output_tokens:,}")
    cost = getattr(response, "cost_usd", None)
    if getattr(response, "offline", False):
        parts.append("offline: $0")
    elif cost is not None:
        parts.append(f"${cost:.4f}")
    context = getattr(response, "context", None)
    if context is not None:
        parts.append(context.describe())
        parts += context.notes
    return " · ".join(parts)

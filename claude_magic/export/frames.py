"""Sessions and messages as pandas DataFrames (pandas is imported inside the functions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..message import Message
from ..times import parse_time

if TYPE_CHECKING:
    import pandas

    from ..manager import SessionManager

#: Columns of :func:`to_dataframe`, before the ``meta.<key>`` columns.
SESSION_COLUMNS: tuple[str, ...] = (
    "id", "created_at", "updated_at", "system_prompt", "turns", "messages",
    "input_tokens", "output_tokens", "cost_usd", "model",
)
#: Columns of :func:`messages_dataframe`.
MESSAGE_COLUMNS: tuple[str, ...] = (
    "session_id", "seq", "role", "content", "created_at", "status", "error", "model", "backend",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_usd", "stop_reason", "duration_ms",
)
_UTC = "datetime64[us, UTC]"


def to_dataframe(manager: SessionManager) -> pandas.DataFrame:
    """One row per session, newest first: header, totals and one ``meta.<key>`` column per key.

    Columns: ``id``, ``created_at``, ``updated_at`` (timezone-aware UTC), ``system_prompt``,
    ``turns``, ``messages``, ``input_tokens``, ``output_tokens``, ``cost_usd``, ``model`` (the
    last model that answered), then ``meta.<key>`` sorted by key. Reads no messages.
    """
    import pandas as pd

    table = manager.summary_columns()
    columns: dict[str, Any] = {
        "id": _texts(table.ids),
        "created_at": _utc(table.created_at),
        "updated_at": _utc(table.updated_at),
        "system_prompt": _texts(table.system_prompts),
        "turns": _ints(table.turns),
        "messages": _ints(table.message_count),
        "input_tokens": _ints(table.input_tokens),
        "output_tokens": _ints(table.output_tokens),
        "cost_usd": _floats(table.cost_usd),
        "model": _texts(table.last_model),
    }
    for key in sorted({key for metadata in table.metadata for key in metadata}):
        columns[f"meta.{key}"] = _infer([metadata.get(key) for metadata in table.metadata])
    return pd.DataFrame(columns)


def messages_dataframe(manager: SessionManager,
                       session_ids: str | Iterable[str] | None = None) -> pandas.DataFrame:
    """One row per message of one session, a list of sessions, or every session (``None``).

    Sessions come in the order given (all: newest first), messages in ``seq`` order. A missing
    id raises :class:`~claude_magic.errors.SessionNotFound`.
    """
    import pandas as pd

    if session_ids is None:
        ids: Sequence[str] = manager.list()
    elif isinstance(session_ids, str):
        ids = [session_ids]
    else:
        ids = list(session_ids)
    rows: list[tuple[Any, ...]] = []
    for session_id in ids:
        session = manager.resume(session_id)
        rows.extend(_message_row(session.id, m) for m in session.messages)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(MESSAGE_COLUMNS)
    data = dict(zip(MESSAGE_COLUMNS, cols, strict=True))
    return pd.DataFrame({
        **{name: _texts(list(data[name]))
           for name in ("session_id", "role", "content", "status", "error", "model", "backend",
                        "stop_reason")},
        "seq": _ints(data["seq"]),
        "created_at": _utc(list(data["created_at"])),
        **{name: _ints(data[name]) for name in ("input_tokens", "output_tokens",
                                                "cache_creation_input_tokens",
                                                "cache_read_input_tokens")},
        "cost_usd": _floats(data["cost_usd"]),
        "duration_ms": _floats(data["duration_ms"]),
    }, columns=list(MESSAGE_COLUMNS))


def _message_row(session_id: str, m: Message) -> tuple[Any, ...]:
    u = m.usage
    return (str(session_id), m.seq, m.role, m.text, m.created_at, m.status, m.error, m.model,
            m.backend, u.input_tokens, u.output_tokens, u.cache_creation_input_tokens,
            u.cache_read_input_tokens, m.cost_usd, m.stop_reason, m.duration_ms)


def _utc(values: list[Any]) -> Any:
    """Aware datetimes or ISO-8601 strings to a ``datetime64[us, UTC]`` array."""
    import pandas as pd

    if not values:
        return pd.array([], dtype=_UTC)
    try:
        return pd.array(pd.to_datetime(values, utc=True, format="ISO8601"), dtype=_UTC)
    except (OverflowError, ValueError):  # pandas 2 parses to nanoseconds: years 1677-2262 only
        return pd.array([v if isinstance(v, datetime) else parse_time(v) for v in values],
                        dtype=_UTC)


def text_dtype() -> str:
    """The dtype of text columns: ``str`` on pandas 3; ``object`` on pandas 2, where ``str``
    means NumPy strings and would turn a missing value into the text ``'None'``."""
    import pandas as pd

    return "str" if int(pd.__version__.split(".", 1)[0]) >= 3 else "object"


def _texts(values: list[Any]) -> Any:
    """A text column whose missing values (``None``) stay missing (NA) on pandas 2 and 3."""
    import pandas as pd

    return pd.array(values, dtype=text_dtype())


def _ints(values: Iterable[Any]) -> Any:
    import numpy as np

    return np.fromiter((v or 0 for v in values), dtype=np.int64)


def _floats(values: Iterable[Any]) -> Any:
    import numpy as np

    return np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64)


def _infer(values: list[Any]) -> Any:
    """A metadata column's dtype: boolean, Int64, float64 or str when uniform, else object."""
    import pandas as pd

    kinds = {type(v) for v in values if v is not None}
    dtype: str = "object"
    if kinds == {bool}:
        dtype = "boolean"
    elif kinds == {int}:
        dtype = "Int64"
    elif kinds and kinds <= {int, float}:
        dtype = "float64"
    elif kinds == {str}:
        dtype = text_dtype()
    try:
        return pd.array(values, dtype=dtype)
    except (OverflowError, TypeError, ValueError):  # e.g. an int beyond 64 bits
        return pd.array(values, dtype="object")

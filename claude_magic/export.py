"""Sessions as pandas DataFrames, notebooks (nbformat v4), Markdown, JSON and CSV.

pandas and nbformat are imported inside the functions that need them, so importing this module
costs little. Everything here works without IPython.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checks import json_text
from .errors import ClaudeMagicError
from .message import Message, SessionStats
from .session import Session, SessionId
from .storage import _jsonio
from .times import format_time, parse_time, utc_now

if TYPE_CHECKING:
    import pandas
    from nbformat import NotebookNode

    from .manager import SessionManager

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
EXPORT_FORMAT = "claude-magic/session-export"
EXPORT_VERSION = 1
#: ``fmt`` of :func:`export_session` -> file extension (``df`` is in-memory only).
FORMATS: dict[str, str] = {"ipynb": "ipynb", "md": "md", "json": "json", "csv": "csv", "df": ""}
_ALIASES = {"notebook": "ipynb", "markdown": "md", "dataframe": "df", "pandas": "df"}
_UTC = "datetime64[us, UTC]"


class InvalidExport(ClaudeMagicError, ValueError):
    """A file or text that is not a claude_magic session export."""


# --- DataFrames -------------------------------------------------------------------------


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


# --- transcripts ------------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _cell_text(value: Any) -> str:
    """A metadata key or value in a Markdown table cell (as typed, on one line)."""
    return json_text(value).replace("|", "\\|").replace("\n", " ")


def _totals(stats: SessionStats) -> str:
    from .costs import cost_text

    return (f"{stats.turns} turns · {stats.message_count} messages · "
            f"{stats.input_tokens:,} tokens in / {stats.output_tokens:,} out · "
            f"{cost_text(stats)}")


def session_header_markdown(session: Session, *, level: int = 1) -> str:
    """A Markdown title, a table of times, totals and metadata, and the system prompt."""
    stats = session.stats
    rows = [("Created", _when(session.created_at)), ("Updated", _when(session.updated_at)),
            ("Totals", _totals(stats))]
    if stats.last_model:
        rows.append(("Model", stats.last_model))
    rows += [(f"`{_cell_text(k)}`", _cell_text(v)) for k, v in sorted(session.metadata.items())]
    rows += [(f"setting `{_cell_text(k)}`", _cell_text(v))
             for k, v in sorted(session.settings.items())]
    lines = [f"{'#' * level} Claude session `{session.id}`", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    if session.system_prompt:
        quoted = "\n".join(f"> {line}" for line in session.system_prompt.splitlines())
        lines += ["", "**System prompt**", "", quoted]
    return "\n".join(lines)


# who wrote an answer, by backend: offline answers never read as a model's
_ANSWERED_BY = {"echo": "Offline echo (no model)", "replay": "Claude (replayed)"}


def message_markdown(message: Message, attach: Any = None) -> str:
    """One message as Markdown: a byline, a visible warning if it failed, then its text."""
    who = "You" if message.role == "user" else _ANSWERED_BY.get(message.backend or "", "Claude")
    parts = [f"**{who}**"]
    if message.model and message.role == "assistant":
        parts.append(f"`{message.model}`")
    parts.append(_when(message.created_at))
    usage = message.usage
    if usage.input_tokens or usage.output_tokens:
        parts.append(f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens")
    if message.cost_usd:
        parts.append(f"${message.cost_usd:.4f}")
    lines = [" · ".join(parts)]
    if message.status == "error":
        lines += ["", f"> ⚠️ **FAILED** — this turn failed: {message.error or 'unknown error'}"]
    elif message.status == "incomplete":
        lines += ["", "> ⚠️ **INCOMPLETE** — the answer was cut off"
                  + (f": {message.error}" if message.error else "")]
    from .blocks import markdown_of

    body = message.content if isinstance(message.content, str) else markdown_of(
        message.content, attach)
    lines += ["", body or "*(empty)*"]
    return "\n".join(lines)


def _notebook_metadata(session: Session) -> dict[str, Any]:
    return {"format": "claude-magic/notebook", "version": 1,
            "exported_at": format_time(utc_now()),
            "session": {**session.header_dict(), "stats": session.stats.to_dict()}}


def session_to_notebook(session: Session) -> NotebookNode:
    """An nbformat v4 notebook: a header cell, then one Markdown cell per message.

    The session header and totals are in ``notebook.metadata["claude_magic"]``; each message
    cell has its role, seq, status and model in ``cell.metadata["claude_magic"]``.
    """
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.metadata["claude_magic"] = _notebook_metadata(session)
    nb.cells.append(v4.new_markdown_cell(session_header_markdown(session),
                                         metadata={"claude_magic": {"kind": "header"}}))
    for m in session.messages:
        meta = {"kind": "message", "role": m.role, "seq": m.seq, "status": m.status,
                "model": m.model, "created_at": format_time(m.created_at)}
        attachments: dict[str, Any] = {}
        cell = v4.new_markdown_cell(message_markdown(m, _attacher(attachments)),
                                    metadata={"claude_magic": meta})
        if attachments:  # images of the message, as nbformat attachments
            cell.attachments = attachments
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def _attacher(attachments: dict[str, Any]) -> Any:
    """An ``attach`` for :func:`message_markdown` that puts base64 images in ``attachments``."""
    def attach(block: dict[str, Any]) -> str | None:
        source = block["source"]
        if source.get("type") != "base64":
            return None
        name = f"image-{len(attachments) + 1}.{source['media_type'].split('/')[-1]}"
        attachments[name] = {source["media_type"]: source["data"]}
        return f"attachment:{name}"
    return attach


def session_to_markdown(session: Session) -> str:
    """The whole conversation as one Markdown document."""
    pieces = [session_header_markdown(session)] + [message_markdown(m) for m in session.messages]
    return "\n\n---\n\n".join(pieces) + "\n"


def session_to_json(session: Session) -> str:
    """The session with every message field; :func:`session_from_json` reverses it exactly."""
    doc = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "session": session.to_dict()}
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def session_from_json(text: str | bytes) -> Session:
    """A :class:`Session` from :func:`session_to_json` output (or a bare session object).

    Anything that is not such an export, including a field of the wrong type, raises
    :class:`InvalidExport` with one line naming the field (``messages[3]: message cost_usd
    must be a number, got str``); nothing is half-read."""
    try:
        doc = _jsonio.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidExport(f"not a session export: invalid JSON ({exc})") from None
    if isinstance(doc, dict) and "format" in doc:
        if doc["format"] != EXPORT_FORMAT:
            raise InvalidExport(f"not a session export: format is {doc['format']!r}, "
                                f"expected {EXPORT_FORMAT!r}")
        if doc.get("version") != EXPORT_VERSION:
            raise InvalidExport(f"session export version {doc.get('version')!r} is not supported "
                                f"(this claude_magic reads version {EXPORT_VERSION})")
        doc = doc.get("session")
    if not isinstance(doc, dict) or "id" not in doc:
        raise InvalidExport("not a session export: expected a JSON object with a session 'id'")
    try:
        return Session.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:  # InvalidSessionId, InvalidMetadata too
        raise InvalidExport(f"session export is damaged: {exc}") from None


# --- files ------------------------------------------------------------------------------


def normalize_format(fmt: str) -> str:
    """``ipynb``, ``md``, ``json``, ``csv`` or ``df`` (also ``notebook``, ``markdown``...)."""
    name = _ALIASES.get(fmt.strip().lower().lstrip("."), fmt.strip().lower().lstrip("."))
    if name not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return name


def export_data(manager: SessionManager, session_id: str, fmt: str) -> Any:
    """The export in memory: a NotebookNode (ipynb), str (md, json, csv) or DataFrame (df)."""
    fmt = normalize_format(fmt)
    if fmt in ("csv", "df"):
        frame = messages_dataframe(manager, [session_id])
        return frame if fmt == "df" else frame.to_csv(index=False)
    from .storage._assets import portable

    session = portable(manager.storage, manager.resume(session_id))  # images embedded
    if fmt == "ipynb":
        return session_to_notebook(session)
    return session_to_markdown(session) if fmt == "md" else session_to_json(session)


def export_session(manager: SessionManager, session_id: str, fmt: str,
                   path: str | os.PathLike[str] | None = None, *, overwrite: bool = True) -> Any:
    """Export one session. Without ``path`` return the data (see :func:`export_data`).

    With ``path`` (a file, or a directory to get ``<dir>/<id>.<ext>``: an existing one, or
    one ending in ``/``, created with its parents) write it atomically, with the mode new files
    get (``0o666`` less the umask; a replaced file keeps its mode), and return the absolute
    :class:`~pathlib.Path`. ``df`` cannot be written.
    """
    fmt = normalize_format(fmt)
    if path is None:
        return export_data(manager, session_id, fmt)
    if fmt == "df":
        raise ValueError("format df is a DataFrame in memory; use --format csv to write a file")
    target = _target(path, f"{SessionId(session_id)}.{FORMATS[fmt]}", overwrite)
    data = export_data(manager, session_id, fmt)
    if fmt == "ipynb":
        import nbformat

        data = nbformat.writes(data)
    write_export(target, data.encode("utf-8"))
    return target


def sessions_export(manager: SessionManager, fmt: str,
                    path: str | os.PathLike[str] | None = None, *, overwrite: bool = True) -> Any:
    """Every session's header and totals (:func:`to_dataframe`): ``df`` or ``csv``.

    Without ``path``: the DataFrame (df) or CSV text. With ``path`` (a file, or a directory
    to get ``<dir>/sessions.csv``, as in :func:`export_session`): write the CSV atomically,
    return the path.
    """
    fmt = normalize_format(fmt)
    if fmt not in ("df", "csv"):
        raise ValueError(f"exporting every session works with df or csv, not {fmt}")
    frame = to_dataframe(manager)
    if path is None:
        return frame if fmt == "df" else frame.to_csv(index=False)
    if fmt == "df":
        raise ValueError("format df is a DataFrame in memory; use --format csv to write a file")
    target = _target(path, "sessions.csv", overwrite)
    write_export(target, frame.to_csv(index=False).encode("utf-8"))
    return target


def write_export(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (a temp file beside it, then ``os.replace``).

    A failure leaves no temp file and the old ``target`` as it was, and raises the ``OSError``
    with ``target`` as its file name (not the temp file's). Whatever is at ``target`` is
    replaced, never written through: a symbolic link there is replaced by the new file and the
    file it pointed to is not touched.
    """
    try:
        _jsonio.write_atomic(target.parent, target, data, private=False)
    except OSError as exc:
        raise _naming(exc, target) from None


def _naming(exc: OSError, target: Path) -> OSError:
    """``exc`` again, of the same type, naming ``target`` and the cause in one line."""
    if exc.errno is None or not exc.strerror:
        return OSError(f"cannot export to {target}: {_cause(exc)}")
    try:
        return type(exc)(exc.errno, exc.strerror, os.fspath(target))
    except TypeError:  # pragma: no cover - an OSError subclass with another signature
        return OSError(exc.errno, exc.strerror, os.fspath(target))


def _cause(exc: OSError) -> str:
    """An OS error's reason without its file names (``permission denied``)."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    return reason[:1].lower() + reason[1:]


def _target(path: str | os.PathLike[str], default_name: str, overwrite: bool) -> Path:
    """The file to write: ``path``, or ``path/default_name`` when ``path`` is a directory
    (an existing one, or one ending in a separator, which is created with its parents)."""
    text = os.fspath(path)
    target = Path(text).expanduser()
    if text.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)):
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"cannot export to {text}: {target} is a file, not a directory")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise type(exc)(f"cannot export to {text}: cannot create the directory "
                            f"({exc.strerror or exc})") from None
    if target.is_dir():
        target = target / default_name
    target = target.absolute()
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot export to {target}: directory {target.parent} "
                                "does not exist")
    if os.path.lexists(target) and not overwrite:  # a dangling link too
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    return target


#: The largest export file :func:`import_session_file` reads (a session export is JSON text).
MAX_IMPORT_BYTES = 1 << 30


def read_export_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an export file: a regular file only, never through a symbolic link, never
    blocking on a FIFO or device, at most :data:`MAX_IMPORT_BYTES`; else one-line
    :class:`InvalidExport`."""
    source = Path(path).expanduser()
    if source.suffix == ".ipynb":
        raise InvalidExport(f"{source} is a notebook; only JSON exports can be imported "
                            "(export with --format json)")
    try:
        return _jsonio.read_file(source, limit=MAX_IMPORT_BYTES)
    except _jsonio.NotRegularFile as exc:
        raise InvalidExport(f"cannot import {source}: not a regular file ({exc.strerror}); "
                            "give the JSON file written by export --format json itself") from None
    except _jsonio.TooLarge:
        raise InvalidExport(f"cannot import {source}: larger than {MAX_IMPORT_BYTES >> 20} MiB, "
                            "not a session export") from None
    except OSError as exc:
        raise InvalidExport(f"cannot read {source}: {_cause(exc)}") from None


def import_session_file(manager: SessionManager, path: str | os.PathLike[str], *,
                        overwrite: bool = False, new_id: str | None = None) -> Session:
    """Store a session from a JSON export file exactly (times, messages); returns it.

    ``new_id`` stores it under another id; ``overwrite`` replaces a session with the same id.
    The file is read by :func:`read_export_file` (a regular file, not through a link).
    """
    session = session_from_json(read_export_file(path))
    if new_id is not None:
        session = replace(session, id=SessionId(new_id))
    return manager.import_session(session, overwrite=overwrite)

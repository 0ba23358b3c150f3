"""Export files: formats, atomic writes, target paths, and reading an export back in."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..session import Session, SessionId
from ..storage import _jsonio
from .frames import messages_dataframe, to_dataframe
from .transcripts import (
    InvalidExport,
    session_from_json,
    session_to_json,
    session_to_markdown,
    session_to_notebook,
)

if TYPE_CHECKING:
    from ..manager import SessionManager

#: ``fmt`` of :func:`export_session` -> file extension (``df`` is in-memory only).
FORMATS: dict[str, str] = {"ipynb": "ipynb", "md": "md", "json": "json", "csv": "csv", "df": ""}
_ALIASES = {"notebook": "ipynb", "markdown": "md", "dataframe": "df", "pandas": "df"}


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
    session = _portable(manager, session_id)  # images embedded
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
    if fmt == "md":  # images as files beside it, linked
        data = session_to_markdown(_portable(manager, session_id), _image_files(target))
    else:
        data = export_data(manager, session_id, fmt)
    if fmt == "ipynb":
        import nbformat

        data = nbformat.writes(data)
    write_export(target, data.encode("utf-8"))
    return target


def _portable(manager: SessionManager, session_id: str) -> Session:
    """The session with its images and PDFs back as base64 from the store's assets."""
    from ..storage._assets import portable

    return portable(manager.storage, manager.resume(session_id))


def _image_files(target: Path) -> Any:
    """An ``attach`` for a Markdown export to ``target``: each image written once (atomically)
    as ``<stem>_files/<sha256>.<ext>`` beside it, linked by its relative path. A link or a
    file where that folder goes is refused (one line), never written through."""
    from urllib.parse import quote

    from ..blocks import decode, sha256_of
    from ..storage._assets import extension

    folder = target.with_name(f"{target.stem}_files")

    def attach(block: dict[str, Any]) -> str | None:
        source = block.get("source", {})
        if source.get("type") != "base64":
            return None
        data = decode(source["data"])
        name = f"{sha256_of(data)}.{extension(source['media_type'])}"
        _real_folder(folder, target)
        write_export(folder / name, data)
        return f"{quote(folder.name)}/{name}"
    return attach


def _real_folder(folder: Path, target: Path) -> None:
    """``folder`` made when missing; a link or a file in its place: ``FileExistsError``."""
    try:
        folder.mkdir(mode=0o777, exist_ok=False)
    except FileExistsError:
        if folder.is_symlink() or not folder.is_dir():
            raise FileExistsError(f"cannot export to {target}: {folder} is not a directory (a "
                                  "link or a file); move it away for the images") from None
    except OSError as exc:
        raise _naming(exc, folder) from None


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

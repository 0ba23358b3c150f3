"""JSON and file helpers shared by the directory store and its header index."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: Strict JSON: ``NaN`` and ``Infinity`` (which Python's json accepts) are refused.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(raw: bytes) -> Any:
    """Parse UTF-8 JSON bytes (a BOM is tolerated); ``ValueError`` if they are not JSON."""
    return _DECODER.decode(raw.decode("utf-8-sig"))


def dumps(value: Any, *, indent: int | None = None) -> bytes:
    """UTF-8 JSON bytes, readable (non-ASCII kept) where UTF-8 can hold it, else escaped."""
    separators = None if indent is not None else (",", ":")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators,
                      allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate read from an escaped file: keep it escaped
        return json.dumps(value, indent=indent, separators=separators,
                          allow_nan=False).encode()


def read_file(path: str, size_hint: int = 0) -> bytes:
    """A whole (small) file's bytes, with fewer Python objects than ``open().read()``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = [os.read(fd, size_hint + 1 if size_hint else 65536)]
        while chunks[-1]:
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def write_atomic(directory: Path, path: Path, data: bytes, *, durable: bool = True,
                 sync_rename: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Temp file in the same directory, fsync, ``os.replace``, fsync of the directory; with
    ``durable=False`` (caches) the fsyncs are skipped. ``sync_rename=False`` skips only the
    directory's fsync: after a power cut the old file (complete, already durable) or the new
    one is there, for files whose content can be rebuilt from others.
    """
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable and sync_rename:
        sync_dir(directory)


def sync_dir(directory: Path) -> None:
    """fsync a directory, so renames and unlinks in it survive a power cut (not on Windows,
    which cannot open a directory and makes renames durable itself)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""JSON and file helpers shared by the directory store, its header index and the exports.

Files of the session store are private: :func:`write_atomic` creates them mode ``0600`` (as
``tempfile.mkstemp`` does), since conversations may hold anything. Exports are the user's
documents and are written with ``private=False``: mode ``0o666`` less the umask, like any new
file, or the mode of the file they replace.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: Strict JSON: ``NaN`` and ``Infinity`` (which Python's json accepts) are refused.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(raw: bytes | str) -> Any:
    """Parse JSON text, or UTF-8 JSON bytes (a BOM is tolerated); ``ValueError`` (including
    ``UnicodeDecodeError``) if it is not strict JSON."""
    return _DECODER.decode(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw)


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
                 sync_rename: bool = True, private: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Temp file in the same directory, fsync, ``os.replace``, fsync of the directory; with
    ``durable=False`` (caches) the fsyncs are skipped. ``sync_rename=False`` skips only the
    directory's fsync: after a power cut the old file (complete, already durable) or the new
    one is there, for files whose content can be rebuilt from others.

    The file is private (mode ``0600``: the store's files); with ``private=False`` it gets the
    mode of the file it replaces, else ``0o666`` less the umask (exports).
    """
    if private:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    else:
        fd, tmp = _shared_temp(directory, path)
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


def _shared_temp(directory: Path, path: Path) -> tuple[int, str]:
    """A new temp file beside ``path`` with the mode ``path`` has, or the default for new
    files (``0o666`` less the umask, which the kernel applies; no global umask change)."""
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if mode is not None and hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
        return fd, tmp
    raise FileExistsError(f"cannot create a temp file in {directory}")  # pragma: no cover


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

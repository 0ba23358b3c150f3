"""JSON and file helpers shared by the directory store, its header index and the exports.

Files of the session store are private: :func:`write_atomic` creates them mode ``0600`` (as
``tempfile.mkstemp`` does), since conversations may hold anything. Exports are the user's
documents and are written with ``private=False``: mode ``0o666`` less the umask, like any new
file, or the mode of the file they replace.

Store files are opened with :func:`open_regular`: never through a symbolic link
(``O_NOFOLLOW``), never blocking on a FIFO (``O_NONBLOCK``), and only if the opened descriptor
is a regular file (``fstat``); anything else raises :class:`NotRegularFile`.
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
    ``UnicodeDecodeError``) if it is not strict JSON, is nested too deeply for Python to
    parse, or holds an integer literal past Python's int-to-str digit limit."""
    try:
        return _DECODER.decode(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except (OverflowError, MemoryError) as exc:  # defensive: never anything but ValueError
        raise ValueError(f"JSON value out of range ({exc.__class__.__name__})") from None


#: How deep stored JSON values (metadata, settings) may nest when read back.
MAX_DEPTH = 256
#: Stored integers must fit a signed 64-bit integer (SQLite, pandas int64).
INT_LIMIT = 2**63


def check_stored(value: Any, what: str) -> None:
    """``ValueError`` if parsed JSON nests deeper than :data:`MAX_DEPTH` or holds an integer
    outside the signed 64-bit range (a planted file: it could not be copied or exported)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is int and not -INT_LIMIT <= item < INT_LIMIT:
            raise ValueError(f"{what} holds an integer outside the 64-bit range")
        if kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise ValueError(f"{what} is nested deeper than {MAX_DEPTH} levels")
            items = item.values() if kind is dict else item
            stack.extend((sub, depth + 1) for sub in items
                         if type(sub) in (dict, list, int))


class NotRegularFile(OSError):
    """A store file name holds a link, FIFO, socket, device or directory: never opened."""


def describe(mode: int) -> str:
    """What a non-regular file is, for a damaged entry's reason."""
    if stat.S_ISLNK(mode):
        return "symbolic link, not followed"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not opened"
    if stat.S_ISSOCK(mode):
        return "a socket, not opened"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not opened"
    return "not a regular file, not opened"


def entry_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the entry at ``path`` is not a regular file (``lstat``: links are not followed);
    ``None`` for a regular file or no entry at all."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    return None if stat.S_ISREG(mode) else describe(mode)


_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(
    os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """``os.open`` that never follows a final symbolic link nor blocks on a FIFO, and returns
    a descriptor only for a regular file; else :class:`NotRegularFile` naming what is there
    (``FileNotFoundError`` and other ``OSError`` pass through)."""
    try:
        fd = os.open(path, flags | _NO_FOLLOW, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP (a link), ENXIO (a socket), EISDIR, ...
        problem = entry_problem(path)
        if problem is None:
            raise
        raise NotRegularFile(exc.errno, problem, os.fspath(path)) from None
    try:
        st_mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st_mode):
        os.close(fd)
        raise NotRegularFile(0, describe(st_mode), os.fspath(path))
    if flags & os.O_WRONLY or flags & os.O_RDWR:  # writes must block as usual
        os.set_blocking(fd, True)
    return fd


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


class TooLarge(ValueError):
    """A file past the size a caller accepts (never read whole into memory)."""


def read_file(path: str | os.PathLike[str], size_hint: int = 0, *,
              limit: int | None = None) -> bytes:
    """A whole (small) regular file's bytes, opened with :func:`open_regular`; with ``limit``,
    :class:`TooLarge` as soon as more than ``limit`` bytes are there (a file that grows while
    it is read too)."""
    fd = open_regular(path)
    try:
        if limit is not None and os.fstat(fd).st_size > limit:
            raise TooLarge(f"{os.fspath(path)} is larger than {limit:,} bytes")
        return read_rest(fd, size_hint, limit=limit, path=path)
    finally:
        os.close(fd)


def read_rest(fd: int, size_hint: int = 0, *, limit: int | None = None,
              path: str | os.PathLike[str] = "") -> bytes:
    """The bytes of the file open as ``fd`` from where it stands to its end; with ``limit``,
    :class:`TooLarge` (naming ``path``) once more than ``limit`` bytes were read."""
    chunks = [os.read(fd, size_hint + 1 if size_hint else 65536)]
    total = len(chunks[0])
    while chunks[-1]:
        chunks.append(os.read(fd, 65536))
        total += len(chunks[-1])
        if limit is not None and total > limit:
            raise TooLarge(f"{os.fspath(path)} is larger than {limit:,} bytes")
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
        tmp = stage(directory, data, durable=durable)
    else:
        fd, tmp = _shared_temp(directory, path)
        _fill(fd, tmp, data, durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable and sync_rename:
        sync_dir(directory)


def stage(directory: Path, data: bytes, *, durable: bool = True) -> str:
    """A new private temp file in ``directory`` holding ``data`` (fsynced if ``durable``):
    the first half of an atomic replace; removed again if writing it fails."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)  # O_EXCL | O_NOFOLLOW
    _fill(fd, tmp, data, durable)
    return tmp


def _fill(fd: int, tmp: str, data: bytes, durable: bool) -> None:
    """Write ``data`` to the new temp file ``tmp`` open as ``fd`` and close it; on failure
    the temp file is removed."""
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_at(fd: int, offset: int, size: int) -> bytes:
    """``size`` bytes of the file open as ``fd`` from ``offset`` (fewer at its end)."""
    os.lseek(fd, offset, os.SEEK_SET)
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte of ``data`` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _shared_temp(directory: Path, path: Path) -> tuple[int, str]:
    """A new temp file beside ``path`` with the mode ``path`` has, or the default for new
    files (``0o666`` less the umask, which the kernel applies; no global umask change). Only
    a regular file's mode is copied: a link at ``path`` is replaced, not looked through."""
    try:
        st_mode = os.lstat(path).st_mode  # a link's target is never looked at
    except OSError:
        st_mode = 0
    mode = stat.S_IMODE(st_mode) & 0o777 if stat.S_ISREG(st_mode) else None
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

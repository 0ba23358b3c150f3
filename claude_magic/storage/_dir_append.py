"""Appending a message to the directory store (kept apart from ``files.py``).

The messages file is the log, and the commit is one fsynced line. The header is not rewritten
by every append: a version-2 header counts the file up to ``counted_bytes`` and whoever reads
it counts the lines past that (``_lines.tail_totals``). An append rewrites the header only
when those lines would pass :data:`~._lines.FOLD_BYTES`, when the header is a version-1 one
(upgraded by the rewrite) or when it no longer matches the file (a recount). Otherwise it sets
the header's modification time (``futimens``, before and after the line is written, before it
is fsynced), so a listing's cache, keyed by the header's ``(inode, mtime, size)``, reads it
again and sees the new line.

So that ``updated_at`` changes with every append (``prune`` deletes a session only if it is
still the one it listed), a line's time is its ``created_at`` when that lies after the
session's last change and not in the future, else the append's time, written as ``at``.

A store object remembers, per session, the header bytes and the messages file's ``(inode,
size, mtime)`` it left, with the totals, ``updated_at`` and next seq they stand for: when both
are unchanged at the next append (no other writer came in between) nothing is read but the
header, else the lines past ``counted_bytes`` are read again.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from ..chain import HASH_KEY
from ..errors import DamagedSession
from ..message import Message, SessionStats
from ..session import SessionId
from ._headers import Header, header_bytes
from ._jsonio import NotRegularFile, open_regular, read_rest, stage, write_all, write_atomic
from ._lines import FOLD_BYTES, encode, tail_totals

if TYPE_CHECKING:
    from datetime import datetime

    from .files import DirectoryStorage

_MICROSECOND = timedelta(microseconds=1)
_MAX_TIPS = 4096
_TOUCH_FD = os.utime in os.supports_fd


class Tip(NamedTuple):
    """What one store object's last append to a session left."""

    header_raw: bytes
    header: Header
    key: tuple[int, int, int]  # the messages file's (inode, size, mtime_ns) after it
    stats: SessionStats  # the session's totals then
    updated: datetime  # its updated_at then
    next_seq: int
    last_hash: str | None  # the chain hash of the message appended


def append(store: DirectoryStorage, session_id: SessionId, message: Message) -> Message:
    """Store ``message`` at the end of the session durably; return the stored copy."""
    stored = message.copy()  # checks every field: a bad message is refused here
    path = store._messages_path(session_id)
    with store._locked(), store._os_errors(f"append to session {str(session_id)!r}", path):
        if not os.access(store.root, os.W_OK):  # an append may have to rewrite the header:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(store.root))
        header_fd = _open_header(store, session_id)
        try:
            raw = read_rest(header_fd)
            tip = store._tips.pop(session_id, None)
            if tip is not None and tip.header_raw != raw:
                tip = None
            header = tip.header if tip is not None else store._parse_header(session_id, raw)
            fd, created = _open_messages(session_id, path)
            try:
                new_tip = _append_line(store, session_id, stored, header, raw, tip, header_fd,
                                       fd)
            except BaseException:
                if created:  # the file this append created goes again
                    with contextlib.suppress(OSError):
                        path.unlink()
                raise
            finally:
                os.close(fd)
        finally:
            os.close(header_fd)
        if len(store._tips) >= _MAX_TIPS:
            store._tips.clear()
        store._tips[session_id] = new_tip
        store._headers.forget(store._header_path(session_id).name)
    return stored  # this call's own copy: nothing else holds it


def _append_line(store: DirectoryStorage, session_id: SessionId, stored: Message,
                 header: Header, raw: bytes, tip: Tip | None, header_fd: int, fd: int) -> Tip:
    st = os.fstat(fd)
    if tip is not None and tip.key == (st.st_ino, st.st_size, st.st_mtime_ns):
        stats, updated, stored.seq, end, recount = (tip.stats, tip.updated, tip.next_seq,
                                                    st.st_size, False)
    else:  # another writer came in between, or the first append of this store object
        stored.seq, end = store._tail_seq(session_id, fd)  # cuts a torn last line
        stats, updated, _, recount = tail_totals(fd, end, header.counted, header.stats,
                                                 header.session.updated_at)
    stats = stats.copy()
    stats.add(stored)  # ValueOutOfRange (nothing written) when a total would overflow
    now = store._clock.now()
    at = None if updated < stored.created_at <= now else max(now, updated + _MICROSECOND)
    updated = stored.created_at if at is None else at
    line = encode(stored, at)
    size = end + len(line)
    if recount or header.counted is None or size - header.counted > FOLD_BYTES:
        header = Header(replace(header.session, updated_at=updated), stats.copy(),
                        header.epoch, size)
        raw = header_bytes(header.session, header.stats, header.epoch, size)
        _write_with_header(store, session_id, fd, line, end, raw)
    else:
        _write(store, session_id, fd, header_fd, line, end, header, stats, updated)
    st = os.fstat(fd)
    return Tip(raw, header, (st.st_ino, st.st_size, st.st_mtime_ns), stats, updated,
               stored.seq + 1, stored.ids.get(HASH_KEY))


def remembered_tip(store: DirectoryStorage, session_id: SessionId) -> tuple[int, str] | None:
    """``chain_tip`` from what this store object's last append left, while the messages file
    is as it left it (one ``lstat``); None otherwise."""
    tip = store._tips.get(session_id)
    if tip is None or not tip.last_hash:
        return None
    try:
        st = os.lstat(store._messages_path(session_id))
    except OSError:
        return None
    if (st.st_ino, st.st_size, st.st_mtime_ns) != tip.key:
        return None
    return tip.next_seq, tip.last_hash


def _write(store: DirectoryStorage, session_id: SessionId, fd: int, header_fd: int,
           line: bytes, end: int, header: Header, stats: SessionStats,
           updated: datetime) -> None:
    """Append the line and fsync it (the commit); the header only gets a new mtime, before
    the line is written (so no cache keeps a header key that a killed writer's line is past)
    and after (so a reader that saw the first and read no line yet sees a newer one), both
    before the fsync that commits."""
    try:
        touched = _touch(header_fd)
        write_all(fd, line)
        touched = _touch(header_fd) and touched
        os.fsync(fd)
    except BaseException:
        _cut(fd, end)
        raise
    if not touched:  # a header whose time cannot be set: rewritten so listings see the line
        session = replace(header.session, updated_at=updated)
        with contextlib.suppress(OSError):
            write_atomic(store.root, store._header_path(session_id),
                         header_bytes(session, stats, header.epoch, end + len(line)),
                         sync_rename=False)


def _write_with_header(store: DirectoryStorage, session_id: SessionId, fd: int, line: bytes,
                       end: int, raw: bytes) -> None:
    """Append the line and replace the header counting it; if either fails, the file is cut
    back and nothing changed."""
    tmp = stage(store.root, raw)  # fails first: a full disk
    try:
        write_all(fd, line)
        os.fsync(fd)
        # the fsynced line is the commit; should a power cut lose this rename, the old header
        # is there, complete, and its readers count the line past its counted_bytes
        os.replace(tmp, store._header_path(session_id))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _cut(fd, end)
        raise


def _touch(fd: int) -> bool:
    """Set the file's times to now; False where that is refused (or, as on Windows, a
    descriptor's times cannot be set: the header is then rewritten instead)."""
    if not _TOUCH_FD:
        return False
    try:
        os.utime(fd)
    except OSError:
        return False
    return True


def _cut(fd: int, end: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, end)
        os.fsync(fd)


def _open_header(store: DirectoryStorage, session_id: SessionId) -> int:
    with store._header_errors(session_id):
        fd = open_regular(store._header_path(session_id))
    return fd


def _open_messages(session_id: SessionId, path: os.PathLike[str]) -> tuple[int, bool]:
    """The messages file open for appending, and whether this call created it."""
    try:
        try:
            return open_regular(path, os.O_RDWR | os.O_APPEND), False
        except FileNotFoundError:
            return open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL), True
    except NotRegularFile as exc:
        raise DamagedSession(str(session_id), str(path), exc.strerror) from None

"""Rename and re-hash for the directory store (kept apart from ``files.py``).

Rename is crash-safe through a journal: under the store's lock, ``.rename-journal`` (old and
new id) is written durably first; then the new header is written and the messages file
hard-linked (copied where links are refused) under the new name, then the old files are
removed and the journal last. Recovery (when the store is opened, and before each rename)
rolls a journal forward, which is idempotent: the old files are removed only once the new
ones are complete, so after a crash at any point exactly one of the two names exists, with
every message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SessionExists
from ..session import SessionId
from ._dir_search import search
from ._headers import JOURNAL_NAME, header_bytes
from ._jsonio import dumps, loads, read_file, stage, sync_dir, write_atomic
from .base import new_epoch

__all__ = ["recover", "rename", "search", "set_hashes"]

if TYPE_CHECKING:
    from .files import DirectoryStorage


def _journal(store: DirectoryStorage) -> Path:
    return store.root / JOURNAL_NAME


def recover(store: DirectoryStorage) -> None:
    """Finish a rename a killed process left half done (nothing to do without a journal)."""
    if os.path.lexists(_journal(store)):
        with store._locked():
            _roll_forward(store)


def _roll_forward(store: DirectoryStorage) -> None:
    path = _journal(store)
    try:
        doc = loads(read_file(path))
        old, new = SessionId(doc["old"]), SessionId(doc["new"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):  # a torn journal: written before any step
        path.unlink(missing_ok=True)
        return
    old_header, old_messages = store._header_path(old), store._messages_path(old)
    if os.path.lexists(old_header):  # the new files may be missing or partial: (re)write them
        (session, stats, _, _), end = store._state(old)
        session.id = new
        new_messages = store._messages_path(new)
        if os.path.lexists(old_messages):
            _link_or_copy(store, old_messages, new_messages)
        else:
            new_messages.unlink(missing_ok=True)
        write_atomic(store.root, store._header_path(new),
                     header_bytes(session, stats, new_epoch(), end))
        sync_dir(store.root)
        old_header.unlink()  # the old session is gone from listings from here on
        old_messages.unlink(missing_ok=True)
        sync_dir(store.root)
    store._headers.forget(old_header.name)
    store._headers.forget(store._header_path(new).name)
    path.unlink(missing_ok=True)
    sync_dir(store.root)


def _link_or_copy(store: DirectoryStorage, source: Path, target: Path) -> None:
    """Make ``target`` hold exactly ``source``'s bytes, replacing it atomically."""
    tmp = store._backup(source)[1]  # a hard link under a temp name, None where refused
    if tmp is None:
        tmp = stage(store.root, read_file(source))
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def rename(store: DirectoryStorage, old: SessionId, new: SessionId, overwrite: bool) -> None:
    with store._locked(), store._os_errors(f"rename session {str(old)!r}",
                                           store._header_path(old)):
        _roll_forward(store)
        store._read_header(old)  # SessionNotFound / DamagedSession before anything is written
        store._refuse_odd(new)
        if os.path.lexists(store._header_path(new)) and not overwrite:
            raise SessionExists(str(new))
        write_atomic(store.root, _journal(store), dumps({"old": old, "new": new}))
        _roll_forward(store)


def set_hashes(store: DirectoryStorage, session_id: SessionId, hashes: Mapping[int, str],
               mark: tuple[int, str, str | None] | None = None) -> None:
    """Write ``ids["hash"]`` of the given messages (and, with ``mark``, a message's status
    and error) in one change; other lines are kept byte for byte."""
    store._edit_lines(session_id, hashes, mark, f"hash messages of {str(session_id)!r}")

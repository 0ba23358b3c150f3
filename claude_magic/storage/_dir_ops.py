"""Rename, re-hash and search for the directory store (kept apart from ``files.py``).

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
import stat
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blocks import text_of
from ..errors import SessionExists
from ..search import Candidate, Matcher, SearchHit, header_hits, ranked
from ..session import SessionId
from ._headers import HEADER_SUFFIX, MESSAGES_SUFFIX, NotASession, header_bytes, parse_header
from ._jsonio import dumps, loads, read_file, stage, sync_dir, write_atomic
from .base import new_epoch

if TYPE_CHECKING:
    from .files import DirectoryStorage

JOURNAL = ".rename-journal"


def _journal(store: DirectoryStorage) -> Path:
    return store.root / JOURNAL


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
        session, stats, _ = store._read_header(old)
        session.id = new
        new_messages = store._messages_path(new)
        if os.path.lexists(old_messages):
            _link_or_copy(store, old_messages, new_messages)
        else:
            new_messages.unlink(missing_ok=True)
        write_atomic(store.root, store._header_path(new),
                     header_bytes(session, stats, new_epoch()))
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
    from ..chain import HASH_KEY

    path = store._messages_path(session_id)
    with store._locked(), store._os_errors(f"hash messages of {str(session_id)!r}", path):
        session, stats, _ = store._read_header(session_id)
        lines = store._read_lines(session_id).split(b"\n")
        found = False
        for index, line in enumerate(lines[:-1]):  # complete lines only
            try:
                doc = loads(line)
            except ValueError:
                continue
            seq = doc.get("seq") if isinstance(doc, dict) else None
            if type(seq) is not int or (seq not in hashes and (mark is None or seq != mark[0])):
                continue
            if mark is not None and seq == mark[0]:
                doc["status"], doc["error"], found = mark[1], mark[2], True
            if seq in hashes:
                doc["ids"] = {**(doc.get("ids") or {}), HASH_KEY: hashes[seq]}
            lines[index] = dumps(doc)
        if mark is not None:
            if not found:
                raise IndexError(f"session {str(session_id)!r} has no message {mark[0]}")
            session.updated_at = store._clock.now()
        header_path = store._header_path(session_id)
        store._replace_all([(path, b"\n".join(lines)),
                            (header_path, header_bytes(session, stats, new_epoch()))])
        store._headers.forget(header_path.name)


class DirectoryIndex:
    """What the last search read of each session's header and messages files, reused only
    while both files' inode, size, change and modification times are unchanged (never
    trusted when stale). The raw text is kept lower-cased for quick rejects; the files are
    parsed the first time a search's words may be in them."""

    def __init__(self) -> None:
        #: session id -> [stat keys, lower-cased bytes, header, messages (raw, then parsed)]
        self._sessions: dict[str, list[Any]] = {}

    def search(self, store: DirectoryStorage, matcher: Matcher, limit: int,
               session_ids: Iterable[str] | None) -> list[SearchHit]:
        wanted = None if session_ids is None else set(session_ids)
        headers, messages = _listing(store.root)
        hits: list[SearchHit] = []
        candidates: list[Candidate] = []
        needles = matcher.needles
        for sid, entry in headers.items():
            if wanted is not None and sid not in wanted:
                continue
            cached = self._current(sid, entry, messages.get(sid))
            if cached is None:
                continue
            lowered = cached[1]
            if any(needle not in lowered for needle in needles):
                continue
            if isinstance(cached[2], bytes):  # parsed once, on the first search needing it
                cached[2], cached[3] = _header(sid, cached[2]), _parse(cached[3])
            if cached[2] is None:
                continue  # a damaged header: not a session
            hits += header_hits(matcher, sid, *cached[2])
            rows, text = cached[3]
            if rows and matcher.anywhere(text):  # one regex pass per term and file
                candidates += matcher.candidates(sid, rows)
        if wanted is None:
            for gone in set(self._sessions) - set(headers):
                del self._sessions[gone]
        return ranked(matcher, candidates, hits, limit)

    def _current(self, sid: str, header: os.DirEntry[str],
                 messages: os.DirEntry[str] | None) -> list[Any] | None:
        """The session's cache entry, read again when either file changed (None if the
        header cannot be read or is not a regular file)."""
        try:
            head = header.stat(follow_symlinks=False)
            body = messages.stat(follow_symlinks=False) if messages is not None else None
        except OSError:
            return None
        if not stat.S_ISREG(head.st_mode) or (body is not None and not stat.S_ISREG(body.st_mode)):
            return None
        key = (head.st_ino, head.st_size, head.st_mtime_ns, head.st_ctime_ns,
               None if body is None else (body.st_ino, body.st_size, body.st_mtime_ns,
                                          body.st_ctime_ns))
        cached = self._sessions.get(sid)
        if cached is not None and cached[0] == key:
            return cached
        try:
            raw_header = read_file(header.path)
            raw_messages = read_file(messages.path) if messages is not None else b""
        except OSError:
            return None
        cached = [key, raw_header.lower() + b"\0" + raw_messages.lower(), raw_header,
                  raw_messages]
        self._sessions[sid] = cached
        return cached


def _listing(root: Path) -> tuple[dict[str, os.DirEntry[str]], dict[str, os.DirEntry[str]]]:
    """The store's header and messages files by session id (other names are not sessions)."""
    headers, messages = {}, {}
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith(MESSAGES_SUFFIX):
                messages[name[: -len(MESSAGES_SUFFIX)]] = entry
            elif name.endswith(HEADER_SUFFIX) and not name.startswith("."):
                headers[name[: -len(HEADER_SUFFIX)]] = entry
    return headers, messages


def _header(session_id: str, raw: bytes) -> tuple[str | None, dict[str, Any]] | None:
    """A readable header's system prompt and metadata (None when damaged)."""
    try:
        session, _ = parse_header(SessionId(session_id), raw)
    except (NotASession, ValueError, TypeError):
        return None
    return session.system_prompt, session.metadata


def _parse(raw: bytes) -> tuple[list[tuple[int, str, str]], str]:
    """(seq, role, text) of each readable line (damaged lines are skipped), and all the
    texts joined (for a first pass over the whole file)."""
    rows = []
    for line in raw.split(b"\n"):
        try:
            doc: Any = loads(line)
            content = doc["content"]
            text = content if isinstance(content, str) else text_of(content)
            rows.append((doc["seq"], doc["role"], text))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return rows, "\n".join(row[2] for row in rows)


_INDEXES: weakref.WeakKeyDictionary[DirectoryStorage, DirectoryIndex] = weakref.WeakKeyDictionary()


def search(store: DirectoryStorage, matcher: Matcher, limit: int,
           session_ids: Iterable[str] | None) -> list[SearchHit]:
    """A scan of the messages files, reusing what an earlier search read of unchanged files."""
    index = _INDEXES.setdefault(store, DirectoryIndex())
    return index.search(store, matcher, limit, session_ids)

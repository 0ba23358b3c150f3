"""Full-text search for the directory store: a scan of the header and messages files that
reuses what an earlier search read of files that have not changed since."""

from __future__ import annotations

import os
import stat
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blocks import text_of
from ..search import Candidate, Matcher, SearchHit, header_hits, ranked
from ..session import SessionId
from ._headers import HEADER_SUFFIX, MESSAGES_SUFFIX, NotASession, parse_header
from ._jsonio import loads, read_file

if TYPE_CHECKING:
    from .files import DirectoryStorage


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

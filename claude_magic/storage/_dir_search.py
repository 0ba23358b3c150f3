"""Full-text search for the directory store, through an index kept beside the sessions.

The index (``_search_index``) lives in ``.search.sqlite`` in the store folder, so a new
process starts from it; it is a cache, safe to delete. Each search lists the folder, looks at
both files of every session (``lstat``), and re-reads the sessions whose files' identity
(inode, size, mtime_ns, ctime_ns) differs from the indexed one, or whose files were younger
than the trust margin when they were read (a rewrite within one timestamp tick keeps the
identity), all under the index's write lock: an index entry is never trusted when stale,
whichever process changed the files.

The sidecar is never opened through a link, nor when it or its journal names hold anything
but a regular file, nor when another user owns it: the index is then kept in memory, as when
the folder is read-only. A sidecar SQLite cannot read is replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..blocks import text_of
from ..checks import is_utf8
from ..errors import StorageError
from ..search import Matcher, SearchHit, metadata_texts
from ..session import _VALID_ID, SessionId
from ._headers import (
    HEADER_SUFFIX,
    MESSAGES_SUFFIX,
    SEARCH_INDEX_NAME,
    SEARCH_INDEX_NAMES,
    TRUST_MARGIN_NS,
    NotASession,
    parse_header,
)
from ._jsonio import entry_problem, loads, read_file
from ._lines import BAD_LINE, SURROGATE_ESCAPE
from ._search_index import Doc, Fresh, SearchIndex, prepare

if TYPE_CHECKING:
    from .files import DirectoryStorage

_OPEN_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
#: How many sessions' texts a first build holds in memory before writing them.
_BATCH = 500
#: A file's inode, size, mtime_ns, ctime_ns and mode (``lstat``).
Stat = tuple[int, int, int, int, int]


class DirectorySearch:
    """One store's index (the sidecar, or memory) and the scan that keeps it current."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.index = SearchIndex(open_index(root))
        self._files: dict[str, Stat] | None = None  # the last listing
        self._dirty: set[str] = set()  # sessions to compare with the index at the next search

    def close(self) -> None:
        with self.lock:
            self.index.close()

    def search(self, matcher: Matcher, limit: int,
               session_ids: Iterable[str] | None) -> list[SearchHit]:
        wanted = None if session_ids is None else list(session_ids)
        with self.lock:
            try:
                return self._search(matcher, limit, wanted)
            except sqlite3.OperationalError:  # locked past the timeout, or cannot write
                self._reopen(memory=True)
            except sqlite3.DatabaseError:  # damaged under us: a cache, so rebuilt
                self._reopen(memory=False)
            return self._search(matcher, limit, wanted)

    def _reopen(self, *, memory: bool) -> None:
        self.index.close()
        self.index = SearchIndex(open_index(self.root, replace=not memory, memory=memory))
        self._files = None

    def _search(self, matcher: Matcher, limit: int,
                wanted: list[str] | None) -> list[SearchHit]:
        trust_before = time.time_ns() - TRUST_MARGIN_NS
        files, changed = listing(self.root, self._files)
        self._files = files
        self._dirty.update(map(_session_of, changed))
        try:
            with self.index.transaction():
                if self.index.refresh():  # first search, or another process changed it
                    self._dirty.update(map(_session_of, files), self.index.known())
                check = self._dirty if wanted is None else self._dirty & set(wanted)
                young = self._sync(files, check, trust_before)
                hits = self.index.search(matcher, limit, wanted)
        except BaseException:
            self._files = None  # compare everything again next time
            raise
        self._dirty -= check
        self._dirty.update(young)
        return hits

    def _sync(self, files: dict[str, Stat], check: set[str], trust_before: int) -> list[str]:
        """Bring the index's entries of the ``check`` sessions up to their files (inside the
        index's transaction); the sessions whose files were too young to be trusted."""
        known = self.index.known()
        fresh: dict[str, Fresh] = {}
        touched: dict[str, tuple[str, bool]] = {}
        gone: list[str] = []
        young: list[str] = []
        for sid in check:
            if len(fresh) >= _BATCH:  # a first build holds one batch of texts at a time
                self.index.update(fresh, [], {})
                fresh.clear()
            listed = _identity(files, sid)
            entry = known.get(sid)
            if listed is None:
                if entry is not None:
                    gone.append(sid)
            elif entry is None or entry[1] != listed[0] or not entry[2]:
                digest, docs = read_session(self.root, sid, entry[3] if entry else None)
                trusted = listed[1] < trust_before
                if not trusted:
                    young.append(sid)
                if docs is None:
                    touched[sid] = (listed[0], trusted)
                else:
                    fresh[sid] = (listed[0], trusted, digest, docs)
        self.index.update(fresh, gone, touched)
        return young


def open_index(root: Path, *, replace: bool = False, memory: bool = False
               ) -> sqlite3.Connection:
    """The sidecar's connection, ready; an in-memory database when asked or when the
    sidecar cannot be used safely (see the module's docstring)."""
    if replace:
        _remove_sidecar(root)
    conn = None if memory else _sidecar(root)
    if conn is None:
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        prepare(conn)
    return conn


def _sidecar(root: Path) -> sqlite3.Connection | None:
    path = root / SEARCH_INDEX_NAME
    for _ in range(2):
        if any(entry_problem(root / name) is not None for name in SEARCH_INDEX_NAMES):
            return None  # a link or special file planted there: left alone
        if not _private_file(path):
            return None
        conn = sqlite3.connect(f"file:{quote(str(path))}?nofollow=1", uri=True, timeout=30,
                               check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            prepare(conn)
            return conn
        except sqlite3.OperationalError:  # read-only, locked, no shared memory: memory
            conn.close()
            return None
        except sqlite3.DatabaseError:  # not a database SQLite can read: a cache, rebuilt
            conn.close()
            _remove_sidecar(root)
    return None


def _private_file(path: Path) -> bool:
    """Whether the sidecar is (or was created as) a regular file this user owns, mode 0600
    when new since it holds the sessions' texts."""
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o600)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError:
        return False  # a read-only folder or file
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def _remove_sidecar(root: Path) -> None:
    for name in SEARCH_INDEX_NAMES:
        path = root / name
        if entry_problem(path) is None:  # only regular files: a planted entry stays
            with contextlib.suppress(OSError):
                os.unlink(path)


def listing(root: Path, previous: dict[str, Stat] | None = None
            ) -> tuple[dict[str, Stat], list[str]]:
    """Each header and messages file's identity and type (``lstat``) by name, and the names
    that differ from ``previous`` (every name without one)."""
    found: dict[str, Stat] = {}
    changed: list[str] = []
    before = (previous or {}).get
    suffixes = (HEADER_SUFFIX, MESSAGES_SUFFIX)
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise StorageError(f"cannot list session directory {root}: {exc.strerror}; "
                           "check that it exists and that you may read it") from None
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == "." or not name.endswith(suffixes):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = found[name] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                     st.st_mode)
                if before(name) != key:
                    changed.append(name)
    finally:
        os.close(fd)
    if previous is not None:
        changed += previous.keys() - found.keys()
    return found, changed


def _session_of(name: str) -> str:
    if name.endswith(MESSAGES_SUFFIX):
        return name[: -len(MESSAGES_SUFFIX)]
    return name[: -len(HEADER_SUFFIX)]


def _identity(files: dict[str, Stat], sid: str) -> tuple[str, int] | None:
    """A session's files' identity ("-" for no messages file) and their newest change time;
    None when it has no header, an invalid id, or a file that is not a regular file."""
    head = files.get(sid + HEADER_SUFFIX)
    body = files.get(sid + MESSAGES_SUFFIX)
    if (head is None or _VALID_ID.fullmatch(sid) is None or not stat.S_ISREG(head[4])
            or (body is not None and not stat.S_ISREG(body[4]))):
        return None
    key = "{}:{}:{}:{}/".format(*head)
    key += "-" if body is None else "{}:{}:{}:{}".format(*body)
    return key, max(head[2], head[3], *(body[2:4] if body else ()))


def read_session(root: Path, sid: str, digest: str | None) -> tuple[str, list[Doc] | None]:
    """A digest of the session's two files and its texts: system prompt, metadata values,
    then messages by seq (none when its header is damaged, not a session's, or gone; None
    when the digest is ``digest``: the same bytes as indexed)."""
    try:
        head = read_file(root / (sid + HEADER_SUFFIX))
        body = _read_if_there(root / (sid + MESSAGES_SUFFIX))
    except OSError:  # gone, or swapped for a link or special file since the listing
        return "", []
    hashed = hashlib.blake2b(head, digest_size=16)
    hashed.update(b"\0" + body)
    if hashed.hexdigest() == digest:
        return digest, None
    try:
        session, _ = parse_header(SessionId(sid), head)
    except (NotASession, ValueError, TypeError):
        return hashed.hexdigest(), []
    docs = _messages(body)
    header = [("system", session.system_prompt or "")]
    header += [("metadata", text) for text in metadata_texts(session.metadata)]
    docs += [(None, role, text) for role, text in header if is_utf8(text)]
    docs.sort(key=_by_seq)  # stable: as the Matcher's ranking breaks ties
    return hashed.hexdigest(), docs


def _read_if_there(path: Path) -> bytes:
    try:
        return read_file(path)
    except FileNotFoundError:
        return b""


def _by_seq(doc: Doc) -> int:
    return -1 if doc[0] is None else doc[0]


def _messages(raw: bytes) -> list[Doc]:
    """(seq, role, text) of each readable line, as the store reads them: the last piece
    (torn or empty) is not a line, damaged lines are skipped, and so are texts holding a
    lone surrogate (an escape only a planted line has); fields other than ``seq``, ``role``
    and ``content`` are not looked at."""
    lines = raw.split(b"\n")[:-1]
    try:
        docs = loads(b"[" + b",".join(lines) + b"]")  # one parse for a sound file
    except ValueError:
        docs = None
    if type(docs) is not list or len(docs) != len(lines):
        docs = [_loads_or_none(line) for line in lines]
    surrogates = SURROGATE_ESCAPE.search(raw) is not None
    rows: list[Doc] = []
    for doc in docs:
        try:
            seq, role, content = doc["seq"], doc["role"], doc["content"]
            text = content if isinstance(content, str) else text_of(content)
        except BAD_LINE:
            continue
        if (type(seq) is int and isinstance(role, str) and isinstance(text, str)
                and (not surrogates or is_utf8(text))):
            rows.append((seq, role, text))
    return rows


def _loads_or_none(line: bytes) -> Any:
    try:
        return loads(line)
    except ValueError:
        return None


_INDEXES: weakref.WeakKeyDictionary[DirectoryStorage, DirectorySearch] = (
    weakref.WeakKeyDictionary())


def search(store: DirectoryStorage, matcher: Matcher, limit: int,
           session_ids: Iterable[str] | None) -> list[SearchHit]:
    """The store's hits for ``matcher``, through its index (opened on the first search)."""
    index = _INDEXES.get(store)
    if index is None:
        index = _INDEXES[store] = DirectorySearch(store.root)
        weakref.finalize(store, index.close)
    return index.search(matcher, limit, session_ids)

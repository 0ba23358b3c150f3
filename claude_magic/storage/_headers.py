"""Session header files of the directory store: parsing, and the cache that keeps listing fast.

Listing needs every header's ``updated_at``. Reading 10,000 headers costs a few hundred ms, so
the store keeps what it parsed, keyed by the file's ``(inode, mtime_ns, size)``, in memory and
in ``.index.json`` (a cache: safe to delete, rebuilt when missing or unreadable). A cached value
is used only when the file's key is unchanged *and* the file was already older than
:data:`TRUST_MARGIN_NS` when it was read, so a rewrite within the same timestamp tick (or one
that reuses the inode) cannot go unnoticed: recently written files are simply read again.

The scan never follows links: each entry is looked at with ``lstat`` (the ``DirEntry``'s own),
and a link, FIFO, socket, device or directory where a header, a messages file, the index, the
lock or a temp file belongs is reported as damaged (:attr:`HeaderCache.specials`), never opened.
A session whose messages file is such an entry is skipped like one with a damaged header.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import time
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import StorageError
from ..message import SessionStats
from ..session import _VALID_ID, Session, SessionId, SessionSummary
from ..times import format_time, parse_time
from ._jsonio import (
    NotRegularFile,
    check_stored,
    describe,
    dumps,
    entry_problem,
    loads,
    read_file,
    write_atomic,
)
from ._lines import file_totals
from .base import DamagedEntry, warn_damaged

FORMAT = "claude-magic/session"
#: Version 2 counts its messages file up to ``counted_bytes`` (see ``_lines.py``); version 1
#: headers (every earlier claude_magic) count all of it, and are still read and written to.
VERSION = 2
READ_VERSIONS = (1, 2)
HEADER_SUFFIX = ".json"
MESSAGES_SUFFIX = ".messages.jsonl"
INDEX_NAME = ".index.json"
#: Every header's summary fields, for DataFrames (a cache, like the index: keyed the same way)
SUMMARIES_NAME = ".summaries.json"
LOCK_NAME = ".lock"
#: A directory rename's journal (``_dir_ops.py``): there only while a rename is under way.
JOURNAL_NAME = ".rename-journal"
#: The directory search index (``_dir_search.py``) and the files SQLite keeps beside it.
SEARCH_INDEX_NAME = ".search.sqlite"
SEARCH_INDEX_NAMES = tuple(SEARCH_INDEX_NAME + end for end in ("", "-wal", "-shm", "-journal"))
INDEX_FORMAT = "claude-magic/index"
INDEX_VERSION = 1
SUMMARIES_FORMAT = "claude-magic/summaries"
#: A file must be this much older than the moment it was read for its key to be trusted.
TRUST_MARGIN_NS = 2_000_000_000
#: How many trusted entries the saved index may lack before a listing rewrites it.
INDEX_REFRESH = 64
#: Leftover temp files of writers that died are removed once they are this old.
STALE_TMP_SECONDS = 3600

Key = tuple[int, int, int]


class NotASession(Exception):
    """A JSON file in the directory that is not a session: ignored."""


class Header(NamedTuple):
    """A parsed header: the session (no messages), its totals and ``updated_at`` as counted
    up to ``counted`` bytes of its messages file (None: all of it, a version-1 header), and
    the epoch of its messages (None: written by a claude_magic that keeps none)."""

    session: Session
    stats: SessionStats
    epoch: int | None
    counted: int | None


def parse_header(session_id: SessionId, raw: bytes) -> tuple[Session, SessionStats]:
    """Header bytes to (session without messages, stats as the header counts them; a
    listing adds the lines past them: :meth:`HeaderCache.columns`)."""
    header = read_header(session_id, raw)
    return header.session, header.stats


def read_header(session_id: SessionId, raw: bytes) -> Header:
    """Header bytes to a :class:`Header`.

    Raises :class:`NotASession` for JSON that is not ours and ``ValueError`` (with a short
    reason) for a session file that cannot be read. Files without ``format`` are read as the
    seed's (Rust crate's) headers when their ``id`` matches the file name.
    """
    try:
        doc = loads(raw)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
    try:
        session, stats = _header_fields(session_id, doc)
    except (RecursionError, OverflowError, MemoryError) as exc:  # impossible values
        raise ValueError(f"bad field ({exc.__class__.__name__})") from None
    epoch = doc.get("epoch")
    counted = None  # a version-1 header counts every line
    if doc.get("version") == VERSION:
        counted = doc.get("counted_bytes")
        counted = 0 if counted is None else counted  # left out (or null) at its default
    if counted is not None and (type(counted) is not int or not 0 <= counted < 2**63):
        raise ValueError("bad field (counted_bytes must be a byte count)")
    return Header(session, stats, epoch if type(epoch) is int and 0 < epoch < 2**63 else None,
                  counted)


def _header_fields(session_id: SessionId, doc: Any) -> tuple[Session, SessionStats]:
    if not isinstance(doc, dict):
        raise NotASession
    form = doc.get("format")
    if form is None:
        if doc.get("id") != session_id or "created_at" not in doc:
            raise NotASession
    elif form != FORMAT:
        raise NotASession
    elif doc.get("version") not in READ_VERSIONS:
        raise ValueError(f"format version {doc.get('version')!r} is not supported (this "
                         f"claude_magic reads versions 1 and {VERSION}); upgrade claude_magic")
    if doc.get("id") != session_id:
        raise ValueError(f"the id inside ({doc.get('id')!r}) differs from the file name")
    try:
        metadata = _object(doc.get("metadata"), "metadata")
        settings = _object(doc.get("settings"), "settings")
        check_stored(metadata, "metadata")
        check_stored(settings, "settings")
        prompt = doc.get("system_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError("system_prompt must be a string")
        created = parse_time(doc["created_at"])
        updated = parse_time(doc.get("updated_at") or doc["created_at"])
        stats = _stats(doc.get("stats"))
    except KeyError as exc:
        raise ValueError(f"missing field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad field ({exc})") from None
    session = Session(session_id, prompt, metadata, created, updated, [], settings)
    return session, stats


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a JSON object")
    return value


def _stats(value: Any) -> SessionStats:
    data = _object(value, "stats")
    counts = [data.get(name, 0) for name in _COUNTS]
    for name, count in zip(_COUNTS, counts, strict=True):
        if type(count) is not int:
            raise TypeError(f"stats.{name} must be an integer")
        if not 0 <= count < 2**63:
            raise ValueError(f"stats.{name} is outside 0 to 2**63 - 1")
    cost, model = data.get("cost_usd", 0.0), data.get("last_model")
    if type(cost) not in (int, float) or not math.isfinite(cost) or not 0 <= cost < 2**63:
        raise TypeError("stats.cost_usd must be a finite number from 0 to 2**63")
    if model is not None and type(model) is not str:
        raise TypeError("stats.last_model must be a string")
    return SessionStats(*counts, cost, model)


_COUNTS = ("message_count", "turns", "input_tokens", "output_tokens")


def header_bytes(session: Session, stats: SessionStats, epoch: int | None = None,
                 counted: int = 0) -> bytes:
    """The readable, versioned header document of a session, whose ``stats`` and
    ``updated_at`` count the first ``counted`` bytes of its messages file; ``epoch`` changes
    whenever its messages change other than by an append (what lets a reader read only new
    lines). Fields at their defaults are left out (``settings`` ``{}``, zero totals, a
    ``counted_bytes`` of 0); the seed's fields are always there."""
    doc = {"format": FORMAT, "version": VERSION, **session.header_dict()}
    if not doc["settings"]:
        del doc["settings"]
    totals = {name: value for name, value in stats.to_dict().items() if value}
    if totals:
        doc["stats"] = totals
    if epoch is not None:
        doc["epoch"] = epoch
    if counted:
        doc["counted_bytes"] = counted
    return dumps(doc, indent=2) + b"\n"


class Entry(NamedTuple):
    """What the cache knows about one ``<name>.json`` file (a tuple: cheap to make 10,000)."""

    session_id: SessionId
    key: Key  # (inode, mtime_ns, size) of the file when it was read
    trusted: bool  # the file was older than the trust margin when read
    updated: str | None = None  # format_time(updated_at) of a readable session, else None
    damage: DamagedEntry | None = None
    summary: SessionSummary | None = None  # filled when the file was parsed in this process
    saved: bool = False  # the saved index holds this very key


_BY_ID = itemgetter(0)
_BY_UPDATED = itemgetter(3)
_NEWEST = itemgetter(5, 0)  # a summary row's updated_at, then its id


class HeaderCache:
    """Scans a store directory, re-reading only header files that changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self.index_path = root / INDEX_NAME
        self._entries: dict[str, Entry] = {}
        self._saved_rows: dict[str, Any] | None = None  # the index file, until the first scan
        self._saved_summaries: dict[str, Any] | None = None  # .summaries.json, once read
        self._warned: set[tuple[str, object]] = set()  # (name, key or reason)
        self._order: list[SessionId] | None = None  # ids newest first, valid until a change
        #: links and special files found by the last scan where store files belong
        self.specials: list[DamagedEntry] = []

    def forget(self, name: str) -> None:
        """Drop one file's entry (after this process wrote it)."""
        self._entries.pop(name, None)
        self._order = None

    def reset(self) -> None:
        self._entries.clear()
        self._order = None

    # --- scanning -------------------------------------------------------------------------

    def scan(self, *, summaries: bool = False) -> list[Entry]:
        """An entry for every header file; with ``summaries`` each session's is parsed."""
        start = time.time_ns()
        trust_before = start - TRUST_MARGIN_NS
        valid_id, new_str = _VALID_ID.fullmatch, str.__new__
        saved = self._load_saved()
        previous = self._entries
        fresh: dict[str, Entry] = {}
        changed = False
        unsaved = 0
        odd: list[tuple[str, DamagedEntry]] = []
        try:
            listing = os.scandir(self.root)
        except OSError as exc:
            raise StorageError(
                f"cannot list session directory {self.root}: {exc.strerror}") from None
        with listing:
            for dirent in listing:
                name = dirent.name
                if not name.endswith(HEADER_SUFFIX) or name[0] == ".":
                    if ((name[0] == "." or not dirent.is_file(follow_symlinks=False))
                            and _ours(name)):  # a regular messages file: nothing to check
                        _check_other(dirent, start, odd)
                    continue
                entry = previous.get(name)
                if entry is not None:
                    session_id = entry[0]
                elif valid_id(name, 0, len(name) - 5):
                    session_id = new_str(SessionId, name[:-5])  # valid_id checked it
                else:
                    continue  # not a session id: not ours
                try:
                    st = dirent.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                if st.st_mode & _FORMAT_BITS != stat.S_IFREG:  # a link, FIFO, directory...
                    changed = True
                    entry = Entry(session_id, key, False, damage=DamagedEntry(
                        dirent.path, describe(st.st_mode), session_id))
                elif entry is None or not entry[2] or entry[1] != key:
                    changed = True
                    row = saved.get(name)
                    if (type(row) is list and len(row) == 5 and row[0] == key[0]
                            and row[1] == key[1] and row[2] == key[2]):
                        if type(row[3]) is str and row[4] is None:  # the common case, inline
                            entry = Entry(session_id, key, True, row[3], None, None, True)
                        else:
                            entry = self._from_saved(name, session_id, key, row[3], row[4])
                    else:
                        entry = None
                    if entry is None:
                        entry = self._read(name, session_id, key, key[1] < trust_before)
                        if entry is None:
                            continue
                if summaries and entry[3] is not None and entry[5] is None:
                    entry = self._read(name, session_id, key, entry[2]) or entry
                if entry[4] is not None and (name, key) not in self._warned:
                    self._warned.add((name, key))
                    warn_damaged(entry[4])
                fresh[name] = entry
                unsaved += entry[2] and not entry[6]
        if self._mark_odd(odd, fresh) or changed or len(fresh) != len(previous):
            self._order = None
        self._entries = fresh
        if unsaved >= INDEX_REFRESH:
            self._save()
        return list(fresh.values())

    def _mark_odd(self, odd: list[tuple[str, DamagedEntry]], fresh: dict[str, Entry]) -> bool:
        """Record the special entries found by a scan; the session of a special messages file
        is skipped. Returns whether the set of them changed."""
        for name, damage in odd:
            if name.endswith(MESSAGES_SUFFIX):
                header = name[: -len(MESSAGES_SUFFIX)] + HEADER_SUFFIX
                entry = fresh.get(header)
                if entry is not None and entry.updated is not None:
                    fresh[header] = Entry(entry.session_id, entry.key, False)  # skipped
            if (name, damage.reason) not in self._warned:
                self._warned.add((name, damage.reason))
                warn_damaged(damage)
        before = {d.location for d in self.specials}
        self.specials = [damage for _, damage in odd]
        return before != {d.location for d in self.specials}

    def order(self) -> list[SessionId]:
        """Readable session ids, newest ``updated_at`` first (ties: larger id first)."""
        entries = self.scan()
        if self._order is None:
            sessions = [e for e in entries if e.updated is not None]
            sessions.sort(key=_BY_ID, reverse=True)  # two stable sorts: no key tuples to make
            sessions.sort(key=_BY_UPDATED, reverse=True)
            self._order = [e.session_id for e in sessions]
        return list(self._order)

    def columns(self) -> list[Row]:
        """Every readable session's summary row (:data:`Row`: times as ISO-8601 strings),
        newest first, from ``.summaries.json`` where a trusted header's key still matches its
        row there, else from the header itself; the file is rewritten when it lacks
        :data:`INDEX_REFRESH` trusted rows. Rows from the file are fresh objects only on its
        first read: callers copy what they hand out."""
        entries = self.scan()
        saved = self._load_summaries()
        rows: list[Row] = []
        keys: list[Key | None] = []
        unsaved = 0
        for entry in entries:
            if entry[3] is None:
                continue
            name = entry[0] + HEADER_SUFFIX
            row = saved.get(name) if entry[2] and entry[5] is None else None
            if row is not None and _row_ok(row, entry[1]):
                rows.append((entry[0], *row[3:]))
                keys.append(None)
                continue
            summary = entry[5]
            if summary is None:
                read = self._read(name, entry[0], entry[1], entry[2])
                summary = read.summary if read is not None else None
                if summary is None:
                    continue
            rows.append(_row_of(summary))
            keys.append(entry[1] if entry[2] else None)
            unsaved += entry[2]
        if unsaved >= INDEX_REFRESH:
            self._save_summaries(rows, keys)
        rows.sort(key=_NEWEST, reverse=True)
        return rows

    def _load_summaries(self) -> dict[str, Any]:
        if self._saved_summaries is None:
            self._saved_summaries = _read_cache(self.root / SUMMARIES_NAME, SUMMARIES_FORMAT)
        return self._saved_summaries

    def _save_summaries(self, rows: list[Row], keys: list[Key | None]) -> None:
        """Write the rows of trusted headers (those read now, and those the file held);
        a cache, so failures are ignored."""
        saved = self._saved_summaries or {}
        entries: dict[str, list[Any]] = {}
        for row, key in zip(rows, keys, strict=True):
            name = row[0] + HEADER_SUFFIX
            if key is not None:
                entries[name] = [*key, *row[1:]]
            elif name in saved:
                entries[name] = saved[name]
        if _write_cache(self.root, self.root / SUMMARIES_NAME, SUMMARIES_FORMAT, entries):
            self._saved_summaries = entries

    def _read(self, name: str, session_id: SessionId, key: Key, trusted: bool) -> Entry | None:
        path = os.path.join(self._root, name)
        try:
            raw = read_file(path, key[2])
        except NotRegularFile as exc:  # swapped for a link since the scan looked
            return Entry(session_id, key, False,
                         damage=DamagedEntry(path, exc.strerror, session_id))
        except OSError:
            return None  # deleted while we looked
        try:
            session, stats, _, counted = read_header(session_id, raw)
        except NotASession:
            return Entry(session_id, key, trusted)
        except ValueError as exc:
            return Entry(session_id, key, trusted,
                         damage=DamagedEntry(path, str(exc), session_id))
        if counted is not None:  # and the lines appended since it was written
            stats, session.updated_at = file_totals(
                os.path.join(self._root, session_id + MESSAGES_SUFFIX), counted, stats,
                session.updated_at)
        summary = SessionSummary(session.id, session.system_prompt, session.metadata,
                                 session.settings, session.created_at, session.updated_at, stats)
        return Entry(session_id, key, trusted, format_time(session.updated_at), None, summary)

    # --- the saved index ------------------------------------------------------------------

    def _load_saved(self) -> dict[str, Any]:
        """The rows of ``.index.json`` (name -> [inode, mtime_ns, size, updated, damage])."""
        if self._saved_rows is None:
            self._saved_rows = _read_cache(self.index_path, INDEX_FORMAT)
        return self._saved_rows

    def _from_saved(self, name: str, session_id: SessionId, key: Key, updated: Any,
                    reason: Any) -> Entry | None:
        if type(updated) is str and reason is None:
            return Entry(session_id, key, True, updated, None, None, True)
        if updated is None and type(reason) is str:
            damage = DamagedEntry(str(self.root / name), reason, session_id)
            return Entry(session_id, key, True, None, damage, None, True)
        if updated is None and reason is None:
            return Entry(session_id, key, True, None, None, None, True)
        return None

    def _save(self) -> None:
        """Write the trusted entries to ``.index.json``; a cache, so failures are ignored."""
        rows: dict[str, list[Any]] = {}
        for name, entry in self._entries.items():
            if entry.trusted:
                reason = entry.damage.reason if entry.damage is not None else None
                rows[name] = [*entry.key, entry.updated, reason]
        if not _write_cache(self.root, self.index_path, INDEX_FORMAT, rows):
            return
        for name in rows:
            self._entries[name] = self._entries[name]._replace(saved=True)
        self._saved_rows = rows


def _read_cache(path: Path, form: str) -> dict[str, Any]:
    """The entries of a cache file (``.index.json``, ``.summaries.json``); none when it is
    missing, unreadable or of another format or version."""
    try:
        doc = loads(read_file(path))
    except (OSError, ValueError):
        return {}
    if (isinstance(doc, dict) and doc.get("format") == form
            and doc.get("version") == INDEX_VERSION and isinstance(doc.get("entries"), dict)):
        return doc["entries"]
    return {}


def _write_cache(root: Path, path: Path, form: str, entries: dict[str, Any]) -> bool:
    """Write a cache file; False when that failed (a cache: ignored) or a link or special
    file is planted there (reported by the scan, left alone)."""
    doc = {"format": form, "version": INDEX_VERSION, "entries": entries}
    try:
        if entry_problem(path) is not None:
            return False
        write_atomic(root, path, dumps(doc), durable=False)
    except OSError:
        return False
    return True


_FORMAT_BITS = 0o170000  # stat.S_IFMT's mask, inline in the scan loop

#: A session's summary as a row: id, system prompt, metadata, settings, created_at,
#: updated_at (ISO-8601 strings), message_count, turns, input_tokens, output_tokens,
#: cost_usd, last_model.
Row = tuple[Any, ...]
_TEXT, _NUMBER, _INT = (str, type(None)), (int, float), {int}


def _row_of(summary: SessionSummary) -> Row:
    stats = summary.stats
    return (summary.id, summary.system_prompt, summary.metadata, summary.settings,
            format_time(summary.created_at), format_time(summary.updated_at),
            stats.message_count, stats.turns, stats.input_tokens, stats.output_tokens,
            stats.cost_usd, stats.last_model)


def _row_ok(row: Any, key: Key) -> bool:
    """Whether a saved summary row is for this very file and holds what a header would."""
    return (type(row) is list and len(row) == 14 and row[0] == key[0] and row[1] == key[1]
            and row[2] == key[2] and type(row[4]) is dict and type(row[5]) is dict
            and type(row[6]) is str and type(row[7]) is str and type(row[3]) in _TEXT
            and type(row[13]) in _TEXT and type(row[12]) in _NUMBER
            and set(map(type, row[8:12])) == _INT)


def _ours(name: str) -> bool:
    """Whether a non-header name is one the store uses (messages, caches, lock, search
    index, temp files)."""
    if name.endswith(MESSAGES_SUFFIX):
        return _VALID_ID.fullmatch(name, 0, len(name) - len(MESSAGES_SUFFIX)) is not None
    return (name in (INDEX_NAME, SUMMARIES_NAME, LOCK_NAME) or name in SEARCH_INDEX_NAMES
            or name.startswith(".tmp-"))


def _check_other(dirent: os.DirEntry[str], now_ns: int,
                 odd: list[tuple[str, DamagedEntry]]) -> None:
    """Note a link or special file at one of the store's names; remove a stale temp file."""
    name = dirent.name
    try:
        if dirent.is_file(follow_symlinks=False) and name[:5] != ".tmp-":
            return  # a regular file (the entry's own type, no stat call where it has one)
        st = dirent.stat(follow_symlinks=False)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        owner = name[: -len(MESSAGES_SUFFIX)] if name.endswith(MESSAGES_SUFFIX) else None
        odd.append((name, DamagedEntry(dirent.path, describe(st.st_mode), owner)))
    elif name.startswith(".tmp-") and st.st_mtime_ns < now_ns - STALE_TMP_SECONDS * 10**9:
        with contextlib.suppress(OSError):  # a temp file a killed writer left, old enough
            os.unlink(dirent.path)

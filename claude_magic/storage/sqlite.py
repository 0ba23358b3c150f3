"""SQLite storage: ``sessions`` and ``messages`` tables in one file, created when missing.

WAL journal, a busy timeout, foreign keys with cascade, ordered migrations recorded in a
``_migrations`` table, parameterized SQL only, and one ``BEGIN IMMEDIATE`` transaction per
logical write, so several kernels can share one database file.

Each session row carries ``readable``, a generated column SQLite itself computes (for our
writes and anyone else's): whether the id is valid and the JSON and time columns are well
formed. Listing and
counting read only ``(readable, updated_at, id)`` from an index, so they stay fast at 10,000
sessions, and a row damaged by another tool is skipped and reported instead of listed.
Message rows carry a stored ``plain`` column (migration 009): SQLite's check, when the row is
written, that every column holds what a ``Message`` accepts, so ``get`` builds those rows
without checking each field again in Python.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..chain import HASH_KEY
from ..checks import loads_checked
from ..checks import strict_decode as _strict_decode
from ..errors import DamagedSession, SessionExists, SessionNotFound, StorageError
from ..message import Message, SessionStats, Status, Usage, vouched_message
from ..session import Session, SessionChanges, SessionId, SessionSummary
from ..times import MAX_TIME, MIN_TIME, MonotonicClock, as_utc, format_time, parse_time
from ._jsonio import _DECODER, entry_problem
from ._sqlite_fts import catch_up
from ._sqlite_schema import (  # noqa: F401 (ID_OK, _time_ok, _plain_time: for tests)
    _MESSAGE_COLUMNS,
    _MESSAGE_OK,
    _NEWEST_FIRST,
    _SESSION_COLUMNS,
    ID_OK,
    MIGRATIONS,
    MIN_SQLITE,
    _plain_time,
    _time_ok,
)
from .base import DamagedEntry, DamageLog, Position, Since, SummaryColumns, new_epoch


def _trusted_id(value: str) -> SessionId:
    """A SessionId for a value the ``readable`` column already validated (same rules)."""
    return str.__new__(SessionId, value)


_fromiso = datetime.fromisoformat


def _time(value: str) -> datetime:
    """A stored time; ``ValueError`` / ``TypeError`` for one Python cannot hold."""
    parsed = _fromiso(value)
    if parsed.tzinfo is timezone.utc and MIN_TIME <= parsed <= MAX_TIME:
        return parsed
    return parse_time(value)


def _object(text: Any, what: str = "metadata") -> dict[str, Any]:
    """A stored JSON object, checked as our writes are (``ValueError`` / ``TypeError``)."""
    if text == "{}":
        return {}
    value = loads_checked(text, what)
    if type(value) is not dict:
        raise TypeError(f"{what} is not a JSON object")
    return value


def _plain_loads(text: str) -> Any:
    """JSON the ``plain`` column vouched for (no big numbers, no deep nesting): only the
    number hooks run, as a backstop."""
    try:
        return _strict_decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _lenient_text(raw: bytes) -> str | bytes:
    """A text value as ``str``, or its raw bytes when it is not UTF-8 (planted by another
    tool): the row is then a damaged entry instead of failing the whole query."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _undecodable(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is Python's sqlite3 refusing text that is not UTF-8."""
    return "Could not decode to UTF-8" in str(exc)


def fetch(db: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Every row of ``sql``; a text value that is not UTF-8 comes back as ``bytes`` (which
    every row reader refuses) rather than failing the query for every row."""
    return fetch_strict(db, sql, params)[0]


def fetch_strict(db: sqlite3.Connection, sql: str,
                 params: tuple[Any, ...] = ()) -> tuple[list[Any], bool]:
    """:func:`fetch`, and whether every text value was UTF-8 (so each is a ``str``)."""
    try:
        return db.execute(sql, params).fetchall(), True
    except sqlite3.OperationalError as exc:
        if not _undecodable(exc):
            raise
    db.text_factory = _lenient_text
    try:
        return db.execute(sql, params).fetchall(), False
    finally:
        db.text_factory = str


def _shown(value: Any) -> str:
    """A value read from a row, for a report (bytes that are not UTF-8 escaped)."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


#: Any character outside ASCII (bytes that are not UTF-8 included), for SQL's GLOB.
_NON_ASCII = "'*[^' || char(1) || '-' || char(127) || ']*'"
_TEXT_COLUMNS = ("system_prompt", "metadata", "settings", "created_at", "updated_at",
                 "last_model")


def _any_non_ascii(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"{column} GLOB {_NON_ASCII}" for column in columns)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


#: SQLite's primary result codes that mean "the OS or file refuses writing" (sqlite3.h).
_PERM, _READONLY, _CANTOPEN, _FULL, _IOERR = 3, 8, 14, 13, 10
_NOTADB, _CORRUPT = 26, 11


def _code(exc: BaseException) -> int:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def _cause(exc: BaseException) -> str:
    """Why the OS or SQLite refused, in words a user acts on."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    code = _code(exc)
    if code == _FULL:
        return "the disk is full"
    if code in (_READONLY, _PERM):
        return f"read-only ({exc})"
    return str(exc)


def _os_cause(path: Path) -> str | None:
    """Why this process may not write ``path`` (or create it), from the file modes."""
    if path.exists():
        if not os.access(path, os.R_OK):
            return "permission denied (the file cannot be read)"
        if not os.access(path, os.W_OK):
            return "permission denied (the file is read-only)"
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied (its folder is read-only)"
    return None


#: Files SQLite opens beside a database (``-wal`` and ``-shm`` in WAL mode, ``-journal``).
SIDE_FILES = ("-wal", "-shm", "-journal")


def refuse_planted_files(path: Path) -> None:
    """One-line :class:`StorageError` if ``path`` or a side file SQLite would open beside it
    is a symbolic link, FIFO, socket, device or directory (``lstat``: nothing is followed).

    SQLite opens and writes these names itself, following links and blocking on a FIFO, so
    they are checked before every open. The database may not be a link either: SQLite would
    write through it (and put its side files beside the file it points to); a folder on the
    way to it may be one (the user's choice, like a directory store's root)."""
    problem = entry_problem(path)
    if problem is not None:
        target = f"; it points to {os.readlink(path)}" if os.path.islink(path) else ""
        raise StorageError(f"cannot open SQLite store {path}: not a regular file ({problem}"
                           f"{target}); give the path of the database file itself")
    for suffix in SIDE_FILES:
        side = Path(f"{path}{suffix}")
        problem = entry_problem(side)
        if problem is not None:
            raise StorageError(f"cannot open SQLite store {path}: {side.name} beside it is not "
                               f"a regular file ({problem}) and SQLite would open it; remove "
                               f"{side} if you did not put it there")


class SQLiteStorage:
    """Sessions in a SQLite database file.

    A file (or folder) this process cannot write is opened read-only: reading works, and
    every write raises a one-line :class:`StorageError` naming the file and the cause.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        given = Path(os.path.abspath(Path(path).expanduser()))
        self.path = given.resolve()
        self.location = f"sqlite:///{self.path}"
        #: The path as the user gave it (absolute), for error lines.
        self.given = given
        self._mutex = threading.RLock()
        self._clock = MonotonicClock()
        self._damage = DamageLog()
        #: session id -> (``PRAGMA data_version``, next seq, newest hash): see chain_tip
        self._tips: dict[str, tuple[int, int, str]] = {}
        #: ``PRAGMA data_version`` -> ids of readable rows holding text that is not UTF-8
        self._undecodable: tuple[int, frozenset[str]] = (-1, frozenset())
        #: Why the store is read-only (None when it is writable).
        self.read_only: str | None = None
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StorageError(f"the SQLite store needs SQLite {'.'.join(map(str, MIN_SQLITE))} "
                               f"or newer, this Python has {sqlite3.sqlite_version}; use a "
                               "directory store instead")
        refuse_planted_files(given)
        if (self.path.is_file() and os.access(self.path, os.R_OK)
                and not os.access(self.path, os.W_OK)):  # never opened for writing: see
            self.read_only = _os_cause(self.path)       # _open_read_only
            self._db = self._open_read_only(PermissionError(errno.EACCES, "read-only"))
            return
        try:
            self._db = self._open_writable(busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            cause = (_os_cause(self.path) if self._refused(exc) else None) or _cause(exc)
            if not (self._refused(exc) and os.access(self.path, os.R_OK)
                    and self.path.is_file()):
                raise self._open_error(exc, cause) from None
            self.read_only = cause
            self._db = self._open_read_only(exc)
        else:  # SQLite opens a read-only file silently: say why writes will fail
            self.read_only = _os_cause(self.path) if not os.access(self.path, os.W_OK) else None

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # --- opening ----------------------------------------------------------------------------

    def _open_writable(self, busy_timeout: float) -> sqlite3.Connection:
        """Open (creating the file and folder when missing), configure and migrate."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise sqlite3.OperationalError("cannot switch to WAL")
            db.execute("PRAGMA synchronous = FULL")
            self._db = db
            self._migrate()  # foreign keys off: a migration may rebuild a table (008)
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _refused(exc: BaseException) -> bool:
        """Whether the OS refused writing (read-only file or folder, no permission)."""
        if isinstance(exc, OSError):
            return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        return _code(exc) in (_PERM, _READONLY, _CANTOPEN, _IOERR)

    def _open_read_only(self, first: BaseException) -> sqlite3.Connection:
        """Open for reading only, creating no file (see :meth:`_read_only_queries`)."""
        base = f"file:{quote(str(self.path))}"
        last: BaseException = first
        for query in self._read_only_queries():
            try:
                db = sqlite3.connect(base + query, uri=True, isolation_level=None,
                                     check_same_thread=False)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                applied = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            except sqlite3.Error as exc:
                db.close()
                last = exc
                continue
            if applied != {name for name, _ in MIGRATIONS}:
                db.close()
                raise StorageError(
                    f"SQLite store {self.path} is read-only: {self.read_only}, and was written "
                    f"by {'a newer' if applied - {n for n, _ in MIGRATIONS} else 'an older'} "
                    "claude_magic; open it once where it can be written, or use a copy")
            return db
        raise self._open_error(last)

    def _read_only_queries(self) -> tuple[str, ...]:
        """``mode=ro`` only when the ``-wal`` and ``-shm`` files already exist (a writer has
        the database open): else SQLite would create them owned by this user, with the
        database's mode, and the owner could no longer write its own store (or this user
        could write into its WAL). Without them there is nothing in a WAL: ``immutable=1``
        reads the file as it is, creating nothing (a writer that starts later is not seen
        until the store is opened again)."""
        if all(os.path.isfile(f"{self.path}{suffix}") for suffix in ("-wal", "-shm")):
            return ("?mode=ro", "?mode=ro&immutable=1")
        return ("?mode=ro&immutable=1",)

    def _open_error(self, exc: BaseException, cause: str | None = None) -> StorageError:
        if isinstance(exc, StorageError):
            return exc
        if "locked" in str(exc) or "busy" in str(exc):
            return self._error(exc)  # type: ignore[arg-type]
        hint = ("; if the file is not a database, move it aside and a new one is created"
                if _code(exc) in (_NOTADB, _CORRUPT) else "")
        return StorageError(f"cannot open SQLite store {self.given}: {cause or _cause(exc)}{hint}")

    # --- transactions and migrations ------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction (a write one by default); rolled back on any error. A write
        forgets the chain tips :meth:`chain_tip` keeps (``PRAGMA data_version`` does not
        change for this connection's own writes)."""
        with self._mutex:
            if begin != "BEGIN":
                self._tips.clear()
            try:
                self._db.execute(begin)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from None
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                return fetch(self._db, sql, params)
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> StorageError:
        if "locked" in str(exc) or "busy" in str(exc):
            return StorageError(f"SQLite store {self.path} is busy (locked by another process); "
                                "try again")
        if self.read_only is not None and _code(exc) in (_READONLY, _PERM, _CANTOPEN, _IOERR):
            return StorageError(f"SQLite store {self.path} is read-only: {self.read_only}; "
                                "nothing was written; make the file and its folder writable "
                                "and open the store again")
        if _code(exc) in (_FULL, _READONLY, _PERM, _IOERR, _CANTOPEN):
            return StorageError(f"SQLite store {self.path} cannot be written: {_cause(exc)}; "
                                "nothing was written")
        return StorageError(f"SQLite store {self.path} failed: {exc}")

    def _migrate(self) -> None:
        """Apply the missing migrations in one transaction; raw ``sqlite3`` errors escape (the
        caller tells a read-only file from a broken one)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations "
                       "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            applied = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            known = {name for name, _ in MIGRATIONS}
            if applied - known:
                raise StorageError(f"SQLite store {self.path} was written by a newer claude_magic "
                                   f"(migrations {sorted(applied - known)}); upgrade claude_magic")
            for name, migration in MIGRATIONS:
                if name not in applied:
                    migration(db)
                    db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                               (name, format_time(self._clock.now())))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    # --- rows <-> objects -----------------------------------------------------------------

    @staticmethod
    def _summary(row: tuple[Any, ...]) -> SessionSummary:
        """A summary from a row the ``readable`` column passed; ValueError/TypeError if not."""
        prompt = row[1]
        if prompt is not None and type(prompt) is not str:
            raise TypeError("system_prompt is not UTF-8 text")
        if row[11] is not None and type(row[11]) is not str:
            raise TypeError("last_model is not UTF-8 text")
        stats = SessionStats(row[6], row[7], row[8], row[9], row[10], row[11])
        return SessionSummary(_trusted_id(row[0]), prompt, _object(row[2]),
                              _object(row[3], "settings"), _time(row[4]), _time(row[5]), stats)

    @staticmethod
    def _message_row(session_id: SessionId, message: Message) -> tuple[Any, ...]:
        """The columns of ``_INSERT_MESSAGE``; ``extra`` is ``{}`` unless the message has
        ids besides its chain hash or content blocks (their text goes in ``content``)."""
        usage, ids = message.usage, message.ids
        extra: dict[str, Any] = {}
        if len(ids) > (HASH_KEY in ids):
            extra["ids"] = {key: value for key, value in ids.items() if key != HASH_KEY}
        if not isinstance(message.content, str):  # blocks in extra, their text searchable
            extra["blocks"] = message.content
        return (session_id, message.seq, message.role, message.text,
                format_time(message.created_at), message.status, message.error, message.model,
                message.backend, usage.input_tokens, usage.output_tokens, message.cost_usd,
                _dumps(extra) if extra else "{}", usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens, message.stop_reason, message.duration_ms,
                ids.get(HASH_KEY))

    @staticmethod
    def _message(row: tuple[Any, ...]) -> Message:
        """A message from a row of ``_MESSAGE_COLUMNS``, every field checked. Usage, stop
        reason and duration still in ``extra`` (a row written before migration 009 that
        it could not move) are read from there; the ``hash`` column wins over ``extra``."""
        extra = _object(row[11], "message extra")
        content = row[2] if extra.get("blocks") is None else extra["blocks"]
        usage = (Usage.from_dict(extra["usage"]) if "usage" in extra
                 else Usage(row[8], row[9], row[12], row[13]))
        ids = dict(extra.get("ids") or {})
        if row[16] is not None:
            ids[HASH_KEY] = row[16]
        return Message(role=row[1], content=content, created_at=parse_time(row[3]), status=row[4],
                       error=row[5], model=row[6], backend=row[7], usage=usage,
                       cost_usd=row[10], stop_reason=extra.get("stop_reason", row[14]),
                       duration_ms=extra.get("duration_ms", row[15]), ids=ids, seq=row[0])

    def _report(self, session_id: str, reason: str, where: str = "") -> DamagedEntry:
        return self._damage.report(f"{self.location}#{session_id}{where}", reason, session_id)

    def _report_unreadable(self) -> list[DamagedEntry]:
        """Warn (once each) about rows the ``readable`` column rejects, and readable rows
        holding text that is not UTF-8; returns them."""
        rows = self._read("SELECT id FROM sessions WHERE readable = 0")
        entries = [self._report(_shown(row[0]), "unreadable row (bad id, JSON or time)")
                   for row in rows]
        return entries + [self._report(session_id, "unreadable row (text that is not UTF-8)")
                          for session_id in sorted(self._not_utf8())]

    def _not_utf8(self) -> frozenset[str]:
        """Ids of readable rows with text that is not UTF-8. Only another connection can
        write such text (Python's ``str`` always encodes), so the scan runs again only when
        ``PRAGMA data_version`` says another connection committed."""
        version = self._read("PRAGMA data_version")[0][0]
        if version != self._undecodable[0]:
            rows = self._read(f"SELECT id, {', '.join(_TEXT_COLUMNS)} FROM sessions "
                              f"WHERE readable = 1 AND ({_any_non_ascii(_TEXT_COLUMNS)})")
            bad = frozenset(row[0] for row in rows
                            if any(isinstance(value, bytes) for value in row))
            self._undecodable = (version, bad)
        return self._undecodable[1]

    def _checked_row(self, db: sqlite3.Connection, session_id: SessionId) -> SessionSummary:
        """The session's header, read in the write transaction: ``SessionNotFound`` when
        missing, ``DamagedSession`` when SQL or Python cannot read it (never overwritten)."""
        rows = fetch(db, f"SELECT {_SESSION_COLUMNS}, readable FROM sessions WHERE id = ?",
                     (session_id,))
        if not rows:
            raise SessionNotFound(str(session_id))
        return self._summary_or_damaged(session_id, rows[0])

    def _summary_or_damaged(self, session_id: SessionId, row: tuple[Any, ...]) -> SessionSummary:
        """:meth:`_summary` of a row ending in ``readable``; ``DamagedSession`` if unreadable."""
        try:
            if not row[-1]:
                raise ValueError("bad id, JSON or time")
            return self._summary(row)
        except (ValueError, TypeError) as exc:
            raise DamagedSession(str(session_id), self.location,
                                 f"unreadable row ({_short(exc)})", kind="row") from None

    def _python_damaged(self) -> set[str]:
        """Ids of rows ``readable`` passes that Python refuses (values past 64 bits, deep
        JSON, far times, wrong types), each reported once. Only rows the ``plain`` column
        cannot vouch for are read, so this costs an index scan."""
        bad = set()
        for row in self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions "
                              "WHERE readable = 1 AND NOT plain"):
            try:
                self._summary(row)
            except (ValueError, TypeError) as exc:
                self._report(str(row[0]), f"unreadable row ({_short(exc)})")
                bad.add(row[0])
        return bad

    def _skipped(self) -> set[str]:
        """Report every damaged row; return the ids of readable rows a listing leaves out
        (Python refuses them, or they hold text that is not UTF-8)."""
        self._report_unreadable()
        return self._python_damaged() | self._not_utf8()

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.checked_copy()
        if not preserve_times:
            stored.created_at = stored.updated_at = self._clock.now()
        stats = stored.stats  # refuses totals past 64 bits before anything is written
        row = (stored.id, stored.system_prompt, _dumps(stored.metadata), _dumps(stored.settings),
               format_time(stored.created_at), format_time(stored.updated_at),
               stats.message_count, stats.turns, stats.input_tokens, stats.output_tokens,
               stats.cost_usd, stats.last_model)
        messages = [self._message_row(stored.id, m) for m in stored.messages]
        with self._transaction() as db:
            exists = db.execute("SELECT 1 FROM sessions WHERE id = ?", (stored.id,)).fetchone()
            if exists and not overwrite:
                raise SessionExists(str(stored.id))
            if exists:  # a damaged row is never replaced (DamagedSession), as in a folder
                self._checked_row(db, stored.id)
            db.execute("DELETE FROM sessions WHERE id = ?", (stored.id,))
            db.execute(f"INSERT INTO sessions ({_SESSION_COLUMNS}, epoch) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (*row, new_epoch()))
            if messages:
                db.executemany(_INSERT_MESSAGE, messages)
                catch_up(db)  # a bulk write indexes its text at once, as the search would
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        found = self.load_since(session_id, None)
        return None if found is None else found[0]

    def load_since(self, session_id: SessionId, since: Position | None) -> Since | None:
        """The header, and only the messages from ``since.next`` on when the row's epoch is
        still the one read then (nothing but appends since); one snapshot for both."""
        with self._transaction("BEGIN") as db:
            rows = fetch(db, f"SELECT {_SESSION_COLUMNS}, readable, epoch FROM sessions "
                         "WHERE id = ?", (session_id,))
            if not rows:
                return None
            epoch = rows[0][-1]
            if type(epoch) is not int:
                epoch = None
            partial = since is not None and epoch is not None and since.epoch == epoch
            start = since.next if partial else 0
            message_rows, utf8 = fetch_strict(
                db, f"SELECT {_MESSAGE_COLUMNS}, plain FROM messages "
                "WHERE session_id = ? AND seq >= ? ORDER BY seq", (session_id, start))
        summary = self._summary_or_damaged(session_id, rows[0][:-1])
        messages = self._messages(session_id, message_rows, utf8)
        session = Session(summary.id, summary.system_prompt, summary.metadata,
                          summary.created_at, summary.updated_at, messages, summary.settings)
        if epoch is None:
            return session, None, False
        last = message_rows[-1][0] if message_rows else start - 1  # rows in seq order:
        if type(last) is not int:  # the last is the largest, unless another tool wrote it
            last = max((r[0] for r in message_rows if type(r[0]) is int), default=start - 1)
        return session, Position(epoch, max(start, last + 1)), partial

    def _messages(self, session_id: SessionId, rows: list[Any], utf8: bool) -> list[Message]:
        """Messages of rows (``_MESSAGE_COLUMNS`` and ``plain``), oldest first.

        A row ``plain`` vouches for (SQL checked every column when it was written) becomes a
        message with no field checked again, when all text is UTF-8 (``utf8``) and ``extra``
        holds at most other ids; any other row takes the checked path, which reports it if
        it is damaged."""
        others = _other_ids(rows) if utf8 else {}
        messages: list[Message] = []
        append, build, fromiso = messages.append, vouched_message, _fromiso
        for row in rows:
            if utf8 and row[17] == 1:
                digest = row[16]
                ids = (({} if digest is None else {HASH_KEY: digest}) if row[11] == "{}"
                       else others.get(row[0]))
                if ids is not None:
                    try:
                        append(build(row[1], row[2], fromiso(row[3]), row[4], row[5], row[6],
                                     row[7], row[8], row[9], row[12], row[13], row[10],
                                     row[14], row[15], ids, row[0]))
                        continue
                    except ValueError:  # not the time ``plain`` checked: the checked path
                        pass
            try:
                append(self._message(row))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self._report(str(session_id), f"unreadable message ({_short(exc)})",
                             f":{row[0]}")
        return messages

    def chain_tip(self, session_id: SessionId) -> tuple[int, str] | None:
        """The seq after the newest message and that message's chain hash (``(0, "")`` when
        there is none), read from that one row: what an append links to, in O(1). None when
        the newest message carries no hash (stored before hashes: the caller reads all).

        Kept after this store's own append while ``PRAGMA data_version`` says no other
        connection committed (any other write of this store forgets it)."""
        with self._mutex:
            version = self._read("PRAGMA data_version")[0][0]
            tip = self._tips.get(session_id)
            if tip is not None and tip[0] == version:
                return tip[1], tip[2]
            found = self._read_tip(session_id)
            if found is not None:
                self._tips[session_id] = (version, *found)
            return found

    def _read_tip(self, session_id: SessionId) -> tuple[int, str] | None:
        rows = self._read("SELECT seq, hash, extra FROM messages WHERE session_id = ? "
                          "ORDER BY seq DESC LIMIT 1", (session_id,))
        if not rows:
            return 0, ""
        seq, found, extra = rows[0]
        try:  # a row from before migration 009 that kept its hash in ``extra``
            found = json.loads(extra)["ids"][HASH_KEY] if found is None else found
        except (ValueError, TypeError, KeyError):
            return None
        return (seq + 1, found) if type(seq) is int and type(found) is str and found else None

    def summary(self, session_id: SessionId) -> SessionSummary | None:
        rows = self._read(f"SELECT {_SESSION_COLUMNS}, readable FROM sessions WHERE id = ?",
                          (session_id,))
        return self._summary_or_damaged(session_id, rows[0]) if rows else None

    def exists(self, session_id: SessionId) -> bool:
        return bool(self._read("SELECT 1 FROM sessions WHERE id = ?", (session_id,)))

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._transaction() as db:
            summary = self._checked_row(db, session_id)
            session = Session(summary.id, summary.system_prompt, summary.metadata,
                              summary.created_at, summary.updated_at, [], summary.settings)
            changes.apply(session, self._clock.now())
            db.execute("UPDATE sessions SET system_prompt = ?, metadata = ?, settings = ?, "
                       "updated_at = ? WHERE id = ?",
                       (session.system_prompt, _dumps(session.metadata),
                        _dumps(session.settings), format_time(session.updated_at), session_id))

    def append(self, session_id: SessionId, message: Message) -> Message:
        stored = message.copy()  # checks every field: a bad message is refused here
        with contextlib.suppress(_Unusual):  # rolled back: the checked path decides
            self._append_fast(session_id, stored)
            return stored  # this call's own copy: nothing else holds it
        with self._transaction() as db:
            stats = self._checked_row(db, session_id).stats
            stats.add(stored)  # ValueOutOfRange when a total would pass 64 bits: rolled back
            stored.seq = db.execute(_NEXT_SEQ, (session_id,)).fetchone()[0]
            db.execute(_INSERT_MESSAGE, self._message_row(session_id, stored))
            db.execute(
                "UPDATE sessions SET updated_at = ?, message_count = ?, turns = ?, "
                "input_tokens = ?, output_tokens = ?, cost_usd = ?, last_model = ? WHERE id = ?",
                (format_time(self._clock.now()), stats.message_count, stats.turns,
                 stats.input_tokens, stats.output_tokens, stats.cost_usd, stats.last_model,
                 session_id))
        return stored

    def _append_fast(self, session_id: SessionId, stored: Message) -> None:
        """The totals grow in SQL (``_GROW``: only on a row ``readable`` and ``plain`` vouch
        for, only when no total passes 64 bits), then the insert: ``_Unusual`` (rolled back,
        nothing written) when no row grew, and :meth:`append`'s checked path reads the row
        and names the problem. The chain tip :meth:`chain_tip` kept is moved on."""
        usage, model = stored.usage, stored.model
        grow = (format_time(self._clock.now()), int(stored.role == "user"), usage.input_tokens,
                usage.output_tokens, float(stored.cost_usd or 0.0),
                model if model and stored.role == "assistant" else None, session_id)
        with self._mutex:
            tip = self._tips.get(session_id)
            with self._transaction() as db:
                if db.execute(_GROW, grow).rowcount != 1:
                    raise _Unusual
                stored.seq = db.execute(_NEXT_SEQ, (session_id,)).fetchone()[0]
                db.execute(_INSERT_MESSAGE, self._message_row(session_id, stored))
            if tip is not None and type(stored.ids.get("hash")) is str:  # kept under the
                self._tips[session_id] = (tip[0], stored.seq + 1, stored.ids["hash"])  # same
                # data_version: another connection's commit since then makes it re-read

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        with self._transaction() as db:
            self._checked_row(db, session_id)
            self._mark(db, session_id, seq, status, error)

    def _mark(self, db: sqlite3.Connection, session_id: SessionId, seq: int, status: Status,
              error: str | None) -> None:
        """Set a message's status and error, and the session's time and epoch, in the
        caller's write transaction; ``IndexError`` when there is no such message."""
        changed = db.execute("UPDATE messages SET status = ?, error = ? "
                             "WHERE session_id = ? AND seq = ?",
                             (status, error, session_id, seq)).rowcount
        if not changed:
            raise IndexError(f"session {str(session_id)!r} has no message {seq}")
        db.execute("UPDATE sessions SET updated_at = ?, epoch = ? WHERE id = ?",
                   (format_time(self._clock.now()), new_epoch(), session_id))

    def delete(self, session_id: SessionId, *, if_updated_at: datetime | None = None) -> bool:
        with self._transaction() as db:
            if if_updated_at is not None:
                rows = fetch(db, "SELECT updated_at FROM sessions WHERE id = ?", (session_id,))
                try:
                    if not rows or _time(rows[0][0]) != as_utc(if_updated_at):
                        return False
                except (ValueError, TypeError):  # a damaged time is never "the one listed"
                    return False
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def clear(self) -> int:
        """Delete every readable session; rows SQL or Python cannot read stay."""
        with self._transaction() as db:
            keep = set(self._not_utf8())
            for row in fetch(db, f"SELECT {_SESSION_COLUMNS} FROM sessions "
                                 "WHERE readable = 1 AND NOT plain"):
                try:
                    self._summary(row)
                except (ValueError, TypeError):
                    keep.add(row[0])
            return db.execute("DELETE FROM sessions WHERE readable = 1 AND id NOT IN "
                              "(SELECT value FROM json_each(?))", (_dumps(sorted(keep)),)).rowcount

    def summaries(self) -> list[SessionSummary]:
        with self._mutex:
            self._report_unreadable()
            skip = self._not_utf8()
            rows = self._read(f"SELECT {_SESSION_COLUMNS}, plain FROM sessions "
                              f"WHERE readable = 1 {_NEWEST_FIRST}")
        # _summary() inlined for rows ``plain`` vouches for: this loop is most of what reading
        # every session's metadata costs
        result = []
        append, loads, new = result.append, _plain_loads, str.__new__
        for row in rows:
            if skip and row[0] in skip:
                continue
            try:
                if not row[12]:
                    append(self._summary(row))
                    continue
                metadata, settings = row[2], row[3]
                metadata = {} if metadata == "{}" else loads(metadata)
                settings = {} if settings == "{}" else loads(settings)
                if type(metadata) is not dict or type(settings) is not dict:
                    raise TypeError("not a JSON object")
                append(SessionSummary(new(SessionId, row[0]), row[1], metadata, settings,
                                      _fromiso(row[4]), _fromiso(row[5]),
                                      SessionStats(*row[6:12])))
            except (ValueError, TypeError) as exc:
                self._report(str(row[0]), f"unreadable row ({_short(exc)})")
        return result

    def summary_columns(self) -> SummaryColumns:
        """One query, column by column; ``readable`` and ``plain`` have checked ids, JSON,
        times and totals, so only the metadata is parsed here (times stay ISO strings)."""
        with self._mutex:
            bad = self._skipped()
            rows = self._read("SELECT id, system_prompt, metadata, created_at, updated_at, "
                              "message_count, turns, input_tokens, output_tokens, cost_usd, "
                              f"last_model FROM sessions WHERE readable = 1 {_NEWEST_FIRST}")
        if bad:
            rows = [row for row in rows if row[0] not in bad]
        columns: list[Any] = ([list(column) for column in zip(*rows, strict=True)]
                              or [[] for _ in range(11)])  # 11 separate lists
        # every text is a JSON object (``readable`` checked it): one parse of them all, as an
        # array, costs a fraction of one json.loads call per row
        try:
            columns[2] = _plain_loads(f"[{','.join(columns[2])}]")
        except (TypeError, ValueError):  # a row SQLite accepts and Python does not: go row
            return SummaryColumns.of(self.summaries())  # by row, reporting it as damaged
        return SummaryColumns(*columns)

    def list_ids(self) -> list[SessionId]:
        with self._mutex:
            bad = self._skipped()
            rows = self._read(f"SELECT id FROM sessions WHERE readable = 1 {_NEWEST_FIRST}")
        new = str.__new__  # SessionId without re-checking: ``readable`` checked the id
        return [new(SessionId, row[0]) for row in rows if row[0] not in bad]

    def count(self) -> int:
        with self._mutex:
            total = self._read("SELECT count(*) FROM sessions WHERE readable = 1")[0][0]
            return total - len(self._python_damaged() | self._not_utf8())

    def damaged(self) -> list[DamagedEntry]:
        """Rows that cannot be read: sessions, and messages of readable sessions (those SQL
        refuses, and those only Python refuses: every message row is read once)."""
        with self._mutex:
            entries = self._report_unreadable()
            skip = self._not_utf8()
            for row in self._read(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE readable = 1"):
                if row[0] in skip:
                    continue
                try:
                    self._summary(row)
                except (ValueError, TypeError) as exc:
                    entries.append(self._report(str(row[0]), f"unreadable row ({_short(exc)})"))
            entries += self._damaged_messages()
        return entries

    def _damaged_messages(self) -> list[DamagedEntry]:
        """Message rows SQL refuses (``_MESSAGE_OK``), then those Python refuses."""
        entries = [self._report(_shown(session_id), "unreadable message", f":{seq}")
                   for session_id, seq in self._read(
                       f"SELECT session_id, seq FROM messages WHERE NOT ({_MESSAGE_OK}) "
                       "ORDER BY session_id, seq")]
        for row in self._read(f"SELECT session_id, {_MESSAGE_COLUMNS} FROM messages "
                              f"WHERE {_MESSAGE_OK} ORDER BY session_id, seq"):
            try:
                self._message(row[1:])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                entries.append(self._report(_shown(row[0]), f"unreadable message "
                                            f"({_short(exc)})", f":{row[1]}"))
        return entries

    # --- assets (storage/_assets.py) ------------------------------------------------------

    def put_asset(self, sha256: str, media_type: str, data: bytes) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO assets (sha256, media_type, data, created_at) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO UPDATE SET "
                       "created_at = excluded.created_at",  # stored again: young again
                       (sha256, media_type, sqlite3.Binary(data), format_time(self._clock.now())))

    def get_asset(self, sha256: str, media_type: str) -> bytes | None:
        rows = self._read("SELECT data FROM assets WHERE sha256 = ?", (sha256,))
        return bytes(rows[0][0]) if rows and isinstance(rows[0][0], bytes) else None

    def asset_ids(self) -> set[str]:
        return {row[0] for row in self._read("SELECT sha256 FROM assets")}

    def asset_times(self) -> dict[str, float]:
        rows = self._read("SELECT sha256, created_at FROM assets")
        return {row[0]: parse_time(row[1]).timestamp() for row in rows}

    def assets_in_use(self) -> set[str]:
        """Every SHA-256 any message row names, readable or not (so none is collected)."""
        from ._assets import named_assets

        rows = self._read("SELECT extra FROM messages WHERE instr(extra, '\"asset\"') > 0")
        return named_assets(str(row[0]) for row in rows)

    def delete_assets(self, sha256s: Iterable[str]) -> int:
        with self._transaction() as db:
            return sum(db.execute("DELETE FROM assets WHERE sha256 = ?", (sha,)).rowcount
                       for sha in sha256s)

    def close(self) -> None:
        with self._mutex:
            self._db.close()


class _Unusual(Exception):
    """The fast append met a row it cannot vouch for: rolled back, the checked path runs."""


_MAX = 2**63 - 1
#: A message's share of the totals, only on a row SQL vouches Python reads (``readable`` and
#: ``plain``, stored columns: migration 008) and only when no total passes 64 bits; else no
#: row changes.
_GROW = ("UPDATE sessions SET updated_at = ?1, message_count = message_count + 1, "
         "turns = turns + ?2, input_tokens = input_tokens + ?3, "
         "output_tokens = output_tokens + ?4, cost_usd = cost_usd + ?5, "
         "last_model = coalesce(?6, last_model) WHERE id = ?7 AND readable AND plain "
         f"AND message_count < {_MAX} AND turns <= {_MAX} - ?2 AND input_tokens <= {_MAX} - ?3 "
         f"AND output_tokens <= {_MAX} - ?4 AND cost_usd + ?5 >= 0 "
         "AND cost_usd + ?5 < 9223372036854775808.0")
_NEXT_SEQ = "SELECT coalesce(max(seq) + 1, 0) FROM messages WHERE session_id = ?"
_INSERT_MESSAGE = (f"INSERT INTO messages (session_id, {_MESSAGE_COLUMNS}) "
                   f"VALUES ({', '.join('?' * 18)})")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape that could make a lone one


def _other_ids(rows: list[Any]) -> dict[int, dict[str, str]]:
    """seq -> ids (other than the chain hash, which is then added) of the rows ``plain``
    vouches for whose ``extra`` is exactly ``{"ids": {...}}`` of text to text: all parsed at
    once. Rows missing here take the checked path."""
    picked = [row for row in rows if row[17] == 1 and row[11] != "{}"]
    if not picked:
        return {}
    joined = ",".join(row[11] for row in picked)  # each one JSON object (``plain``)
    if _SURROGATE.search(joined):
        return {}
    try:
        parsed = _DECODER.decode(f"[{joined}]")
    except (ValueError, RecursionError):
        return {}
    if len(parsed) != len(picked):
        return {}
    found = {}
    for row, extra in zip(picked, parsed, strict=True):
        ids = extra.get("ids") if type(extra) is dict and len(extra) == 1 else None
        if (type(ids) is dict and HASH_KEY not in ids
                and all(type(key) is str and type(value) is str for key, value in ids.items())):
            if row[16] is not None:
                ids[HASH_KEY] = row[16]
            found[row[0]] = ids
    return found


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."

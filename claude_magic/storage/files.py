"""Directory storage: one readable JSON document per session, messages in a JSON-lines file.

Layout of a store directory::

    <id>.json              the header: format, version, id, system_prompt, metadata, settings,
                           created_at, updated_at, stats (totals kept so listings read no
                           messages), epoch, counted_bytes (how much of the messages file the
                           totals and updated_at count: readers count the rest, ``_lines.py``)
    <id>.messages.jsonl    one lean message per line, appended (``_lines.py``)
    .lock                  the inter-process lock every writer takes (``_dir_lock.py``)
    .index.json            a cache of parsed headers so listing 10,000 sessions stays fast;
                           safe to delete (see ``_headers.py``)
    .summaries.json        a cache of headers' fields for the metadata DataFrame
    .search.sqlite         the search index (``_dir_search.py``): a cache, rebuilt when
                           missing, damaged or not a regular file of this user
    .tmp-*                 temp files of atomic writes in flight

An append writes and fsyncs one line (``_dir_append.py``); headers are rewritten atomically
(temp file, fsync, ``os.replace``, fsync of the directory) by the other writes, and by an
append now and then. A torn last line left by a killed writer is never read and is cut off
before the next append. Files that cannot be read are reported (``StorageWarning`` and
:meth:`DirectoryStorage.damaged`) and skipped, never overwritten. Files that are not sessions
are ignored.

Nothing is read or written through a link: files are opened with ``O_NOFOLLOW | O_NONBLOCK``
and used only if ``fstat`` says they are regular files, scans use ``lstat``. A link, FIFO,
socket, device or directory at a store name is a damaged entry; writes that would replace it
raise :class:`DamagedSession`, ``delete`` removes a link itself (``unlink`` never follows),
never its target, and refuses a directory. An operation that raises changed nothing: every
file is staged (temp file, fsync) before the first rename, an appended line is cut off again
and a renamed file is put back from a hard link if a later step fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..checks import clone_json
from ..errors import DamagedSession, InvalidSessionId, SessionExists, SessionNotFound, StorageError
from ..message import Message, SessionStats, Status, stored_message_from_dict
from ..session import Session, SessionChanges, SessionId, SessionSummary
from ..times import MonotonicClock
from ._assets import AssetFolder
from ._dir_append import append as append_message
from ._dir_append import remembered_tip
from ._dir_lock import DirectoryLock
from ._headers import (
    HEADER_SUFFIX,
    JOURNAL_NAME,
    LOCK_NAME,
    MESSAGES_SUFFIX,
    Header,
    HeaderCache,
    NotASession,
    header_bytes,
    read_header,
)
from ._jsonio import (
    _DECODER,
    NotRegularFile,
    entry_problem,
    loads,
    open_regular,
    read_at,
    read_file,
    stage,
    sync_dir,
)
from ._lines import (
    BAD_LINE,
    SURROGATE_ESCAPE,
    checked,
    edit_lines,
    encode,
    expand,
    line_hash,
    tail_totals,
    totals,
)
from .base import (
    DamagedEntry,
    Position,
    Since,
    SummaryColumns,
    new_epoch,
    newest_first,
    warn_damaged,
)

_TAIL_CHUNK = 4096
_MICROSECOND = timedelta(microseconds=1)


class DirectoryStorage:
    """Sessions as files in one directory (the default, ``.claude_sessions/``)."""

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        self.root = Path(root).expanduser().resolve()  # a linked root is the user's choice
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create session directory {self.root}: "
                               f"{exc.strerror or exc}; choose a directory you can write") from None
        if not self.root.is_dir():
            raise StorageError(f"{self.root} is not a directory; choose a directory for sessions")
        self.location = str(self.root)
        self._lock_path = self.root / LOCK_NAME
        self._paths: dict[tuple[str, str], Path] = {}  # (id, suffix) -> checked path
        self._lock = DirectoryLock(self._lock_path, self.root, lock_timeout)
        self._mutex = threading.RLock()
        self._clock = MonotonicClock()
        self._headers = HeaderCache(self.root)
        # messages file name -> (key, damage found in it), for damaged()
        self._line_damage: dict[str, tuple[tuple[int, int, int], list[DamagedEntry]]] = {}
        self._warned_lines: set[str] = set()  # each damaged line is reported once
        self._assets = AssetFolder(self.root)  # images and PDFs: assets/<sha256>.<ext>
        self._tips: dict[SessionId, Any] = {}  # what the last append left (_dir_append.Tip)
        if os.path.lexists(self.root / JOURNAL_NAME):  # a rename a killed process left half
            from ._dir_ops import recover  # done is finished first (imported only then)

            recover(self)

    def __repr__(self) -> str:
        return f"DirectoryStorage({self.location!r})"

    # --- paths, locking, errors -----------------------------------------------------------

    def _header_path(self, session_id: SessionId) -> Path:
        return self._inside(session_id, HEADER_SUFFIX)

    def _messages_path(self, session_id: SessionId) -> Path:
        return self._inside(session_id, MESSAGES_SUFFIX)

    def _inside(self, session_id: SessionId, suffix: str) -> Path:
        path = self._paths.get((session_id, suffix))
        if path is not None:  # this very id was checked before
            return path
        session_id = SessionId(session_id)
        path = self.root / f"{session_id}{suffix}"
        if path.parent != self.root:  # cannot happen with a valid id; checked anyway
            raise InvalidSessionId(session_id, "it would leave the store directory")
        if len(self._paths) >= 4096:
            self._paths.clear()
        self._paths[(str(session_id), suffix)] = path
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            self._lock.acquire()
            try:
                yield
            finally:
                self._lock.release()

    @contextlib.contextmanager
    def _os_errors(self, doing: str, path: Path | None = None) -> Iterator[None]:
        """Turn an ``OSError`` into a one-line :class:`StorageError` naming the path and the
        cause; the operations undo their own partial work before it gets here."""
        try:
            yield
        except OSError as exc:
            where = exc.filename2 or exc.filename or path or self.root
            if os.path.basename(where).startswith(".tmp-"):
                where = os.path.dirname(where)  # a temp file: name the directory
            cause = exc.strerror or exc.__class__.__name__
            raise StorageError(f"cannot {doing}: {where}: {cause}; nothing was changed"
                               ) from None

    def _refuse_odd(self, session_id: SessionId) -> None:
        """:class:`DamagedSession` if a link or special file holds a name of this session."""
        for path in (self._header_path(session_id), self._messages_path(session_id)):
            problem = entry_problem(path)
            if problem is not None:
                raise DamagedSession(str(session_id), str(path), problem)

    def _read_header(self, session_id: SessionId) -> Header:
        """The header of an existing session as it was written (its totals count
        ``counted_bytes`` of the messages file: :meth:`_state` adds the rest), or
        SessionNotFound / DamagedSession."""
        with self._header_errors(session_id):
            raw = read_file(self._header_path(session_id))
            self._refuse_odd(session_id)  # its messages file must be a file too
        return self._parse_header(session_id, raw)

    @contextlib.contextmanager
    def _header_errors(self, session_id: SessionId) -> Iterator[None]:
        """Reading a header: SessionNotFound, DamagedSession or a one-line StorageError."""
        path = self._header_path(session_id)
        try:
            yield
        except FileNotFoundError:
            raise SessionNotFound(str(session_id)) from None
        except NotRegularFile as exc:
            raise DamagedSession(str(session_id), str(path), exc.strerror) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _parse_header(self, session_id: SessionId, raw: bytes) -> Header:
        path = self._header_path(session_id)
        try:
            return read_header(session_id, raw)
        except NotASession:
            raise DamagedSession(str(session_id), str(path),
                                 "not a claude_magic session file") from None
        except ValueError as exc:
            raise DamagedSession(str(session_id), str(path), str(exc)) from None

    def _state(self, session_id: SessionId) -> tuple[Header, int]:
        """The header with the session's totals and ``updated_at`` as they are now (the lines
        past ``counted_bytes`` counted in), and the offset after its last complete line."""
        header = self._read_header(session_id)
        path = self._messages_path(session_id)
        try:
            fd = open_regular(path)
        except FileNotFoundError:
            return header._replace(stats=SessionStats()) if header.counted else header, 0
        except NotRegularFile as exc:
            raise DamagedSession(str(session_id), str(path), exc.strerror) from None
        try:
            # a version-1 header (counted None) is recounted: a writer killed between its
            # line and its header left it one message behind
            stats, header.session.updated_at, end, _ = tail_totals(
                fd, os.fstat(fd).st_size, header.counted, header.stats,
                header.session.updated_at)
        finally:
            os.close(fd)
        return header._replace(stats=stats), end

    # --- messages -------------------------------------------------------------------------

    def _read_lines(self, session_id: SessionId) -> bytes:
        """The messages file's bytes (empty if there is none); DamagedSession for a link or
        special file."""
        path = self._messages_path(session_id)
        try:
            return read_file(path)
        except FileNotFoundError:
            return b""
        except NotRegularFile as exc:
            raise DamagedSession(str(session_id), str(path), exc.strerror) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _parse_lines(self, session_id: SessionId, raw: bytes, *, warn: bool = True,
                     first: int = 1) -> tuple[list[Message], list[DamagedEntry]]:
        """Every complete, readable message line (``first``: the number of the first line
        in ``raw``); unreadable lines are reported.

        A line as this store writes it (``_lines.expand`` of it: see
        :func:`stored_message_from_dict`) becomes a message without each field being checked
        again; any other line takes the checked
        path, which reports it if it is damaged."""
        path = self._messages_path(session_id)
        messages, damage = [], []
        lines = raw.split(b"\n")
        fast = SURROGATE_ESCAPE.search(raw) is None
        decode, trusted, append = _DECODER.decode, stored_message_from_dict, messages.append
        for number, line in enumerate(lines[:-1], start=first):  # the last piece: torn or empty
            if fast:
                try:
                    message = trusted(expand(decode(line.decode())))
                except (ValueError, RecursionError):
                    message = None
                if message is not None:
                    append(message)
                    continue
            if not line.strip():
                continue
            try:
                message = checked(loads(line))
            except BAD_LINE as exc:
                reason = f"unreadable message ({exc.__class__.__name__}: {str(exc)[:200]})"
                entry = DamagedEntry(f"{path}:{number}", reason, session_id)
                damage.append(entry)
                if warn and entry.location not in self._warned_lines:
                    self._warned_lines.add(entry.location)
                    warn_damaged(entry)
                continue
            append(message)
        return messages, damage

    def _tail_seq(self, session_id: SessionId, fd: int) -> tuple[int, int]:
        """Cut a torn last line; return (the seq after the last stored message, file size)."""
        size = os.fstat(fd).st_size
        tail, position = _tail_of(fd, size)
        if tail and not tail.endswith(b"\n"):  # a writer died mid-line: never acknowledged
            size = position + tail.rfind(b"\n") + 1
            os.ftruncate(fd, size)
            os.fsync(fd)
            tail = tail[: size - position]
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if not last:
            return 0, size
        try:
            seq = loads(last)["seq"]
            if type(seq) is int:
                return seq + 1, size
        except (ValueError, KeyError, TypeError):
            pass
        # the last line is damaged: continue after the highest readable seq
        messages, _ = self._parse_lines(session_id, read_at(fd, 0, size), warn=False)
        return max((m.seq or 0 for m in messages), default=-1) + 1, size

    # --- writing several files as one change ---------------------------------------------

    def _replace_all(self, files: list[tuple[Path, bytes | None]]) -> None:
        """Replace each path with its bytes (``None``: remove it) as one change: everything is
        staged first, and if a step fails the files already replaced are put back."""
        staged: list[str | None] = []
        done: list[tuple[Path, str | None, bool]] = []  # (path, backup, it existed)
        try:
            for _, data in files:
                staged.append(None if data is None else stage(self.root, data))
            for (path, _), tmp in zip(files, staged, strict=True):
                done.append(self._backup(path))
                if tmp is None:
                    path.unlink(missing_ok=True)
                else:
                    os.replace(tmp, path)
                    staged[staged.index(tmp)] = None
            sync_dir(self.root)
        except BaseException:
            for path, backup, existed in reversed(done):
                _restore(path, backup, existed)
            raise
        finally:
            for tmp in staged:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
            for _, backup, _ in done:
                if backup is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(backup)

    def _backup(self, path: Path) -> tuple[Path, str | None, bool]:
        """A hard link to ``path`` under a temp name, so a failed change can put it back."""
        if not os.path.lexists(path):
            return path, None, False
        backup = str(self.root / f".tmp-{secrets.token_hex(8)}")
        try:
            os.link(path, backup, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            return path, None, True  # no hard links here: the change cannot be undone
        return path, backup, True

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.checked_copy()
        header_path = self._header_path(stored.id)
        messages_path = self._messages_path(stored.id)
        lines = b"".join(encode(m) for m in stored.messages)
        with self._locked(), self._os_errors(f"store session {str(stored.id)!r}", header_path):
            self._refuse_odd(stored.id)  # a planted link is damage, never replaced silently
            if os.path.lexists(header_path) and not overwrite:
                raise SessionExists(str(stored.id))
            if not preserve_times:
                stored.created_at = stored.updated_at = self._clock.now()
            # no lines: an old session's (or a killed create's) messages file goes
            self._replace_all([(messages_path, lines or None), (header_path, header_bytes(
                stored, stored.stats, new_epoch(), len(lines)))])
            self._headers.forget(header_path.name)
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        try:
            header = self._read_header(session_id)
        except SessionNotFound:
            return None
        session, raw = header.session, self._read_lines(session_id)
        session.messages, _ = self._parse_lines(session_id, raw)
        if header.counted is not None and len(raw) > header.counted:  # lines it does not count
            start = header.counted if raw[header.counted - 1:header.counted] in (b"\n", b"") \
                else 0
            _, session.updated_at, _ = totals(raw[start:], SessionStats(), session.updated_at)
        return session

    def load_since(self, session_id: SessionId, since: Position | None) -> Since | None:
        """The header, and the messages file from where ``since`` stopped when the epoch in
        the header is still the one read then (only appends since), all read under the lock
        so the header and the lines agree. A store that cannot be locked (read-only) is read
        whole, with no position. (The session's ``updated_at`` is the header's own: the lines
        read here may not be all of those it does not count.)"""
        try:
            lock = self._locked()
            lock.__enter__()
        except StorageError:
            session = self.load(session_id)
            return None if session is None else (session, None, False)
        try:
            return self._read_since(session_id, since)
        finally:
            lock.__exit__(None, None, None)

    def _read_since(self, session_id: SessionId, since: Position | None) -> Since | None:
        try:
            header = self._read_header(session_id)
        except SessionNotFound:
            return None
        session, epoch = header.session, header.epoch
        path = self._messages_path(session_id)
        try:
            fd = open_regular(path)
        except FileNotFoundError:
            return session, None if epoch is None else Position(epoch, 1), False
        except NotRegularFile as exc:
            raise DamagedSession(str(session_id), str(path), exc.strerror) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            partial = (since is not None and epoch is not None and since.epoch == epoch
                       and since.inode == st.st_ino and since.offset <= st.st_size)
            offset, line = (since.offset, since.next) if partial else (0, 1)
            raw = read_at(fd, offset, st.st_size - offset)
        finally:
            os.close(fd)
        raw = raw[: raw.rfind(b"\n") + 1]  # complete lines only: a torn one is not ours yet
        session.messages, _ = self._parse_lines(session_id, raw, first=line)
        if epoch is None:  # written by a claude_magic that keeps no epoch: never trusted
            return session, None, False
        lines = line + raw.count(b"\n")
        return session, Position(epoch, lines, offset + len(raw), st.st_ino), partial

    def exists(self, session_id: SessionId) -> bool:
        return os.path.lexists(self._header_path(session_id))

    def chain_tip(self, session_id: SessionId) -> tuple[int, str] | None:
        """The seq after the newest message and that message's chain hash (``(0, "")`` when
        there is none), from the file's last line alone: what an append links to, in O(1).
        None when that line is torn, damaged or carries no hash (the caller reads all)."""
        remembered = remembered_tip(self, session_id)
        if remembered is not None:  # the file is as this object's last append left it
            return remembered
        path = self._messages_path(session_id)
        try:
            fd = open_regular(path)
        except FileNotFoundError:
            return 0, ""
        except OSError:
            return None
        try:
            tail, _ = _tail_of(fd, os.fstat(fd).st_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        if not tail:
            return 0, ""
        if not tail.endswith(b"\n"):
            return None  # a torn line: the append cuts it, the full read knows what is stored
        try:
            doc = loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])
            seq, found = doc["seq"], line_hash(doc)
        except (ValueError, TypeError, KeyError):
            return None
        return (seq + 1, found) if type(seq) is int and type(found) is str and found else None

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        path = self._header_path(session_id)
        with self._locked(), self._os_errors(f"update session {str(session_id)!r}", path):
            header, end = self._state(session_id)
            changes.apply(header.session, self._next_time(header))
            self._replace_all([(path, header_bytes(header.session, header.stats, header.epoch,
                                                   end))])
            self._headers.forget(path.name)

    def _next_time(self, header: Header) -> datetime:
        """The ``updated_at`` of a change now: after the session's last one, always."""
        return max(self._clock.now(), header.session.updated_at + _MICROSECOND)

    def append(self, session_id: SessionId, message: Message) -> Message:
        """One fsynced line (the commit); the header is rewritten only now and then
        (``_dir_append.py``)."""
        return append_message(self, session_id, message)

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        self._edit_lines(session_id, {}, (seq, status, error),
                         f"mark a message of {str(session_id)!r}")

    def _edit_lines(self, session_id: SessionId, hashes: Mapping[int, str],
                    mark: tuple[int, str, str | None] | None, doing: str) -> None:
        """Set messages' chain hashes and, with ``mark``, one's status and error
        (:func:`_lines.edit_lines`: other lines are kept byte for byte), then replace the
        messages file and the header, counting them under a new epoch, as one change; a mark
        renews ``updated_at`` (``mark`` and ``_dir_ops.set_hashes``)."""
        path = self._messages_path(session_id)
        with self._locked(), self._os_errors(doing, path):
            header, _ = self._state(session_id)
            lines = self._read_lines(session_id).split(b"\n")
            if not edit_lines(lines, hashes, mark) and mark is not None:
                raise IndexError(f"session {str(session_id)!r} has no message {mark[0]}")
            if mark is not None:
                header.session.updated_at = self._next_time(header)
            data = b"\n".join(lines)
            header_path = self._header_path(session_id)
            self._replace_all([(path, data), (header_path, header_bytes(
                header.session, header.stats, new_epoch(), len(data) - len(lines[-1])))])
            self._headers.forget(header_path.name)

    def delete(self, session_id: SessionId, *, if_updated_at: datetime | None = None) -> bool:
        """Remove a session's files; with ``if_updated_at`` only if its stored ``updated_at``
        is that (decided under the lock: prune never removes a session updated since).

        A link at a session's name is removed itself (``unlink`` never follows it), never
        its target; a directory there is refused.
        """
        header_path = self._header_path(session_id)
        with self._locked(), self._os_errors(f"delete session {str(session_id)!r}",
                                             header_path):
            if if_updated_at is not None:
                try:
                    header, _ = self._state(session_id)
                except (SessionNotFound, DamagedSession):
                    return False
                if header.session.updated_at != if_updated_at:
                    return False
            existed = self._remove(session_id)
            self._headers.forget(header_path.name)
        return existed

    def _remove(self, session_id: SessionId) -> bool:
        """Unlink the header (the commit), then the messages file; True if there was one."""
        header_path, messages_path = self._header_path(session_id), self._messages_path(session_id)
        for path in (header_path, messages_path):
            if entry_problem(path) == "a directory, not a file":
                raise DamagedSession(str(session_id), str(path),
                                     "a directory, not a file; remove it yourself")
        try:
            header_path.unlink()  # the session is gone from here on
        except FileNotFoundError:
            existed = False
        else:
            existed = True
        with contextlib.suppress(OSError):  # after the commit: a leftover is harmless
            messages_path.unlink(missing_ok=True)
            if existed:
                sync_dir(self.root)
        return existed

    def clear(self) -> int:
        with self._locked():
            ids = [e.session_id for e in self._headers.scan() if e.updated is not None]
            for done, session_id in enumerate(ids):
                try:
                    self._remove(session_id)
                except OSError as exc:
                    raise StorageError(
                        f"cannot clear {self.root}: {exc.filename or self.root}: "
                        f"{exc.strerror or exc}; {done} of {len(ids)} sessions were removed "
                        "before it failed") from None
            self._headers.reset()
        return len(ids)

    def summaries(self) -> list[SessionSummary]:
        with self._mutex:
            cached = [e.summary for e in self._headers.scan(summaries=True)
                      if e.updated is not None and e.summary is not None]
            rows = [  # copies, so callers cannot change the cache
                SessionSummary(s.id, s.system_prompt, clone_json(s.metadata),
                               clone_json(s.settings), s.created_at, s.updated_at,
                               s.stats.copy())
                for s in cached
            ]
        return newest_first(rows)

    def summary(self, session_id: SessionId) -> SessionSummary | None:
        try:
            (session, stats, _, _), _ = self._state(session_id)
        except SessionNotFound:
            return None
        return SessionSummary(session.id, session.system_prompt, session.metadata,
                              session.settings, session.created_at, session.updated_at, stats)

    def summary_columns(self) -> SummaryColumns:
        """From the header cache's summary rows (``.summaries.json`` when still valid):
        no object per session; metadata copied, times as ISO-8601 strings."""
        with self._mutex:
            rows = self._headers.columns()
            metadata = [clone_json(row[2]) for row in rows]
        columns = list(zip(*rows, strict=True)) if rows else [()] * 12
        return SummaryColumns([str(i) for i in columns[0]], list(columns[1]), metadata,
                              *(list(column) for column in columns[4:6]),
                              *(list(column) for column in columns[6:]))

    def list_ids(self) -> list[SessionId]:
        with self._mutex:
            return self._headers.order()

    def count(self) -> int:
        with self._mutex:
            return sum(e.updated is not None for e in self._headers.scan())

    def damaged(self) -> list[DamagedEntry]:
        """Damaged headers, and unreadable lines in the messages of readable sessions."""
        with self._mutex:
            entries = self._headers.scan()
            found = [e.damage for e in entries if e.damage is not None]
            found.extend(self._headers.specials)
            for entry in entries:
                if entry.updated is not None:
                    found.extend(self._messages_damage(entry.session_id))
        return found

    def _messages_damage(self, session_id: SessionId) -> list[DamagedEntry]:
        path = self._messages_path(session_id)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return []
        if not stat.S_ISREG(st.st_mode):
            return []  # a link or special file: the scan reported it
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._line_damage.get(path.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            _, damage = self._parse_lines(session_id, read_file(path))
        except OSError:
            return []  # gone, or swapped for a link, since lstat
        self._line_damage[path.name] = (key, damage)
        return damage

    # --- assets (storage/_assets.py) ------------------------------------------------------

    def put_asset(self, sha256: str, media_type: str, data: bytes) -> None:
        with self._os_errors("store an asset", self._assets.folder):
            self._assets.put_asset(sha256, media_type, data)

    def get_asset(self, sha256: str, media_type: str) -> bytes | None:
        return self._assets.get_asset(sha256, media_type)

    def asset_ids(self) -> set[str]:
        return self._assets.asset_ids()

    def asset_times(self) -> dict[str, float]:
        return self._assets.asset_times()

    def delete_assets(self, sha256s: Iterable[str]) -> int:
        with self._locked():
            return self._assets.delete_assets(sha256s)

    def close(self) -> None:
        with self._mutex:
            self._headers.reset()
            self._line_damage.clear()
            self._tips.clear()
            self._lock.close()


def _tail_of(fd: int, size: int) -> tuple[bytes, int]:
    """The end of a ``size``-byte file holding at least its last two line ends (or all of
    it), and the offset it starts at."""
    tail, position, step = b"", size, _TAIL_CHUNK
    while position > 0 and tail.count(b"\n") < 2:
        step = min(step * 2, position)
        position -= step
        tail = read_at(fd, position, step) + tail
    return tail, position


def _restore(path: Path, backup: str | None, existed: bool) -> None:
    """Put back what ``path`` was before a failed change (best effort)."""
    with contextlib.suppress(OSError):
        if backup is not None:
            os.replace(backup, path)
        elif not existed:
            path.unlink(missing_ok=True)

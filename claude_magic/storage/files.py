"""Directory storage: one readable JSON document per session, messages in a JSON-lines file.

Layout of a store directory::

    <id>.json              the header: format, version, id, system_prompt, metadata, settings,
                           created_at, updated_at, stats (totals kept so listings read no messages)
    <id>.messages.jsonl    one message per line, appended (a message costs one short write)
    .lock                  the inter-process lock every writer takes
    .index.json            a cache of parsed headers so listing 10,000 sessions stays fast;
                           safe to delete (see ``_headers.py``)
    .tmp-*                 temp files of atomic writes in flight

Headers are rewritten atomically (temp file, fsync, ``os.replace``, fsync of the directory);
messages are appended and fsynced, and a torn last line left by a killed writer is cut off
before the next append. Files that cannot be read are reported (``StorageWarning`` and
:meth:`DirectoryStorage.damaged`) and skipped, never overwritten. Files that are not sessions
are ignored.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..checks import clone_json
from ..errors import DamagedSession, InvalidSessionId, SessionExists, SessionNotFound, StorageError
from ..message import Message, SessionStats, Status
from ..session import Session, SessionChanges, SessionId, SessionSummary
from ..times import MonotonicClock
from ._headers import HEADER_SUFFIX, HeaderCache, NotASession, header_bytes, parse_header
from ._jsonio import dumps, loads, sync_dir, write_atomic
from .base import DamagedEntry, SummaryColumns, newest_first, warn_damaged

MESSAGES_SUFFIX = ".messages.jsonl"
_TAIL_CHUNK = 4096


class DirectoryStorage:
    """Sessions as files in one directory (the default, ``.claude_sessions/``)."""

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        from filelock import FileLock

        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create session directory {self.root}: "
                               f"{exc.strerror or exc}; choose a directory you can write") from None
        if not self.root.is_dir():
            raise StorageError(f"{self.root} is not a directory; choose a directory for sessions")
        self.location = str(self.root)
        self._lock = FileLock(self.root / ".lock", timeout=lock_timeout, poll_interval=0.002)
        self._lock_timeout = lock_timeout
        self._mutex = threading.RLock()
        self._clock = MonotonicClock()
        self._headers = HeaderCache(self.root)
        # messages file name -> (key, damage found in it), for damaged()
        self._line_damage: dict[str, tuple[tuple[int, int, int], list[DamagedEntry]]] = {}
        self._warned_lines: set[str] = set()  # each damaged line is reported once

    def __repr__(self) -> str:
        return f"DirectoryStorage({self.location!r})"

    # --- paths, locking -------------------------------------------------------------------

    def _header_path(self, session_id: SessionId) -> Path:
        return self._inside(session_id, HEADER_SUFFIX)

    def _messages_path(self, session_id: SessionId) -> Path:
        return self._inside(session_id, MESSAGES_SUFFIX)

    def _inside(self, session_id: SessionId, suffix: str) -> Path:
        session_id = SessionId(session_id)
        path = self.root / f"{session_id}{suffix}"
        if path.parent != self.root:  # cannot happen with a valid id; checked anyway
            raise InvalidSessionId(session_id, "it would leave the store directory")
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import Timeout

        with self._mutex:
            try:
                self._lock.acquire()
            except Timeout:
                raise StorageError(
                    f"session directory {self.root} stayed locked for {self._lock_timeout:.0f}s; "
                    "is another process stuck? remove its .lock file if none is running"
                ) from None
            except OSError as exc:
                raise StorageError(f"cannot lock session directory {self.root}: "
                                   f"{exc.strerror or exc}") from None
            try:
                yield
            finally:
                self._lock.release()

    def _write_header(self, session: Session, stats: SessionStats, *,
                      sync_rename: bool = True) -> None:
        path = self._header_path(session.id)
        write_atomic(self.root, path, header_bytes(session, stats), sync_rename=sync_rename)
        self._headers.forget(path.name)

    def _read_header(self, session_id: SessionId) -> tuple[Session, SessionStats]:
        """The header of an existing session, or SessionNotFound / DamagedSession."""
        path = self._header_path(session_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise SessionNotFound(str(session_id)) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return parse_header(session_id, raw)
        except NotASession:
            raise DamagedSession(str(session_id), str(path),
                                 "not a claude_magic session file") from None
        except ValueError as exc:
            raise DamagedSession(str(session_id), str(path), str(exc)) from None

    # --- messages -------------------------------------------------------------------------

    def _read_messages(self, session_id: SessionId, *, warn: bool = True
                       ) -> tuple[list[Message], list[DamagedEntry]]:
        """Every complete, readable message line; unreadable lines are reported."""
        path = self._messages_path(session_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return [], []
        messages, damage = [], []
        lines = raw.split(b"\n")
        for number, line in enumerate(lines[:-1], start=1):  # the last piece is torn or empty
            if not line.strip():
                continue
            try:
                data = loads(line)
                message = Message.from_dict(data)
                if type(message.seq) is not int:
                    raise TypeError("seq must be an integer")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                entry = DamagedEntry(f"{path}:{number}", f"unreadable message ({exc})",
                                     session_id)
                damage.append(entry)
                if warn and entry.location not in self._warned_lines:
                    self._warned_lines.add(entry.location)
                    warn_damaged(entry)
                continue
            messages.append(message)
        return messages, damage

    def _next_seq(self, session_id: SessionId, path: Path) -> int:
        """Cut a torn last line, then return the seq after the last stored message."""
        try:
            handle = open(path, "r+b")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return 0
        with handle:
            size = handle.seek(0, os.SEEK_END)
            tail, position, step = b"", size, _TAIL_CHUNK
            while position > 0 and tail.count(b"\n") < 2:
                step = min(step * 2, position)
                position -= step
                handle.seek(position)
                tail = handle.read(step) + tail
            if tail and not tail.endswith(b"\n"):  # a writer died mid-line: never acknowledged
                keep = position + tail.rfind(b"\n") + 1
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
                tail = tail[: keep - position]
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if not last:
            return 0
        try:
            seq = loads(last)["seq"]
            if type(seq) is int:
                return seq + 1
        except (ValueError, KeyError, TypeError):
            pass
        # the last line is damaged: continue after the highest readable seq
        messages, _ = self._read_messages(session_id, warn=False)
        return max((m.seq or 0 for m in messages), default=-1) + 1

    @staticmethod
    def _message_line(message: Message) -> bytes:
        return dumps(message.to_dict()) + b"\n"

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.checked_copy()
        header_path = self._header_path(stored.id)
        messages_path = self._messages_path(stored.id)
        lines = b"".join(self._message_line(m) for m in stored.messages)
        with self._locked():
            if header_path.exists() and not overwrite:
                raise SessionExists(str(stored.id))
            if not preserve_times:
                stored.created_at = stored.updated_at = self._clock.now()
            header = header_bytes(stored, stored.stats)
            if lines:
                write_atomic(self.root, messages_path, lines)
            elif messages_path.exists():  # an old session's, or a killed create's
                messages_path.unlink()
            write_atomic(self.root, header_path, header)
            self._headers.forget(header_path.name)
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        try:
            session, _ = self._read_header(session_id)
        except SessionNotFound:
            return None
        session.messages, _ = self._read_messages(session_id)
        return session

    def exists(self, session_id: SessionId) -> bool:
        return self._header_path(session_id).exists()

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._locked():
            session, stats = self._read_header(session_id)
            changes.apply(session, self._clock.now())
            self._write_header(session, stats)

    def append(self, session_id: SessionId, message: Message) -> Message:
        stored = message.copy()  # checks every field: a bad message is refused here
        path = self._messages_path(session_id)
        with self._locked():
            session, stats = self._read_header(session_id)
            stored.seq = self._next_seq(session_id, path)
            # the line and the new totals are computed before anything is written, so a
            # failure leaves the session as it was
            line = self._message_line(stored)
            if stored.seq != stats.message_count:
                # totals went stale (a writer died between its two writes): recount
                stats = SessionStats.of(self._read_messages(session_id, warn=False)[0])
            stats.add(stored)
            with open(path, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            session.updated_at = self._clock.now()
            # the fsynced line is the commit; the header only carries totals and updated_at,
            # which the next append recounts if a power cut loses this rename
            self._write_header(session, stats, sync_rename=False)
        return stored.copy()

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        path = self._messages_path(session_id)
        with self._locked():
            session, stats = self._read_header(session_id)
            try:
                lines = path.read_bytes().split(b"\n")
            except FileNotFoundError:
                lines = []
            for index, line in enumerate(lines[:-1]):  # complete lines only
                doc = _loads_or_none(line)
                if doc is not None and type(doc.get("seq")) is int and doc["seq"] == seq:
                    doc["status"], doc["error"] = status, error
                    lines[index] = dumps(doc)
                    break
            else:
                raise IndexError(f"session {str(session_id)!r} has no message {seq}")
            write_atomic(self.root, path, b"\n".join(lines))  # other lines kept byte for byte
            session.updated_at = self._clock.now()
            self._write_header(session, stats)

    def delete(self, session_id: SessionId) -> bool:
        header_path = self._header_path(session_id)
        with self._locked():
            try:
                header_path.unlink()  # the session is gone from here on
                existed = True
            except FileNotFoundError:
                existed = False
            with contextlib.suppress(FileNotFoundError):
                self._messages_path(session_id).unlink()
            if existed:
                sync_dir(self.root)
            self._headers.forget(header_path.name)
        return existed

    def clear(self) -> int:
        with self._locked():
            ids = [e.session_id for e in self._headers.scan() if e.updated is not None]
            for session_id in ids:
                self._header_path(session_id).unlink(missing_ok=True)
                self._messages_path(session_id).unlink(missing_ok=True)
            sync_dir(self.root)
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
            session, stats = self._read_header(session_id)  # the header carries the totals
        except SessionNotFound:
            return None
        return SessionSummary(session.id, session.system_prompt, session.metadata,
                              session.settings, session.created_at, session.updated_at, stats)

    def summary_columns(self) -> SummaryColumns:
        return SummaryColumns.of(self.summaries())

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
            for entry in entries:
                if entry.updated is not None:
                    found.extend(self._messages_damage(entry.session_id))
        return found

    def _messages_damage(self, session_id: SessionId) -> list[DamagedEntry]:
        path = self._messages_path(session_id)
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._line_damage.get(path.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        _, damage = self._read_messages(session_id)
        self._line_damage[path.name] = (key, damage)
        return damage

    def close(self) -> None:
        with self._mutex:
            self._headers.reset()
            self._line_damage.clear()


def _loads_or_none(line: bytes) -> dict[str, Any] | None:
    try:
        doc = loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None

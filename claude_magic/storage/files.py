"""Directory storage: one readable JSON document per session, messages in a JSON-lines file.

Layout of a store directory::

    <id>.json              the header: format, version, id, system_prompt, metadata, settings,
                           created_at, updated_at, stats (totals kept so listings read no messages)
    <id>.messages.jsonl    one message per line, appended (a message costs one short write)
    .lock                  the inter-process lock every writer takes
    .tmp-*                 temp files of atomic writes in flight

Headers are rewritten atomically (temp file, fsync, ``os.replace``, fsync of the directory);
messages are appended and fsynced, and a torn last line left by a killed writer is cut off
before the next append. Files that cannot be read are reported (``StorageWarning`` and
:meth:`DirectoryStorage.damaged`) and skipped, never overwritten. Files that are not sessions
are ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DamagedSession, InvalidSessionId, SessionExists, SessionNotFound, StorageError
from ..session import (
    Message,
    MonotonicClock,
    Session,
    SessionChanges,
    SessionId,
    SessionStats,
    SessionSummary,
    Status,
    check_json_value,
    check_metadata,
    clone_json,
    parse_time,
)
from .base import DamagedEntry, newest_first, warn_damaged

FORMAT = "claude-magic/session"
VERSION = 1
HEADER_SUFFIX = ".json"
MESSAGES_SUFFIX = ".messages.jsonl"
_TAIL_CHUNK = 1 << 16


class _NotASession(Exception):
    """A JSON file in the directory that is not ours: ignored."""


class DirectoryStorage:
    """Sessions as files in one directory (the default, ``.claude_sessions/``)."""

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> None:
        from filelock import FileLock

        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create session directory {self.root}: {exc.strerror}") from None
        if not self.root.is_dir():
            raise StorageError(f"{self.root} is not a directory; choose a directory for sessions")
        self.location = str(self.root)
        self._lock = FileLock(self.root / ".lock", timeout=lock_timeout, poll_interval=0.002)
        self._lock_timeout = lock_timeout
        self._mutex = threading.RLock()
        self._clock = MonotonicClock()
        # file name -> ((inode, mtime_ns, size), summary or damage): re-read only what changed
        self._cache: dict[str, tuple[tuple[int, int, int], SessionSummary | DamagedEntry]] = {}

    def __repr__(self) -> str:
        return f"DirectoryStorage({self.location!r})"

    # --- paths and low-level I/O ----------------------------------------------------------

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
            try:
                yield
            finally:
                self._lock.release()

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- header documents -----------------------------------------------------------------

    @staticmethod
    def _header_bytes(session: Session, stats: SessionStats) -> bytes:
        doc = {"format": FORMAT, "version": VERSION, **session.header_dict(),
               "stats": stats.to_dict()}
        return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode()

    def _parse_header(self, session_id: SessionId, raw: bytes) -> tuple[Session, SessionStats]:
        """Header bytes to (session without messages, stats); raises on damage."""
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(doc, dict) or ("format" not in doc and "id" not in doc):
            raise _NotASession
        if "format" in doc:
            if doc["format"] != FORMAT:
                raise _NotASession
            if doc.get("version") != VERSION:
                raise ValueError(f"format version {doc.get('version')!r} is not supported "
                                 f"(this claude_magic reads version {VERSION})")
        if doc.get("id") != session_id:
            raise ValueError(f"the id inside ({doc.get('id')!r}) differs from the file name")
        try:
            session = Session(
                id=session_id,
                system_prompt=_optional_str(doc.get("system_prompt"), "system_prompt"),
                metadata=check_metadata(doc.get("metadata") or {}),
                settings=check_json_value(doc.get("settings") or {}, "settings"),
                created_at=parse_time(doc["created_at"]),
                updated_at=parse_time(doc.get("updated_at") or doc["created_at"]),
            )
            stats = SessionStats.from_dict(doc.get("stats"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad field ({exc})") from None
        return session, stats

    def _read_header(self, session_id: SessionId) -> tuple[Session, SessionStats]:
        """The header of an existing session, or SessionNotFound / DamagedSession."""
        path = self._header_path(session_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise SessionNotFound(session_id) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        try:
            return self._parse_header(session_id, raw)
        except _NotASession:
            raise DamagedSession(session_id, str(path), "not a claude_magic session file") from None
        except ValueError as exc:
            raise DamagedSession(session_id, str(path), str(exc)) from None

    def _scan(self) -> list[SessionSummary | DamagedEntry]:
        """Every session file's summary or damage, re-reading only files that changed."""
        results: list[SessionSummary | DamagedEntry] = []
        fresh: dict[str, tuple[tuple[int, int, int], SessionSummary | DamagedEntry]] = {}
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise StorageError(
                f"cannot list session directory {self.root}: {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            if not name.endswith(HEADER_SUFFIX) or name.startswith("."):
                continue
            try:
                session_id = SessionId(name[: -len(HEADER_SUFFIX)])
                st = entry.stat()
            except (InvalidSessionId, FileNotFoundError):
                continue
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                item = cached[1]
            else:
                item = self._summarize(session_id, Path(entry.path))
                if item is None:
                    continue
                if isinstance(item, DamagedEntry):
                    warn_damaged(item)
            fresh[name] = (key, item)
            results.append(item)
        self._cache = fresh
        return results

    def _summarize(self, session_id: SessionId, path: Path) -> SessionSummary | DamagedEntry | None:
        try:
            raw = path.read_bytes()
        except OSError:
            return None  # deleted while we looked
        try:
            session, stats = self._parse_header(session_id, raw)
        except _NotASession:
            return None
        except ValueError as exc:
            return DamagedEntry(str(path), str(exc), session_id)
        return SessionSummary(session.id, session.system_prompt, session.metadata,
                              session.settings, session.created_at, session.updated_at, stats)

    # --- messages -------------------------------------------------------------------------

    def _read_messages(self, session_id: SessionId) -> list[Message]:
        path = self._messages_path(session_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        messages = []
        lines = raw.split(b"\n")
        complete = lines[:-1]  # a last piece without newline is a torn, unacknowledged write
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                messages.append(Message.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                warn_damaged(DamagedEntry(f"{path}:{number}", f"unreadable message ({exc})",
                                          session_id))
        return messages

    def _next_seq(self, path: Path, fallback: int) -> int:
        """Cut a torn last line, then return the seq after the last stored message."""
        try:
            handle = open(path, "r+b")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return 0
        with handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            tail = b""
            position = size
            while position > 0 and tail.count(b"\n") < 2:
                step = min(_TAIL_CHUNK, position)
                position -= step
                handle.seek(position)
                tail = handle.read(step) + tail
            if not tail.endswith(b"\n"):
                keep = position + tail.rfind(b"\n") + 1
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
                tail = tail[: keep - position]
            last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if not last:
            return 0
        try:
            return int(json.loads(last)["seq"]) + 1
        except (ValueError, KeyError, TypeError):
            return fallback

    @staticmethod
    def _message_line(message: Message) -> bytes:
        return (json.dumps(message.to_dict(), ensure_ascii=False) + "\n").encode()

    # --- the Storage protocol -------------------------------------------------------------

    def create(self, session: Session, *, overwrite: bool = False,
               preserve_times: bool = False) -> Session:
        stored = session.copy()
        header_path = self._header_path(stored.id)
        with self._locked():
            if header_path.exists() and not overwrite:
                raise SessionExists(stored.id)
            if not preserve_times:
                stored.created_at = stored.updated_at = self._clock.now()
            for seq, message in enumerate(stored.messages):
                message.seq = seq
            lines = b"".join(self._message_line(m) for m in stored.messages)
            self._write_atomic(self._messages_path(stored.id), lines)
            self._write_atomic(header_path, self._header_bytes(stored, stored.stats))
        return stored

    def load(self, session_id: SessionId) -> Session | None:
        try:
            session, _ = self._read_header(session_id)
        except SessionNotFound:
            return None
        session.messages = self._read_messages(session_id)
        return session

    def exists(self, session_id: SessionId) -> bool:
        return self._header_path(session_id).exists()

    def update(self, session_id: SessionId, changes: SessionChanges) -> None:
        with self._locked():
            session, stats = self._read_header(session_id)
            changes.apply(session, self._clock.now())
            self._write_atomic(self._header_path(session_id), self._header_bytes(session, stats))

    def append(self, session_id: SessionId, message: Message) -> Message:
        stored = Message.from_dict(message.to_dict())
        path = self._messages_path(session_id)
        with self._locked():
            session, stats = self._read_header(session_id)
            stored.seq = self._next_seq(path, fallback=stats.message_count)
            with open(path, "ab") as handle:
                handle.write(self._message_line(stored))
                handle.flush()
                os.fsync(handle.fileno())
            if stored.seq == stats.message_count:
                stats.add(stored)
            else:  # totals went stale (a writer died between its two writes): recount
                stats = SessionStats.of(self._read_messages(session_id))
            session.updated_at = self._clock.now()
            self._write_atomic(self._header_path(session_id), self._header_bytes(session, stats))
        return stored

    def mark(self, session_id: SessionId, seq: int, status: Status,
             error: str | None = None) -> None:
        path = self._messages_path(session_id)
        with self._locked():
            session, stats = self._read_header(session_id)
            lines = path.read_bytes().split(b"\n") if path.exists() else []
            for index, line in enumerate(lines):
                doc = _loads_or_none(line)
                if doc is not None and doc.get("seq") == seq:
                    doc["status"], doc["error"] = status, error
                    lines[index] = json.dumps(doc, ensure_ascii=False).encode()
                    break
            else:
                raise IndexError(f"session {session_id!r} has no message {seq}")
            self._write_atomic(path, b"\n".join(lines))  # other lines kept byte for byte
            session.updated_at = self._clock.now()
            self._write_atomic(self._header_path(session_id), self._header_bytes(session, stats))

    def delete(self, session_id: SessionId) -> bool:
        header_path = self._header_path(session_id)
        with self._locked():
            existed = header_path.exists()
            with contextlib.suppress(FileNotFoundError):
                header_path.unlink()  # the session is gone from here on
            with contextlib.suppress(FileNotFoundError):
                self._messages_path(session_id).unlink()
            if existed:
                self._sync_dir()
        return existed

    def clear(self) -> int:
        with self._locked():
            ids = [item.id for item in self._scan() if isinstance(item, SessionSummary)]
            for session_id in ids:
                self._header_path(session_id).unlink(missing_ok=True)
                self._messages_path(session_id).unlink(missing_ok=True)
            self._sync_dir()
        return len(ids)

    def summaries(self) -> list[SessionSummary]:
        with self._mutex:
            cached = [item for item in self._scan() if isinstance(item, SessionSummary)]
        rows = [  # copies, so callers cannot change the cache
            replace(s, metadata=clone_json(s.metadata), settings=clone_json(s.settings),
                    stats=replace(s.stats))
            for s in cached
        ]
        return newest_first(rows)

    def list_ids(self) -> list[SessionId]:
        return [s.id for s in self.summaries()]

    def count(self) -> int:
        with self._mutex:
            return sum(isinstance(item, SessionSummary) for item in self._scan())

    def damaged(self) -> list[DamagedEntry]:
        with self._mutex:
            return [item for item in self._scan() if isinstance(item, DamagedEntry)]

    def close(self) -> None:
        self._cache.clear()


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _loads_or_none(line: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


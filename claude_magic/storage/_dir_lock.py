"""The directory store's inter-process lock: ``flock`` on ``.lock``, its descriptor kept open.

``filelock`` opens, locks, unlocks and closes the lock file on every acquisition (about 80 us
here); this keeps one descriptor per store object and only calls ``flock`` (about 1 us). The
lock is the same ``flock`` lock ``filelock`` takes on Unix, so processes using either exclude
each other. Before it is used the descriptor is checked: a descriptor inherited through
``fork`` is never used (the parent's lock would be shared), and after each acquisition the
path must still name the locked file (one removed or replaced meanwhile is opened again).
Where ``fcntl`` is missing (Windows) ``filelock`` is used as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import weakref
from pathlib import Path

from ..errors import StorageError
from ._jsonio import NotRegularFile, entry_problem, open_regular

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

POLL_SECONDS = 0.002


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class DirectoryLock:
    """A reentrant inter-process lock on one store directory's ``.lock`` file."""

    def __init__(self, path: Path, root: Path, timeout: float) -> None:
        self.path, self.root, self.timeout = path, root, timeout
        self._fd: int | None = None
        self._closer: weakref.finalize | None = None
        self._pid = 0
        self._depth = 0
        self._fallback = None
        if fcntl is None:  # pragma: no cover - Windows
            from filelock import FileLock

            self._fallback = FileLock(path, timeout=timeout)

    def acquire(self) -> None:
        """Take the lock (waiting up to ``timeout``); :class:`StorageError` naming why not."""
        if self._depth and self._pid == os.getpid():
            self._depth += 1
            return
        if self._fallback is not None:  # pragma: no cover - Windows
            self._acquire_fallback()
            self._pid = os.getpid()
        else:
            self._acquire_flock()
        self._depth = 1

    def release(self) -> None:
        if self._pid != os.getpid():
            return  # a forked child leaving a block its parent entered: the parent's lock
        self._depth -= 1
        if self._depth:
            return
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
        elif self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the descriptor (the lock is not held by then)."""
        if self._fd is not None and self._pid == os.getpid() and not self._depth:
            self._drop()

    def _acquire_flock(self) -> None:
        deadline = None
        while True:
            fd = self._descriptor()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now > deadline:
                    raise self._stuck() from None
                time.sleep(POLL_SECONDS)
                continue
            except OSError as exc:
                raise self._cannot(exc.strerror or str(exc)) from None
            try:
                named = self._still_named(fd)
            except OSError as exc:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise self._cannot(exc.strerror or str(exc)) from None
            if named:
                return
            fcntl.flock(fd, fcntl.LOCK_UN)  # removed or replaced while we waited: open again
            self._drop()

    def _descriptor(self) -> int:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        if self._fd is not None:  # never the parent's descriptor after a fork (its lock is
            self._drop()  # shared); closing this copy leaves the parent's lock held
            self._depth = 0
        try:
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        except NotRegularFile as exc:
            raise self._cannot(f"{self.path} is {exc.strerror}; remove it") from None
        except OSError as exc:
            raise self._cannot(exc.strerror or str(exc)) from None
        self._fd, self._pid = fd, os.getpid()
        self._closer = weakref.finalize(self, _close_quietly, fd)  # a store never closed
        return fd

    def _still_named(self, fd: int) -> bool:
        """Whether the lock's path still names the open (locked) file."""
        try:
            here, there = os.fstat(fd), os.lstat(self.path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return here.st_nlink > 0 and (here.st_ino, here.st_dev) == (there.st_ino, there.st_dev)

    def _drop(self) -> None:
        if self._fd is not None:
            if self._closer is not None:
                self._closer.detach()
            os.close(self._fd)
            self._fd = None

    def _stuck(self) -> StorageError:
        return StorageError(
            f"session directory {self.root} stayed locked for {self.timeout:.0f}s; "
            "is another process stuck? remove its .lock file if none is running")

    def _cannot(self, why: str) -> StorageError:
        return StorageError(f"cannot lock session directory {self.root}: {why}")

    def _acquire_fallback(self) -> None:  # pragma: no cover - Windows
        from filelock import Timeout

        problem = entry_problem(self.path)
        if problem is not None:
            raise self._cannot(f"{self.path} is {problem}; remove it")
        try:
            self._fallback.acquire(poll_interval=POLL_SECONDS)
        except Timeout:
            raise self._stuck() from None
        except OSError as exc:
            raise self._cannot(exc.strerror or str(exc)) from None

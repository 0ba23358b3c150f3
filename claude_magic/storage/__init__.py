"""Where sessions live: choose a store with :class:`StorageBackend` or a string spec.

``StorageBackend.file(dir)``, ``StorageBackend.sqlite(path)``, ``StorageBackend.memory()``,
``StorageBackend.postgres(url)``, or the equivalent strings ``"<dir>"``, ``"sqlite:///<path>"``,
``"memory"`` and ``"postgresql://user@host/db"``. Each store module is imported only when a
store of its kind is opened.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import StorageError

if TYPE_CHECKING:
    from .base import Storage

Kind = Literal["file", "sqlite", "memory", "postgres"]

#: What a spec string may be, for error lines.
KNOWN_SPECS = ("a directory path, sqlite:///path.db, memory or "
               "postgresql://user@host/db")
#: ``scheme://`` at the start of a spec (a directory path never has one).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _shown(text: str) -> str:
    """A spec for an error line: masked like a URL with a password, and bounded."""
    head, sep, tail = text.partition("://")
    tail = tail.rsplit("@", 1)[-1] if "@" in tail else tail
    shown = f"{head}{sep}{tail}"
    return repr(shown if len(shown) <= 80 else shown[:77] + "...")


@dataclass(frozen=True, slots=True)
class StorageBackend:
    """A description of a store; :meth:`open` makes the store object."""

    kind: Kind
    path: str | None = None

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> StorageBackend:
        """A directory of JSON files (created when missing)."""
        return cls("file", os.fspath(path))

    @classmethod
    def sqlite(cls, path: str | os.PathLike[str]) -> StorageBackend:
        """A SQLite database file (created when missing)."""
        return cls("sqlite", os.fspath(path))

    @classmethod
    def postgres(cls, url: str) -> StorageBackend:
        """A PostgreSQL team store, ``postgresql://user@host/db`` (needs the ``postgres`` extra;
        the password is never shown: use ``PGPASSWORD`` / ``~/.pgpass`` or the URL)."""
        from ._pg_url import PostgresURL

        PostgresURL.parse(url)  # a bad URL or team_role fails here, not when opened
        return cls("postgres", url)

    @classmethod
    def memory(cls) -> StorageBackend:
        """In-process only; gone when the process ends."""
        return cls("memory")

    @classmethod
    def parse(cls, spec: str | os.PathLike[str]) -> StorageBackend:
        """``"memory"``, ``"sqlite:///rel.db"``, ``"sqlite:////abs.db"``,
        ``"postgresql://..."`` or a directory path; any other ``scheme://`` is a
        :class:`~claude_magic.errors.StorageError` listing these."""
        text = os.fspath(spec).strip()
        if not text:
            raise StorageError(f"empty storage spec; use {KNOWN_SPECS}")
        if text in ("memory", "memory:", ":memory:"):
            return cls.memory()
        if text.startswith(("postgresql://", "postgres://")):
            return cls.postgres(text)
        if text.startswith("sqlite:"):
            path = text[len("sqlite:"):]
            for prefix in ("///", "//"):  # sqlite:///relative.db, sqlite:////absolute.db
                if path.startswith(prefix):
                    path = path[len(prefix):]
                    break
            if not path:
                raise StorageError(f"storage spec {text!r} names no file; use sqlite:///sessions.db")
            return cls.sqlite(path)
        if text.startswith("file://"):
            return cls.file(text[len("file://"):])
        scheme = _SCHEME.match(text)
        if scheme:
            raise StorageError(f"unknown storage scheme {scheme.group(1)!r} in {_shown(text)}; "
                               f"use {KNOWN_SPECS}")
        return cls.file(text)

    def __repr__(self) -> str:  # the dataclass repr, with a PostgreSQL password masked
        path = str(self) if self.kind == "postgres" else self.path
        return f"StorageBackend(kind={self.kind!r}, path={path!r})"

    def __str__(self) -> str:
        if self.kind == "memory":
            return "memory"
        if self.kind == "postgres":
            from ._pg_url import mask

            return mask(self.path or "")
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return str(self.path)

    def open(self) -> Storage:
        """Create the store object (and its directory or file, when missing)."""
        if self.kind == "memory":
            from .memory import MemoryStorage

            return MemoryStorage()
        if self.kind == "sqlite":
            from .sqlite import SQLiteStorage

            return SQLiteStorage(self.path or "sessions.db")
        if self.kind == "postgres":
            from .postgres import PostgresStorage

            return PostgresStorage(self.path or "")
        from .files import DirectoryStorage

        return DirectoryStorage(self.path or ".claude_sessions")


def open_storage(spec: Storage | StorageBackend | str | os.PathLike[str] | None) -> Storage:
    """A store from a store object, a :class:`StorageBackend`, a spec string or None (memory)."""
    if spec is None:
        return StorageBackend.memory().open()
    if isinstance(spec, StorageBackend):
        return spec.open()
    if isinstance(spec, (str, os.PathLike)):
        return StorageBackend.parse(spec).open()
    return spec


__all__ = ["StorageBackend", "open_storage"]

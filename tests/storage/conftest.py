"""Fixtures for the storage tests: one manager per backend, on real files, real SQLite and a
real PostgreSQL server (``tests/conftest.py``; one database per test directory)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from claude_magic.manager import SessionManager
from claude_magic.storage import StorageBackend

from ..postgres.pgserver import OWNER, Server

KINDS = ("memory", "directory", "sqlite", "postgres")
PERSISTENT = ("directory", "sqlite", "postgres")
_SERVER: dict[str, Server] = {}  # the session's PostgreSQL server, once a test needs it


def backend_for(kind: str, tmp_path: Path) -> StorageBackend:
    """The store of this kind under ``tmp_path`` (memory ignores the path)."""
    if kind == "memory":
        return StorageBackend.memory()
    if kind == "directory":
        return StorageBackend.file(tmp_path / "sessions")
    if kind == "postgres":
        return StorageBackend.postgres(_database(tmp_path))
    return StorageBackend.sqlite(tmp_path / "sessions.db")


def _database(tmp_path: Path) -> str:
    """The owner's URL of the database for ``tmp_path`` (created on first use)."""
    server = _SERVER["server"]
    name = "s_" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:20]
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER}')
    return server.url(OWNER, name)


@pytest.fixture(autouse=True)
def _postgres_when_needed(request: pytest.FixtureRequest) -> None:
    """Start (once) the PostgreSQL server for tests of the postgres kind."""
    params = getattr(request.node, "callspec", None)
    values = params.params.values() if params is not None else ()
    if any(value == "postgres" for value in values if isinstance(value, str)):
        _SERVER["server"] = request.getfixturevalue("pg_server")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=PERSISTENT)
def persistent_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def manager(kind: str, tmp_path: Path) -> Iterator[SessionManager]:
    """A manager over a fresh store of every kind."""
    with SessionManager.with_storage(backend_for(kind, tmp_path)) as opened:
        yield opened


@pytest.fixture
def open_manager(tmp_path: Path) -> Iterator[Callable[[str], SessionManager]]:
    """``open_manager(kind)``: a new manager on the same path each call (closed afterwards)."""
    opened: list[SessionManager] = []

    def make(kind: str) -> SessionManager:
        manager = SessionManager.with_storage(backend_for(kind, tmp_path))
        opened.append(manager)
        return manager

    yield make
    for manager in opened:
        manager.close()

"""Fixtures for the storage tests: one manager per backend, on real files and real SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from claude_magic.manager import SessionManager
from claude_magic.storage import StorageBackend

KINDS = ("memory", "directory", "sqlite")
PERSISTENT = ("directory", "sqlite")


def backend_for(kind: str, tmp_path: Path) -> StorageBackend:
    """The store of this kind under ``tmp_path`` (memory ignores the path)."""
    if kind == "memory":
        return StorageBackend.memory()
    if kind == "directory":
        return StorageBackend.file(tmp_path / "sessions")
    return StorageBackend.sqlite(tmp_path / "sessions.db")


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

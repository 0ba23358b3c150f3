"""A fresh database per test on the session's real PostgreSQL server (``tests/conftest.py``).

With no server programs installed the tests fail (never skip): the team store is part of what
claude_magic promises.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from claude_magic.manager import SessionManager

from .pgserver import Server

_numbers = itertools.count()


@pytest.fixture
def pg_url(pg_server: Server) -> str:
    """The database owner's URL of a new, empty database (the store is not set up yet)."""
    return pg_server.create_database(f"test_{next(_numbers)}")


@pytest.fixture
def open_pg(pg_url: str) -> Iterator[Callable[..., SessionManager]]:
    """``open_pg(url=pg_url)``: a manager on the test's database, closed afterwards."""
    opened: list[SessionManager] = []

    def make(url: str = pg_url) -> SessionManager:
        manager = SessionManager.with_storage(url)
        opened.append(manager)
        return manager

    yield make
    for manager in opened:
        manager.close()

"""TEMPORARY (development): the contract suite on PostgreSQL before it joins tests/storage."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from claude_magic.manager import SessionManager

from ..storage.test_contract import *  # noqa: F403


@pytest.fixture
def manager(pg_url: str) -> Iterator[SessionManager]:
    with SessionManager.with_storage(pg_url) as opened:
        yield opened


@pytest.fixture
def persistent_kind() -> str:
    return "postgres"


@pytest.fixture
def open_manager(open_pg):
    return lambda kind: open_pg()

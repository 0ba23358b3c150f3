"""Session-wide fixtures shared by several test folders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .postgres.pgserver import NoServer, Server, start_server, stop_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """A real PostgreSQL server for the whole run; no server programs fails (never skips)."""
    try:
        server = start_server()
    except NoServer as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        stop_server(server)

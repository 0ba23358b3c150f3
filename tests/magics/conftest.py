"""Fixtures: a real IPython shell with the extension loaded, in an empty notebook folder;
the same shell talking to the fake Messages API server through the real ``anthropic`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kernel's working directory (the 'notebook folder'), with no env overrides."""
    monkeypatch.chdir(tmp_path)
    for name in ("CLAUDE_MAGIC_STORAGE", "JPY_SESSION_NAME", "ANTHROPIC_API_KEY",
                 "ANTHROPIC_BASE_URL", "CLAUDE_BINARY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / ".claude_sessions"


@pytest.fixture
def shell(store_dir: Path) -> Iterator[TestingShell]:
    ip = TestingShell.fresh()
    ip.run_cell("%load_ext claude_magic")
    yield ip
    ip.run_cell("%unload_ext claude_magic")
    TestingShell.discard()


@pytest.fixture
def server() -> Iterator[FakeMessagesServer]:
    with FakeMessagesServer() as fake:
        yield fake


@pytest.fixture
def ip(shell: TestingShell, server: FakeMessagesServer,
       monkeypatch: pytest.MonkeyPatch) -> TestingShell:
    """``shell`` with the ``anthropic`` backend pointed at ``server``."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-key-never-stored")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    shell.run_cell("%config ClaudeMagics.backend = 'anthropic'")
    shell.run_cell("%config ClaudeMagics.update_interval = 0.0")
    shell.run_cell("%config ClaudeMagics.model = 'claude-test-model'")
    return shell

"""Fixtures: a real fake Messages API server on 127.0.0.1, a fake `claude`, a directory store.

Every test starts with no ANTHROPIC_*/CLAUDE_* variables and a private HOME, so nothing reaches
a real account, and the tests that need a key set a fake one through ``api_key``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic.client import Client, Config
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.storage import StorageBackend
from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import FakeMessagesServer

_CLEARED = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
            "ANTHROPIC_PROFILE", "ANTHROPIC_CONFIG_DIR", "CLAUDE_BINARY", "CLAUDE_CONFIG_DIR",
            "ANTHROPIC_CUSTOM_HEADERS")


@pytest.fixture(autouse=True)
def clean_env(tmp_path_factory: pytest.TempPathFactory,
              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def server() -> Iterator[FakeMessagesServer]:
    with FakeMessagesServer() as fake:
        yield fake


@pytest.fixture
def api_key(server: FakeMessagesServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake key in the environment, and ANTHROPIC_BASE_URL pointing at the fake server."""
    key = f"sk-ant-test-{secrets.token_hex(16)}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    return key


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def manager(store_dir: Path) -> Iterator[SessionManager]:
    with SessionManager.with_storage(StorageBackend.file(store_dir)) as mgr:
        yield mgr


@pytest.fixture
def client(manager: SessionManager, api_key: str) -> Client:
    """The anthropic backend against the fake server; retries wait 1 ms (retry-after-ms)."""
    return Client(Config(backend="anthropic", retries=2, timeout=10), manager=manager)


@pytest.fixture
def session(manager: SessionManager) -> Session:
    return manager.create_session().with_system_prompt("You are terse.").build()


@pytest.fixture
def fake_claude(tmp_path: Path) -> FakeClaude:
    return FakeClaude(tmp_path / "fake-claude")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "notebook-dir"
    path.mkdir()
    return path


@pytest.fixture
def cli_client(manager: SessionManager, fake_claude: FakeClaude, workdir: Path) -> Client:
    config = Config(backend="claude-code", claude_binary=str(fake_claude.path), cwd=str(workdir),
                    timeout=30)
    return Client(config, manager=manager)


"""Fixtures: the ``claude-magic`` command run as a real process in an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic.testing.fake_server import FakeMessagesServer

SCRIPT = Path(sys.executable).with_name("claude-magic")
CLEARED = ("CLAUDE_MAGIC_STORAGE", "JPY_SESSION_NAME", "ANTHROPIC_API_KEY",
           "ANTHROPIC_BASE_URL", "CLAUDE_BINARY")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without claude_magic's or Anthropic's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(extra)
    return env


class Cli:
    """Runs ``claude-magic`` (the installed script) in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = clean_env()

    def command(self, *args: str) -> list[str]:
        return [str(SCRIPT), *args]

    def __call__(self, *args: str, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.folder, env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str, input: str | None = None) -> str:
        done = self(*args, input=input)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(folder: Path) -> Cli:
    assert SCRIPT.is_file(), "the claude-magic script is installed with the package"
    return Cli(folder)


@pytest.fixture
def server() -> Iterator[FakeMessagesServer]:
    with FakeMessagesServer() as fake:
        yield fake

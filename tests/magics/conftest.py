"""A real IPython shell for the magics' tests, as a user's notebook would have."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


class TestingShell(InteractiveShell):
    """An InteractiveShell whose ``run_cell`` raises the cell's error (history disabled)."""

    def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(raw_cell, *args, **kwargs)
        error = result.error_before_exec or result.error_in_exec
        if error is not None:
            raise error
        return result

    @property
    def displayed(self) -> list[dict[str, Any]]:
        """Everything published with ``display()`` (data, metadata, transient, update)."""
        return self.display_pub.outputs


def make_shell(config: Config | None = None) -> TestingShell:
    TestingShell.clear_instance()
    InteractiveShell.clear_instance()
    cfg = config or Config()
    cfg.HistoryManager.enabled = False
    shell = TestingShell.instance(config=cfg)
    shell.display_pub = CapturingDisplayPublisher()
    return shell


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
    ip = make_shell()
    ip.run_cell("%load_ext claude_magic")
    yield ip
    ip.run_cell("%unload_ext claude_magic")
    TestingShell.clear_instance()
    InteractiveShell.clear_instance()

"""Fixtures for exports and the panel: managers over every store kind, filled like real use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage
from claude_magic.session import Session
from claude_magic.storage import StorageBackend
from claude_magic.times import utc_now

if TYPE_CHECKING:
    from claude_magic.panel import SessionPanel
    from claude_magic.workspace import Workspace

KINDS = ("memory", "directory", "sqlite")


def backend_for(kind: str, path: Path) -> StorageBackend:
    if kind == "memory":
        return StorageBackend.memory()
    if kind == "directory":
        return StorageBackend.file(path / "sessions")
    return StorageBackend.sqlite(path / "sessions.db")


@pytest.fixture
def open_manager(tmp_path: Path) -> Iterator[Callable[..., SessionManager]]:
    """``open_manager(kind, name="a")``: a manager over a fresh store (closed afterwards)."""
    opened: list[SessionManager] = []

    def make(kind: str, name: str = "a") -> SessionManager:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        manager = SessionManager.with_storage(backend_for(kind, folder))
        opened.append(manager)
        return manager

    yield make
    for manager in opened:
        manager.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def manager(kind: str, open_manager: Callable[..., SessionManager]) -> SessionManager:
    return open_manager(kind)


def conversation(turns: int = 2, *, model: str = "claude-sonnet-4-5", fail_last: str = "",
                 start: object = None) -> list[Message]:
    """User/assistant pairs with usage and cost; ``fail_last`` = "error" or "incomplete"."""
    when = start or utc_now() - timedelta(hours=1)
    messages = []
    for turn in range(turns):
        at = when + timedelta(minutes=turn)  # type: ignore[operator]
        messages.append(Message("user", f"question {turn}: what is {turn} + {turn}?",
                                created_at=at))
        messages.append(Message("assistant", f"**{turn + turn}** — answer {turn}",
                                created_at=at + timedelta(seconds=3), model=model,
                                backend="anthropic", usage=Usage(100 + turn, 20 + turn, 5, 7),
                                cost_usd=0.0125 * (turn + 1), stop_reason="end_turn",
                                duration_ms=812.5, ids={"message_id": f"msg_{turn}"}))
    if fail_last == "error":
        messages.append(Message("user", "one more?", created_at=when, status="error",
                                error="BackendTimeout: no answer in 600 s"))
    elif fail_last == "incomplete":
        messages.append(Message("assistant", "half an ans", created_at=when,
                                status="incomplete", error="connection reset", model=model))
    return messages


@pytest.fixture
def filled() -> Callable[[SessionManager], list[str]]:
    """``filled(manager)``: four sessions with metadata, messages and failures; ids newest first.

    ``s-old`` (project web, 2 turns), ``s-mid`` (project data, failed turn), ``s-new``
    (project web, incomplete answer, other model), ``s-empty`` (no messages, no metadata).
    """

    def fill(manager: SessionManager) -> list[str]:
        base = utc_now() - timedelta(days=3)
        specs = [
            ("s-old", {"project": "web", "priority": 2, "reviewed": True}, conversation(2), ""),
            ("s-mid", {"project": "data", "priority": 10, "ratio": 0.5},
             conversation(1, fail_last="error"), "You are a data analyst."),
            ("s-new", {"project": "web", "tags": ["a", "b"], "ratio": 2},
             conversation(3, model="claude-opus-4-1", fail_last="incomplete"),
             "You review | pipes\nand lines."),
            ("s-empty", {}, [], None),
        ]
        for offset, (sid, meta, messages, prompt) in enumerate(specs):
            when = base + timedelta(hours=offset)
            manager.import_session(Session(id=sid, system_prompt=prompt or None, metadata=meta,
                                           created_at=when, updated_at=when, messages=messages))
        return ["s-empty", "s-new", "s-mid", "s-old"]

    return fill


@pytest.fixture
def ws(manager: SessionManager) -> Workspace:
    """The state a panel shares with the magics, over the test's manager."""
    from claude_magic.workspace import Workspace

    return Workspace(manager=manager)


@pytest.fixture
def opened(ws: Workspace) -> Iterator[Callable[..., SessionPanel]]:
    """``opened(**options)``: a panel on ``ws``; every panel made is disposed afterwards."""
    from claude_magic.panel import panel

    panels: list[SessionPanel] = []

    def make(**kwargs: object) -> SessionPanel:
        made = panel(workspace=ws, **kwargs)  # type: ignore[arg-type]
        panels.append(made)
        return made

    yield make
    for made in panels:
        made.dispose()

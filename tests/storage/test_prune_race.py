"""``prune`` never deletes a session another writer changed after prune listed it.

On every store: a second manager (and, for stores on disk, a second process) updates or
appends to a session between prune's listing and its delete; the session survives, and prune
returns only the ids it really deleted.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId
from claude_magic.times import utc_now

from .conftest import backend_for
from .oslevel import ROOT


def old(manager: SessionManager, *names: str) -> None:
    """Sessions last updated 40 days ago, each with one message."""
    when = utc_now() - timedelta(days=40)
    for name in names:
        manager.import_session(Session(id=SessionId(name), created_at=when, updated_at=when,
                                       messages=[Message("user", "q", created_at=when)]))


def interleave(manager: SessionManager, monkeypatch: pytest.MonkeyPatch, write) -> None:
    """Make ``manager.summaries`` run ``write`` right after listing, as a racing writer."""
    listing = manager.summaries

    def racing() -> list:
        rows = listing()
        write()
        return rows

    monkeypatch.setattr(manager, "summaries", racing)


@pytest.mark.parametrize("change", ["update", "append", "mark"])
def test_a_session_changed_after_listing_survives(kind: str, tmp_path: Path, change: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with SessionManager.with_storage(backend_for(kind, tmp_path)) as manager:
        other = (SessionManager(manager.storage) if kind == "memory"
                 else SessionManager.with_storage(backend_for(kind, tmp_path)))
        old(manager, "stale", "busy")
        writes = {
            "update": lambda: other.update("busy", metadata={"touched": True}),
            "append": lambda: other.append("busy", Message("user", "still here")),
            "mark": lambda: other.mark("busy", 0, "error", "failed"),
        }
        interleave(manager, monkeypatch, writes[change])
        assert manager.prune(older_than="30d") == ["stale"]
        assert manager.list() == ["busy"]
        assert other.exists("busy") and not other.exists("stale")
        if kind != "memory":
            other.close()


def test_delete_if_updated_at(kind: str, tmp_path: Path) -> None:
    with SessionManager.with_storage(backend_for(kind, tmp_path)) as manager:
        created = manager.create_session("s").build()
        assert not manager.delete("s", if_updated_at=created.updated_at - timedelta(seconds=1))
        manager.update("s", metadata={"k": 1})
        assert not manager.delete("s", if_updated_at=created.updated_at)  # changed since
        current = manager.summary("s").updated_at
        assert manager.delete("s", if_updated_at=current)
        assert not manager.exists("s")
        assert not manager.delete("s", if_updated_at=current)  # already gone


RACER = """
import sys
from claude_magic.manager import SessionManager
with SessionManager.with_storage(sys.argv[1]) as manager:
    manager.update("busy", metadata={"from": "another process"})
"""


def test_another_process_updating_between_listing_and_delete(
        persistent_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = str(backend_for(persistent_kind, tmp_path))
    with SessionManager.with_storage(spec) as manager:
        old(manager, "stale", "busy")

        def other_process() -> None:
            subprocess.run([sys.executable, "-c", RACER, spec], check=True, cwd=ROOT,
                           timeout=60)

        interleave(manager, monkeypatch, other_process)
        assert manager.prune(older_than="30d") == ["stale"]
        assert manager.resume("busy").metadata == {"from": "another process"}

"""Rename on every store: keeps everything, refuses to clobber, the current session follows;
killed at random points it leaves exactly one of the two names, with every message."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_magic.errors import SessionExists, SessionNotFound
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage

KILLS = 20


def _session(manager: SessionManager, session_id: str = "old", messages: int = 4) -> None:
    manager.create_session(session_id).with_system_prompt("be brief").with_metadata(
        "project", "x").with_model("claude-sonnet-4-5").build()
    for n in range(messages):
        manager.append(session_id, Message("user" if n % 2 == 0 else "assistant", f"m{n}",
                                           usage=Usage(3, 4), ids={"claude_session_id": "cli-1"}))


def test_rename_keeps_everything(manager: SessionManager) -> None:
    _session(manager)
    before = manager.resume("old")
    manager.rename("old", "new")
    assert not manager.exists("old") and manager.get("old") is None
    after = manager.resume("new")
    assert after.created_at == before.created_at
    assert (after.system_prompt, after.metadata, after.settings) == (
        before.system_prompt, before.metadata, before.settings)
    assert [m.to_dict() for m in after.messages] == [m.to_dict() for m in before.messages]
    assert manager.list() == ["new"]
    assert manager.summary("new").stats.message_count == 4
    assert manager.verify("new").ok
    manager.append("new", Message("user", "more"))
    assert len(manager.resume("new").messages) == 5 and manager.verify("new").ok


def test_rename_onto_an_existing_id_needs_overwrite(manager: SessionManager) -> None:
    _session(manager)
    _session(manager, "taken", messages=1)
    with pytest.raises(SessionExists):
        manager.rename("old", "taken")
    assert len(manager.resume("old").messages) == 4
    assert len(manager.resume("taken").messages) == 1
    manager.rename("old", "taken", overwrite=True)
    assert manager.list() == ["taken"] and len(manager.resume("taken").messages) == 4
    with pytest.raises(SessionNotFound):
        manager.rename("missing", "other")
    with pytest.raises(ValueError):
        manager.rename("taken", "../escape")
    assert manager.list() == ["taken"]


_WORKER = """
import sys
from claude_magic.manager import SessionManager
from claude_magic.storage._ops import store_op
manager = SessionManager(sys.argv[1])
store_op(manager.storage, "rename")  # its module imported now: the kill lands in the rename
print("ready", flush=True)
sys.stdin.readline()
manager.rename(sys.argv[2], sys.argv[3])
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_a_killed_rename_leaves_exactly_one_name(kind: str, tmp_path: Path) -> None:
    spec = str(tmp_path / "s") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"
    with SessionManager(spec) as manager:
        _session(manager, "s0", messages=30)
        expected = [m.to_dict() for m in manager.resume("s0").messages]
    rng = random.Random(12)
    name, finished = "s0", 0
    for n in range(1, KILLS + 1):
        target = f"s{n}"
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, spec, name, target],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert worker.stdout is not None and worker.stdin is not None
        assert worker.stdout.readline() == "ready\n"
        worker.stdin.write("go\n")
        worker.stdin.flush()
        time.sleep(rng.uniform(0, 0.004))
        worker.kill()
        worker.wait()
        with SessionManager(spec) as manager:  # opening recovers a half-done rename
            present = [i for i in (name, target) if manager.exists(i)]
            assert len(present) == 1, (n, present)
            assert manager.list() == present
            assert [m.to_dict() for m in manager.resume(present[0]).messages] == expected
            assert manager.verify(present[0]).ok
        finished += present[0] == target
        name = present[0]
    assert 0 < finished < KILLS, finished  # some renames completed, others were cut short

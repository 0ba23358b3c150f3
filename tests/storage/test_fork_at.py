"""Fork at any turn on every store: the copy holds the conversation up to that answer."""

from __future__ import annotations

import pytest

from claude_magic.manager import SessionManager
from claude_magic.message import Message


def _three_turns(manager: SessionManager) -> None:
    manager.create_session("main").with_system_prompt("be brief").with_metadata(
        "project", "x").build()
    for n in range(3):
        manager.append("main", Message("user", f"question {n}"))
        manager.append("main", Message("assistant", f"answer {n}",
                                       ids={"claude_session_id": "cli-main"}))


def test_fork_at_an_answer(manager: SessionManager) -> None:
    _three_turns(manager)
    fork = manager.fork("main", "branch", at=3)
    assert [m.content for m in fork.messages] == ["question 0", "answer 0", "question 1",
                                                  "answer 1"]
    assert fork.metadata == {"project": "x", "forked_from": "main", "forked_at": 3}
    assert fork.system_prompt == "be brief"
    stored = manager.resume("branch")
    assert [m.content for m in stored.messages] == [m.content for m in fork.messages]
    # the CLI cannot cut its history: the fork's next claude-code turn starts a new one
    assert all("claude_session_id" not in m.ids for m in stored.messages)
    assert manager.verify("branch").ok
    manager.append("branch", Message("user", "a different direction"))
    assert manager.verify("branch").ok
    assert len(manager.resume("main").messages) == 6  # the source is untouched


def test_fork_without_at_copies_everything(manager: SessionManager) -> None:
    _three_turns(manager)
    fork = manager.fork("main")
    assert len(fork.messages) == 6 and "forked_at" not in fork.metadata


@pytest.mark.parametrize("at", [0, 2, 6, -1, 99])
def test_fork_at_a_turn_that_is_not_an_answer(manager: SessionManager, at: int) -> None:
    _three_turns(manager)
    with pytest.raises(ValueError, match="answers are at turns 1, 3, 5"):
        manager.fork("main", "branch", at=at)
    assert not manager.exists("branch")

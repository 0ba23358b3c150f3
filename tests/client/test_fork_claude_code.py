"""A fork at a turn of a claude-code session: its first turn starts a new CLI conversation
given the transcript up to that turn (the CLI cannot cut its own history); later turns
resume the new conversation (the fake `claude` executable, a real subprocess)."""

from __future__ import annotations

from claude_magic.client import Client
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_claude import FakeClaude


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_a_fork_at_a_turn_starts_a_new_cli_conversation(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session) -> None:
    for prompt in ("first question", "second question", "third question"):
        cli_client.query(prompt).session(session.id).send()
    fork = manager.fork(session.id, "branch", at=3)
    cli_client.query("a different direction").session(fork.id).send()
    cli_client.query("and then?").session(fork.id).send()

    new, then = fake_claude.calls[3]["argv"], fake_claude.calls[4]["argv"]
    assert "--resume" not in new and option(new, "--session-id")
    assert option(new, "--system-prompt") == "You are terse."
    folded = option(new, "--append-system-prompt")
    assert "User: first question" in folded and "User: second question" in folded
    assert "third question" not in folded  # cut at answer 3
    started = manager.resume("branch").messages[5].ids["claude_session_id"]
    assert option(then, "--resume") == started  # the fork's own conversation goes on
    assert manager.verify("branch").ok

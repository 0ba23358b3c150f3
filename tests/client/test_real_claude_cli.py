"""The real Claude Code CLI, pointed at the fake Messages API server: two turns, resumed.

The CLI comes from CLAUDE_BINARY, `claude` on PATH, or the `claude-agent-sdk` wheel (which
bundles it at claude_agent_sdk/_bundled/claude). The test is skipped only when none is
installed. HOME and CLAUDE_CONFIG_DIR are temporary; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from claude_magic.backends.claude_code import _bundled_binary
from claude_magic.client import Client, Config
from claude_magic.manager import SessionManager
from claude_magic.testing.fake_server import DEFAULT_PREFIX, FakeMessagesServer, last_user_text


def _real_cli() -> str | None:
    for candidate in (os.environ.get("CLAUDE_BINARY"), shutil.which("claude"), _bundled_binary()):
        if not candidate:
            continue
        try:
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                     timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if "Claude Code" in version and "fake" not in version:
            return candidate
    return None


REAL_CLI = _real_cli()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REAL_CLI is None, reason="no real Claude Code CLI installed (set "
                       "CLAUDE_BINARY, put `claude` on PATH, or pip install claude-agent-sdk)"),
]


def test_two_turns_through_the_real_cli_resume_the_first(
        server: FakeMessagesServer, manager: SessionManager, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    workdir = tmp_path / "notebook"
    workdir.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-real-cli")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
    client = Client(Config(backend="claude-code", claude_binary=REAL_CLI, cwd=str(workdir),
                           timeout=180, model="claude-sonnet-4-6"), manager=manager)
    session = manager.create_session().with_system_prompt("You answer about Rust.").build()

    stream = client.query("What is ownership?").session(session.id).stream()
    chunks = list(stream)
    first = stream.response
    second = client.query("Give an example.").session(session.id).send()

    assert len(chunks) > 1  # token-level streaming through --include-partial-messages
    assert first == f"{DEFAULT_PREFIX} You said: What is ownership?"
    assert second == f"{DEFAULT_PREFIX} You said: Give an example."
    by_prompt = {last_user_text(r.body): r for r in server.message_requests}
    turn1, turn2 = by_prompt["What is ownership?"], by_prompt["Give an example."]
    assert turn1.api_key == "sk-ant-test-real-cli"
    system_text = " ".join(block["text"] for block in turn1.body["system"])
    assert "You answer about Rust." in system_text
    # The second request carries the first turn: the CLI resumed it.
    roles = [m["role"] for m in turn2.body["messages"]]
    texts = [" ".join(b.get("text", "") for b in m["content"]) if isinstance(m["content"], list)
             else m["content"] for m in turn2.body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert "What is ownership?" in texts[0] and texts[1] == str(first)

    answers = [m for m in manager.resume(session.id).messages if m.role == "assistant"]
    assert [m.status for m in manager.resume(session.id).messages] == ["ok"] * 4
    ids = [m.ids["claude_session_id"] for m in answers]
    assert ids[0] != ids[1]  # --fork-session: each turn continues a copy
    assert all(m.cost_usd and m.cost_usd > 0 and m.usage.input_tokens > 0 for m in answers)
    transcripts = list((home / ".claude" / "projects").rglob("*.jsonl"))
    assert {p.stem for p in transcripts} >= set(ids)

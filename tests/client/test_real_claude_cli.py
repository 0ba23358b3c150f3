"""The real Claude Code CLI, pointed at the fake Messages API server: two turns, resumed.

The CLI comes from CLAUDE_BINARY, `claude` on PATH, or the `claude-agent-sdk` wheel (which
bundles it at claude_agent_sdk/_bundled/claude). The test is skipped only when none is
installed; one that is installed but fails `--version` makes it fail. HOME and
CLAUDE_CONFIG_DIR are temporary; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from claude_magic.backends.claude_code import _bundled_binary
from claude_magic.client import Client, Config
from claude_magic.errors import BackendError
from claude_magic.manager import SessionManager
from claude_magic.testing.fake_server import DEFAULT_PREFIX, FakeMessagesServer, last_user_text


def _find_real_cli() -> tuple[str | None, str | None]:
    """``(path, None)`` for the first real CLI; ``(None, None)`` when none is installed;
    ``(None, problem)`` when one is installed but does not work (the test then fails)."""
    for candidate in (os.environ.get("CLAUDE_BINARY"), shutil.which("claude"), _bundled_binary()):
        if not candidate or not os.path.isfile(candidate):
            continue
        try:
            done = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                  timeout=60)
        except subprocess.TimeoutExpired:
            return None, f"{candidate} --version did not answer in 60 s"
        except OSError as exc:
            return None, f"{candidate} --version cannot run: {exc.strerror or exc}"
        if "fake" in done.stdout:  # the fake CLI shipped in claude_magic.testing
            continue
        if done.returncode != 0 or "Claude Code" not in done.stdout:
            output = " ".join((done.stdout + " " + done.stderr).split())[:200]
            return None, (f"{candidate} --version exited with {done.returncode} and did not "
                          f"report a Claude Code version: {output!r}")
        return candidate, None
    return None, None


REAL_CLI, BROKEN_CLI = _find_real_cli()


def real_cli_client(server: FakeMessagesServer, manager: SessionManager, home: Path,
                    workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Client:
    """A client of the real CLI, with a private HOME, pointed at the fake server."""
    if BROKEN_CLI is not None:
        pytest.fail(f"a Claude Code CLI is installed but broken: {BROKEN_CLI}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-real-cli")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
    return Client(Config(backend="claude-code", claude_binary=REAL_CLI, cwd=str(workdir),
                         timeout=180, model="claude-sonnet-4-6"), manager=manager)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(REAL_CLI is None and BROKEN_CLI is None,
                       reason="no real Claude Code CLI installed (set CLAUDE_BINARY, put "
                       "`claude` on PATH, or pip install claude-agent-sdk)"),
]


def test_two_turns_through_the_real_cli_resume_the_first(
        server: FakeMessagesServer, manager: SessionManager, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    workdir = tmp_path / "notebook"
    workdir.mkdir()
    client = real_cli_client(server, manager, home, workdir, monkeypatch)
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
    texts = [" ".join(b["text"] for b in m["content"] if b.get("type") == "text")
             if isinstance(m["content"], list) else m["content"]
             for m in turn2.body["messages"]]  # the CLI thinks: thinking blocks come first
    assert roles == ["user", "assistant", "user"]
    assert "What is ownership?" in texts[0] and texts[1] == str(first)

    answers = [m for m in manager.resume(session.id).messages if m.role == "assistant"]
    assert [m.status for m in manager.resume(session.id).messages] == ["ok"] * 4
    ids = [m.ids["claude_session_id"] for m in answers]
    assert ids[0] != ids[1]  # --fork-session: each turn continues a copy
    # the CLI marks cache breakpoints, so the fake server's prompt cache takes some input
    assert all(m.cost_usd and m.cost_usd > 0 and m.usage.input_tokens
               + m.usage.cache_creation_input_tokens + m.usage.cache_read_input_tokens > 0
               for m in answers)
    transcripts = list((home / ".claude" / "projects").rglob("*.jsonl"))
    assert {p.stem for p in transcripts} >= set(ids)


def test_the_real_cli_retries_a_cut_stream_and_only_its_answer_is_stored(
        server: FakeMessagesServer, manager: SessionManager, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI streams the text of an API attempt that ends before message_stop, retries,
    then answers: the stored answer is the retried one, without the cut attempt's text."""
    client = real_cli_client(server, manager, tmp_path / "home", tmp_path, monkeypatch)
    session = manager.create_session().build()
    server.end_early("Cut short here", after=2, how="chunked")
    stream = client.query("What is ownership?").session(session.id).stream()
    try:
        streamed, failure = "".join(stream), None
    except BackendError as exc:
        streamed, failure = "", exc
    if len(server.message_requests) == 1:
        # older CLIs (claude-agent-sdk 0.2.82's) do not retry: they call the cut stream a
        # success; the answer must still be stored incomplete, never ok
        assert failure is not None and "before message_stop" in str(failure)
        answer = manager.resume(session.id).messages[1]
        assert (answer.status, answer.content) == ("incomplete", "Cut short")
        return
    assert failure is None
    assert len(server.message_requests) >= 2  # the CLI retried
    # a retry from the start resends the question; after a cut that left its (signed)
    # thinking whole, the CLI asks the model to go on from the cut instead
    expected = f"{DEFAULT_PREFIX} You said: {last_user_text(server.message_requests[-1].body)}"
    assert stream.response == expected and streamed.endswith(expected)
    assert "Cut short" not in expected
    answer = manager.resume(session.id).messages[1]
    assert (answer.status, answer.content) == ("ok", expected)

"""The claude-code backend against the fake `claude` executable (a real subprocess)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from claude_magic.backends import claude_code
from claude_magic.client import Client, Config
from claude_magic.errors import (
    AuthenticationError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    CLINotFound,
    OverloadedError,
    RateLimitError,
)
from claude_magic.manager import SessionManager
from claude_magic.message import Usage
from claude_magic.session import Session
from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import FakeMessagesServer

INSTALL = "npm install -g @anthropic-ai/claude-code"


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_first_turn_uses_session_id_then_resumes_the_cli_id(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session, workdir: Path) -> None:
    first = cli_client.query("What is a lifetime?").session(session.id).send()
    second = cli_client.query("And 'static?").session(session.id).send()

    call1, call2 = fake_claude.calls
    argv1, argv2 = call1["argv"], call2["argv"]
    assert argv1[:6] == ["-p", "--output-format", "stream-json", "--verbose",
                         "--include-partial-messages", "--model"]
    assert option(argv1, "--model") == "claude-sonnet-4-6"
    assert option(argv1, "--permission-mode") == "default"
    assert str(uuid.UUID(option(argv1, "--session-id"))) == option(argv1, "--session-id")
    assert option(argv1, "--system-prompt") == "You are terse."
    assert "--resume" not in argv1
    assert call1["stdin"] == "What is a lifetime?" and call1["cwd"] == str(workdir)

    # The second turn resumes the id the CLI printed, taken from the stored answer.
    assert first.ids["claude_session_id"] == option(argv1, "--session-id")
    assert option(argv2, "--resume") == first.ids["claude_session_id"]
    assert "--fork-session" in argv2 and "--session-id" not in argv2
    assert "--system-prompt" not in argv2
    assert second == "[fake claude — no model was called] turn 2: You said: And 'static?"
    assert second.ids["claude_session_id"] != first.ids["claude_session_id"]  # forked
    for argv in (argv1, argv2):
        assert "--dangerously-skip-permissions" not in argv
        assert "bypassPermissions" not in argv
        assert "What is a lifetime?" not in argv  # the prompt goes through stdin

    stored = manager.resume(session.id).messages
    assert [(m.role, m.status) for m in stored] == [("user", "ok"), ("assistant", "ok")] * 2
    assert stored[3].ids["claude_session_id"] == second.ids["claude_session_id"]


def test_stream_json_is_parsed_for_chunks_cost_usage_and_turns(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session) -> None:
    chunks = ["Borrowing ", "is ", "lending."]
    fake_claude.reply("".join(chunks), chunks=chunks, cost=0.0123,
                      usage={"input_tokens": 40, "output_tokens": 3,
                             "cache_read_input_tokens": 7}, noise=True)
    stream = cli_client.query("Borrowing?").session(session.id).stream()
    assert list(stream) == chunks
    response = stream.response
    assert response == "Borrowing is lending."
    assert response.cost_usd == 0.0123 and response.backend == "claude-code"
    assert response.usage == Usage(input_tokens=40, output_tokens=3, cache_read_input_tokens=7)
    assert response.ids["num_turns"] == "1" and response.model == "claude-sonnet-4-6"
    assert response.stop_reason == "end_turn" and not response.offline
    answer = manager.resume(session.id).messages[1]
    assert (answer.cost_usd, answer.usage, answer.ids) == (0.0123, response.usage, response.ids)


def test_text_of_several_model_messages_is_joined(cli_client: Client, fake_claude: FakeClaude,
                                                  session: Session) -> None:
    fake_claude.reply("The file says hello.", tool_use="Read")
    response = cli_client.query("Read it").session(session.id).send()
    assert response == "Let me check.\n\nThe file says hello."
    assert response.ids["num_turns"] == "2"


def test_options_reach_the_command_line(manager: SessionManager, fake_claude: FakeClaude,
                                        workdir: Path, session: Session) -> None:
    config = Config(backend="claude-code", claude_binary=str(fake_claude.path), cwd=str(workdir),
                    permission_mode="plan", allowed_tools=["Read", "Grep"], max_turns=3,
                    model="claude-opus-4-6")
    Client(config, manager=manager).query("hi").session(session.id).send()
    argv = fake_claude.calls[0]["argv"]
    assert option(argv, "--permission-mode") == "plan"
    assert option(argv, "--max-turns") == "3" and option(argv, "--model") == "claude-opus-4-6"
    assert argv[argv.index("--allowedTools") + 1:][:2] == ["Read", "Grep"]


@pytest.mark.parametrize(("script", "error", "words"), [
    ({"kind": "max_turns"}, BackendError, "turn limit"),
    ({"kind": "during_execution", "message": "Tool crashed: Bash"}, BackendError,
     "Tool crashed: Bash"),
    ({"kind": "api", "status": 529}, OverloadedError, "API error 529"),
    ({"kind": "api", "status": 401, "message": "API Error: 401 invalid x-api-key"},
     AuthenticationError, "401"),
    ({"kind": "api", "status": 429}, RateLimitError, "429"),
    ({"kind": "exit", "code": 3, "stderr": "Error: something broke"}, BackendError,
     "exited with code 3"),
])
def test_every_error_result_fails_the_turn_cleanly(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session, script: dict, error: type[Exception], words: str) -> None:
    kind = script.pop("kind")
    if kind == "exit":
        fake_claude.exit(script["code"], script["stderr"], text="Partial thought")
    else:
        fake_claude.error(kind, text="Partial thought", **script)
    with pytest.raises(error, match=words) as raised:
        cli_client.query("Do it").session(session.id).send()
    assert "\n" not in str(raised.value)

    user, partial = manager.resume(session.id).messages
    assert (user.status, user.error) == ("error", str(raised.value))
    assert (partial.role, partial.status, partial.content) == (
        "assistant", "incomplete", "Partial thought")
    if kind != "exit":  # a result line came: what the failed turn cost is kept
        assert partial.cost_usd > 0 and partial.ids["claude_session_id"]


def test_a_failed_turn_without_text_still_records_its_cost(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session) -> None:
    fake_claude.error("max_turns")
    with pytest.raises(BackendError, match="turn limit"):
        cli_client.query("Loop forever").session(session.id).send()
    user, spent = manager.resume(session.id).messages
    assert user.status == "error"
    assert (spent.status, spent.content, spent.error) == ("incomplete", "", user.error)
    assert spent.cost_usd > 0 and spent.usage.input_tokens > 0


def test_after_a_failed_turn_the_last_answered_cli_session_is_resumed(
        cli_client: Client, fake_claude: FakeClaude, session: Session) -> None:
    good = cli_client.query("one").session(session.id).send()
    fake_claude.error("max_turns", text="half")
    with pytest.raises(BackendError):
        cli_client.query("two").session(session.id).send()
    third = cli_client.query("three").session(session.id).send()
    assert option(fake_claude.calls[2]["argv"], "--resume") == good.ids["claude_session_id"]
    assert third.endswith("turn 2: You said: three")  # the failed turn is not in its history


def test_a_transcript_that_cannot_be_found_is_a_clear_error(
        cli_client: Client, fake_claude: FakeClaude, session: Session,
        tmp_path: Path) -> None:
    cli_client.query("one").session(session.id).send()
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    cli_client.config.cwd = str(elsewhere)  # the CLI keeps transcripts per directory
    with pytest.raises(BackendError, match=r"cannot resume this session.*No conversation found"):
        cli_client.query("two").session(session.id).send()


def test_timeout_kills_the_cli(cli_client: Client, fake_claude: FakeClaude,
                               manager: SessionManager, session: Session) -> None:
    cli_client.config.timeout = 1.0
    fake_claude.hang(60, text="Thinking")
    started = time.perf_counter()
    with pytest.raises(BackendTimeout, match="within 1 s"):
        cli_client.query("Slow one").session(session.id).send()
    assert time.perf_counter() - started < 10
    with pytest.raises(ProcessLookupError):
        os.kill(fake_claude.calls[0]["pid"], 0)
    user, partial = manager.resume(session.id).messages
    assert user.status == "error" and (partial.status, partial.content) == (
        "incomplete", "Thinking")


def test_closing_the_stream_stops_the_cli(cli_client: Client, fake_claude: FakeClaude,
                                          manager: SessionManager, session: Session) -> None:
    fake_claude.hang(60, text="Still going")
    with cli_client.query("Go").session(session.id).stream() as stream:
        assert next(stream) == "Still"
    with pytest.raises(ProcessLookupError):
        os.kill(fake_claude.calls[0]["pid"], 0)
    assert [m.status for m in manager.resume(session.id).messages] == ["error", "incomplete"]


def test_missing_binary_says_how_to_install(manager: SessionManager, session: Session,
                                            tmp_path: Path) -> None:
    config = Config(backend="claude-code", claude_binary=str(tmp_path / "no" / "claude"))
    with pytest.raises(CLINotFound, match=INSTALL):
        Client(config, manager=manager).query("hi").session(session.id).send()
    user, = manager.resume(session.id).messages
    assert user.status == "error" and INSTALL in user.error


def test_missing_claude_binary_env_says_how_to_install(
        manager: SessionManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAUDE_BINARY", str(tmp_path / "gone"))
    with pytest.raises(CLINotFound, match=f"CLAUDE_BINARY.*{INSTALL}"):
        Client(Config(backend="claude-code"), manager=manager).query("hi").send()


def test_no_cli_anywhere_says_how_to_install(
        manager: SessionManager, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    # Hide a claude-agent-sdk wheel that may be installed in this environment.
    monkeypatch.setattr(claude_code, "_bundled_binary", lambda: None)
    with pytest.raises(CLINotFound, match=f"not on PATH; install it with `{INSTALL}`"):
        Client(Config(backend="claude-code"), manager=manager).query("hi").send()


def test_binary_from_claude_binary_env_then_path(
        manager: SessionManager, fake_claude: FakeClaude, monkeypatch: pytest.MonkeyPatch,
        workdir: Path) -> None:
    monkeypatch.chdir(workdir)  # the default cwd is the current directory
    monkeypatch.setenv("CLAUDE_BINARY", str(fake_claude.path))
    client = Client(Config(backend="claude-code"), manager=manager)
    assert client.query("via env").send().startswith("[fake claude")
    monkeypatch.delenv("CLAUDE_BINARY")
    monkeypatch.setenv("PATH", f"{fake_claude.path.parent}{os.pathsep}{os.environ['PATH']}")
    assert client.query("via PATH").send().startswith("[fake claude")
    assert [c["stdin"] for c in fake_claude.calls] == ["via env", "via PATH"]
    assert {c["cwd"] for c in fake_claude.calls} == {str(workdir)}


def test_config_base_url_reaches_the_cli(cli_client: Client, fake_claude: FakeClaude,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    cli_client.query("a").send()
    cli_client.config.base_url = "http://127.0.0.1:2"
    cli_client.query("b").send()
    assert [c["base_url"] for c in fake_claude.calls] == ["http://127.0.0.1:1",
                                                          "http://127.0.0.1:2"]


def test_missing_working_directory_is_reported(cli_client: Client, session: Session,
                                               tmp_path: Path) -> None:
    cli_client.config.cwd = str(tmp_path / "missing")
    with pytest.raises(BackendUnavailable, match="working directory"):
        cli_client.query("hi").session(session.id).send()


def test_switching_to_the_cli_mid_session_gives_it_the_earlier_turns(
        manager: SessionManager, fake_claude: FakeClaude, workdir: Path, session: Session,
        server: FakeMessagesServer, api_key: str) -> None:
    client = Client(Config(backend="anthropic", claude_binary=str(fake_claude.path),
                           cwd=str(workdir)), manager=manager)
    server.reply("Earlier answer.")
    client.query("Earlier question").session(session.id).send()
    client.query("Now via the CLI").session(session.id).backend("claude-code").send()
    argv = fake_claude.calls[0]["argv"]
    assert "--session-id" in argv and option(argv, "--system-prompt") == "You are terse."
    folded = option(argv, "--append-system-prompt")
    assert "User: Earlier question" in folded and "Assistant: Earlier answer." in folded


def test_parser_falls_back_to_assistant_lines_without_stream_events() -> None:
    parser = claude_code._Parser()
    lines = [
        b'{"type":"system","subtype":"init","session_id":"s-1","model":"m-1"}',
        b"not json at all",
        b'{"type":"assistant","message":{"id":"a","model":"m-1","content":'
        b'[{"type":"text","text":"Hello"}]}}',
        b'{"type":"assistant","message":{"id":"a","content":[{"type":"tool_use","name":"x"}]}}',
        b'{"type":"assistant","message":{"id":"b","content":[{"type":"text","text":"Bye"}]}}',
        b'{"type":"result","subtype":"success","is_error":false,"result":"Bye","cost_usd":0.5,'
        b'"num_turns":2,"usage":{"input_tokens":3,"output_tokens":4}}',
    ]
    chunks = [chunk for line in lines for chunk in parser.feed(line)]
    assert chunks == ["Hello", "\n\n", "Bye"]
    result = parser.finish(0, [], "fallback-model")
    assert result.cost_usd == 0.5  # an older CLI's field name
    assert result.ids == {"claude_session_id": "s-1", "num_turns": "2"}
    assert result.model == "m-1" and result.usage == Usage(input_tokens=3, output_tokens=4)

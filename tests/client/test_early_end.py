"""Answers that stop early: an API stream that ends before ``message_stop`` (however the body
or the connection ends), and a ``claude`` process that ends before its ``result`` line, are
incomplete answers: kept as ``incomplete``, never ``ok``, never resent, one-line errors.

The real ``anthropic`` SDK against the fake server on 127.0.0.1; the fake CLI as a real process.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic.client import Client
from claude_magic.errors import BackendError, BackendUnavailable, OverloadedError
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import ENDINGS, FakeMessagesServer
from claude_magic.testing.shell import TestingShell

TEXT = "Ownership has three rules."  # five chunks: "Ownership", " has", " three", ...
CUTS = [("message_start", ""), (2, "Ownership has"), ("content_block_stop", TEXT),
        ("message_delta", TEXT)]
# a clean end (the SDK just stops iterating) is a plain BackendError; a broken connection
# (no terminating chunk, a TCP reset) is the SDK's transport error, BackendUnavailable
ERROR_OF = {"chunked": BackendError, "eof": BackendError, "truncate": BackendUnavailable,
            "reset": BackendUnavailable}


def statuses(manager: SessionManager, session_id: str) -> list[tuple[str, str, str]]:
    return [(m.role, m.status, m.content) for m in manager.resume(session_id).messages]


def expect_incomplete(manager: SessionManager, session: Session, error: BaseException,
                      received: str) -> None:
    """The turn is recorded as failed with the text that arrived, and says so in one line."""
    message = str(error)
    assert "\n" not in message and "send the prompt again" in message
    if received:
        assert f"after {len(received)} characters" in message
        assert "the partial answer is kept as incomplete" in message
    else:
        assert "before any text" in message
    user, answer = manager.resume(session.id).messages
    assert (user.status, answer.role, answer.status) == ("error", "assistant", "incomplete")
    assert answer.content == received and answer.error == user.error == message
    assert answer.usage.input_tokens > 0  # message_start came: what the turn cost is kept


@pytest.mark.parametrize("how", ENDINGS)
@pytest.mark.parametrize(("after", "text"), CUTS)
def test_a_stream_that_ends_before_message_stop_is_incomplete(
        client: Client, server: FakeMessagesServer, manager: SessionManager, session: Session,
        how: str, after: str | int, text: str) -> None:
    server.end_early(TEXT, after=after, how=how)
    stream = client.query("Rules?").session(session.id).stream()
    received = []
    with pytest.raises(BackendError) as raised:
        for chunk in stream:
            received.append(chunk)
    assert type(raised.value) is ERROR_OF[how]
    assert "before message_stop" in str(raised.value)
    assert "".join(received) == text
    expect_incomplete(manager, session, raised.value, text)
    assert stream.error is raised.value
    with pytest.raises(BackendError, match="the stream failed"):
        _ = stream.response

    server.reply("Fine.")  # the incomplete turn is never sent again as history
    assert client.query("Again").session(session.id).send() == "Fine."
    assert server.message_requests[-1].messages == [{"role": "user", "content": "Again"}]
    assert len(server.message_requests) == 2  # a broken stream is not retried behind our back


@pytest.mark.parametrize("how", ENDINGS)
def test_send_treats_an_early_end_the_same(client: Client, server: FakeMessagesServer,
                                           manager: SessionManager, session: Session,
                                           how: str) -> None:
    server.end_early(TEXT, after="message_delta", how=how)  # stop_reason arrived, no stop
    with pytest.raises(ERROR_OF[how]) as raised:
        client.query("Rules?").session(session.id).send()
    expect_incomplete(manager, session, raised.value, TEXT)
    assert manager.resume(session.id).messages[1].stop_reason == "end_turn"


def test_an_early_end_of_a_one_off_query_keeps_nothing(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    server.end_early(TEXT, after=3)
    with pytest.raises(BackendError) as raised:
        client.query("Rules?").send()
    assert "after 19 characters" in str(raised.value)
    assert "kept" not in str(raised.value) and manager.list() == []


def test_an_error_event_mid_stream_through_send_keeps_the_text(
        client: Client, server: FakeMessagesServer, manager: SessionManager,
        session: Session) -> None:
    server.fail_mid_stream(TEXT, after=2)
    with pytest.raises(OverloadedError, match="overloaded_error mid-stream") as raised:
        client.query("Rules?").session(session.id).send()
    assert "\n" not in str(raised.value)
    assert statuses(manager, session.id)[1] == ("assistant", "incomplete", "Ownership has")


def test_a_complete_answer_after_an_incomplete_one_is_ok(
        client: Client, server: FakeMessagesServer, manager: SessionManager,
        session: Session) -> None:
    server.end_early(TEXT, after=1, how="eof")
    server.reply(TEXT)
    with pytest.raises(BackendError):
        client.query("Rules?").session(session.id).send()
    assert client.query("Rules?").session(session.id).send() == TEXT
    assert [s[:2] for s in statuses(manager, session.id)] == [
        ("user", "error"), ("assistant", "incomplete"), ("user", "ok"), ("assistant", "ok")]


# --- the claude-code backend: the CLI ends before its result line ---------------------------


@pytest.mark.parametrize(("script", "ended", "text"), [
    (lambda f: f.exit(0, "Warning: shutting down", text=TEXT), "exited with code 0", TEXT),
    (lambda f: f.exit(0, "", text=TEXT, cut=True), "exited with code 0", TEXT),
    (lambda f: f.exit(0, ""), "exited with code 0", ""),
    (lambda f: f.exit(3, "Error: out of memory", text=TEXT, cut=True), "exited with code 3",
     TEXT),
    (lambda f: f.exit(1, "Error: boom"), "exited with code 1", ""),
    (lambda f: f.killed(signal.SIGKILL, "Error: last words", text=TEXT),
     "was killed by SIGKILL", TEXT),
    (lambda f: f.killed(signal.SIGTERM), "was killed by SIGTERM", ""),
], ids=["exit0-text", "exit0-mid-message", "exit0-nothing", "exit3-mid-message",
        "exit1-nothing", "sigkill-mid-message", "sigterm-nothing"])
def test_a_cli_that_ends_without_its_result_line_is_incomplete(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session, script, ended: str, text: str) -> None:
    fake_claude.reply("First answer.")
    cli_client.query("first").session(session.id).send()
    script(fake_claude)
    stream = cli_client.query("second").session(session.id).stream()
    received = []
    with pytest.raises(BackendError) as raised:
        for chunk in stream:
            received.append(chunk)
    message = str(raised.value)
    assert "\n" not in message and f"Claude Code {ended} before its result line" in message
    assert "".join(received) == text
    messages = manager.resume(session.id).messages
    assert [(m.role, m.status) for m in messages[:3]] == [
        ("user", "ok"), ("assistant", "ok"), ("user", "error")]
    if text:
        assert f"after {len(text)} characters" in message
        assert (messages[3].status, messages[3].content) == ("incomplete", text)
    else:
        assert "before any text" in message and len(messages) == 3

    fake_claude.reply("Third answer.")  # resumes the last answered CLI conversation
    cli_client.query("third").session(session.id).send()
    first_id = messages[1].ids["claude_session_id"]
    assert fake_claude.calls[-1]["argv"][fake_claude.calls[-1]["argv"].index("--resume") + 1] \
        == first_id


def test_a_cli_that_calls_a_cut_stream_a_success_is_incomplete(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session) -> None:
    """Some CLI versions (claude-agent-sdk 0.2.82's) end a turn whose API stream was cut
    before message_stop with a success result and no retry: the answer is still incomplete."""
    fake_claude.reply(TEXT, cut=True)
    received = []
    with pytest.raises(BackendError) as raised:
        for chunk in cli_client.query("first").session(session.id).stream():
            received.append(chunk)
    message = str(raised.value)
    assert "\n" not in message and "before message_stop" in message
    assert f"after {len(TEXT)} characters" in message and "".join(received) == TEXT
    messages = manager.resume(session.id).messages
    assert [(m.role, m.status, m.content) for m in messages] == [
        ("user", "error", "first"), ("assistant", "incomplete", TEXT)]


@pytest.mark.parametrize(("script", "shown"), [
    (lambda f: f.exit(0, "Warning: a"), "stderr: Warning: a"),
    (lambda f: f.killed(signal.SIGKILL, "line one\nline two"), "stderr: line one | line two"),
    (lambda f: f.exit(0, ""), "nothing on stderr"),
])
def test_the_error_names_the_tail_of_stderr(cli_client: Client, fake_claude: FakeClaude,
                                            session: Session, script, shown: str) -> None:
    script(fake_claude)
    with pytest.raises(BackendError) as raised:
        cli_client.query("hi").session(session.id).send()
    assert f"before its result line (before any text; {shown}); send the" in str(raised.value)


# --- what a notebook user sees --------------------------------------------------------------


@pytest.fixture
def shell(tmp_path: Path, server: FakeMessagesServer,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[TestingShell]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLAUDE_MAGIC_STORAGE", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-key-never-stored")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    ip = TestingShell.fresh()
    ip.run_cell("%load_ext claude_magic")
    ip.run_cell("%config ClaudeMagics.backend = 'anthropic'")
    ip.run_cell("%config ClaudeMagics.update_interval = 0.0")
    yield ip
    ip.run_cell("%unload_ext claude_magic")
    TestingShell.discard()


@pytest.mark.parametrize("options", ["", "--no-stream"])
def test_claude_cell_shows_one_line_for_an_answer_cut_short(
        shell: TestingShell, server: FakeMessagesServer, options: str) -> None:
    from claude_magic.magics import get_magics

    shell.run_cell("%claude_session new cut")
    server.end_early(TEXT, after=2, how="eof")
    with pytest.raises(BackendError) as raised:
        shell.run_cell(f"%%claude {options}\nRules?")
    rendered = raised.value._render_traceback_()
    assert len(rendered) == 1 and "\n" not in rendered[0]
    assert "stream ended before message_stop (after 13 characters)" in rendered[0]
    messages = get_magics(shell).manager.resume("cut").messages
    assert [(m.role, m.status, m.content) for m in messages] == [
        ("user", "error", "Rules?"), ("assistant", "incomplete", "Ownership has")]


def test_text_of_an_api_attempt_the_cli_retried_is_not_stored(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager,
        session: Session) -> None:
    fake_claude.reply(TEXT, retried="Owner")  # the CLI streamed "Owner", then retried
    stream = cli_client.query("Rules?").session(session.id).stream()
    streamed = "".join(stream)
    assert streamed.startswith("Owner\n\n")  # shown live as it came
    assert stream.response == TEXT  # the answer is the completed message only
    assert statuses(manager, session.id)[1] == ("assistant", "ok", TEXT)

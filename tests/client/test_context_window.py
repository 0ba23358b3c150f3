"""Long sessions against a small context window: each policy, and recovery from the API's 400."""

from __future__ import annotations

import pytest

from claude_magic.client import Client, Config
from claude_magic.compaction import compacted_seqs, is_summary
from claude_magic.errors import ContextWindowExceeded
from claude_magic.ledger import status_line
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_server import FakeMessagesServer

WINDOW = 1000


def words(count: int, word: str) -> str:
    return " ".join([word] * count)


def turn(client: Client, session: Session, server: FakeMessagesServer, number: int):
    server.reply(words(100, f"a{number}"))
    return client.query(words(100, f"q{number}")).session(session.id).send()


def drive(client: Client, session: Session, server: FakeMessagesServer, turns: int) -> list:
    return [turn(client, session, server, n) for n in range(turns)]


@pytest.fixture
def small(manager: SessionManager, api_key: str) -> Client:
    return Client(Config(backend="anthropic", context_window=WINDOW, retries=0), manager=manager)


def test_warn_says_when_nearly_full_then_refuses_what_cannot_fit(
        small: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    responses = []
    with pytest.raises(ContextWindowExceeded) as raised:
        for number in range(10):
            responses.append(turn(small, session, server, number))
    assert 2 <= len(responses) < 10
    assert any(r.context.near_full for r in responses)
    nearly = next(r for r in responses if r.context.near_full)
    assert "nearly full" in status_line(nearly) and "compact" in status_line(nearly)
    message = str(raised.value)
    assert "\n" not in message and f"is {WINDOW:,}" in message
    assert "compact" in message and "truncate" in message
    assert len(server.message_requests) == len(responses)  # the overflow was not sent
    last = manager.resume(session.id).messages[-1]
    assert (last.role, last.status) == ("user", "error") and "not sent" in last.error


def test_compact_policy_summarises_before_sending(
        small: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    small.config.context = "compact"
    responses = drive(small, session, server, 8)
    noted = [r for r in responses if any("compacted" in n for n in r.context.notes)]
    assert noted, "no turn compacted the session"
    messages = manager.resume(session.id).messages
    assert any(is_summary(m) for m in messages)
    last_request = server.message_requests[-1].messages
    assert "q0 " not in str(last_request)  # compacted turns are not sent
    assert last_request[0]["content"].startswith("Summarise our conversation")
    assert all(r.context.tokens <= WINDOW for r in responses)
    assert [m.status for m in messages].count("error") == 0


def test_truncate_policy_leaves_the_oldest_turns_out(
        small: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    small.config.context = "truncate"
    responses = drive(small, session, server, 8)
    notes = [n for r in responses for n in r.context.notes]
    assert any("oldest turn(s) out of the request" in n for n in notes)
    sent = server.message_requests[-1].messages
    assert "q0 " not in str(sent) and "q6 " in str(sent)
    assert len(manager.resume(session.id).messages) == 16  # the transcript keeps every turn
    assert not compacted_seqs(manager.resume(session.id).messages)


def test_a_400_prompt_too_long_then_compact_recovers(
        manager: SessionManager, api_key: str, session: Session) -> None:
    with FakeMessagesServer(context_window=WINDOW) as server:
        client = Client(Config(backend="anthropic", base_url=server.url, retries=0),
                        manager=manager)  # the client thinks the window is 200,000
        with pytest.raises(ContextWindowExceeded) as raised:
            for number in range(10):
                turn(client, session, server, number)
        assert "prompt is too long" in str(raised.value) and "compact" in str(raised.value)
        stuck = manager.resume(session.id).messages[-1]
        assert stuck.status == "error" and "prompt is too long" in stuck.error
        client.config.context_window = WINDOW
        summary = client.compact(session.id, keep_last=1)
        assert summary.compacted >= 1 and is_summary(manager.resume(session.id).messages[-1])
        server.reply("Back on track.")
        assert client.query("Where were we?").session(session.id).send() == "Back on track."


def test_the_compact_policy_recovers_from_a_400_by_itself(
        manager: SessionManager, api_key: str, session: Session) -> None:
    with FakeMessagesServer(context_window=WINDOW) as server:
        client = Client(Config(backend="anthropic", base_url=server.url, retries=0,
                               context="compact", context_window=10 * WINDOW),
                        manager=manager)  # a wrong window: the estimate is too small
        responses = drive(client, session, server, 8)
        notes = [n for r in responses for n in r.context.notes]
        assert any("the API found the prompt too long" in n for n in notes)
        failed = [m for m in manager.resume(session.id).messages if m.status == "error"]
        assert failed and all("prompt is too long" in m.error for m in failed)


def test_count_tokens_asks_the_api_before_sending(
        small: Client, server: FakeMessagesServer, session: Session) -> None:
    small.config.count_tokens = True
    turn(small, session, server, 0)
    paths = [r.path for r in server.requests]
    assert paths == ["/v1/messages/count_tokens", "/v1/messages"]

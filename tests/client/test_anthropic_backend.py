"""The real `anthropic` SDK against the fake Messages API server, through Client."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from claude_magic.client import Client, Config
from claude_magic.errors import (
    AuthenticationError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    OverloadedError,
    RateLimitError,
    StorageError,
)
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage
from claude_magic.session import Session
from claude_magic.testing.fake_server import FakeMessagesServer


def roles_and_statuses(manager: SessionManager, session_id: str) -> list[tuple[str, str]]:
    return [(m.role, m.status) for m in manager.resume(session_id).messages]


def test_turn_two_carries_the_system_prompt_and_turn_one(
        client: Client, server: FakeMessagesServer, session: Session) -> None:
    server.reply("Ownership means one owner.")
    server.reply("let s = String::new();")
    first = client.query("Explain ownership").session(session.id).send()
    second = client.query("An example?").session(session.id).send()

    assert first == "Ownership means one owner." and second == "let s = String::new();"
    turn1, turn2 = (r.body for r in server.message_requests)
    assert turn1["system"] == "You are terse."
    cached = {"type": "ephemeral"}  # caching is on by default (5 minutes)
    assert turn1["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Explain ownership", "cache_control": cached}]}]
    assert turn2["system"] == "You are terse."
    assert turn2["messages"] == [
        {"role": "user", "content": "Explain ownership"},
        {"role": "assistant", "content": "Ownership means one owner."},
        {"role": "user", "content": [
            {"type": "text", "text": "An example?", "cache_control": cached}]},
    ]
    assert turn2["stream"] is True and turn2["model"] == "claude-sonnet-4-6"
    assert turn2["max_tokens"] == 4096


def test_chunks_stream_in_order_as_they_arrive(client: Client, server: FakeMessagesServer,
                                               session: Session) -> None:
    chunks = ["The ", "borrow ", "checker ", "says ", "no."]
    server.reply("".join(chunks), chunks=chunks, delay=0.15)
    stream = client.query("Why?").session(session.id).stream()
    arrivals = []
    received = []
    for chunk in stream:
        received.append(chunk)
        arrivals.append(time.perf_counter())
    assert received == chunks
    # Streamed, not buffered: the first chunk came long before the last.
    assert arrivals[-1] - arrivals[0] > 0.4
    response = stream.response
    assert response == "The borrow checker says no."
    assert response.time_to_first_chunk < response.duration - 0.4


def test_usage_cost_and_ids_are_recorded(client: Client, server: FakeMessagesServer,
                                         manager: SessionManager, session: Session) -> None:
    server.reply("Done.", usage={"input_tokens": 1200, "output_tokens": 300,
                                 "cache_read_input_tokens": 1000}, model="claude-sonnet-4-6")
    response = client.query("Go").session(session.id).send()

    expected_cost = 1200 * 3e-6 + 300 * 15e-6 + 1000 * 3e-6 * 0.1
    assert response.usage == Usage(input_tokens=1200, output_tokens=300,
                                   cache_read_input_tokens=1000)
    assert response.cost_usd == pytest.approx(expected_cost)
    assert response.stop_reason == "end_turn" and response.model == "claude-sonnet-4-6"
    assert response.backend == "anthropic" and response.offline is False
    assert response.session_id == session.id and response.turn == 1
    assert response.ids["message_id"].startswith("msg_")
    assert response.ids["request_id"].startswith("req_")

    stored = manager.resume(session.id).messages
    assert [(m.role, m.status, m.seq) for m in stored] == [("user", "ok", 0),
                                                           ("assistant", "ok", 1)]
    answer = stored[1]
    assert answer.content == "Done." and answer.usage == response.usage
    assert answer.cost_usd == pytest.approx(expected_cost)
    assert answer.model == "claude-sonnet-4-6" and answer.backend == "anthropic"
    assert answer.ids == response.ids and answer.duration_ms > 0
    assert stored[0].backend == "anthropic" and stored[0].model == "claude-sonnet-4-6"


def test_unknown_model_has_no_cost_estimate(client: Client, server: FakeMessagesServer,
                                            session: Session) -> None:
    response = client.query("hi").session(session.id).model("claude-future-9").send()
    assert server.message_requests[0].body["model"] == "claude-future-9"
    assert response.cost_usd is None and response.usage.output_tokens > 0


@pytest.mark.parametrize(("status", "error", "attempts"), [
    (401, AuthenticationError, 1),
    (403, AuthenticationError, 1),
    (400, BadRequest, 1),
    (429, RateLimitError, 3),
    (500, OverloadedError, 3),
    (529, OverloadedError, 3),
])
def test_http_failures_map_to_our_errors_and_mark_the_turn(
        client: Client, server: FakeMessagesServer, manager: SessionManager, session: Session,
        status: int, error: type[Exception], attempts: int) -> None:
    server.fail(status, times=3, retry_after_ms=1)
    with pytest.raises(error) as raised:
        client.query("Will this work?").session(session.id).send()

    message = str(raised.value)
    assert "\n" not in message and str(status) in message
    assert len(server.message_requests) == attempts  # retried exactly as the SDK promises
    stored = manager.resume(session.id).messages
    assert [(m.role, m.status) for m in stored] == [("user", "error")]
    assert stored[0].error == message

    # The failed turn is never sent back as if it had been answered.
    server.reset()
    client.query("Try again").session(session.id).send()
    assert server.message_requests[0].messages == [
        {"role": "user", "content": "Try again"}]


def test_retries_recover_from_overload_and_rate_limit(
        client: Client, server: FakeMessagesServer, manager: SessionManager,
        session: Session) -> None:
    server.fail(529, retry_after_ms=1)
    server.fail(429, retry_after=0.01)
    server.reply("Finally.")
    response = client.query("Hello").session(session.id).send()
    assert response == "Finally."
    assert len(server.message_requests) == 3
    assert [r.headers["x-stainless-retry-count"] for r in server.message_requests] == [
        "0", "1", "2"]
    assert roles_and_statuses(manager, session.id) == [("user", "ok"), ("assistant", "ok")]


def test_mid_stream_error_keeps_partial_text_as_incomplete(
        client: Client, server: FakeMessagesServer, manager: SessionManager,
        session: Session) -> None:
    server.fail_mid_stream("Rust has three rules", after=3)
    stream = client.query("Rules?").session(session.id).stream()
    received = []
    with pytest.raises(OverloadedError, match="mid-stream"):
        for chunk in stream:
            received.append(chunk)
    assert received == ["Rust", " has", " three"]
    assert len(server.message_requests) == 1  # an error event on a 200 is not retried

    user, partial = manager.resume(session.id).messages
    assert (user.status, partial.role, partial.status) == ("error", "assistant", "incomplete")
    assert partial.content == "Rust has three" and partial.error == user.error
    assert "overloaded" in user.error.lower()
    with pytest.raises(Exception, match="failed"):
        _ = stream.response

    client.query("Again").session(session.id).send()
    assert server.message_requests[-1].messages == [{"role": "user", "content": "Again"}]


def _failing_answers(manager: SessionManager, monkeypatch: pytest.MonkeyPatch,
                     error: Exception) -> Callable[[str, Message], Message]:
    """Make the store fail to append the (ok) answer of a turn, and only that; returns the
    real ``append``."""
    real = manager.append

    def append(session_id: str, message: Message) -> Message:
        if message.role == "assistant" and message.status == "ok":
            raise error
        return real(session_id, message)

    monkeypatch.setattr(manager, "append", append)
    return real


def test_a_store_failure_at_the_end_of_a_turn_is_recorded_and_raised(
        client: Client, server: FakeMessagesServer, manager: SessionManager, session: Session,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server.reply("Rust has three rules", usage={"input_tokens": 40, "output_tokens": 4},
                 model="claude-sonnet-4-6")
    real_append = _failing_answers(manager, monkeypatch, StorageError(
        "session directory /x stayed locked for 60s; is another process stuck?"))
    stream = client.query("Rules?").session(session.id).stream()
    received = []
    with pytest.raises(StorageError, match="stayed locked for 60s") as caught:
        for chunk in stream:
            received.append(chunk)
    assert "".join(received) == "Rust has three rules"
    assert "\n" not in str(caught.value) and stream.error is caught.value
    with pytest.raises(Exception, match="failed"):
        _ = stream.response

    user, answer = manager.resume(session.id).messages
    assert (user.status, answer.status) == ("error", "incomplete")
    assert "stayed locked" in user.error and answer.error == user.error
    assert answer.content == "Rust has three rules"  # the streamed text is kept
    assert answer.usage == Usage(input_tokens=40, output_tokens=4) and answer.cost_usd > 0
    assert answer.model == "claude-sonnet-4-6"

    monkeypatch.setattr(manager, "append", real_append)
    client.query("Again").session(session.id).send()  # the failed turn is not history
    assert server.message_requests[-1].messages == [{"role": "user", "content": "Again"}]


def test_an_answer_the_store_refuses_is_kept_as_incomplete_text(
        client: Client, server: FakeMessagesServer, manager: SessionManager, session: Session,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server.reply("Done.")
    _failing_answers(manager, monkeypatch, TypeError("message cost_usd must be a number"))
    with pytest.raises(Exception, match="TypeError: message cost_usd must be a number") as caught:
        client.query("Go").session(session.id).send()
    assert "\n" not in str(caught.value)
    assert roles_and_statuses(manager, session.id) == [("user", "error"),
                                                       ("assistant", "incomplete")]
    assert manager.resume(session.id).messages[1].content == "Done."


def test_closing_a_stream_early_keeps_the_store_consistent(
        client: Client, server: FakeMessagesServer, manager: SessionManager,
        session: Session) -> None:
    server.reply("one two three four five six", delay=0.05)
    with client.query("Count").session(session.id).stream() as stream:
        assert next(stream) == "one"
        assert next(stream) == " two"
    user, partial = manager.resume(session.id).messages
    assert user.status == "error" and "closed before the answer finished" in user.error
    assert (partial.status, partial.content) == ("incomplete", "one two")


def test_read_timeout_is_a_backend_timeout(manager: SessionManager, server: FakeMessagesServer,
                                           api_key: str, session: Session) -> None:
    client = Client(Config(backend="anthropic", retries=0, timeout=0.3), manager=manager)
    server.slow("too slow", delay=2.0)
    started = time.perf_counter()
    with pytest.raises(BackendTimeout, match=r"0\.3 s"):
        client.query("Quick?").session(session.id).send()
    assert time.perf_counter() - started < 1.9
    # message_start had arrived: no text, but what the request cost is kept on the record
    assert roles_and_statuses(manager, session.id) == [("user", "error"),
                                                       ("assistant", "incomplete")]
    spent = manager.resume(session.id).messages[1]
    assert spent.content == "" and spent.usage.input_tokens > 0 and spent.cost_usd > 0


def test_unreachable_server_is_backend_unavailable(manager: SessionManager, api_key: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   session: Session) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    client = Client(Config(backend="anthropic", retries=0), manager=manager)
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        client.query("Anyone?").session(session.id).send()
    assert roles_and_statuses(manager, session.id) == [("user", "error")]


def test_missing_key_says_how_to_set_it(manager: SessionManager, server: FakeMessagesServer,
                                        monkeypatch: pytest.MonkeyPatch,
                                        session: Session) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    client = Client(Config(backend="anthropic"), manager=manager)
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY") as raised:
        client.query("hi").session(session.id).send()
    assert "\n" not in str(raised.value)
    assert server.message_requests == []
    assert roles_and_statuses(manager, session.id) == [("user", "error")]


def test_key_and_base_url_are_read_at_call_time(client: Client, server: FakeMessagesServer,
                                                monkeypatch: pytest.MonkeyPatch,
                                                api_key: str) -> None:
    client.query("one").send()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-second-key")
    client.query("two").send()
    first, second = server.message_requests
    assert (first.api_key, second.api_key) == (api_key, "sk-ant-second-key")
    assert first.auth_scheme == "bearer"  # anthropic 2.x sends Authorization: Bearer
    with FakeMessagesServer() as other:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", other.url)
        client.query("three").send()
        assert len(other.message_requests) == 1 and len(server.message_requests) == 2


def test_one_off_query_stores_nothing(client: Client, server: FakeMessagesServer,
                                      manager: SessionManager, session: Session) -> None:
    response = client.query("Just once").system("Be kind.").send()
    assert response.session_id is None and response.turn is None
    assert server.message_requests[0].messages == [
        {"role": "user", "content": "Just once"}]
    assert server.message_requests[0].body["system"] == "Be kind."
    assert manager.list() == [session.id] and manager.resume(session.id).messages == []


def test_overrides_then_session_settings_then_config(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    tuned = (manager.create_session().with_system_prompt("stored prompt")
             .with_model("claude-haiku-4-5").with_setting("max_tokens", 256).build())
    client.query("a").session(tuned.id).send()
    client.query("b").session(tuned.id).model("claude-opus-4-5").max_tokens(99) \
        .system("just this turn").send()
    plain = manager.create_session().build()
    client.config.model = "claude-opus-4-6"
    client.query("c").session(plain.id).send()

    bodies = [r.body for r in server.message_requests]
    assert [(b["model"], b["max_tokens"], b.get("system")) for b in bodies] == [
        ("claude-haiku-4-5", 256, "stored prompt"),
        ("claude-opus-4-5", 99, "just this turn"),
        ("claude-opus-4-6", 4096, None),
    ]
    assert manager.resume(tuned.id).system_prompt == "stored prompt"
    stored = manager.resume(tuned.id).messages
    assert [m.model for m in stored] == ["claude-haiku-4-5"] * 2 + ["claude-opus-4-5"] * 2


def test_session_setting_can_choose_the_backend(client: Client, server: FakeMessagesServer,
                                                manager: SessionManager) -> None:
    offline = manager.create_session().with_backend("echo").build()
    response = client.query("hi").session(offline.id).send()
    assert response.backend == "echo" and response.offline
    assert server.message_requests == []
    assert client.query("hi").session(offline.id).backend("anthropic").send().backend == \
        "anthropic"


def test_the_key_never_reaches_the_store(client: Client, server: FakeMessagesServer,
                                         manager: SessionManager, session: Session,
                                         store_dir, api_key: str) -> None:
    server.fail(401, message=f"invalid x-api-key {api_key}")  # a server that echoes the key
    with pytest.raises(AuthenticationError) as raised:
        client.query("first").session(session.id).send()
    assert api_key not in str(raised.value) and "invalid x-api-key ***" in str(raised.value)
    server.fail_mid_stream("partial words here", after=1)
    with pytest.raises(OverloadedError):
        client.query("second").session(session.id).send()
    client.query("third").session(session.id).send()

    files = [p for p in store_dir.rglob("*") if p.is_file()]
    assert files, "the store wrote no files"
    for path in files:
        assert api_key.encode() not in path.read_bytes(), path
    assert api_key not in repr(client) and api_key not in repr(client.config)
    assert api_key not in repr(client.backend("anthropic"))

"""Prompt caching through the real `anthropic` SDK against the fake server's prompt cache."""

from __future__ import annotations

import anthropic
import pytest

from claude_magic.backends.pricing import estimate_cost
from claude_magic.client import Client, Config
from claude_magic.errors import BadRequest
from claude_magic.manager import SessionManager
from claude_magic.message import Usage
from claude_magic.session import Session
from claude_magic.testing.fake_server import FakeMessagesServer, input_tokens_of

LONG_SYSTEM = "You review Rust code carefully and answer briefly. " * 120  # > 1024 tokens


def words(count: int, word: str = "token") -> str:
    return " ".join([word] * count)


def test_the_newest_prompt_and_a_long_system_prompt_carry_breakpoints(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    session = manager.create_session().with_system_prompt(LONG_SYSTEM).build()
    client.query("first").session(session.id).send()
    client.query("second").session(session.id).send()
    request = server.message_requests[-1]
    assert request.body["system"] == [{"type": "text", "text": LONG_SYSTEM,
                                       "cache_control": {"type": "ephemeral"}}]
    last = request.body["messages"][-1]
    assert last["content"] == [{"type": "text", "text": "second",
                                "cache_control": {"type": "ephemeral"}}]
    assert len(request.breakpoints) == 2  # of the 4 the API allows
    assert request.body["messages"][0]["content"] == "first"  # older turns go as sent


def test_a_short_system_prompt_gets_no_breakpoint_and_1h_asks_for_the_hour(
        client: Client, server: FakeMessagesServer, session: Session) -> None:
    client.config.cache = "1h"
    client.query("hi").session(session.id).send()
    body = server.message_requests[-1].body
    assert body["system"] == "You are terse."
    assert server.message_requests[-1].breakpoints == [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]


def test_cache_none_sends_no_cache_control(
        manager: SessionManager, server: FakeMessagesServer, api_key: str) -> None:
    client = Client(Config(backend="anthropic", cache=None), manager=manager)
    session = manager.create_session().with_system_prompt(LONG_SYSTEM).build()
    client.query("one").session(session.id).send()
    client.query("two").session(session.id).send()
    for request in server.message_requests:
        assert request.breakpoints == [] and "cache_control" not in str(request.body)
        assert request.body["system"] == LONG_SYSTEM
    answer = manager.resume(session.id).messages[-1]
    assert answer.usage.cache_read_input_tokens == answer.usage.cache_creation_input_tokens == 0


def test_turn_two_reads_turn_one_from_the_cache_and_the_cost_uses_it(
        client: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    server.cache.min_tokens = 50
    server.reply(words(60, "answer"))
    server.reply(words(5, "done"))
    client.query(words(100)).session(session.id).send()
    second = client.query(words(80, "more")).session(session.id).send()
    first_body, second_body = (r.body for r in server.message_requests)
    first_total = input_tokens_of(first_body)
    one, two = (m for m in manager.resume(session.id).messages if m.role == "assistant")
    assert one.usage == Usage(input_tokens=0, output_tokens=60,
                              cache_creation_input_tokens=first_total)
    # the resent prefix (system + turn one's prompt) is read; the answer and new prompt written
    assert two.usage.cache_read_input_tokens == first_total
    assert two.usage.cache_creation_input_tokens == input_tokens_of(second_body) - first_total
    assert two.usage.input_tokens == 0
    assert second.usage == two.usage
    assert two.cost_usd == pytest.approx(
        (two.usage.cache_creation_input_tokens * 3.75 + first_total * 0.3 + 5 * 15) / 1e6)


def test_a_prefix_shorter_than_the_minimum_is_not_cached(
        client: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    client.query("short").session(session.id).send()  # default minimum: 1024 tokens
    client.query("again").session(session.id).send()
    answer = manager.resume(session.id).messages[-1]
    assert answer.usage.cache_creation_input_tokens == answer.usage.cache_read_input_tokens == 0
    assert answer.usage.input_tokens == input_tokens_of(server.message_requests[-1].body)


@pytest.mark.parametrize(("ttl", "wait", "read"), [
    ("5m", 299, True), ("5m", 301, False), ("1h", 301, True), ("1h", 3601, False)])
def test_cache_entries_live_for_their_ttl(
        client: Client, server: FakeMessagesServer, session: Session, manager: SessionManager,
        ttl: str, wait: float, read: bool) -> None:
    server.cache.min_tokens = 10
    client.config.cache = ttl
    client.query(words(30)).session(session.id).send()
    server.advance(wait)
    client.query(words(30, "next")).session(session.id).send()
    answer = manager.resume(session.id).messages[-1]
    assert (answer.usage.cache_read_input_tokens > 0) is read


def test_one_hour_writes_cost_twice_the_input_price(
        client: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    server.cache.min_tokens = 10
    client.config.cache = "1h"
    client.query(words(40)).session(session.id).send()
    answer = manager.resume(session.id).messages[-1]
    written = answer.usage.cache_creation_input_tokens
    assert written > 0
    assert answer.cost_usd == pytest.approx((written * 3.0 * 2 + answer.usage.output_tokens
                                             * 15.0) / 1e6)
    assert estimate_cost("claude-sonnet-4-6", answer.usage) < answer.cost_usd  # 1.25x at 5m


def test_the_fake_server_refuses_a_fifth_breakpoint_as_the_api_does(
        server: FakeMessagesServer) -> None:
    sdk = anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=0)
    block = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks"):
        sdk.messages.create(model="claude-sonnet-4-6", max_tokens=10,
                            messages=[{"role": "user", "content": [block] * 5}])


def test_count_tokens_endpoint_through_the_sdk(server: FakeMessagesServer) -> None:
    sdk = anthropic.Anthropic(api_key="test", base_url=server.url, max_retries=0)
    counted = sdk.messages.count_tokens(
        model="claude-sonnet-4-6", system=[{"type": "text", "text": "Be brief."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}])
    assert counted.input_tokens == 5  # Be, brief, ., Hello, there


def test_config_refuses_an_unknown_cache_lifetime() -> None:
    with pytest.raises(ValueError, match="cache must be '5m', '1h' or None"):
        Config(cache="10m")
    assert Config(cache="off").cache is None


def test_a_bad_request_error_still_maps_for_other_400s(
        client: Client, server: FakeMessagesServer, session: Session) -> None:
    server.fail(400, message="messages: roles must alternate")
    with pytest.raises(BadRequest, match="roles must alternate") as raised:
        client.query("x").session(session.id).send()
    assert type(raised.value) is BadRequest

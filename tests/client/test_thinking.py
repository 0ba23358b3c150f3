"""Extended thinking end to end: the fake server streams a signed thinking block as the API
does, the real ``anthropic`` SDK delivers it, the answer stores it with its signature, and the
next turn sends it back untouched (a changed one is refused by the server, as by the API)."""

from __future__ import annotations

import anthropic
import pytest

from claude_magic import Client, Config
from claude_magic.backends.base import Aside
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.wire import signature_of

THOUGHT = "Two plus two is four, so the answer is four."


def test_the_fake_server_streams_thinking_as_the_api_does(server: FakeMessagesServer,
                                                          api_key: str) -> None:
    server.reply("Four.", thinking=THOUGHT)
    sdk = anthropic.Anthropic(max_retries=0)
    with sdk.messages.stream(model="claude-sonnet-4-6", max_tokens=4096,
                             thinking={"type": "enabled", "budget_tokens": 2048},
                             messages=[{"role": "user", "content": "2+2?"}]) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    assert ("content_block_delta", "thinking_delta") in kinds
    assert ("content_block_delta", "signature_delta") in kinds
    assert kinds.index(("content_block_delta", "signature_delta")) < kinds.index(
        ("content_block_delta", "text_delta"))
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert thinking.signature == signature_of(THOUGHT)
    assert text.type == "text" and text.text == "Four."
    # without thinking in the request the same scripted reply is text only
    server.reply("Four.", thinking=THOUGHT)
    plain = sdk.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                messages=[{"role": "user", "content": "2+2?"}])
    assert [b.type for b in plain.content] == ["text"]


def test_a_changed_thinking_block_is_refused(server: FakeMessagesServer, api_key: str) -> None:
    sdk = anthropic.Anthropic(max_retries=0)
    forged = {"type": "thinking", "thinking": "edited", "signature": signature_of(THOUGHT)}
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        sdk.messages.create(model="claude-sonnet-4-6", max_tokens=4096, messages=[
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": [forged, {"type": "text", "text": "Four."}]},
            {"role": "user", "content": "and 3+3?"}])


def test_thinking_is_streamed_stored_and_resent(client: Client, server: FakeMessagesServer,
                                                session: Session) -> None:
    server.reply("Four.", thinking=THOUGHT)
    with client.query("2+2?").session(session.id).think(2048).asides().stream() as stream:
        chunks = list(stream)
    asides = [c for c in chunks if isinstance(c, Aside)]
    assert {a.kind for a in asides} == {"thinking"} and "".join(asides) == THOUGHT
    assert "".join(c for c in chunks if not isinstance(c, Aside)) == "Four."

    answer = client.manager.resume(session.id).messages[1]
    assert answer.content[0] == {"type": "thinking", "thinking": THOUGHT,
                                 "signature": signature_of(THOUGHT)}
    assert answer.text == "Four."

    server.reply("Six.")
    client.query("and 3+3?").session(session.id).think(2048).send()
    resent = server.message_requests[-1].body["messages"][1]
    assert resent["role"] == "assistant"
    assert resent["content"][0] == answer.content[0]  # byte for byte, signature included
    assert [b["type"] for b in resent["content"]] == ["thinking", "text"]


def test_stored_thinking_survives_a_new_manager(server: FakeMessagesServer, api_key: str,
                                                store_dir) -> None:
    with SessionManager(str(store_dir)) as manager:
        client = Client(Config(backend="anthropic", thinking=1024), manager=manager)
        session = manager.create_session("t").build()
        server.reply("Four.", thinking=THOUGHT)
        client.query("2+2?").session(session.id).send()
    with SessionManager(str(store_dir)) as manager:
        client = Client(Config(backend="anthropic", thinking=1024), manager=manager)
        server.reply("Six.")
        client.query("and 3+3?").session("t").send()
    assert server.message_requests[-1].body["messages"][1]["content"][0]["signature"] == (
        signature_of(THOUGHT))

"""A turn reuses the request dicts of the messages it sent before (built once each): what the
fake Messages API server receives is exactly what building the request from the store's
history anew gives, with caching on, stored images expanded each time, after a compaction,
and after another manager changes the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_magic import Client, Config, SessionManager
from claude_magic.backends.caching import build_messages
from claude_magic.blocks import image_block
from claude_magic.storage._assets import expand
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.turn import answered_history

from .test_rich_messages import PNG


def rebuilt(manager: SessionManager, sid: str, prompt: str, cache: str | None) -> list[dict]:
    """The ``messages`` of the next request, built from the store with no reuse at all."""
    history = answered_history(manager.resume(sid).messages)
    return build_messages(list(history), prompt, cache,
                          expand=lambda m: m.content if isinstance(m.content, str)
                          else expand(manager.storage, m.content))


@pytest.mark.parametrize("cache", ["5m", None])
def test_each_request_is_the_store_history_built_anew(
        server: FakeMessagesServer, api_key: str, tmp_path: Path, cache: str | None) -> None:
    manager = SessionManager(f"sqlite:///{tmp_path}/s.db")
    other = SessionManager(f"sqlite:///{tmp_path}/s.db")
    client = Client(Config(backend="anthropic", retries=0, timeout=10, cache=cache), manager)
    sid = manager.create_session().with_system_prompt("Be brief.").build().id
    steps = ["one", [image_block(PNG, "image/png"), {"type": "text", "text": "see this"}],
             "two", "compact", "three", "other", "four"]
    for step in steps:
        if step == "compact":
            server.reply("a summary")
            client.compact(sid, keep_last=1)
            continue
        if step == "other":  # another manager marks the last answer: everything is re-read
            last = other.resume(sid).messages[-1]
            other.mark(sid, last.seq, "error", "withdrawn")
            continue
        prompt = step if isinstance(step, str) else "see this"
        expected = rebuilt(manager, sid, prompt, cache)
        server.reply(f"answer {len(server.message_requests)}")
        client.query(step).session(sid).send()
        sent = server.message_requests[-1].body["messages"]
        if isinstance(step, list):  # the new prompt's blocks: checked by the image tests
            expected, sent = expected[:-1], sent[:-1]
        assert sent == expected
    images = [b for m in server.message_requests[2].body["messages"][:-1]  # the turn "two"
              if isinstance(m["content"], list) for b in m["content"] if b["type"] == "image"]
    assert images and images[0]["source"]["type"] == "base64"  # expanded, not a reference
    other.close()
    manager.close()

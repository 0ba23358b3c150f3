"""The client keeps each session's history between turns and reads only what changed: whatever
another process or manager writes in between, the next request carries exactly the store's
history (checked on what the fake Messages API server received)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic import Client, Config, SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId
from claude_magic.testing import FakeMessagesServer
from claude_magic.turn import answered_history

KINDS = ["directory", "sqlite", "memory"]


@pytest.fixture(params=KINDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    return {"directory": str(tmp_path / "sessions"), "sqlite": f"sqlite:///{tmp_path}/s.db",
            "memory": "memory"}[kind]


@pytest.fixture
def pair(spec: str, api_key: str) -> Iterator[tuple[Client, SessionManager]]:
    """The client's manager and another one on the same store (the same storage object for
    memory, which cannot be shared otherwise)."""
    mine = SessionManager(spec)
    other = SessionManager(mine.storage) if spec == "memory" else SessionManager(spec)
    yield Client(Config(backend="anthropic", retries=0, timeout=10), manager=mine), other
    other.close()
    mine.close()


def expect(server: FakeMessagesServer, session: Session, prompt: str) -> None:
    """The last request carried the session's system prompt and answered history (as the
    store held it before the turn), then ``prompt``."""
    history = [{"role": m.role, "content": m.text} for m in answered_history(session.messages)]
    request = server.message_requests[-1]
    assert request.messages == [*history, {"role": "user", "content": prompt}]
    system = request.body.get("system")
    if isinstance(system, list):
        system = "".join(block["text"] for block in system)
    assert system == session.system_prompt


def turn(client: Client, server: FakeMessagesServer, other: SessionManager, sid: str,
         prompt: str) -> None:
    before = other.resume(sid)
    server.reply(f"answer to {prompt}")
    client.query(prompt).session(sid).send()
    expect(server, before, prompt)


def test_each_change_by_another_manager_is_in_the_next_request(
        pair: tuple[Client, SessionManager], server: FakeMessagesServer) -> None:
    client, other = pair
    sid = client.manager.create_session("s1").with_system_prompt("Be terse.").build().id
    turn(client, server, other, sid, "one")
    turn(client, server, other, sid, "two")  # the cache now holds the session

    other.append(sid, Message("user", "from elsewhere"))
    other.append(sid, Message("assistant", "elsewhere's answer"))
    turn(client, server, other, sid, "after an append")

    last = other.resume(sid).messages[-1].seq
    other.mark(sid, last, "error", "withdrawn")  # the last answer is no longer sent
    turn(client, server, other, sid, "after a mark")

    other.update(sid, system_prompt="Be verbose.", settings={"max_tokens": 77})
    turn(client, server, other, sid, "after an update")
    assert server.message_requests[-1].body["max_tokens"] == 77

    replacement = Session(SessionId(sid), "Replaced.", messages=[
        Message("user", "old question"), Message("assistant", "old answer")])
    other.import_session(replacement, overwrite=True)  # same id, same count: other messages
    turn(client, server, other, sid, "after an overwrite")

    other.delete(sid)
    other.create_session(sid).with_system_prompt("New.").build()
    turn(client, server, other, sid, "after delete and create")
    assert len(server.message_requests[-1].messages) == 1


def test_a_rename_elsewhere_is_seen(pair: tuple[Client, SessionManager],
                                    server: FakeMessagesServer) -> None:
    client, other = pair
    sid = client.manager.create_session("a").build().id
    turn(client, server, other, sid, "one")
    other.rename(sid, "b")
    other.create_session("a").with_system_prompt("Fresh.").build()
    other.append("a", Message("user", "q"))
    other.append("a", Message("assistant", "r"))
    turn(client, server, other, "a", "in the new a")
    turn(client, server, other, "b", "in b")


def test_the_cache_reads_only_new_messages(pair: tuple[Client, SessionManager],
                                           server: FakeMessagesServer) -> None:
    """After a turn, the next reads two messages, not the whole history."""
    client, other = pair
    history = [Message("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(200)]
    sid = other.import_session(Session(SessionId("long"), messages=history)).id
    turn(client, server, other, sid, "first")
    entry = client._history(sid)
    assert len(entry.session.messages) == 202 and entry.answered == 101
    load_since = client.manager.storage.load_since  # type: ignore[attr-defined]
    found = load_since(sid, entry.position)
    assert found is not None and found[2] is True and found[0].messages == []
    other.append(sid, Message("user", "x"))
    found = load_since(sid, entry.position)
    assert found is not None and found[2] is True and [m.text for m in found[0].messages] == ["x"]


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_another_process_appending_is_seen(kind: str, tmp_path: Path, api_key: str,
                                           server: FakeMessagesServer) -> None:
    spec = str(tmp_path / "sessions") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"
    with SessionManager(spec) as mine, SessionManager(spec) as reader:
        client = Client(Config(backend="anthropic", retries=0, timeout=10), manager=mine)
        sid = mine.create_session("p").build().id
        turn(client, server, reader, sid, "one")
        code = ("import sys; from claude_magic import SessionManager; "
                "from claude_magic.message import Message; m = SessionManager(sys.argv[1]); "
                "m.append('p', Message('user', 'q from a process')); "
                "m.append('p', Message('assistant', 'its answer')); "
                "m.mark('p', 0, 'error', 'gone')")
        subprocess.run([sys.executable, "-c", code, spec], check=True, timeout=60)
        turn(client, server, reader, sid, "two")
        assert server.message_requests[-1].messages[0]["content"] == "q from a process"

"""Offline backends: replay (a recorded session, turn by turn) and echo (no model at all)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_magic.client import Client, Config
from claude_magic.errors import BackendUnavailable, ReplayMismatch
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_server import FakeMessagesServer

PROMPTS = ["What is ownership?", "Show an example.", "Thanks!"]


@pytest.fixture
def recording(client: Client, server: FakeMessagesServer, manager: SessionManager) -> Session:
    """A session recorded against the (fake) Messages API, with one failed turn in it."""
    recorded = manager.create_session("recorded").with_system_prompt("Teach Rust.").build()
    server.reply("Each value has one owner.", model="claude-opus-4-6")
    client.query(PROMPTS[0]).session(recorded.id).send()
    server.fail(400)
    with pytest.raises(Exception, match="400"):
        client.query("a failed question").session(recorded.id).send()
    server.reply("let a = String::from(\"x\"); let b = a;")
    client.query(PROMPTS[1]).session(recorded.id).send()
    server.reply("You're welcome.")
    client.query(PROMPTS[2]).session(recorded.id).send()
    return manager.resume(recorded.id)


def test_replay_reproduces_a_recorded_session_without_a_model(
        recording: Session, manager: SessionManager, server: FakeMessagesServer) -> None:
    requests_before = len(server.message_requests)
    replayer = Client(Config(backend="replay", replay_source="recorded"), manager=manager)
    rerun = manager.create_session().with_system_prompt("Teach Rust.").build()

    stream = replayer.query(PROMPTS[0]).session(rerun.id).stream()
    chunks = list(stream)
    first = stream.response
    assert chunks == ["Each", " value", " has", " one", " owner."]
    assert first == "Each value has one owner." and first.backend == "replay"
    assert first.offline and first.model == "claude-opus-4-6" and first.cost_usd is None
    answers = [first] + [replayer.query(p).session(rerun.id).send() for p in PROMPTS[1:]]

    recorded_answers = [m.content for m in recording.messages
                        if m.role == "assistant" and m.status == "ok"]
    assert answers == recorded_answers
    assert len(server.message_requests) == requests_before  # no model was asked
    stored = manager.resume(rerun.id).messages
    assert [m.content for m in stored] == [PROMPTS[0], answers[0], PROMPTS[1], answers[1],
                                           PROMPTS[2], answers[2]]
    assert all(m.status == "ok" and m.backend == "replay" for m in stored)
    assert stored[1].ids["replayed_from"] == "recorded#1"


def test_replay_from_an_exported_json_file(recording: Session, tmp_path: Path) -> None:
    exported = tmp_path / "recorded.json"
    exported.write_text(json.dumps(recording.to_dict()))
    other = Client(Config(backend="replay", replay_source=str(exported)))  # its own store
    sid = other.manager.create_session().build().id
    replies = [other.query(p).session(sid).send() for p in PROMPTS]
    assert replies[1] == "let a = String::from(\"x\"); let b = a;"


def test_replay_from_a_json_export_file(recording: Session, manager: SessionManager,
                                       tmp_path: Path) -> None:
    from claude_magic.export import export_session

    exported = export_session(manager, recording.id, "json", tmp_path / "export.json")
    other = Client(Config(backend="replay", replay_source=str(exported)))
    sid = other.manager.create_session().build().id
    replies = [other.query(p).session(sid).send() for p in PROMPTS]
    assert replies[1] == "let a = String::from(\"x\"); let b = a;"


def test_a_changed_prompt_fails_naming_both_prompts(recording: Session,
                                                    manager: SessionManager) -> None:
    replayer = Client(Config(backend="replay", replay_source="recorded"), manager=manager)
    rerun = manager.create_session().build()
    replayer.query(PROMPTS[0]).session(rerun.id).send()
    changed = "Show a much longer example with generics, traits and lifetimes everywhere."
    with pytest.raises(ReplayMismatch) as raised:
        replayer.query(changed).session(rerun.id).send()
    message = str(raised.value)
    assert "turn 2 differs from the recording 'recorded'" in message
    assert "'Show an example.'" in message and "Show a much longer example" in message
    assert "everywhere." not in message  # shortened
    assert "\n" not in message

    # The mismatch is recorded as a failed turn; the right prompt then continues the replay.
    assert [m.status for m in manager.resume(rerun.id).messages] == ["ok", "ok", "error"]
    assert replayer.query(" Show an example.\n").session(rerun.id).send().startswith("let a")


def test_replay_past_the_end_and_without_a_source(recording: Session,
                                                  manager: SessionManager) -> None:
    replayer = Client(Config(backend="replay", replay_source="recorded"), manager=manager)
    rerun = manager.create_session().build()
    for prompt in PROMPTS:
        replayer.query(prompt).session(rerun.id).send()
    with pytest.raises(ReplayMismatch, match=r"turn 4 .* which has 3 turn"):
        replayer.query("More?").session(rerun.id).send()
    replayer.config.replay_source = None
    with pytest.raises(BackendUnavailable, match="replay_source"):
        replayer.query("x").send()
    replayer.config.replay_source = "no-such-session"
    with pytest.raises(BackendUnavailable, match="no-such-session"):
        replayer.query("x").send()


def test_echo_says_plainly_that_no_model_answered(manager: SessionManager) -> None:
    client = Client(Config(backend="echo"), manager=manager)
    sid = manager.create_session().build().id
    stream = client.query("Hello there").session(sid).stream()
    chunks = list(stream)
    response = stream.response
    assert response == "[offline echo — no model was called] You said: Hello there"
    assert "".join(chunks) == response and len(chunks) > 1
    assert response.offline and response.model is None and response.cost_usd is None
    answer = manager.resume(sid).messages[1]
    assert (answer.backend, answer.model, answer.status) == ("echo", None, "ok")


def test_auto_is_echo_without_a_key_and_says_why(manager: SessionManager) -> None:
    client = Client(manager=manager)
    assert client.config.backend == "auto"
    response = client.query("hi").send()
    assert response.startswith(
        "[offline echo — no model was called: ANTHROPIC_API_KEY is not set]")
    assert response.backend == "echo" and response.offline


def test_auto_uses_the_api_when_a_key_is_set(manager: SessionManager, server: FakeMessagesServer,
                                             api_key: str) -> None:
    response = Client(manager=manager).query("hi").send()
    assert response.backend == "anthropic" and not response.offline
    assert len(server.message_requests) == 1


def test_echo_turns_are_not_sent_to_a_model_as_its_answers(
        manager: SessionManager, server: FakeMessagesServer, api_key: str) -> None:
    sid = manager.create_session().build().id
    client = Client(Config(backend="echo"), manager=manager)
    client.query("offline question").session(sid).send()
    client.config.backend = "anthropic"
    client.query("online question").session(sid).send()
    assert server.message_requests[0].messages == [
        {"role": "user", "content": "online question"}]

"""The Client / Config / Query / Stream / Response surface the magics use."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from claude_magic.client import Client, Config, Response, answered_history
from claude_magic.errors import BackendError, BackendUnavailable, SessionNotFound
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage


def test_importing_the_client_does_not_import_the_sdk() -> None:
    code = ("import sys, claude_magic.client, claude_magic.backends; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('anthropic', 'httpx', 'httpx2', 'pydantic')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_config_defaults_and_validation() -> None:
    config = Config()
    assert (config.backend, config.permission_mode, config.retries) == ("auto", "default", 2)
    assert config.cwd is None and config.allowed_tools is None and config.fork_session
    with pytest.raises(ValueError, match="unknown backend 'gpt'"):
        Config(backend="gpt")
    with pytest.raises(ValueError, match="permission_mode"):
        Config(permission_mode="yolo")
    with pytest.raises(ValueError, match="timeout"):
        Config(timeout=0)
    assert Config(backend="claude_code").resolve_backend() == ("claude-code", None)
    assert Config(allowed_tools="Read").allowed_tools == ["Read"]


def test_config_holds_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-should-not-be-kept")
    config = Config()
    assert config.api_key_set and config.resolve_backend() == ("anthropic", None)
    assert "sk-ant" not in repr(config) and "sk-ant" not in str(vars(config))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert not config.api_key_set
    assert config.resolve_backend() == ("echo", "ANTHROPIC_API_KEY is not set")


def test_a_misspelled_backend_set_later_is_a_one_line_error() -> None:
    manager = SessionManager()
    client = Client(Config(backend="echo"), manager=manager)
    sid = manager.create_session().build().id
    client.config.backend = "antropic"
    with pytest.raises(BackendUnavailable, match="unknown backend 'antropic'"):
        client.query("hi").session(sid).send()
    assert manager.resume(sid).messages == []  # nothing was attempted


def test_unknown_session_is_session_not_found() -> None:
    client = Client(Config(backend="echo"))
    with pytest.raises(SessionNotFound):
        client.query("hi").session("nope").send()
    assert client.manager.list() == []


def test_response_is_a_str_with_metadata() -> None:
    response = Response("hello", model="m", usage=Usage(input_tokens=1), turn=3,
                        backend="echo", offline=True)
    assert response == "hello" and response.upper() == "HELLO" and isinstance(response, str)
    assert (response.model, response.turn, response.offline) == ("m", 3, True)
    assert response.cost_usd is None and response.ids == {} and response.text == "hello"
    assert response._repr_markdown_() == "hello"
    again = pickle.loads(pickle.dumps(response))
    assert again == "hello" and again.usage == Usage(input_tokens=1) and again.turn == 3


def test_stream_response_before_the_end_is_an_error() -> None:
    client = Client(Config(backend="echo"))
    stream = client.query("one two three").stream()
    next(stream)
    with pytest.raises(BackendError, match="has not finished"):
        _ = stream.response
    assert stream.text.startswith("[offline")
    rest = list(stream)
    assert stream.text == stream.response and rest


def test_query_without_manager_uses_a_private_memory_store() -> None:
    client = Client(Config(backend="echo"))
    sid = client.manager.create_session().build().id
    response = client.query("hi").session(sid).send()
    assert response.turn == 1 and response.session_id == sid
    assert client.manager.location == "memory"


def test_answered_history_keeps_only_answered_model_turns() -> None:
    def msg(role: str, text: str, status: str = "ok", backend: str = "anthropic") -> Message:
        return Message(role, text, status=status, backend=backend)

    messages = [
        msg("user", "q1"), msg("assistant", "a1"),
        msg("user", "q2", "error"), msg("assistant", "partial", "incomplete"),
        msg("user", "q3"),  # a kernel died here: no answer
        msg("user", "q4"), msg("assistant", "a4"),
        msg("user", "q5"), msg("assistant", "[offline echo ...]", backend="echo"),
    ]
    assert [m.content for m in answered_history(messages)] == ["q1", "a1", "q4", "a4"]

"""The fakes' early-end modes, seen on the wire: raw HTTP from the fake server and the exit
status and output of the fake ``claude`` process."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
from urllib.parse import urlsplit

import pytest

from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import FakeMessagesServer

BODY = {"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}


def connect(server: FakeMessagesServer) -> http.client.HTTPConnection:
    parts = urlsplit(server.url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def post(connection: http.client.HTTPConnection, body: dict) -> http.client.HTTPResponse:
    connection.request("POST", "/v1/messages", json.dumps(body),
                       {"x-api-key": "k", "content-type": "application/json"})
    return connection.getresponse()


def event_names(raw: bytes) -> list[str]:
    return [block.split("\n")[0].removeprefix("event: ")
            for block in raw.decode().strip().split("\n\n")]


@pytest.mark.parametrize(("after", "last", "deltas"), [
    ("message_start", "message_start", 0), (0, "ping", 0), (2, "content_block_delta", 2),
    ("content_block_stop", "content_block_stop", 3), ("message_delta", "message_delta", 3)])
def test_a_clean_chunked_end_stops_after_the_named_event(
        server: FakeMessagesServer, after: str | int, last: str, deltas: int) -> None:
    server.end_early("one two three", after=after, how="chunked")
    server.reply("next")
    connection = connect(server)
    response = post(connection, BODY)
    assert response.getheader("transfer-encoding") == "chunked"
    names = event_names(response.read())  # a clean end: no error reading
    assert names[-1] == last and "message_stop" not in names
    assert names.count("content_block_delta") == deltas
    again = post(connection, BODY)  # the connection was kept, as after any complete body
    assert again.status == 200 and event_names(again.read())[-1] == "message_stop"
    connection.close()


def test_an_eof_end_is_a_body_ended_by_closing_the_connection(
        server: FakeMessagesServer) -> None:
    server.end_early("one two three", after=1, how="eof")
    connection = connect(server)
    response = post(connection, BODY)
    assert response.getheader("transfer-encoding") is None
    assert response.getheader("content-length") is None
    assert response.getheader("connection") == "close"
    assert event_names(response.read())[-1] == "content_block_delta"  # read to a clean EOF
    connection.close()


def test_a_truncated_or_reset_stream_is_a_broken_read(server: FakeMessagesServer) -> None:
    server.end_early("one two three", after="message_start", how="truncate")
    with pytest.raises(http.client.IncompleteRead):
        post(connect(server), BODY).read()
    server.end_early("one two three", after="message_start", how="reset")
    with pytest.raises(ConnectionResetError):
        response = post(connect(server), BODY)
        response.read()


def test_a_non_streamed_request_gets_half_a_body(server: FakeMessagesServer) -> None:
    server.end_early("one two three")
    response = post(connect(server), {**BODY, "stream": False})
    with pytest.raises(http.client.IncompleteRead) as raised:
        response.read()
    assert raised.value.partial and raised.value.expected > 0  # a body cut half-way


def test_end_early_refuses_what_it_cannot_do(server: FakeMessagesServer) -> None:
    with pytest.raises(ValueError, match="how must be one of chunked, eof, truncate, reset"):
        server.end_early(how="slowly")
    with pytest.raises(ValueError, match="after must be"):
        server.end_early(after="message_stop")
    with pytest.raises(ValueError, match="only 2 chunks"):
        server.end_early("one two", after=3)
    assert server.pending() == 0


def run(fake: FakeClaude) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(fake.path), "-p", "--output-format", "stream-json", "--verbose",
                           "--include-partial-messages"], input="hi", capture_output=True,
                          text=True, timeout=30)


def line_kinds(stdout: str) -> list[str]:
    kinds = []
    for line in stdout.splitlines():
        data = json.loads(line)
        kinds.append(data["event"]["type"] if data["type"] == "stream_event" else data["type"])
    return kinds


def test_fake_claude_can_die_mid_message(fake_claude: FakeClaude) -> None:
    fake_claude.killed(signal.SIGKILL, "last words", text="one two")
    done = run(fake_claude)
    assert done.returncode == -signal.SIGKILL and done.stderr == "last words\n"
    assert line_kinds(done.stdout) == ["system", "message_start", "content_block_start",
                                       "content_block_delta", "content_block_delta"]

    fake_claude.exit(0, "", text="one two", cut=False)
    done = run(fake_claude)
    kinds = line_kinds(done.stdout)
    assert done.returncode == 0 and "message_stop" in kinds and "assistant" in kinds
    assert "result" not in kinds

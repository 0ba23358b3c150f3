"""The shipped fakes behave like the real services (wire-formats.md), for users' tests too."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import DEFAULT_PREFIX, FakeMessagesServer


def post(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


BODY = {"model": "claude-sonnet-4-6", "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi there"}]}


def test_server_accepts_both_auth_headers_and_ignores_the_query(
        server: FakeMessagesServer) -> None:
    status, _, text = post(server.url + "/v1/messages?beta=true", BODY, {"x-api-key": "k1"})
    assert status == 200
    reply = json.loads(text)
    assert reply["content"][0]["text"] == f"{DEFAULT_PREFIX} You said: hi there"
    assert reply["usage"]["input_tokens"] == 2 and reply["stop_reason"] == "end_turn"
    status, _, _ = post(server.url + "/v1/messages", BODY, {"authorization": "Bearer k2"})
    assert status == 200
    status, _, text = post(server.url + "/v1/messages", BODY, {})
    assert status == 401 and json.loads(text)["error"]["type"] == "authentication_error"
    first, second, third = server.requests
    assert (first.auth_scheme, first.api_key, first.query) == ("x-api-key", "k1",
                                                               {"beta": ["true"]})
    assert (second.auth_scheme, second.api_key) == ("bearer", "k2")
    assert first.headers["x-api-key"] == "<redacted>" and "k1" not in repr(first)
    assert third.api_key is None


def test_server_streams_sse_in_the_documented_order(server: FakeMessagesServer) -> None:
    server.reply("Hello", chunks=["Hel", "lo"], usage={"input_tokens": 9})
    status, headers, text = post(server.url + "/v1/messages", {**BODY, "stream": True},
                                 {"x-api-key": "k"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    data = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert all(d["type"] == n for d, n in zip(data, names, strict=True))
    assert data[0]["message"]["usage"]["input_tokens"] == 9
    assert [d["delta"]["text"] for d in data[3:5]] == ["Hel", "lo"]
    assert data[6]["usage"]["output_tokens"] == 2


def test_server_failures_count_tokens_and_unknown_routes(server: FakeMessagesServer) -> None:
    server.fail(429, retry_after=2, retry_after_ms=5, should_retry=True)
    status, headers, text = post(server.url + "/v1/messages", BODY, {"x-api-key": "k"})
    assert status == 429 and headers["retry-after"] == "2" and headers["retry-after-ms"] == "5"
    assert headers["x-should-retry"] == "true"
    assert json.loads(text)["error"]["type"] == "rate_limit_error"
    status, _, text = post(server.url + "/v1/messages/count_tokens",
                           {"model": "m", "messages": [{"role": "user", "content": "a b c"}]},
                           {"x-api-key": "k"})
    assert (status, json.loads(text)) == (200, {"input_tokens": 3})
    status, _, _ = post(server.url + "/v1/other", BODY, {"x-api-key": "k"})
    assert status == 404
    status, _, _ = post(server.url + "/v1/messages", {"model": "m"}, {"x-api-key": "k"})
    assert status == 400
    with pytest.raises(ValueError, match="do not add up"):
        server.reply("abc", chunks=["a", "b"])


def test_server_can_require_one_key() -> None:
    with FakeMessagesServer(api_key="right") as server:
        assert post(server.url + "/v1/messages", BODY, {"x-api-key": "wrong"})[0] == 401
        assert post(server.url + "/v1/messages", BODY, {"x-api-key": "right"})[0] == 200


def test_server_runs_as_a_module_and_prints_its_url() -> None:
    process = subprocess.Popen([sys.executable, "-m", "claude_magic.testing.fake_server"],
                               stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        status, _, text = post(url + "/v1/messages", BODY, {"x-api-key": "k"})
        assert status == 200
        assert json.loads(text)["content"][0]["text"].startswith(DEFAULT_PREFIX)
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_fake(fake: FakeClaude, *args: str, stdin: str = "",
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(fake.path), *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=30)


def test_fake_claude_checks_its_arguments_like_the_real_cli(fake_claude: FakeClaude,
                                                            tmp_path: Path) -> None:
    assert "Claude Code" in run_fake(fake_claude, "--version").stdout
    no_verbose = run_fake(fake_claude, "-p", "--output-format", "stream-json", stdin="hi")
    assert no_verbose.returncode == 1 and "requires --verbose" in no_verbose.stderr
    bad_id = run_fake(fake_claude, "-p", "--session-id", "abc", stdin="hi")
    assert bad_id.returncode == 1 and "Must be a valid UUID" in bad_id.stderr
    unknown = run_fake(fake_claude, "-p", "--frobnicate", stdin="hi")
    assert unknown.returncode == 1 and "unknown option '--frobnicate'" in unknown.stderr

    sid = str(uuid.uuid4())
    stream = ["-p", "--output-format", "stream-json", "--verbose"]
    ok = run_fake(fake_claude, *stream, "--session-id", sid, "first", cwd=tmp_path)
    lines = [json.loads(line) for line in ok.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["system", "assistant", "result"]
    assert lines[0]["subtype"] == "init" and lines[0]["session_id"] == sid
    assert lines[2]["result"].endswith("turn 1: You said: first")
    assert lines[2]["total_cost_usd"] > 0 and lines[2]["num_turns"] == 1
    reused = run_fake(fake_claude, *stream, "--session-id", sid, "again", cwd=tmp_path)
    assert reused.returncode == 1 and f"Session ID {sid} is already in use" in reused.stderr

    resumed = run_fake(fake_claude, *stream, "--resume", sid, stdin="second", cwd=tmp_path)
    assert json.loads(resumed.stdout.splitlines()[-1])["result"].endswith("turn 2: You said: "
                                                                          "second")
    missing = str(uuid.uuid4())
    lost = run_fake(fake_claude, *stream, "--resume", missing, stdin="x", cwd=tmp_path)
    assert lost.returncode == 1
    assert f"No conversation found with session ID: {missing}" in lost.stderr
    result = json.loads(lost.stdout.splitlines()[-1])
    assert result["subtype"] == "error_during_execution" and result["is_error"]
    assert fake_claude.transcript(sid, tmp_path)["messages"][-1]["role"] == "assistant"


def test_fake_claude_records_argv_but_never_the_key(fake_claude: FakeClaude,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    run_fake(fake_claude, "-p", "--model", "m", "hello")
    call, = fake_claude.calls
    assert call["argv"] == ["-p", "--model", "m", "hello"] and call["api_key_set"] is True
    logged = (fake_claude.directory / "calls.jsonl").read_text()
    assert "sk-ant-secret-value" not in logged

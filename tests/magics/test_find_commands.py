"""search, rename, verify and fork --at through a real shell, and the answer's hash in the
output metadata of ``%%claude`` (the fake Messages API server, the real SDK)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from claude_magic.errors import MagicUsageError
from claude_magic.magics import get_magics
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell


def ask(shell: TestingShell, server: FakeMessagesServer, prompt: str, answer: str) -> None:
    server.reply(answer)
    shell.run_cell(f"%%claude\n{prompt}").raise_error()


def manager(shell: TestingShell):
    return get_magics(shell).manager


def current(shell: TestingShell) -> str | None:
    return get_magics(shell).workspace.current


def two_turns(ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new chat").raise_error()
    ask(ip, server, "How does the token refresh work?", "The refresh token is rotated.")
    ask(ip, server, "And when it expires?", "Then the user signs in again.")


def test_the_output_metadata_carries_the_answer_hash(ip: TestingShell,
                                                     server: FakeMessagesServer) -> None:
    two_turns(ip, server)
    outputs = [o for o in ip.displayed if "claude_magic" in (o.get("metadata") or {})]
    meta = outputs[-1]["metadata"]["claude_magic"]
    stored = manager(ip).resume("chat").messages[meta["turn"]]
    assert meta["hash"] == stored.ids["hash"] and len(meta["hash"]) == 64


def test_search_then_switch(ip: TestingShell, server: FakeMessagesServer) -> None:
    two_turns(ip, server)
    ip.run_cell("%claude_session new other").raise_error()
    table = ip.run_cell("%claude_session search refresh* --limit 5 -o hits").result
    hits = ip.user_ns["hits"]
    assert {(h.session_id, h.seq) for h in hits} == {("chat", 0), ("chat", 1)}
    assert "«refresh»" in repr(table) and "<mark>refresh</mark>" in table._repr_html_()
    assert "switch ID" in repr(table)
    ip.run_cell(f"%claude_session switch {hits[0].session_id}").raise_error()
    assert current(ip) == "chat"
    empty = ip.run_cell("%claude_session search nothinglikethis").result
    assert repr(empty) == "No hits for 'nothinglikethis'"
    with pytest.raises(MagicUsageError, match="no word"):
        ip.run_cell('%claude_session search "*"').raise_error()


def test_rename_the_current_session(ip: TestingShell, server: FakeMessagesServer) -> None:
    two_turns(ip, server)
    ip.run_cell("%claude_session new taken").raise_error()
    ip.run_cell("%claude_session switch chat").raise_error()
    with pytest.raises(Exception, match="taken"):
        ip.run_cell("%claude_session rename chat taken").raise_error()
    ip.run_cell("%claude_session rename chat auth-notes").raise_error()
    assert current(ip) == "auth-notes"
    assert not manager(ip).exists("chat")
    ask(ip, server, "One more?", "Sure.")  # the next cell goes to the renamed session
    assert len(manager(ip).resume("auth-notes").messages) == 6
    ip.run_cell("%claude_session rename auth-notes taken --overwrite").raise_error()
    assert current(ip) == "taken" and len(manager(ip).resume("taken").messages) == 6


def test_verify_and_fork_at(ip: TestingShell, server: FakeMessagesServer, store_dir: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    two_turns(ip, server)
    capsys.readouterr()
    ip.run_cell("%claude_session verify").raise_error()
    assert capsys.readouterr().out == "session 'chat': all 4 messages match their hashes\n"
    ip.run_cell("%claude_session fork branch --at 1").raise_error()
    assert current(ip) == "branch"
    fork = manager(ip).resume("branch")
    assert [m.content for m in fork.messages] == ["How does the token refresh work?",
                                                  "The refresh token is rotated."]
    assert (fork.metadata["forked_from"], fork.metadata["forked_at"]) == ("chat", 1)
    with pytest.raises(MagicUsageError, match="answers are at turns 1, 3"):
        ip.run_cell("%claude_session fork again --from chat --at 2").raise_error()
    path = store_dir / "chat.messages.jsonl"
    path.write_bytes(path.read_bytes().replace(b"signs in again", b"is locked out"))
    ip.run_cell("%claude_session verify chat").raise_error()
    assert "message 3 (assistant) no longer matches its hash" in capsys.readouterr().out


def test_terminal_search_json_rename_and_verify(tmp_path: Path) -> None:
    from claude_magic.manager import SessionManager
    from claude_magic.message import Message

    store = tmp_path / "s"
    with SessionManager(store) as m:
        m.create_session("alpha").build()
        m.append("alpha", Message("user", "explain the auth flow"))
        m.append("alpha", Message("assistant", "The auth flow has three steps."))

    def cli(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "claude_magic", "--store", str(store),
                               *words], capture_output=True, text=True, timeout=60)

    found = cli("search", "auth", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert {(h["session_id"], h["seq"], h["role"]) for h in hits} == {
        ("alpha", 0, "user"), ("alpha", 1, "assistant")}
    assert all("«auth»" in h["snippet"] for h in hits)
    assert cli("rename", "alpha", "beta").returncode == 0
    ok = cli("verify", "beta")
    assert ok.returncode == 0 and "all 2 messages match" in ok.stdout
    lines = store / "beta.messages.jsonl"
    lines.write_bytes(lines.read_bytes().replace(b"three steps", b"two steps"))
    bad = cli("verify", "beta")
    assert bad.returncode == 1 and "message 1 (assistant) no longer matches" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

"""Issue 15's magic items through a real shell: one-line options and help, ``-f code`` with no
code, models and costs as shown, and streaming in a real terminal IPython."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_magic import SessionManager
from claude_magic.magics import get_magics
from claude_magic.message import Message, Usage
from claude_magic.panel.rows import cell_text
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell


def cell(shell: TestingShell, line: str, body: str) -> object:
    return shell.run_cell(f"%%claude {line}\n{body}\n")


# --- %claude takes %%claude's options; help sends nothing ----------------------------------


def test_line_magic_help_prints_and_sends_nothing(ip: TestingShell, server: FakeMessagesServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%claude --help")
    out = capsys.readouterr().out
    assert "--model" in out and "--no-stream" in out
    ip.run_cell("%%claude --help")  # alone in a cell: IPython used to refuse it
    assert "--model" in capsys.readouterr().out
    assert server.message_requests == []
    assert get_magics(ip).manager.list() == []  # no session was created either


def test_line_magic_options_then_prompt(ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new opts")
    ip.run_cell("%claude -m claude-other --max-tokens 50 --no-stream explain x -y in one word.")
    request = server.message_requests[-1]
    assert request.body["model"] == "claude-other" and request.body["max_tokens"] == 50
    assert request.messages[-1]["content"] == "explain x -y in one word."
    ip.run_cell("%claude -- --verbose is an option of which tool.")
    assert server.message_requests[-1].messages[-1]["content"] == \
        "--verbose is an option of which tool."
    ip.run_cell("%claude what's a 'quote' then.")  # an apostrophe is prompt text
    assert server.message_requests[-1].messages[-1]["content"] == "what's a 'quote' then."
    ip.run_cell("%claude -o answer --system 'Be terse.' say ok.")
    assert "Be terse." in json.dumps(server.message_requests[-1].body["system"])
    assert str(ip.user_ns["answer"])


def test_options_without_a_prompt_send_nothing(ip: TestingShell,
                                               server: FakeMessagesServer) -> None:
    from claude_magic.errors import MagicUsageError

    ip.run_cell("%claude_session new empty")
    with pytest.raises(MagicUsageError, match="nothing to send"):
        ip.run_cell("%claude -m claude-other")
    with pytest.raises(MagicUsageError, match="nothing to send"):
        ip.run_cell("%%claude -m claude-other")
    with pytest.raises(MagicUsageError, match="unrecognized arguments"):
        ip.run_cell("%claude --bogus hello")
    assert server.message_requests == []


# --- -f code with no code block ------------------------------------------------------------


def test_format_code_without_code_adds_no_cell(ip: TestingShell, server: FakeMessagesServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%claude_session new nocode")
    ip.rl_next_input = None
    server.reply("There is nothing to write here.")
    cell(ip, "-f code", "Write nothing")
    assert ip.rl_next_input is None
    out = capsys.readouterr().out
    assert "no code block, so no cell was added" in out
    assert len([line for line in out.splitlines() if "no cell" in line]) == 1
    server.reply("```python\nx = 1\n```\ntext\n```python\ny = 2\n```")
    ip.run_cell("%claude -f code two blocks please.")
    assert ip.rl_next_input == "x = 1\n\ny = 2"


# --- models and costs as list, show and the panel show them ------------------------------


def test_offline_sessions_show_no_model_and_costs_read_alike(shell: TestingShell) -> None:
    shell.run_cell("%claude_session new offline")
    cell(shell, "--no-stream", "Hello")
    manager = get_magics(shell).manager
    summary = manager.summary("offline")
    assert summary.stats.last_model is None
    table = shell.run_cell("%claude_session list").result
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert (row["model"], row["cost"]) == ("", "$0.00")
    shown = repr(shell.run_cell("%claude_session show offline").result)
    assert "claude-sonnet" not in shown and "| Model |" not in shown
    assert "· $0.00" in shown
    assert (cell_text(summary, "model"), cell_text(summary, "cost")) == ("—", "$0.00")

    # a model answered but no price is known: unknown, the same in all three
    manager.create_session("unpriced").build()
    manager.append("unpriced", Message("user", "q"))
    manager.append("unpriced", Message("assistant", "a", model="claude-new", usage=Usage(5, 7)))
    # a priced answer
    manager.create_session("priced").build()
    manager.append("priced", Message("user", "q"))
    manager.append("priced", Message("assistant", "a", model="claude-x", cost_usd=0.0123))
    table = shell.run_cell("%claude_session list").result
    costs = {row[1]: row[5] for row in table.rows}
    assert costs == {"unpriced": "—", "priced": "$0.0123", "offline": "$0.00"}
    for session_id, expected in (("unpriced", "· —"), ("priced", "· $0.0123")):
        assert expected in repr(shell.run_cell(f"%claude_session show {session_id}").result)
        assert cell_text(manager.summary(session_id), "cost") == expected[2:]
    json_rows = {r["id"]: r["cost_usd"] for r in table.to_json()}
    assert json_rows == {"unpriced": None, "priced": 0.0123, "offline": 0.0}


# --- terminal IPython streams each piece once ---------------------------------------------


def test_terminal_ipython_streams_each_piece_once(tmp_path: Path,
                                                  server: FakeMessagesServer) -> None:
    ipython = Path(sys.executable).with_name("ipython")
    assert ipython.is_file()
    server.slow("alpha beta gamma", delay=0.4, chunks=["alpha ", "beta ", "gamma"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "JPY_"))}
    env.update(ANTHROPIC_API_KEY="sk-dummy-test-key", ANTHROPIC_BASE_URL=server.url,
               IPYTHONDIR=str(tmp_path / "ipython"), TERM="dumb")
    code = ("%load_ext claude_magic\n"
            "%config ClaudeMagics.backend = 'anthropic'\n"
            "%config ClaudeMagics.update_interval = 0.0\n"
            "%claude_session new t\n"
            "%claude say three words.\n")
    proc = subprocess.Popen([str(ipython), "--no-banner", "--colors=NoColor",
                             "--HistoryManager.enabled=False", "--no-confirm-exit", "-c", code],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"alpha" not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([proc.stdout], [], [], 0.5)[0]:
                piece = os.read(proc.stdout.fileno(), 4096)
                assert piece, seen
                seen += piece
        assert proc.poll() is None and b"gamma" not in seen  # written before the answer ended
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    out = (seen + rest).decode()
    assert proc.returncode == 0, err
    assert out.count("alpha") == 1 and out.count("gamma") == 1, out
    assert "alpha beta gamma\n" in out
    assert SessionManager.with_storage(tmp_path / ".claude_sessions").resume("t").messages[-1] \
        .content == "alpha beta gamma"

"""Context management through %%claude and %claude_session in a real IPython shell."""

from __future__ import annotations

import pytest

from claude_magic.errors import BudgetExceeded, ContextWindowExceeded
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell


def cell(shell: TestingShell, options: str, prompt: str) -> None:
    shell.run_cell(f"%%claude {options}\n{prompt}\n")


def test_a_streamed_answer_ends_with_a_status_line(
        ip: TestingShell, server: FakeMessagesServer, capsys: pytest.CaptureFixture) -> None:
    ip.run_cell("%config ClaudeMagics.model = 'claude-sonnet-4-6'")
    server.reply("Hello there.")
    cell(ip, "--new s1", "Hi")
    out = capsys.readouterr().out
    assert "in 1 tokens" in out and "/ out 2" in out and "$0.0000" in out
    assert "context 0% of 200k" in out


def test_cache_trait_reaches_the_request(ip: TestingShell, server: FakeMessagesServer) -> None:
    cell(ip, "--new c1", "one")
    assert server.message_requests[-1].breakpoints  # on by default
    ip.run_cell("%config ClaudeMagics.cache = None")
    cell(ip, "", "two")
    assert server.message_requests[-1].breakpoints == []
    ip.run_cell("%config ClaudeMagics.cache = '1h'")
    cell(ip, "", "three")
    assert server.message_requests[-1].breakpoints[0]["cache_control"]["ttl"] == "1h"


def test_budget_setting_refuses_the_next_turn(
        ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%config ClaudeMagics.model = 'claude-sonnet-4-6'")
    cell(ip, "--new b1", "first")
    ip.run_cell("%claude_session settings budget_usd=0.000001")
    sent = len(server.message_requests)
    with pytest.raises(BudgetExceeded, match="budget_usd"):
        cell(ip, "", "second")
    assert len(server.message_requests) == sent
    with pytest.raises(Exception, match="budget_usd must be a number"):
        ip.run_cell("%claude_session settings budget_usd=-3")


def test_usage_subcommand_shows_the_ledger_with_a_total(
        ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%config ClaudeMagics.model = 'claude-sonnet-4-6'")
    cell(ip, "--new u1", "one")
    cell(ip, "", "two")
    result = ip.run_cell("%claude_session usage").result
    assert list(result.index) == ["u1", "total"] and result.loc["total", "turns"] == 2
    ip.run_cell("%claude_session usage --by model -o ledger")
    ledger = ip.user_ns["ledger"]
    assert list(ledger.index) == ["claude-sonnet-4-6"] and "total" not in ledger.index


def test_compact_subcommand_and_a_small_window(
        ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%config ClaudeMagics.backend_options = {'context_window': 600}")
    with pytest.raises(ContextWindowExceeded, match="compact"):
        for number in range(10):
            server.reply(" ".join([f"a{number}"] * 100))
            cell(ip, "--new w1" if number == 0 else "", " ".join([f"q{number}"] * 100))
    server.reply("Summary of it all.")
    ip.run_cell("%claude_session compact --keep-last 0 --instructions 'be short'")
    assert "be short" in server.message_requests[-1].messages[-1]["content"]
    server.reply("Fine again.")
    cell(ip, "", "continue")
    sent = server.message_requests[-1].messages
    assert sent[1]["content"] == "Summary of it all." and len(sent) == 3

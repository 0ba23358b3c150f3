"""Budgets refuse a turn before anything is sent or stored; the usage ledger sums what was spent."""

from __future__ import annotations

import pytest

from claude_magic.client import Client, Config
from claude_magic.errors import BudgetExceeded, ClaudeMagicError
from claude_magic.ledger import COLUMNS, ledger_rows, status_line, usage, with_total
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_server import FakeMessagesServer


def test_a_session_at_its_budget_is_refused_before_anything_is_sent(
        client: Client, server: FakeMessagesServer, session: Session,
        manager: SessionManager) -> None:
    first = client.query("hi").session(session.id).send()
    assert first.cost_usd and first.cost_usd > 0
    manager.update(session.id, settings={"budget_usd": first.cost_usd})
    before = (len(server.requests), len(manager.resume(session.id).messages))
    with pytest.raises(BudgetExceeded) as raised:
        client.query("more").session(session.id).send()
    message = str(raised.value)
    assert isinstance(raised.value, ClaudeMagicError) and "\n" not in message
    assert f"${first.cost_usd:.4f} of its ${first.cost_usd:.4f}" in message
    assert "budget_usd" in message and "settings" in message
    assert (len(server.requests), len(manager.resume(session.id).messages)) == before
    manager.update(session.id, settings={"budget_usd": 1.0})  # raised: the turn goes
    assert client.query("more").session(session.id).send()


def test_the_config_budget_applies_and_offline_backends_cost_nothing(
        manager: SessionManager, server: FakeMessagesServer, api_key: str) -> None:
    client = Client(Config(backend="anthropic", budget_usd=0.0), manager=manager)
    sid = manager.create_session().build().id
    with pytest.raises(BudgetExceeded, match=r"Config\(budget_usd=\.\.\.\)"):
        client.query("x").session(sid).send()
    assert server.requests == [] and manager.resume(sid).messages == []
    offline = Client(Config(backend="echo", budget_usd=0.0), manager=manager)
    assert offline.query("x").session(sid).send().offline


def test_config_refuses_a_negative_budget() -> None:
    with pytest.raises(ValueError, match="budget_usd must be a number of dollars"):
        Config(budget_usd=-1)


def test_the_ledger_sums_turns_tokens_and_cost(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    server.cache.min_tokens = 5
    a = manager.create_session("a").build().id
    b = manager.create_session("b").build().id
    responses = []
    for sid, model in ((a, "claude-sonnet-4-6"), (a, "claude-sonnet-4-6"),
                       (b, "claude-haiku-4-5")):
        server.reply("word " * 12, model=model)
        responses.append(client.query("tell me a few words please now").session(sid)
                         .model(model).send())
    frame = usage(manager)
    assert list(frame.columns) == list(COLUMNS) and frame.index.name == "session"
    assert frame.loc["a", "turns"] == 2 and frame.loc["b", "turns"] == 1
    for column, field in (("input_tokens", "input_tokens"),
                          ("cache_write_tokens", "cache_creation_input_tokens"),
                          ("cache_read_tokens", "cache_read_input_tokens"),
                          ("output_tokens", "output_tokens")):
        assert frame[column].sum() == sum(getattr(r.usage, field) for r in responses)
    assert frame.loc["a", "cache_read_tokens"] > 0
    assert frame["cost_usd"].sum() == pytest.approx(sum(r.cost_usd for r in responses))
    by_model = usage(manager, by="model")
    assert by_model.loc["claude-haiku-4-5", "turns"] == 1
    day = manager.resume(a).messages[0].created_at.date().isoformat()
    assert list(usage(manager, by="day").index) == [day]
    total = with_total(usage(manager, session_ids=[a]))
    assert list(total.index) == ["a", "total"] and total.loc["total", "turns"] == 2
    assert ledger_rows(manager, "session", "b")["b"][0] == 1
    with pytest.raises(ValueError, match="by must be one of"):
        usage(manager, by="week")


def test_the_status_line_names_tokens_cost_and_context(
        client: Client, server: FakeMessagesServer, session: Session) -> None:
    server.reply("Hi there.", usage={"cache_read_input_tokens": 7})
    line = status_line(client.query("hello").session(session.id).send())
    assert "cached" in line and "out 2" in line and "$" in line and "context 0% of 200k" in line

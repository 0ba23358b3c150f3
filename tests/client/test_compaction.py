"""Compaction: a summary turn replaces the older turns in requests; the store keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_magic.client import Client, Config
from claude_magic.compaction import compacted_seqs, compacts_through, is_summary, kind_of
from claude_magic.errors import ClaudeMagicError
from claude_magic.manager import SessionManager
from claude_magic.storage import StorageBackend
from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import FakeMessagesServer


def three_turns(client: Client, server: FakeMessagesServer, sid: str) -> None:
    for number in range(3):
        server.reply(f"answer {number}")
        client.query(f"question {number}").session(sid).send()


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_compaction_survives_a_new_manager_on_the_same_store(
        tmp_path: Path, server: FakeMessagesServer, api_key: str, kind: str) -> None:
    path = tmp_path / ("store" if kind == "file" else "s.db")
    backend = StorageBackend.file(path) if kind == "file" else StorageBackend.sqlite(path)
    with SessionManager.with_storage(backend) as manager:
        client = Client(Config(backend="anthropic"), manager=manager)
        sid = manager.create_session("long").with_system_prompt("Be brief.").build().id
        three_turns(client, server, sid)
        server.reply("We discussed questions 0 and 1.")
        summary = client.compact(sid, keep_last=1, instructions="Keep numbers.")
    assert summary == "We discussed questions 0 and 1." and summary.compacted == 2
    asked = server.message_requests[-1]
    assert [m["content"] for m in asked.messages[:-1]] == [
        "question 0", "answer 0", "question 1", "answer 1"]  # only what is summarised
    assert "Keep numbers." in asked.messages[-1]["content"]

    with SessionManager.with_storage(backend) as again:
        messages = again.resume(sid).messages
        client = Client(Config(backend="anthropic"), manager=again)
        assert [kind_of(m) for m in messages[-2:]] == ["summary", "summary"]
        assert compacts_through(messages[-1]) == 3  # question/answer 0 and 1: seq 0-3
        assert compacted_seqs(messages) == {0, 1, 2, 3}
        assert messages[-1].cost_usd and messages[-1].cost_usd > 0  # recorded like any turn
        server.reply("Next.")
        client.query("question 3").session(sid).send()
    sent = [m["content"] for m in server.message_requests[-1].messages]
    assert sent[0].startswith("Summarise our conversation") and sent[1] == summary
    assert sent[2:] == ["question 2", "answer 2", "question 3"]


def test_compacting_twice_summarises_the_previous_summary(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    sid = manager.create_session().build().id
    three_turns(client, server, sid)
    server.reply("First summary.")
    client.compact(sid, keep_last=1)
    server.reply("answer 3")
    client.query("question 3").session(sid).send()
    server.reply("Second summary.")
    second = client.compact(sid, keep_last=1)
    summarised = [m["content"] for m in server.message_requests[-1].messages]
    assert "First summary." in summarised and "question 2" in summarised
    assert "question 3" not in summarised and second.compacted == 1
    messages = manager.resume(sid).messages
    first_pair = {m.seq for m in messages if m.content == "First summary."}
    assert first_pair <= compacted_seqs(messages)  # the older summary is compacted too
    server.reply("ok")
    client.query("question 4").session(sid).send()
    sent = [m["content"] for m in server.message_requests[-1].messages]
    assert sent[1] == "Second summary." and "First summary." not in sent
    assert sent[2:] == ["question 3", "answer 3", "question 4"]


def test_nothing_to_compact_is_one_clear_line(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    sid = manager.create_session().build().id
    server.reply("only")
    client.query("one").session(sid).send()
    with pytest.raises(ClaudeMagicError, match=r"nothing to compact.*keep_last"):
        client.compact(sid, keep_last=2)
    assert len(server.message_requests) == 1


def test_echo_compacts_offline_and_says_so(manager: SessionManager) -> None:
    client = Client(Config(backend="echo"), manager=manager)
    sid = manager.create_session().build().id
    for text in ("a", "b", "c"):
        client.query(text).session(sid).send()
    summary = client.compact(sid, keep_last=1)
    assert summary.offline and summary.startswith("[offline echo")
    assert compacted_seqs(manager.resume(sid).messages) == {0, 1, 2, 3}


def test_replay_replays_a_recorded_compaction(
        client: Client, server: FakeMessagesServer, manager: SessionManager) -> None:
    recorded = manager.create_session("rec").build().id
    three_turns(client, server, recorded)
    server.reply("Summary.")
    client.compact(recorded, keep_last=1)
    server.reply("answer 3")
    client.query("question 3").session(recorded).send()

    replayer = Client(Config(backend="replay", replay_source="rec"), manager=manager)
    rerun = manager.create_session().build().id
    for number in range(3):
        replayer.query(f"question {number}").session(rerun).send()
    assert replayer.compact(rerun, keep_last=1) == "Summary."
    assert replayer.query("question 3").session(rerun).send() == "answer 3"


def test_claude_code_starts_a_fresh_conversation_seeded_with_the_summary(
        cli_client: Client, fake_claude: FakeClaude, manager: SessionManager) -> None:
    sid = manager.create_session().build().id
    for text in ("one", "two", "three"):
        cli_client.query(text).session(sid).send()
    fake_claude.reply("The summary.")
    cli_client.compact(sid, keep_last=1)
    assert "--resume" in fake_claude.calls[-1]["argv"]  # the CLI summarises what it knows
    cli_client.query("four").session(sid).send()
    argv = fake_claude.calls[-1]["argv"]
    assert "--resume" not in argv and "--session-id" in argv
    seed = argv[argv.index("--append-system-prompt") + 1]
    assert "The summary." in seed and "three" in seed and "one" not in seed.split("The summary.")[1]
    assert is_summary(manager.resume(sid).messages[-3])

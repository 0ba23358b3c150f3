"""Rich messages through the client: content blocks as prompts, Claude Code's tool calls
stored and streamed as asides, thinking requested, assets shared and collected."""

from __future__ import annotations

import pytest

from claude_magic import Client, SessionManager
from claude_magic.backends.base import Aside
from claude_magic.blocks import document_block, image_block
from claude_magic.errors import StorageError
from claude_magic.session import Session
from claude_magic.storage import _assets
from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import FakeMessagesServer

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0"
       b"\x08\x06\x00\x00\x00" + b"\0" * 64)
PDF = b"%PDF-1.4\n%%EOF\n"


def test_claude_code_tool_calls_are_stored_and_shown(cli_client: Client, fake_claude: FakeClaude,
                                                     session: Session) -> None:
    fake_claude.reply("The file says hello.", tool_use="Read",
                      tool_input={"file_path": "notes.txt"}, tool_result="hello\n" * 2000)
    with cli_client.query("Read notes.txt").session(session.id).asides().stream() as stream:
        chunks = list(stream)
    tools = [c for c in chunks if isinstance(c, Aside)]
    assert [t.kind for t in tools] == ["tool"]
    assert tools[0].startswith("Read notes.txt → ok: hello")
    assert "".join(c for c in chunks if not isinstance(c, Aside)) == str(stream.response)
    answer = cli_client.manager.resume(session.id).messages[1]
    kinds = [b["type"] for b in answer.content]
    assert kinds == ["text", "tool_use", "tool_result", "text"]
    assert answer.content[1]["input"] == {"file_path": "notes.txt"}
    assert len(answer.content[2]["content"]) < 2100  # an excerpt, not 12,000 characters
    assert answer.text == "Let me check.\n\nThe file says hello."
    # without .asides() a stream gives the answer text only
    fake_claude.reply("Again.", tool_use="Bash", tool_input={"command": "ls"})
    plain = list(cli_client.query("Once more").session(session.id).stream())
    assert not any(isinstance(c, Aside) for c in plain)


def test_blocks_and_thinking_reach_the_api(client: Client, server: FakeMessagesServer,
                                           session: Session) -> None:
    server.reply("Seen.")
    client.query([document_block(PDF, "a.pdf"), {"type": "text", "text": "Read"}]).session(
        session.id).think(2048).send()
    body = server.message_requests[-1].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] >= 2048 + 1024
    sent = body["messages"][-1]["content"]
    assert sent[0]["type"] == "document" and sent[0]["source"]["type"] == "base64"
    with pytest.raises(ValueError, match="at least 1,024"):
        client.query("x").think(10)


@pytest.mark.parametrize("spec", ["memory", "sqlite"])
def test_assets_are_shared_by_forks_and_collected(spec: str, tmp_path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_assets, "GRACE_SECONDS", 0.0)  # no grace: collected at once
    manager = SessionManager(f"sqlite:///{tmp_path / 's.db'}" if spec == "sqlite" else "memory")
    client = Client(manager=manager)
    session = manager.create_session("a").build()
    for _ in range(3):
        client.query([image_block(PNG, "image/png"), {"type": "text", "text": "hm"}]).session(
            session.id).backend("echo").send()
    manager.fork("a", "b")
    assert len(manager.storage.asset_ids()) == 1
    manager.delete("a")
    assert len(manager.storage.asset_ids()) == 1
    manager.clear()
    assert manager.storage.asset_ids() == set()


def test_an_import_naming_a_missing_asset_is_refused(tmp_path) -> None:
    manager = SessionManager()
    content = [{"type": "image", "source": {"type": "asset", "sha256": "0" * 64,
                                            "media_type": "image/png"}}]
    from claude_magic.message import Message

    broken = Session(id="x", messages=[Message("user", content)])
    with pytest.raises(StorageError, match="lost the image/png asset"):
        manager.import_session(broken)
    assert manager.list() == []

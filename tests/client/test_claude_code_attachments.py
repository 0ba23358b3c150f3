"""Images and PDFs through the claude-code backend: the prompt goes to the CLI as one
stream-json user message (``--input-format stream-json``) with its content blocks, and the real
CLI passes them on to the Messages API; text-only prompts still go as plain stdin."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from claude_magic import Client
from claude_magic.blocks import document_block, image_block
from claude_magic.manager import SessionManager
from claude_magic.session import Session
from claude_magic.testing.fake_claude import FakeClaude
from claude_magic.testing.fake_server import FakeMessagesServer

from .test_real_claude_cli import REAL_CLI, real_cli_client
from .test_rich_messages import PDF, PNG


def _prompt() -> list[dict]:
    return [image_block(PNG, "image/png"), document_block(PDF, "a.pdf"),
            {"type": "text", "text": "What do these show?"}]


def test_images_and_pdfs_go_to_the_cli_as_stream_json(cli_client: Client, fake_claude: FakeClaude,
                                                      session: Session) -> None:
    answer = cli_client.query(_prompt()).session(session.id).send()
    call = fake_claude.calls[-1]
    argv = call["argv"]
    assert argv[argv.index("--input-format") + 1] == "stream-json"
    line = json.loads(call["stdin"])
    assert line["type"] == "user" and line["message"]["role"] == "user"
    image, document, text = line["message"]["content"]
    assert base64.b64decode(image["source"]["data"]) == PNG
    assert base64.b64decode(document["source"]["data"]) == PDF
    assert text == {"type": "text", "text": "What do these show?"}
    assert f"[image image/png, {len(PNG)} bytes]" in str(answer)
    stored = cli_client.manager.resume(session.id).messages
    assert [m.status for m in stored] == ["ok", "ok"]
    assert [b["type"] for b in stored[0].blocks] == ["image", "document", "text"]
    # a text-only prompt still goes as plain text on stdin
    cli_client.query("And now?").session(session.id).send()
    assert "--input-format" not in fake_claude.calls[-1]["argv"]
    assert fake_claude.calls[-1]["stdin"] == "And now?"


@pytest.mark.slow
@pytest.mark.skipif(REAL_CLI is None, reason="no real Claude Code CLI installed")
def test_the_real_cli_sends_the_image_and_pdf_to_the_api(
        server: FakeMessagesServer, manager: SessionManager, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "notebook"
    workdir.mkdir()
    client = real_cli_client(server, manager, tmp_path / "home", workdir, monkeypatch)
    session = manager.create_session().build()
    client.query(_prompt()).session(session.id).send()
    sent = [b for r in server.message_requests for m in r.body["messages"]
            if m["role"] == "user" and isinstance(m["content"], list) for b in m["content"]
            if b.get("type") in ("image", "document")]
    assert {b["type"] for b in sent} == {"image", "document"}
    assert {base64.b64decode(b["source"]["data"]) for b in sent} == {PNG, PDF}
    assert [m.status for m in manager.resume(session.id).messages] == ["ok", "ok"]

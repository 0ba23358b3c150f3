"""Everywhere a transcript shows: ``show`` (Markdown in a kernel with images inline, plain text
in a terminal), and the Markdown, .ipynb and JSON exports, with thinking and tool calls
collapsed and compacted messages greyed in a fold, through a real shell and the fake API."""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib
from pathlib import Path

import nbformat
import pytest

from claude_magic.blocks import sha256_of
from claude_magic.compaction import compacted_seqs
from claude_magic.export import export_data, export_session, session_from_json
from claude_magic.magics import get_magics
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell


def png(width: int = 3, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png()


@pytest.fixture
def talked(ip: TestingShell, server: FakeMessagesServer, tmp_path: Path) -> SessionManager:
    """A session with an attached image, thinking, a tool call (as claude-code stores one)
    and a compaction of its first two turns."""
    (tmp_path / "pic.png").write_bytes(PNG)
    ip.run_cell("%claude_session new talk")
    server.reply("A red strip.", thinking="Three red pixels by two.")
    ip.run_cell("%%claude --attach pic.png --think 1024\nWhat is this picture?")
    manager = get_magics(ip).manager
    manager.append("talk", Message("user", "Read notes.txt"))
    manager.append("talk", Message("assistant", [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "Read",
         "input": {"file_path": "notes.txt"}},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "hello"},
        {"type": "text", "text": "It says hello."}], backend="claude-code"))
    server.reply("Still red.")
    ip.run_cell("%%claude\nAnd now?")
    server.reply("We looked at a red strip and a note saying hello.")
    ip.run_cell("%claude_session compact --keep-last 1")
    assert len(compacted_seqs(manager.resume("talk").messages)) == 4
    return manager


def test_show_in_a_kernel_and_in_a_terminal(ip: TestingShell, talked: SessionManager) -> None:
    view = ip.run_cell("%claude_session show").result
    markdown = view._repr_markdown_()
    uri = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert f"![image image/png 3x2, {len(PNG)} B]({uri})" in markdown  # inline, from the assets
    assert "<details><summary>Thinking</summary>\n\nThree red pixels by two." in markdown
    assert "<details><summary>Tool call <code>Read</code> notes.txt</summary>" in markdown
    fold = markdown.index("<details><summary>4 compacted messages")
    assert fold < markdown.index("What is this picture?") < markdown.index("It says hello.") \
        < markdown.index("</div>\n\n</details>") < markdown.index("We looked at a red strip")
    assert 'style="opacity: 0.6' in markdown[fold:]
    assert markdown.index("</div>\n\n</details>") < markdown.index("Still red.")

    text = repr(view)  # what a terminal (claude-magic show) prints
    assert "<details>" not in text and "data:" not in text and "**" not in text
    assert "[4 compacted messages folded: a summary replaces them in later requests]" in text
    assert "What is this picture?" not in text  # folded away
    assert text.index("compacted messages folded") < text.index("And now?")
    assert "We looked at a red strip and a note saying hello." in text
    assert view.text == text


def test_show_in_a_terminal_describes_blocks(talked: SessionManager) -> None:
    from claude_magic.export.transcripts import session_to_text

    talked.create_session("plain").build()
    for message in talked.resume("talk").messages[:4]:
        talked.append("plain", Message(message.role, message.content))
    text = session_to_text(talked.resume("plain"))
    assert "[image image/png]\nWhat is this picture?" in text
    assert "[thinking, 24 characters]\nA red strip." in text
    assert "Let me check.\n[tool_use Read: notes.txt]\n[tool_result]\nIt says hello." in text


def test_markdown_export_writes_images_beside_it(talked: SessionManager, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    target = export_session(talked, "talk", "md", tmp_path / "out" / "my talk.md")
    image = tmp_path / "out" / "my talk_files" / f"{sha256_of(PNG)}.png"
    assert image.read_bytes() == PNG
    written = Path(target).read_text()
    assert f"](my%20talk_files/{sha256_of(PNG)}.png)" in written
    assert "<details><summary>4 compacted messages" in written
    assert "<details><summary>Tool call <code>Read</code>" in written
    # in memory (no file to put them beside) images are described, never lost silently
    assert "*[image image/png 3x2" in export_data(talked, "talk", "md")


def test_markdown_export_refuses_a_link_for_its_image_folder(talked: SessionManager,
                                                             tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "t_files")
    with pytest.raises(FileExistsError, match="is not a directory") as caught:
        export_session(talked, "talk", "md", tmp_path / "t.md")
    assert "\n" not in str(caught.value)
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "t.md").exists()


def test_notebook_and_json_exports_keep_compaction(talked: SessionManager) -> None:
    notebook = export_data(talked, "talk", "ipynb")
    nbformat.validate(notebook)
    cells = [c for c in notebook.cells if c.metadata["claude_magic"]["kind"] == "message"]
    folded = [c for c in cells if c.metadata["claude_magic"].get("compacted")]
    assert [c.metadata["claude_magic"]["seq"] for c in folded] == [0, 1, 2, 3]
    assert all(c.source.startswith("<details><summary>1 compacted message") for c in folded)
    assert list(folded[0].attachments.values()) == [
        {"image/png": base64.b64encode(PNG).decode()}]
    assert not any("<details><summary>1 compacted" in c.source for c in cells[4:])

    exported = export_data(talked, "talk", "json")
    copy = SessionManager("memory")
    copy.import_session(session_from_json(exported))
    messages = copy.resume("talk").messages
    assert compacted_seqs(messages) == compacted_seqs(talked.resume("talk").messages)
    assert [m.ids for m in messages] == [m.ids for m in talked.resume("talk").messages]
    assert export_data(copy, "talk", "json") == exported
    assert json.loads(exported)["session"]["messages"][1]["content"][0]["type"] == "thinking"

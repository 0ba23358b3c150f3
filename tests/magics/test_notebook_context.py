"""Notebook context in ``%%claude`` (issue 11): figures, DataFrames, attached files and the
last error reach the real ``anthropic`` SDK's request to the fake server as content blocks;
images are stored once per store; echo and replay handle them offline."""

from __future__ import annotations

import base64
import os
import struct
import time
from pathlib import Path

import pytest

from claude_magic.blocks import image_size
from claude_magic.errors import MagicUsageError
from claude_magic.magics import get_magics
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell

matplotlib = pytest.importorskip("matplotlib")  # the test extra installs it
matplotlib.use("Agg")


def last_user_blocks(server: FakeMessagesServer) -> list[dict]:
    content = server.message_requests[-1].body["messages"][-1]["content"]
    assert isinstance(content, list)
    return content


def make_figure(shell: TestingShell) -> None:
    shell.run_cell("import matplotlib.pyplot as plt\n"
                   "fig, ax = plt.subplots(figsize=(4, 3), dpi=100)\n"
                   "ax.plot([1, 2, 3], [3, 1, 2])")


def asset_files(store: Path) -> list[str]:
    folder = store / "assets"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_a_figure_arrives_as_a_valid_png_of_its_size(ip: TestingShell,
                                                     server: FakeMessagesServer) -> None:
    make_figure(ip)
    server.reply("A line.")
    ip.run_cell("%%claude\nWhat does {fig} show?")
    blocks = last_user_blocks(server)
    image = next(b for b in blocks if b["type"] == "image")
    assert image["source"]["media_type"] == "image/png"
    data = base64.b64decode(image["source"]["data"], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and image_size(data) == (400, 300)
    text = blocks[-1]["text"]
    assert text == "What does [image 1: fig] show?"
    assert "cache_control" in blocks[-1]  # the breakpoint stays on the prompt's last block


def test_a_100000_row_dataframe_arrives_as_schema_and_head(ip: TestingShell,
                                                           server: FakeMessagesServer) -> None:
    ip.run_cell("import pandas as pd, numpy as np\n"
                "df = pd.DataFrame({'a': np.arange(100_000), 'b': np.linspace(0, 1, 100_000),"
                " 'c': ['x|y'] * 100_000})")
    server.reply("ok")
    ip.run_cell("%%claude\nSummarise {df}")
    sent = server.message_requests[-1].body["messages"][-1]["content"]
    text = sent if isinstance(sent, str) else sent[-1]["text"]
    assert "100,000 rows x 3 columns" in text
    assert "a (int64), b (float64), c (" in text  # object, or str on pandas 3
    assert "| 9 | 9 |" in text and "| 10 | 10 |" not in text  # the first 10 rows only
    assert "x\\|y" in text  # a pipe inside a cell cannot break the table
    assert len(text) < 2_000


def test_other_values_are_cut_at_context_chars(ip: TestingShell,
                                               server: FakeMessagesServer) -> None:
    ip.run_cell("big = 'z' * 50_000")
    ip.run_cell("%config ClaudeMagics.context_chars = 1000")
    server.reply("ok")
    ip.run_cell("%%claude\nLook: {big}")
    sent = server.message_requests[-1].body["messages"][-1]["content"][-1]["text"]
    assert sent == "Look: " + "z" * 1000 + "\n[... truncated 49,000 characters]"


def make_pdf(path: Path) -> bytes:
    body = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")
    path.write_bytes(body)
    return body


def test_an_attached_pdf_arrives_as_a_document_block(ip: TestingShell, tmp_path: Path,
                                                     server: FakeMessagesServer) -> None:
    pdf = make_pdf(tmp_path / "report.pdf")
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    server.reply("Read it.")
    ip.run_cell("%%claude --attach report.pdf --attach notes.txt\nSummarise these")
    blocks = last_user_blocks(server)
    document = blocks[0]
    assert document["type"] == "document" and document["title"] == "report.pdf"
    assert base64.b64decode(document["source"]["data"]) == pdf
    assert "remember the milk" in blocks[1]["text"] and "notes.txt" in blocks[1]["text"]
    assert blocks[-1]["text"] == "Summarise these"


def png_header(width: int, height: int) -> bytes:
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
            + struct.pack(">II", width, height) + b"\x08\x06\x00\x00\x00" + b"\0" * 4)


def test_attach_limits_refuse_before_anything_is_stored(ip: TestingShell, tmp_path: Path,
                                                        server: FakeMessagesServer) -> None:
    (tmp_path / "wide.png").write_bytes(png_header(9000, 10))
    (tmp_path / "huge.png").write_bytes(png_header(10, 10) + b"\0" * (5 * 1024 * 1024 + 10))
    (tmp_path / "data.bin").write_bytes(b"\xff\xfe\x00binary")
    os.mkfifo(tmp_path / "pipe.png")
    ip.run_cell("%claude_session new limits")
    for name, words in (("wide.png", "9000x10 px"), ("huge.png", "at most 5 MB"),
                        ("data.bin", "nor UTF-8 text"), ("pipe.png", "not a regular file"),
                        ("missing.pdf", "no such file")):
        with pytest.raises(MagicUsageError, match=words) as caught:
            ip.run_cell(f"%claude --attach {name} look")
        assert "\n" not in str(caught.value)
    assert server.message_requests == []
    assert get_magics(ip).manager.resume("limits").messages == []


def test_error_attaches_the_last_exception_and_its_cell(ip: TestingShell,
                                                        server: FakeMessagesServer) -> None:
    with pytest.raises(MagicUsageError, match="no cell has raised"):
        ip.run_cell("%claude --error")
    with pytest.raises(ZeroDivisionError):
        ip.run_cell("def ratio(a, b):\n    return a / b\n\nratio(1, 0)")
    server.reply("Divide by something else.")
    ip.run_cell("%claude --error")
    blocks = last_user_blocks(server)
    error_text = blocks[0]["text"]
    assert "ZeroDivisionError" in error_text and "\x1b[" not in error_text
    assert "ratio(1, 0)" in error_text and "return a / b" in error_text
    assert blocks[-1]["text"] == "Explain this error and show how to fix the cell."


def test_one_figure_in_three_turns_and_a_fork_is_stored_once(
        ip: TestingShell, store_dir: Path, server: FakeMessagesServer) -> None:
    make_figure(ip)
    ip.run_cell("%claude_session new plots")
    for question in ("What is {fig}?", "And now {fig}?", "Once more {fig}"):
        server.reply("A plot.")
        ip.run_cell(f"%%claude\n{question}")
    ip.run_cell("%claude_session fork --from plots plots-2")
    assert len(asset_files(store_dir)) == 1
    # the third request resends the earlier images from the store, as base64
    history = server.message_requests[-1].body["messages"]
    sent = [b for m in history if isinstance(m["content"], list) for b in m["content"]
            if b["type"] == "image"]
    assert len(sent) == 3 and len({b["source"]["data"] for b in sent}) == 1
    manager = get_magics(ip).manager
    stored = manager.resume("plots-2").messages[0].content[0]["source"]
    assert stored["type"] == "asset" and asset_files(store_dir)[0].startswith(stored["sha256"])
    manager.delete("plots")
    assert len(asset_files(store_dir)) == 1  # the fork still uses it
    manager.delete("plots-2")
    assert len(asset_files(store_dir)) == 1  # unreferenced, but stored moments ago (grace)
    an_hour_ago = time.time() - 3600
    for name in asset_files(store_dir):
        os.utime(store_dir / "assets" / name, (an_hour_ago, an_hour_ago))
    manager.create_session("scratch").build()
    manager.delete("scratch")
    assert asset_files(store_dir) == []


def test_echo_describes_images_and_replay_runs_offline(shell: TestingShell, tmp_path: Path,
                                                       store_dir: Path) -> None:
    make_figure(shell)
    shell.run_cell("%config ClaudeMagics.backend = 'echo'")
    shell.run_cell("%claude_session new rec")
    shell.run_cell("%%claude\nWhat is {fig}?")
    answer = get_magics(shell).manager.resume("rec").messages[1].text
    assert "[image image/png 400x300," in answer and "KB]" in answer
    shell.run_cell("%claude_session export rec --format json --out rec.json")
    shell.run_cell("%config ClaudeMagics.backend = 'replay'")
    shell.run_cell("%config ClaudeMagics.backend_options = {'replay_source': 'rec.json'}")
    shell.run_cell("%claude_session new again")
    shell.run_cell("%%claude\nWhat is {fig}?")
    replayed = get_magics(shell).manager.resume("again").messages
    assert replayed[1].text == answer
    assert replayed[0].content[0]["source"]["type"] == "asset"


def test_ipynb_export_validates_with_images_attached(shell: TestingShell,
                                                     store_dir: Path) -> None:
    import nbformat

    make_figure(shell)
    shell.run_cell("%config ClaudeMagics.backend = 'echo'")
    shell.run_cell("%claude_session new pic")
    shell.run_cell("%%claude\nWhat is {fig}?")
    shell.run_cell("%claude_session export pic --format ipynb --out pic.ipynb")
    notebook = nbformat.read("pic.ipynb", as_version=4)
    nbformat.validate(notebook)
    cell = notebook.cells[1]
    (name, bundle), = cell.attachments.items()
    assert f"(attachment:{name})" in cell.source
    assert image_size(base64.b64decode(bundle["image/png"])) == (400, 300)
    shell.run_cell("%claude_session export pic --format json --out pic.json")
    assert '"type": "base64"' in Path("pic.json").read_text()  # embedded, so import is exact

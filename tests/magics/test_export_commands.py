"""``%claude_session show / export / import / panel`` through a real InteractiveShell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from claude_magic.errors import ClaudeMagicError, MagicUsageError
from claude_magic.magics import get_magics
from claude_magic.message import Message, Usage
from claude_magic.testing.shell import TestingShell


@pytest.fixture
def talked(shell: TestingShell) -> TestingShell:
    """A current session 'talk' with one answered turn."""
    shell.run_cell("%claude_session new talk --system 'Be kind' --meta project=demo")
    manager = get_magics(shell).manager
    manager.append("talk", Message("user", "What is 2+2?"))
    manager.append("talk", Message("assistant", "**4**", model="m", usage=Usage(5, 2)))
    return shell


def test_show_renders_metadata_and_transcript(talked: TestingShell) -> None:
    view = talked.run_cell("%claude_session show").result
    text = view._repr_markdown_()
    assert "talk" in text and "Be kind" in text and "project" in text
    assert text.index("What is 2+2?") < text.index("**4**")
    assert talked.run_cell("%claude_session").result._repr_markdown_() == text


def test_show_unknown_session_suggests(talked: TestingShell) -> None:
    with pytest.raises(MagicUsageError, match="did you mean 'talk'"):
        talked.run_cell("%claude_session show tlak")


@pytest.mark.parametrize("fmt", ["ipynb", "md", "json", "csv"])
def test_export_writes_beside_the_notebook(talked: TestingShell, store_dir: Path,
                                           fmt: str, capsys: pytest.CaptureFixture) -> None:
    talked.run_cell(f"%claude_session export --format {fmt}")
    target = store_dir.parent / f"talk.{fmt}"
    assert f"Wrote {target}" in capsys.readouterr().out
    text = target.read_text()
    if fmt == "ipynb":
        nbformat.validate(nbformat.reads(text, as_version=4))
    elif fmt == "json":
        assert json.loads(text)["session"]["id"] == "talk"
    assert "What is 2+2?" in text


def test_export_df_and_all_sessions(talked: TestingShell) -> None:
    talked.run_cell("%claude_session export --format df -o frame")
    frame = talked.user_ns["frame"]
    assert list(frame["content"]) == ["What is 2+2?", "**4**"]
    talked.run_cell("%claude_session export --all --format df -o sessions")
    assert list(talked.user_ns["sessions"]["id"]) == ["talk"]
    assert talked.user_ns["sessions"]["meta.project"].tolist() == ["demo"]


def test_export_to_missing_directory_is_one_line(talked: TestingShell, tmp_path: Path) -> None:
    with pytest.raises(ClaudeMagicError, match=r"export: .*does not exist") as info:
        talked.run_cell(f"%claude_session export --format md --out {tmp_path}/nope/x.md")
    assert info.value.label == "FileNotFoundError"


def test_json_export_imports_back_exactly(talked: TestingShell, tmp_path: Path) -> None:
    out = tmp_path / "talk.json"
    talked.run_cell(f"%claude_session export --format json --out {out}")
    original = get_magics(talked).manager.resume("talk")
    talked.run_cell("%claude_session storage memory")
    talked.run_cell(f"%claude_session import {out} --switch")
    copy = get_magics(talked).manager.resume("talk")
    assert copy.to_dict() == original.to_dict()
    assert get_magics(talked).workspace.current == "talk"
    talked.run_cell(f"%claude_session import {out} --as talk-2")
    assert get_magics(talked).manager.resume("talk-2").messages == original.messages


def test_panel_shares_the_current_session(talked: TestingShell) -> None:
    talked.run_cell("%claude_session new second")
    panel = talked.run_cell("%claude_session panel").result
    magics = get_magics(talked)
    assert panel.manager is magics.manager
    assert [(row["id"], row["current"]) for row in panel.rows] == [("second", True),
                                                                    ("talk", False)]
    talked.run_cell("%claude_session switch talk")  # the magics switch; the panel follows
    assert [(row["id"], row["current"]) for row in panel.rows] == [("second", False),
                                                                    ("talk", True)]
    panel.switch("second")  # the panel switches; the magics follow
    assert magics.workspace.current == "second"
    panel.close()


def test_panel_new_uses_the_default_system_prompt(talked: TestingShell) -> None:
    talked.run_cell("%config ClaudeMagics.system_prompt = 'From config'")
    panel = talked.run_cell("%claude_session panel").result
    panel.new_id.value = "from-panel"
    panel.new_button.click()
    magics = get_magics(talked)
    assert magics.manager.resume("from-panel").system_prompt == "From config"
    assert magics.workspace.current == "from-panel"
    panel.close()


def test_a_new_panel_replaces_the_old_one(talked: TestingShell) -> None:
    manager = get_magics(talked).manager
    first = talked.run_cell("%claude_session panel").result
    listeners = len(manager._listeners)
    second = talked.run_cell("%claude_session panel").result
    assert second is not first and len(manager._listeners) == listeners
    talked.run_cell("%unload_ext claude_magic")
    assert manager._listeners == []

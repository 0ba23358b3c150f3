"""Notebook, Markdown and JSON transcripts; files written by export_session; JSON import."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from claude_magic import SessionExists
from claude_magic.export import (
    InvalidExport,
    export_session,
    import_session_file,
    session_from_json,
    session_to_json,
    session_to_markdown,
    session_to_notebook,
    sessions_export,
)
from claude_magic.manager import SessionManager

from .conftest import KINDS


def test_notebook_is_valid_v4_with_one_markdown_cell_per_message(
        manager: SessionManager, filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    session = manager.resume("s-new")
    nb = session_to_notebook(session)
    nbformat.validate(nb)
    again = nbformat.reads(nbformat.writes(nb), as_version=4)  # survives a save and a load
    nbformat.validate(again)
    assert again.nbformat == 4
    assert [c.cell_type for c in again.cells] == ["markdown"] * (1 + len(session.messages))
    meta = again.metadata["claude_magic"]["session"]
    assert meta["id"] == "s-new" and meta["metadata"] == {"project": "web", "tags": ["a", "b"],
                                                         "ratio": 2}
    assert meta["system_prompt"] == session.system_prompt
    assert meta["stats"]["turns"] == 3 and meta["stats"]["message_count"] == 7
    header = again.cells[0].source
    assert "# Claude session `s-new`" in header and "You review | pipes" in header
    assert "| `project` | web |" in header
    for cell, message in zip(again.cells[1:], session.messages, strict=True):
        assert message.content in cell.source
        assert cell.metadata["claude_magic"]["role"] == message.role
        assert cell.metadata["claude_magic"]["seq"] == message.seq
        assert cell.metadata["claude_magic"]["status"] == message.status
    assert again.cells[1].source.startswith("**You**")
    assert again.cells[2].source.startswith("**Claude** · `claude-opus-4-1`")
    last = again.cells[-1].source
    assert "INCOMPLETE" in last and "connection reset" in last


def test_failed_turn_is_visibly_marked(manager: SessionManager,
                                       filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    session = manager.resume("s-mid")
    cell = session_to_notebook(session).cells[-1].source
    assert "⚠️ **FAILED**" in cell and "BackendTimeout: no answer in 600 s" in cell
    ok_cells = session_to_notebook(session).cells[1:-1]
    assert not any("FAILED" in c.source or "INCOMPLETE" in c.source for c in ok_cells)


def test_markdown_transcript(manager: SessionManager,
                             filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    text = session_to_markdown(manager.resume("s-mid"))
    assert text.startswith("# Claude session `s-mid`\n")
    assert "> You are a data analyst." in text
    assert "| `priority` | 10 |" in text and "| `ratio` | 0.5 |" in text
    assert text.count("\n\n---\n\n") == 3  # header + 3 messages
    assert "**0** — answer 0" in text and "FAILED" in text
    assert "100 in / 20 out tokens" in text and "$0.0125" in text
    empty = session_to_markdown(manager.resume("s-empty"))
    assert "0 turns · 0 messages" in empty


@pytest.mark.parametrize(("source", "target"), list(itertools.product(KINDS, KINDS)))
def test_json_export_import_round_trips_exactly_across_stores(
        source: str, target: str, open_manager: Callable[..., SessionManager],
        filled: Callable[[SessionManager], list[str]]) -> None:
    src, dst = open_manager(source, "src"), open_manager(target, "dst")
    ids = filled(src)
    for session_id in ids:
        original = src.resume(session_id)
        imported = dst.import_session(session_from_json(session_to_json(original)))
        assert imported.to_dict() == original.to_dict()
        assert dst.resume(session_id).to_dict() == original.to_dict()
    assert dst.list() == src.list()
    assert {s.id: s.stats for s in dst.summaries()} == {s.id: s.stats for s in src.summaries()}
    # and once more, out of the second store: nothing drifts
    again = session_to_json(dst.resume("s-new"))
    assert again == session_to_json(src.resume("s-new"))


def test_json_export_is_readable_and_versioned(manager: SessionManager,
                                               filled: Callable[[SessionManager], list[str]]
                                               ) -> None:
    filled(manager)
    doc = json.loads(session_to_json(manager.resume("s-old")))
    assert doc["format"] == "claude-magic/session-export" and doc["version"] == 1
    assert doc["session"]["id"] == "s-old" and len(doc["session"]["messages"]) == 4
    assert session_from_json(json.dumps(doc["session"])).id == "s-old"  # bare session too


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not a session export: invalid JSON"),
    ('{"format": "other", "version": 1}', "format is 'other'"),
    ('{"format": "claude-magic/session-export", "version": 9, "session": {}}',
     "version 9 is not supported"),
    ('[1, 2]', "expected a JSON object with a session 'id'"),
    ('{"id": "x", "created_at": NaN}', "invalid JSON"),
    ('{"id": "x"}', "damaged: bad field"),
])
def test_bad_json_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(InvalidExport, match=message) as caught:
        session_from_json(text)
    assert "\n" not in str(caught.value)


def test_import_file_refuses_to_overwrite_unless_asked(
        tmp_path: Path, open_manager: Callable[..., SessionManager],
        filled: Callable[[SessionManager], list[str]]) -> None:
    manager = open_manager("directory")
    filled(manager)
    path = export_session(manager, "s-old", "json", tmp_path / "old.json")
    with pytest.raises(SessionExists):
        import_session_file(manager, path)
    copy = import_session_file(manager, path, new_id="s-copy")
    assert copy.id == "s-copy" and copy.messages == manager.resume("s-old").messages
    manager.update("s-old", metadata={"project": "changed"})
    import_session_file(manager, path, overwrite=True)
    assert manager.resume("s-old").metadata["project"] == "web"
    with pytest.raises(InvalidExport, match="is a notebook"):
        import_session_file(manager, tmp_path / "x.ipynb")
    with pytest.raises(InvalidExport, match="cannot read"):
        import_session_file(manager, tmp_path / "missing.json")


@pytest.mark.parametrize("fmt", ["ipynb", "md", "json", "csv"])
def test_export_session_writes_files_atomically(
        fmt: str, tmp_path: Path, open_manager: Callable[..., SessionManager],
        filled: Callable[[SessionManager], list[str]]) -> None:
    manager = open_manager("sqlite")
    filled(manager)
    out = tmp_path / "out"
    out.mkdir()
    written = export_session(manager, "s-new", fmt, out)  # a directory: <id>.<ext>
    assert written == (out / f"s-new.{fmt}").absolute()
    named = export_session(manager, "s-new", fmt, out / f"named.{fmt}")
    assert named.read_bytes() == written.read_bytes() or fmt == "ipynb"  # ipynb has exported_at
    assert sorted(p.name for p in out.iterdir()) == sorted([f"s-new.{fmt}", f"named.{fmt}"])
    text = written.read_text(encoding="utf-8")
    if fmt == "ipynb":
        nbformat.validate(nbformat.reads(text, as_version=4))
    elif fmt == "md":
        assert text == session_to_markdown(manager.resume("s-new"))
    elif fmt == "json":
        assert session_from_json(text).to_dict() == manager.resume("s-new").to_dict()
    else:
        frame = pd.read_csv(io.StringIO(text))
        assert list(frame["seq"]) == list(range(7))
        assert list(frame["status"])[-1] == "incomplete"
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        export_session(manager, "s-new", fmt, written, overwrite=False)


def test_export_session_returns_data_without_a_path(
        manager: SessionManager, filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    assert isinstance(export_session(manager, "s-old", "ipynb"), nbformat.NotebookNode)
    assert export_session(manager, "s-old", "markdown").startswith("# Claude session")
    assert session_from_json(export_session(manager, "s-old", "json")).id == "s-old"
    assert export_session(manager, "s-old", "csv").startswith("session_id,seq,role,")
    frame = export_session(manager, "s-old", "df")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4


def test_export_errors_are_clear(tmp_path: Path, manager: SessionManager,
                                 filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    tmp_path = tmp_path / "exports"
    tmp_path.mkdir()
    with pytest.raises(ValueError, match="unknown export format 'pdf'; use one of ipynb, md"):
        export_session(manager, "s-old", "pdf")
    with pytest.raises(ValueError, match="format df is a DataFrame in memory"):
        export_session(manager, "s-old", "df", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_session(manager, "s-old", "md", tmp_path / "no" / "such" / "x.md")
    with pytest.raises(LookupError, match="'ghost' not found"):
        export_session(manager, "ghost", "md", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_sessions_export_every_session(tmp_path: Path, manager: SessionManager,
                                       filled: Callable[[SessionManager], list[str]]) -> None:
    ids = filled(manager)
    assert list(sessions_export(manager, "df")["id"]) == ids
    path = sessions_export(manager, "csv", tmp_path)
    assert path == (tmp_path / "sessions.csv").absolute()
    assert list(pd.read_csv(path)["id"]) == ids
    with pytest.raises(ValueError, match="works with df or csv, not md"):
        sessions_export(manager, "md")


def test_offline_answers_are_not_labelled_as_claude() -> None:
    from claude_magic.export import message_markdown
    from claude_magic.session import Message

    assert message_markdown(Message("assistant", "hi", backend="echo")).startswith(
        "**Offline echo (no model)**")
    assert message_markdown(Message("assistant", "hi", backend="anthropic")).startswith(
        "**Claude**")

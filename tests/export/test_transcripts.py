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
    ('{"id": "x"}', "damaged: session has no 'created_at'"),
])
def test_bad_json_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(InvalidExport, match=message) as caught:
        session_from_json(text)
    assert "\n" not in str(caught.value)


GOOD_MESSAGE = {"role": "assistant", "content": "hi", "created_at": "2026-01-01T00:00:00+00:00",
                "cost_usd": 0.5, "duration_ms": 12.5, "usage": {"input_tokens": 3},
                "ids": {"message_id": "m1"}, "seq": 0}


def _doc(message: dict[str, object] | None = None, **header: object) -> str:
    session: dict[str, object] = {"id": "x", "created_at": "2026-01-01T00:00:00+00:00",
                                  "updated_at": "2026-01-01T00:00:00+00:00"}
    session.update(header)
    if message is not None:
        session["messages"] = [{**GOOD_MESSAGE}, {**GOOD_MESSAGE, **message}]
    return json.dumps({"format": "claude-magic/session-export", "version": 1,
                       "session": session})


@pytest.mark.parametrize(("text", "message"), [
    (_doc(system_prompt=5), "system_prompt must be str, got int"),
    (_doc(metadata=[1]), "metadata must be a dict, got list"),
    (_doc(settings=3), "settings must be a dict, got int"),
    (_doc(created_at=7), "session created_at must be an ISO-8601 string, got int"),
    (_doc(updated_at="yesterday"), "session updated_at is not an ISO-8601 time: 'yesterday'"),
    (_doc(id="../x"), "invalid session id '../x'"),
    (_doc(messages={"0": {}}), "session messages must be a list, got dict"),
    (_doc({"cost_usd": "1"}), r"messages\[1\]: message cost_usd must be a number, got str"),
    (_doc({"duration_ms": "x"}), r"messages\[1\]: message duration_ms must be a number"),
    (_doc({"usage": {"input_tokens": "3"}}), r"messages\[1\]: usage input_tokens must be int"),
    (_doc({"usage": [3]}), r"messages\[1\]: usage must be a JSON object, got list"),
    (_doc({"ids": {"a": 1}}), r"messages\[1\]: message ids\['a'\] must be str, got int"),
    (_doc({"ids": "abc"}), r"messages\[1\]: message ids must be a dict of str to str"),
    (_doc({"model": 1}), r"messages\[1\]: message model must be str, got int"),
    (_doc({"seq": -2}), r"messages\[1\]: message seq must be an int from 0"),
    (_doc({"role": "system"}), r"messages\[1\]: message role must be one of"),
    (_doc({"created_at": None}), r"messages\[1\]: message created_at must be an ISO-8601"),
    (json.dumps({"id": "x", "created_at": "2026-01-01", "updated_at": "2026-01-01",
                 "messages": [{"content": "hi", "created_at": "2026-01-01"}]}),
     r"messages\[0\]: message has no 'role'"),
    (json.dumps({"id": "x", "created_at": "2026-01-01", "updated_at": "2026-01-01",
                 "messages": ["hi"]}), r"messages\[0\]: a message must be a JSON object"),
])
def test_ill_typed_export_is_one_line_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(InvalidExport, match=f"session export is damaged: .*{message}") as caught:
        session_from_json(text)
    assert "\n" not in str(caught.value)


def test_an_ill_typed_export_file_is_refused_before_anything_is_stored(
        tmp_path: Path, manager: SessionManager) -> None:
    path = tmp_path / "bad.json"
    path.write_text(_doc({"duration_ms": "x"}), encoding="utf-8")
    with pytest.raises(InvalidExport, match=r"messages\[1\]: message duration_ms"):
        import_session_file(manager, path)
    assert manager.list() == []
    path.write_text(_doc({}), encoding="utf-8")
    imported = import_session_file(manager, path)
    assert [m.cost_usd for m in imported.messages] == [0.5, 0.5]
    assert manager.messages_dataframe("x")["duration_ms"].tolist() == [12.5, 12.5]


def test_sessions_refuse_a_system_prompt_that_is_not_text() -> None:
    from claude_magic.session import Session

    with pytest.raises(TypeError, match="system prompt must be str, got int"):
        Session(id="x", system_prompt=5)  # type: ignore[arg-type]


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


@pytest.mark.parametrize("fmt", ["ipynb", "md", "json", "csv"])
def test_exports_get_the_mode_of_new_files_not_0600(
        fmt: str, tmp_path: Path, open_manager: Callable[..., SessionManager],
        filled: Callable[[SessionManager], list[str]]) -> None:
    import os
    import stat

    manager = open_manager("directory")
    filled(manager)
    old = os.umask(0o022)
    try:
        written = export_session(manager, "s-old", fmt, tmp_path)
        table = sessions_export(manager, "csv", tmp_path / "all.csv")
        assert stat.S_IMODE(written.stat().st_mode) == 0o644
        assert stat.S_IMODE(table.stat().st_mode) == 0o644
        os.umask(0o027)
        fresh = export_session(manager, "s-old", fmt, tmp_path / f"other.{fmt}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
        written.chmod(0o664)  # replacing a file keeps its mode
        assert export_session(manager, "s-old", fmt, written) == written
        assert stat.S_IMODE(written.stat().st_mode) == 0o664
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    store = Path(manager.storage.location)
    assert {stat.S_IMODE(p.stat().st_mode) for p in store.glob("s-*")} == {0o600}  # private


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_a_path_ending_in_a_separator_is_a_directory(
        fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manager: SessionManager,
        filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    monkeypatch.chdir(tmp_path)
    written = export_session(manager, "s-old", fmt, "out/")
    assert written == (tmp_path / "out" / f"s-old.{fmt}").absolute()
    assert written.read_text(encoding="utf-8") == export_session(manager, "s-old", fmt) \
        or fmt == "ipynb"
    nested = export_session(manager, "s-new", fmt, str(tmp_path / "a" / "b") + "/")
    assert nested == tmp_path / "a" / "b" / f"s-new.{fmt}" and nested.is_file()
    assert sessions_export(manager, "csv", "tables/") == tmp_path / "tables" / "sessions.csv"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a directory") as caught:
        export_session(manager, "s-old", fmt, "file/")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "file").read_text() == "x"


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
    from claude_magic.message import Message

    assert message_markdown(Message("assistant", "hi", backend="echo")).startswith(
        "**Offline echo (no model)**")
    assert message_markdown(Message("assistant", "hi", backend="anthropic")).startswith(
        "**Claude**")

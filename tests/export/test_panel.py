"""The session panel's widget model, driven through the widgets' own API (clicks, values)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from ipywidgets.widgets.widget import _instances as live_widgets  # every open widget

from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.panel import SessionPanel, panel
from claude_magic.session import Session
from claude_magic.times import utc_now
from claude_magic.workspace import Workspace

Fill = Callable[[SessionManager], list[str]]


def ids(p: SessionPanel) -> list[str]:
    return [row["id"] for row in p.rows]


def test_build_shows_every_session_newest_first(manager: SessionManager, filled: Fill,
                                                opened: Callable[..., SessionPanel]) -> None:
    expected = filled(manager)
    p = opened()
    assert ids(p) == expected and p.total == p.matching == 4
    row = p.rows[1]
    assert (row["id"], row["turns"], row["messages"], row["model"]) == \
        ("s-new", 3, 7, "claude-opus-4-1")
    assert row["metadata"] == {"project": "web", "tags": ["a", "b"], "ratio": 2}
    header = p._header.value
    for label in ("id", "created", "updated", "turns", "tokens in / out", "cost", "model",
                  ">priority<", ">project<", ">ratio<", ">reviewed<", ">tags<"):
        assert label in header
    cells = p.row_view("s-new").cells.value
    assert "303 / 63" in cells and "$0.0750" in cells and '["a", "b"]' in html_unescape(cells)
    assert "page 1 of 1 · 4 of 4 sessions" in p.page_label.value
    assert p.prev_button.disabled and p.next_button.disabled
    assert not any(row["current"] for row in p.rows)


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_switch_click_sets_the_workspace_current_and_marks_the_row(
        manager: SessionManager, ws: Workspace, filled: Fill,
        opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.row_view("s-mid").switch_button.click()
    assert ws.current == "s-mid"
    assert [r["id"] for r in p.rows if r["current"]] == ["s-mid"]
    view = p.row_view("s-mid")
    assert view.switch_button.disabled and view.switch_button.description == "current"
    assert "cm-current" in view.cells._dom_classes
    assert "Switched to session s-mid." in p.status.value
    ws.current = "s-old"  # what %claude_session switch does
    assert [r["id"] for r in p.rows if r["current"]] == ["s-old"]
    assert not p.row_view("s-mid").switch_button.disabled
    assert "cm-current" not in p.row_view("s-mid").cells._dom_classes


def test_switch_to_a_session_deleted_elsewhere_is_an_error_line(
        tmp_path: Path, filled: Fill) -> None:
    mine = SessionManager(tmp_path / "store")
    other = SessionManager(tmp_path / "store")  # another kernel on the same folder
    filled(mine)
    p = panel(manager=mine)
    other.delete("s-old")
    p.row_view("s-old").switch_button.click()
    assert p.workspace.current is None
    assert "cm-error" in p.status.value and "no longer exists; refresh" in p.status.value
    p.refresh_button.click()
    assert "s-old" not in ids(p) and p.total == 3
    p.close()


def test_rows_follow_changes_made_through_the_manager(
        manager: SessionManager, filled: Fill, opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    manager.create_session("s-fresh").with_metadata("owner", "ana").build()
    assert ids(p)[0] == "s-fresh" and p.total == 5
    assert ">owner<" in p._header.value  # a new metadata key becomes a column
    manager.append("s-old", Message("user", "back to this one"))
    assert ids(p)[0] == "s-old" and p.rows[0]["turns"] == 3
    manager.update("s-mid", metadata={"project": "renamed"})
    assert p.rows[0]["id"] == "s-mid" and p.rows[0]["metadata"]["project"] == "renamed"
    manager.delete("s-new")
    assert "s-new" not in ids(p) and p.total == 4
    manager.clear()
    assert ids(p) == [] and "0 of 0 sessions" in p.page_label.value


def test_close_stops_following_the_store(manager: SessionManager, filled: Fill,
                                         ws: Workspace) -> None:
    filled(manager)
    p = panel(workspace=ws)
    p.close()
    p.close()  # twice is fine
    manager.create_session("after").build()
    ws.current = "after"
    assert p.total == 4
    assert p._on_event not in manager._listeners  # no leak: the manager forgot the panel


def test_events_in_a_running_loop_are_applied_once_the_cell_is_done(
        manager: SessionManager) -> None:
    async def cell() -> tuple[int, int, list[str]]:
        p = panel(manager=manager)
        for i in range(5):
            manager.create_session(f"burst-{i}").build()
        during = p.total  # the "cell" still runs: nothing re-read yet
        await asyncio.sleep(0)  # the kernel is idle again
        after = p.total
        shown = ids(p)
        p.close()
        return during, after, shown

    during, after, shown = asyncio.run(cell())
    assert (during, after) == (0, 5)
    assert shown == [f"burst-{i}" for i in reversed(range(5))]


def test_text_and_metadata_filters(manager: SessionManager, filled: Fill,
                                   opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.filter_text.value = "WEB"  # case-insensitive, in metadata values
    assert ids(p) == ["s-new", "s-old"]
    p.filter_text.value = "analyst"  # in the system prompt
    assert ids(p) == ["s-mid"]
    p.filter_text.value = "opus web"  # every word must match
    assert ids(p) == ["s-new"]
    p.filter_text.value = ""
    p.meta_filter.value = "project=web"
    assert ids(p) == ["s-new", "s-old"]
    p.meta_filter.value = "project=web, ratio=2"
    assert ids(p) == ["s-new"]
    p.meta_filter.value = "priority=10"  # numbers are compared as typed
    assert ids(p) == ["s-mid"]
    p.meta_filter.value = "reviewed=true"
    assert ids(p) == ["s-old"]
    p.meta_filter.value = "ratio"  # has the key
    assert ids(p) == ["s-new", "s-mid"]
    p.meta_filter.value = "project=nothing"
    assert ids(p) == [] and "0 of 4 sessions" in p.page_label.value


@pytest.mark.parametrize(("column", "descending", "expected"), [
    ("id", False, ["s-empty", "s-mid", "s-new", "s-old"]),
    ("id", True, ["s-old", "s-new", "s-mid", "s-empty"]),
    ("created", False, ["s-old", "s-mid", "s-new", "s-empty"]),
    ("updated", True, ["s-empty", "s-new", "s-mid", "s-old"]),
    ("turns", True, ["s-new", "s-mid", "s-old", "s-empty"]),  # ties: newest first
    ("tokens", False, ["s-empty", "s-mid", "s-old", "s-new"]),
    ("cost", True, ["s-new", "s-old", "s-mid", "s-empty"]),
    ("meta.priority", False, ["s-old", "s-mid", "s-empty", "s-new"]),  # missing: last,
    ("meta.priority", True, ["s-mid", "s-old", "s-empty", "s-new"]),  # newest first
    ("meta.ratio", True, ["s-new", "s-mid", "s-empty", "s-old"]),
])
def test_sort_by_any_column(column: str, descending: bool, expected: list[str],
                            manager: SessionManager, filled: Fill,
                            opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    assert column in [value for _, value in p.sort_by.options]
    p.sort_by.value = column
    p.sort_desc.value = descending
    assert ids(p) == expected
    assert ("↓" if descending else "↑") in p._header.value


def test_sort_by_model_keeps_sessions_without_a_model_last(
        manager: SessionManager, filled: Fill, opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.sort_by.value = "model"
    p.sort_desc.value = False
    assert ids(p)[0] == "s-new" and ids(p)[-1] == "s-empty"


def test_pages_build_only_the_visible_rows(manager: SessionManager,
                                           opened: Callable[..., SessionPanel]) -> None:
    base = utc_now() - timedelta(days=1)
    for i in range(57):
        when = base + timedelta(minutes=i)
        manager.import_session(Session(id=f"p{i:02d}", created_at=when, updated_at=when,
                                       metadata={"n": i}))
    before = len(live_widgets)
    p = opened(page_size=10)
    built = len(live_widgets) - before
    assert len(p._grid.children) == 3 + 3 * 10  # a header row, then switch, open, cells per row
    assert len(p._pool) == 10  # row widgets for the visible page only, not for 57 sessions
    assert built < 200, f"{built} widgets (with layouts and styles) for one page of 10 rows"
    assert ids(p) == [f"p{i:02d}" for i in range(56, 46, -1)]
    p.next_button.click()
    p.next_button.click()
    assert p.page == 2 and ids(p)[0] == "p36" and "page 3 of 6" in p.page_label.value
    assert not p.prev_button.disabled
    p.go(99)  # clamped to the last page
    assert p.page == 5 and ids(p) == [f"p{i:02d}" for i in range(6, -1, -1)]
    assert p.next_button.disabled and len(p._grid.children) == 3 + 3 * 7
    p.prev_button.click()
    assert p.page == 4 and len(ids(p)) == 10
    p.page_size.value = 25
    assert p.page == 0 and len(ids(p)) == 25 and "page 1 of 3" in p.page_label.value
    p.filter_text.value = "p1"  # a filter goes back to the first page
    assert ids(p) == [f"p{i}" for i in range(19, 9, -1)]
    widgets_now = len(live_widgets)
    for value in ("p2", "p3", "", "p4"):
        p.filter_text.value = value
    assert len(live_widgets) == widgets_now  # the row widgets are reused


def test_open_shows_metadata_and_transcript(manager: SessionManager, filled: Fill,
                                            opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.row_view("s-mid").open_button.click()
    detail = p.detail
    assert detail.visible and detail.session_id == "s-mid"
    markdown = detail.markdown
    assert "### Claude session `s-mid`" in markdown and "| `priority` | 10 |" in markdown
    assert "> You are a data analyst." in markdown
    assert "question 0: what is 0 + 0?" in markdown and "⚠️ **FAILED**" in markdown
    manager.append("s-mid", Message("assistant", "a late answer"))  # it follows the store
    assert "a late answer" in detail.markdown
    assert "cm-opened" in p.row_view("s-mid").cells._dom_classes  # the opened row is marked
    detail.close_button.click()
    assert not detail.visible and detail.markdown == "" and detail.turns == []
    assert "cm-opened" not in p.row_view("s-mid").cells._dom_classes


def test_delete_needs_confirmation(manager: SessionManager, ws: Workspace, filled: Fill,
                                   opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.row_view("s-old").switch_button.click()
    p.row_view("s-old").open_button.click()
    p.detail.delete_button.click()
    assert manager.exists("s-old")  # asked, not deleted
    assert p.detail.confirm_box.layout.display != "none"
    assert "Delete session <b>s-old</b> and its 4 messages?" in p.detail.question.value
    p.detail.cancel_button.click()
    assert manager.exists("s-old") and p.detail.confirm_box.layout.display == "none"
    p.detail.delete_button.click()
    p.detail.confirm_button.click()
    assert not manager.exists("s-old")
    assert "s-old" not in ids(p) and p.total == 3 and not p.detail.visible
    assert ws.current is None  # the deleted session was current
    assert "no current session now" in p.status.value


def test_new_and_fork(manager: SessionManager, ws: Workspace, filled: Fill,
                      opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.new_button.click()
    fresh = ws.current
    assert fresh is not None and manager.exists(fresh) and ids(p)[0] == fresh
    p.new_id.value = "named-one"
    p.new_button.click()
    assert ws.current == "named-one" and p.new_id.value == ""
    p.new_id.value = "named-one"
    p.new_button.click()  # exists: an error line, nothing replaced
    assert "cm-error" in p.status.value and "already exists" in p.status.value
    p.row_view("s-old").open_button.click()
    p.detail.fork_button.click()  # named after its source, switched to, opened
    assert manager.find(forked_from="s-old") == ["s-old-branch"]
    assert ids(p)[0] == "s-old-branch" and ws.current == "s-old-branch"
    assert p.detail.session_id == "s-old-branch"
    assert manager.resume("s-old-branch").messages == manager.resume("s-old").messages
    assert ("Branched session s-old into s-old-branch and switched to it."
            in p.status.value)
    p.row_view("s-old").open_button.click()
    p.detail.fork_button.click()  # the name is taken: the next free one
    assert ws.current == "s-old-branch-2"
    p.row_view("s-old").open_button.click()
    p.detail.new_name.value = "my-try"
    p.detail.fork_button.click()  # as typed
    assert ws.current == "my-try" and p.detail.new_name.value == ""
    assert sorted(manager.find(forked_from="s-old")) == ["my-try", "s-old-branch",
                                                          "s-old-branch-2"]


def test_new_uses_the_given_factory(manager: SessionManager, ws: Workspace,
                                    opened: Callable[..., SessionPanel]) -> None:
    def create(session_id: str | None) -> Session:  # e.g. the magics' default system prompt
        return manager.create_session(session_id).with_system_prompt("Be brief.").build()

    p = opened(new_session=create)
    p.new_id.value = "briefed"
    p.new_button.click()
    assert ws.current == "briefed" and manager.resume("briefed").system_prompt == "Be brief."


def test_export_button_writes_the_file(tmp_path: Path, manager: SessionManager, filled: Fill,
                                       opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    out = tmp_path / "exports"
    out.mkdir()
    p = opened(export_dir=out)
    p.row_view("s-new").open_button.click()
    p.detail.export_format.value = "md"
    p.detail.export_button.click()
    assert (out / "s-new.md").read_text(encoding="utf-8").startswith("# Claude session `s-new`")
    assert f"Exported session s-new to {out / 's-new.md'}." in p.status.value
    p.detail.export_format.value = "json"
    p.detail.export_path.value = str(tmp_path / "missing-dir" / "x.json")
    p.detail.export_button.click()
    assert "cm-error" in p.status.value and "does not exist" in p.status.value


def test_text_from_sessions_is_escaped(manager: SessionManager,
                                       opened: Callable[..., SessionPanel]) -> None:
    manager.create_session("x").with_metadata("note", "<img src=x onerror=alert(1)>").build()
    p = opened()
    assert "<img" not in p.row_view("x").cells.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in p.row_view("x").cells.value


def test_panel_follows_a_new_store_on_the_workspace(tmp_path: Path, ws: Workspace,
                                                    manager: SessionManager,
                                                    opened: Callable[..., SessionPanel]) -> None:
    manager.create_session("in-first").build()
    p = opened()
    second = SessionManager(tmp_path / "second")
    second.create_session("in-second").build()
    ws.manager = second  # %claude_session storage <other>
    assert ids(p) == ["in-second"] and "second" in p._title.value
    manager.create_session("ignored").build()
    second.create_session("seen").build()
    assert ids(p) == ["seen", "in-second"]
    ws.manager = None  # the extension was unloaded
    p.new_button.click()
    assert "cm-error" in p.status.value and "no session store" in p.status.value
    second.close()


def test_panel_without_arguments_uses_the_loaded_extension(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from claude_magic.magics.extension import get_magics
    from claude_magic.testing.shell import TestingShell

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLAUDE_MAGIC_STORAGE", raising=False)
    shell = TestingShell.fresh()
    try:
        shell.run_cell("%load_ext claude_magic")
        magics = get_magics(shell)
        assert magics is not None
        magics.manager.create_session("from-magics").build()
        p = panel()
        assert p.workspace is magics.workspace and ids(p) == ["from-magics"]
        p.row_view("from-magics").switch_button.click()
        assert magics.workspace.current == "from-magics"
        p.close()
        shell.run_cell("%unload_ext claude_magic")
    finally:
        TestingShell.discard()

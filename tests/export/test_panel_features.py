"""The panel's search, rename and branching, its detail view of rich messages, and what a new
user found (empty state, stale status, opened row, a replaced panel), on every store."""

from __future__ import annotations

import base64
from collections.abc import Callable

from ipywidgets.widgets.widget import _instances as live_widgets

from claude_magic.compaction import summary_ids
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.panel import SessionPanel, panel
from claude_magic.session import Session
from claude_magic.workspace import Workspace

Fill = Callable[[SessionManager], list[str]]
# a real 1x1 PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
)).decode()


def test_search_lists_hits_and_opens_the_session_at_the_hit(
        manager: SessionManager, filled: Fill, opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.search.query.value = "answer 2"  # Enter in the box
    hits = [row.hit for row in p.search.hits]
    assert hits and all(str(h.session_id) == "s-new" for h in hits[:1])
    assert "<mark>" in p.search.hits[0].text.value
    assert "3 hits in 2 sessions" in p.search.summary.value
    target = next(row for row in p.search.hits if row.hit.seq == 5)  # the 3rd answer of s-new
    target.open_button.click()
    assert p.detail.session_id == "s-new"
    assert p.detail.turns[0].turn.seqs == range(4, 7)  # the view starts at the hit's turn
    assert "cm-hit" in p.detail.turns[0]._dom_classes
    assert "4 earlier messages not shown" in p.detail.markdown
    assert "Opened session s-new at message 5." in p.status.value
    p.search.query.value = "zebra-never-said"
    assert p.search.hits == [] and "Nothing matches" in p.search.summary.value
    p.search.clear_button.click()
    assert p.search.summary.value == "" and p.search.query.value == ""


def test_search_hit_on_a_system_prompt_opens_the_session(
        manager: SessionManager, filled: Fill, opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.search.query.value = "analyst"
    hit = p.search.hits[0]
    assert hit.hit.seq is None and "system" in hit.text.value
    hit.open_button.click()
    assert p.detail.session_id == "s-mid" and "Opened session s-mid." in p.status.value


def test_rename_moves_the_session_and_the_current_follows(
        manager: SessionManager, ws: Workspace, filled: Fill,
        opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    ws.current = "s-old"
    messages = manager.resume("s-old").messages
    p.row_view("s-old").open_button.click()
    p.detail.rename_button.click()  # no name typed: one error line, nothing renamed
    assert "cm-error" in p.status.value and manager.exists("s-old")
    p.detail.new_name.value = "web-notes"
    p.detail.rename_button.click()
    assert not manager.exists("s-old") and manager.resume("web-notes").messages == messages
    assert ws.current == "web-notes" and p.detail.session_id == "web-notes"
    assert "web-notes" in [row["id"] for row in p.rows]
    assert "Renamed session s-old to web-notes." in p.status.value
    p.detail.new_name.value = "s-new"
    p.detail.rename_button.click()  # taken: refused, both kept
    assert "cm-error" in p.status.value and manager.exists("web-notes")
    assert len(manager.resume("s-new").messages) == 7


def test_branch_here_forks_at_that_answer_and_switches(
        manager: SessionManager, ws: Workspace, filled: Fill,
        opened: Callable[..., SessionPanel]) -> None:
    filled(manager)
    p = opened()
    p.row_view("s-new").open_button.click()
    turns = p.detail.turns
    assert [t.turn.branch_at for t in turns] == [1, 3, 5]  # not at the incomplete answer
    turns[1].branch_button.click()
    fork = manager.resume("s-new-branch")
    assert [m.seq for m in fork.messages] == [0, 1, 2, 3]
    assert fork.metadata["forked_from"] == "s-new" and fork.metadata["forked_at"] == 3
    assert ws.current == "s-new-branch" and p.detail.session_id == "s-new-branch"
    assert "Branched session s-new at turn 3 into s-new-branch and switched to it." \
        in p.status.value
    assert "cm-opened" in p.row_view("s-new-branch").cells._dom_classes
    assert "cm-current" in p.row_view("s-new-branch").cells._dom_classes


def test_detail_shows_images_inline_and_collapses_thinking_and_tool_calls(
        manager: SessionManager, opened: Callable[..., SessionPanel]) -> None:
    manager.create_session("rich").build()
    manager.append("rich", Message("user", [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": PNG}}]))
    manager.append("rich", Message("assistant", [
        {"type": "thinking", "thinking": "a tiny square", "signature": "sig"},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "file x.png"}},
        {"type": "text", "text": "A single pixel."}]))
    p = opened()
    p.row_view("rich").open_button.click()
    text = p.detail.markdown
    assert f"(data:image/png;base64,{PNG})" in text  # from the store's asset, inline
    assert "<details><summary>Thinking</summary>" in text and "a tiny square" in text
    assert "<details><summary>Tool call <code>Bash</code> file x.png</summary>" in text
    assert '"command": "file x.png"' in text and "A single pixel." in text


def test_compacted_messages_are_greyed_in_a_closed_fold(
        manager: SessionManager, opened: Callable[..., SessionPanel]) -> None:
    messages = [Message("user", "q1"), Message("assistant", "a1"),
                Message("user", "q2"), Message("assistant", "a2"),
                Message("user", "summarise", ids=summary_ids()),
                Message("assistant", "the summary", ids=summary_ids(through=3)),
                Message("user", "q3"), Message("assistant", "a3")]
    manager.import_session(Session(id="long", messages=messages))
    p = opened()
    p.row_view("long").open_button.click()
    fold = next(c for c in p.detail.transcript.children if "cm-compacted" in c._dom_classes)
    assert fold.selected_index is None  # collapsed
    assert fold.get_title(0).startswith("4 compacted messages")
    inside = [t.turn.seqs for t in fold.children[0].children]
    assert inside == [range(0, 2), range(2, 4)]
    shown = [t.turn.seqs for t in p.detail.transcript.children if hasattr(t, "turn")]
    assert shown == [range(4, 6), range(6, 8)]  # the summary and what followed, not greyed


def test_empty_state_keeps_the_header_and_status_clears_while_browsing(
        manager: SessionManager, filled: Fill, opened: Callable[..., SessionPanel]) -> None:
    p = opened()
    assert p.empty.layout.display is None and "No sessions yet" in p.empty.value
    filled(manager)
    p.reload()
    assert p.empty.layout.display == "none"
    p.refresh_button.click()
    assert "Re-read the store: 4 sessions." in p.status.value
    p.filter_text.value = "no-such-session"
    assert p.rows == [] and p.status.value == ""  # the old message is gone
    assert p.empty.layout.display is None and "No sessions match" in p.empty.value
    assert p._grid.layout.grid_template_columns.startswith("80px 60px")  # header stays put
    assert "of 4 sessions" in p.page_label.value
    p.filter_text.value = "s-old"
    p.row_view("s-old").open_button.click()
    assert "2 turns · 4 messages" in p.detail.markdown


def test_a_replaced_panel_keeps_one_line_and_frees_its_widgets(
        manager: SessionManager, filled: Fill, ws: Workspace) -> None:
    filled(manager)
    before = len(live_widgets)
    old = panel(workspace=ws)
    old.row_view("s-old").open_button.click()
    old.search.query.value = "answer"
    old.close()
    assert old.comm is not None  # still displayable after a reload
    assert [c._dom_classes for c in old.children] == [("cm-closed",)]
    assert "closed" in old.children[0].value
    assert len(live_widgets) == before + 5  # the panel and its note, with layouts and style
    old.dispose()
    assert len(live_widgets) == before


def test_the_panel_package_never_imports_the_magics_and_stays_callable() -> None:
    import subprocess
    import sys

    code = ("import sys, claude_magic.panel, claude_magic\n"
            "assert callable(claude_magic.panel), 'claude_magic.panel() must work'\n"
            "from claude_magic import panel\n"
            "assert callable(panel)\n"
            "print(sorted(m for m in sys.modules if m.startswith('claude_magic.magics')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"

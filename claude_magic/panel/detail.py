"""The session panel's detail view: metadata, the transcript turn by turn, and actions."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..errors import ClaudeMagicError
from ..export import FORMATS, export_session, plural, session_header_markdown
from .transcript import TurnView, turn_markdown, turn_views

if TYPE_CHECKING:
    from ..session import Session
    from .browser import SessionPanel

MAX_TRANSCRIPT_MESSAGES = 200


def _button(text: str, cls: str, **kw: Any) -> w.Button:
    widget = w.Button(description=text, **kw)
    widget.add_class(cls)
    return widget


def _markdown(text: str, cls: str) -> w.Output:
    """An output area showing ``text`` as Markdown (rendered by JupyterLab)."""
    out = w.Output(layout=w.Layout(flex="none"))
    out.outputs = ({"output_type": "display_data", "metadata": {},
                    "data": {"text/markdown": text, "text/plain": text}},)
    out.add_class(cls)
    return out


def close_all(widgets: Any) -> None:
    """Close widgets and everything inside them, their layout and style models too."""
    stack = list(widgets)
    while stack:
        widget = stack.pop()
        stack.extend(getattr(widget, "children", ()))
        stack.extend(x for x in (getattr(widget, "layout", None), getattr(widget, "style", None))
                     if isinstance(x, w.Widget) and x.comm is not None)
        widget.close()


class TurnBox(w.VBox):
    """One turn of the transcript, with *branch here* under its answer."""

    def __init__(self, panel: SessionPanel, session_id: str, turn: TurnView, hit: bool) -> None:
        self.turn = turn
        self.markdown = turn_markdown(turn)
        self.branch_button = _button("branch here", "cm-branch-here", icon="code-fork",
                                     disabled=turn.branch_at is None,
                                     tooltip="a new session with the conversation up to "
                                     "this answer; switch to it",
                                     layout=w.Layout(width="auto", align_self="flex-start"))
        self.branch_button.on_click(
            lambda _: panel.run(lambda: panel.branch(session_id, turn.branch_at)))
        super().__init__([_markdown(self.markdown, "cm-turn-text"), self.branch_button],
                         layout=w.Layout(flex="none"))
        self.add_class("cm-turn")
        if hit:
            self.add_class("cm-hit")


class DetailView(w.VBox):
    """One opened session: header, turns, and switch / branch / rename / delete / export.

    Delete asks first: ``delete_button`` shows ``confirm_button`` and ``cancel_button``.
    ``turns``: the :class:`TurnBox` of each shown turn; ``markdown``: everything shown, as text.
    """

    def __init__(self, panel: SessionPanel) -> None:
        self.panel = panel
        self.session_id: str | None = None
        self.turns: list[TurnBox] = []
        self._notes: list[str] = []  # the header and the "not shown" line, as Markdown
        self.title = w.HTML()
        self.title.add_class("cm-detail-title")
        self._build_actions()
        self.transcript = w.VBox(layout=w.Layout(max_height="520px", overflow="hidden auto",
                                                 border="1px solid var(--jp-border-color2)",
                                                 padding="4px 12px"))
        self.transcript.add_class("cm-transcript")
        super().__init__([
            self.title,
            w.HBox([self.switch_button, self.fork_button, self.new_name, self.rename_button,
                    self.delete_button, self.close_button], layout=w.Layout(flex_flow="wrap")),
            w.HBox([self.export_format, self.export_path, self.export_button],
                   layout=w.Layout(flex_flow="wrap")),
            self.confirm_box, self.transcript,
        ], layout=w.Layout(display="none", margin="8px 0 0 0"))
        self.add_class("cm-detail")

    def _build_actions(self) -> None:
        panel = self.panel
        self.switch_button = _button("switch", "cm-detail-switch", icon="check")
        self.fork_button = _button("branch", "cm-detail-fork", icon="code-fork",
                                   tooltip="copy the whole session (named as typed, or "
                                   "<id>-branch) and switch to the copy")
        self.new_name = w.Text(placeholder="new id (rename / branch)",
                               layout=w.Layout(width="200px"))
        self.new_name.add_class("cm-new-name")
        self.rename_button = _button("rename", "cm-rename", icon="pencil",
                                     tooltip="rename this session to the new id")
        self.delete_button = _button("delete", "cm-detail-delete", icon="trash")
        self.close_button = _button("close", "cm-detail-close", icon="times")
        self.export_format = w.Dropdown(options=[f for f in FORMATS if f != "df"], value="ipynb",
                                        description="export", layout=w.Layout(width="160px"))
        self.export_format.add_class("cm-export-format")
        self.export_path = w.Text(placeholder="file or directory (default: <id>.<format>)",
                                  layout=w.Layout(width="280px"))
        self.export_path.add_class("cm-export-path")
        self.export_button = _button("export", "cm-export", icon="download")
        self.question = w.HTML()
        self.confirm_button = _button("delete for good", "cm-confirm-delete",
                                      button_style="danger")
        self.cancel_button = _button("cancel", "cm-cancel-delete")
        self.confirm_box = w.HBox([self.question, self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        self.confirm_box.add_class("cm-confirm")
        self.switch_button.on_click(lambda _: panel.switch(self.session_id))
        self.fork_button.on_click(lambda _: panel.run(
            lambda: panel.branch(self._session_id(), None, self.new_name.value.strip())))
        self.rename_button.on_click(lambda _: panel.run(
            lambda: panel.rename(self._session_id(), self.new_name.value.strip())))
        self.delete_button.on_click(lambda _: panel.run(self.ask_delete))
        self.confirm_button.on_click(lambda _: panel.run(self.confirm_delete))
        self.cancel_button.on_click(lambda _: panel.run(self.cancel_delete))
        self.export_button.on_click(lambda _: panel.run(self.export))
        self.close_button.on_click(lambda _: panel.run(self.hide))

    @property
    def visible(self) -> bool:
        return self.layout.display != "none"

    @property
    def markdown(self) -> str:
        """The header and every shown turn, as Markdown."""
        if not self.transcript.children:
            return ""
        return "\n\n---\n\n".join([*self._notes, *(t.markdown for t in self.turns)])

    def _session_id(self) -> str:
        if self.session_id is None:
            raise ClaudeMagicError("no session is open; click open on a row first")
        return self.session_id

    def show(self, session_id: str, at: int | None = None) -> str:
        """Open ``session_id``: its header and turns; ``at``: start at the turn holding
        message ``at`` (marked), else show the last turns."""
        session = self._load(session_id)
        self.session_id = str(session.id)
        turns = turn_views(session.messages)
        first = _first_turn(turns, at)
        hidden = sum(len(t.messages) for t in turns[:first])
        self._render(session, turns[first:], hidden, at)
        self.title.value = (f"<span class='cm-title'>Session {html.escape(self.session_id)}"
                            "</span>")
        self.confirm_box.layout.display = "none"
        self.refresh_buttons()
        self.layout.display = None
        self.panel.mark_opened()
        if at is not None:
            return f"Opened session {self.session_id} at message {at}."
        return f"Opened session {self.session_id}."

    def _load(self, session_id: str) -> Session:
        """The session with its images from the store (described if the store lost them)."""
        from ..storage._assets import portable

        session = self.panel.manager.resume(session_id)
        try:
            return portable(self.panel.manager.storage, session)
        except ClaudeMagicError:
            return session

    def _render(self, session: Session, turns: list[TurnView], hidden: int,
                at: int | None) -> None:
        old = self.transcript.children
        self.turns = [TurnBox(self.panel, str(session.id), t,
                              at is not None and at in t.seqs) for t in turns]
        self._notes = [session_header_markdown(session, level=3)]
        if hidden:
            self._notes.append(f"*{plural(hidden, 'earlier message')} not shown; "
                               "export the session to read them all.*")
        children: list[Any] = [_markdown(text, "cm-note-md") for text in self._notes]
        compacted = [t for t in self.turns if t.turn.compacted]
        if compacted:
            fold = w.Accordion(children=[w.VBox(compacted)], selected_index=None)
            count = sum(len(t.turn.messages) for t in compacted)
            fold.set_title(0, f"{plural(count, 'compacted message')} (a summary replaces them "
                           "in requests)")
            fold.add_class("cm-compacted")
            children.append(fold)
        children += [t for t in self.turns if not t.turn.compacted]
        if not session.messages:
            children.append(_markdown("*No messages yet.*", "cm-empty-md"))
        self.transcript.children = children
        close_all(old)

    def hide(self) -> str:
        self.session_id = None
        self.confirm_box.layout.display = "none"
        old, self.transcript.children, self.turns = self.transcript.children, (), []
        self._notes = []
        close_all(old)
        self.layout.display = "none"
        self.panel.mark_opened()
        return "Closed the session view."

    def refresh_buttons(self) -> None:
        current = self.session_id is not None and self.session_id == self.panel.workspace.current
        self.switch_button.disabled = current
        self.switch_button.description = "current" if current else "switch"

    def follow(self, changed: set[str | None]) -> None:
        """Re-render after changes to the open session; close it if it is gone."""
        if self.session_id is None or not (None in changed or self.session_id in changed):
            return
        if self.panel.manager.exists(self.session_id):
            self.show(self.session_id)
        else:
            self.hide()

    def ask_delete(self) -> str:
        session_id = self._session_id()
        count = len(self.panel.manager.resume(session_id).messages)
        self.question.value = (f"Delete session <b>{html.escape(session_id)}</b> and its "
                               f"{plural(count, 'message')}? This cannot be undone.")
        self.confirm_box.layout.display = None
        return f"Confirm to delete session {session_id}."

    def cancel_delete(self) -> str:
        self.confirm_box.layout.display = "none"
        return "Nothing deleted."

    def confirm_delete(self) -> str:
        session_id = self._session_id()
        self.confirm_box.layout.display = "none"
        workspace = self.panel.workspace
        if not self.panel.manager.delete(session_id):
            self.hide()
            return f"Session {session_id} was already gone."
        self.hide()
        if workspace.current == session_id:
            workspace.current = None
            return f"Deleted session {session_id}; there is no current session now."
        return f"Deleted session {session_id}."

    def export(self) -> str:
        session_id = self._session_id()
        fmt = self.export_format.value
        given = self.export_path.value.strip()
        target = Path(given).expanduser() if given else (self.panel.export_dir or Path.cwd())
        path = export_session(self.panel.manager, session_id, fmt, target)
        return f"Exported session {session_id} to {path}."


def _first_turn(turns: list[TurnView], at: int | None) -> int:
    """The first turn to show: the one holding message ``at``, else as many of the last
    turns as fit in :data:`MAX_TRANSCRIPT_MESSAGES` messages (at least one)."""
    if at is not None:
        for index, turn in enumerate(turns):
            if at in turn.seqs:
                return index
    first, count = len(turns), 0
    while first > 0 and count + len(turns[first - 1].messages) <= MAX_TRANSCRIPT_MESSAGES:
        first -= 1
        count += len(turns[first].messages)
    return min(first, max(len(turns) - 1, 0))

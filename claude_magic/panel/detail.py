"""The session panel's detail view: metadata, the transcript as Markdown, and actions."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..errors import ClaudeMagicError
from ..export import FORMATS, export_session, message_markdown, session_header_markdown

if TYPE_CHECKING:
    from .browser import SessionPanel

MAX_TRANSCRIPT_MESSAGES = 200


class DetailView(w.VBox):
    """One opened session: header, transcript, and switch / fork / delete / export buttons.

    Delete asks first: ``delete_button`` shows ``confirm_button`` and ``cancel_button``.
    """

    def __init__(self, panel: SessionPanel) -> None:
        self.panel = panel
        self.session_id: str | None = None

        def button(text: str, cls: str, **kw: Any) -> w.Button:
            widget = w.Button(description=text, **kw)
            widget.add_class(cls)
            return widget

        self.title = w.HTML()
        self.title.add_class("cm-detail-title")
        self.switch_button = button("switch", "cm-detail-switch", icon="check")
        self.fork_button = button("fork", "cm-detail-fork", icon="code-fork",
                                  tooltip="copy this session (prompt, metadata, messages)")
        self.delete_button = button("delete", "cm-detail-delete", icon="trash")
        self.close_button = button("close", "cm-detail-close", icon="times")
        self.export_format = w.Dropdown(options=[f for f in FORMATS if f != "df"], value="ipynb",
                                        description="export", layout=w.Layout(width="160px"))
        self.export_format.add_class("cm-export-format")
        self.export_path = w.Text(placeholder="file or directory (default: <id>.<format>)",
                                  layout=w.Layout(width="280px"))
        self.export_path.add_class("cm-export-path")
        self.export_button = button("export", "cm-export", icon="download")
        self.question = w.HTML()
        self.confirm_button = button("delete for good", "cm-confirm-delete",
                                     button_style="danger")
        self.cancel_button = button("cancel", "cm-cancel-delete")
        self.confirm_box = w.HBox([self.question, self.confirm_button, self.cancel_button],
                                  layout=w.Layout(display="none"))
        self.confirm_box.add_class("cm-confirm")
        self.transcript = w.Output(layout=w.Layout(max_height="480px", overflow="hidden auto",
                                                   border="1px solid var(--jp-border-color2)",
                                                   padding="4px 12px"))
        self.transcript.add_class("cm-transcript")
        super().__init__([
            self.title,
            w.HBox([self.switch_button, self.fork_button, self.delete_button, self.close_button]),
            w.HBox([self.export_format, self.export_path, self.export_button]),
            self.confirm_box, self.transcript,
        ], layout=w.Layout(display="none", margin="8px 0 0 0"))
        self.add_class("cm-detail")
        self.switch_button.on_click(lambda _: self.panel.switch(self.session_id))
        self.fork_button.on_click(lambda _: self.panel.run(self.fork))
        self.delete_button.on_click(lambda _: self.panel.run(self.ask_delete))
        self.confirm_button.on_click(lambda _: self.panel.run(self.confirm_delete))
        self.cancel_button.on_click(lambda _: self.panel.run(self.cancel_delete))
        self.export_button.on_click(lambda _: self.panel.run(self.export))
        self.close_button.on_click(lambda _: self.hide())

    @property
    def visible(self) -> bool:
        return self.layout.display != "none"

    def _session_id(self) -> str:
        if self.session_id is None:
            raise ClaudeMagicError("no session is open; click open on a row first")
        return self.session_id

    def show(self, session_id: str) -> str:
        """Open ``session_id``: render its header and transcript."""
        session = self.panel.manager.resume(session_id)
        self.session_id = str(session.id)
        messages = session.messages[-MAX_TRANSCRIPT_MESSAGES:]
        parts = [session_header_markdown(session, level=3)]
        if len(messages) < len(session.messages):
            parts.append(f"*Showing the last {len(messages)} of {len(session.messages)} "
                         "messages; export the session to read them all.*")
        parts += [message_markdown(m) for m in messages] or ["*No messages yet.*"]
        text = "\n\n---\n\n".join(parts)
        self.transcript.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"text/markdown": text, "text/plain": text}},)
        self.title.value = (f"<span class='cm-title'>Session {html.escape(self.session_id)}"
                            "</span>")
        self.confirm_box.layout.display = "none"
        self.refresh_buttons()
        self.layout.display = None
        return f"Opened session {self.session_id}."

    def hide(self) -> None:
        self.session_id = None
        self.confirm_box.layout.display = "none"
        self.transcript.outputs = ()
        self.layout.display = "none"

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

    def fork(self) -> str:
        source = self._session_id()
        fork = self.panel.manager.fork(source)
        return f"Forked session {source} into {fork.id}."

    def ask_delete(self) -> str:
        session_id = self._session_id()
        count = len(self.panel.manager.resume(session_id).messages)
        self.question.value = (f"Delete session <b>{html.escape(session_id)}</b> and its "
                               f"{count} messages? This cannot be undone.")
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

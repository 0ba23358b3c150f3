"""The session browser: an ipywidgets panel over a :class:`SessionManager` (no front-end build).

``claude_magic.panel()`` or ``%claude_session panel``. Rows come from one ``summaries()`` call;
filtering, sorting and paging work on that list (:mod:`claude_magic.panel.rows`), and only the
visible page has widgets (a pool, reused page after page). Changes made through the manager
arrive through its listener; on a team store (PostgreSQL) so do other kernels' changes, within
a second; elsewhere *refresh* re-reads the store for changes made by other processes. A team
store adds ``owner`` / ``shared`` columns and an all / mine / team filter.
"""

from __future__ import annotations

import asyncio
import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..errors import ClaudeMagicError
from ..export import plural
from ..manager import SessionManager
from ..workspace import Workspace, shell_workspace
from .detail import close_all
from .rows import BASE_COLUMNS, SessionRows, owner_text
from .search import SearchBox
from .widgets import CSS, PanelControls, RowView, classed

if TYPE_CHECKING:
    from ..session import Session
    from .detail import DetailView

_FULL_RELOAD_AFTER = 50  # pending events beyond which one summaries() call is cheaper


class SessionPanel(PanelControls, w.VBox):
    """A table of sessions with filters, sorting, pages, a detail view and actions.

    Test-friendly API: ``rows`` (the visible page as dicts), ``filter_text``, ``meta_filter``,
    ``scope`` (all / mine / team: shown on a team store),
    ``sort_by``, ``sort_desc``, ``page_size``, ``prev_button``/``next_button``, ``page``,
    ``row_view(id)`` (its ``switch_button``/``open_button``), ``detail``, ``status``,
    ``search`` (a :class:`SearchBox` over transcripts), ``empty`` (shown when no row matches).
    """

    def __init__(self, manager: SessionManager | None = None,
                 workspace: Workspace | None = None, *, page_size: int = 25,
                 export_dir: str | Path | None = None,
                 new_session: Callable[[str | None], Session] | None = None) -> None:
        if workspace is None:
            workspace = Workspace(manager=manager or SessionManager())
        elif manager is not None and workspace.manager is not manager:
            workspace.manager = manager
        self.workspace = workspace
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.new_session = new_session or (lambda sid: self.manager.create_session(sid).build())
        self.table = SessionRows()
        self.page = 0
        self._manager: SessionManager | None = None
        self._pool: list[RowView] = []
        self._shown = 0
        self._detail: DetailView | None = None
        self._pending: set[str | None] = set()
        self._event_lock = threading.Lock()
        self._scheduled = self._closed = self._quiet = False
        try:  # in a kernel: apply listener events when the running cell is done
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._build_controls(page_size)
        self.search = SearchBox(self)
        wrap = w.Layout(flex_flow="wrap")
        super().__init__(children=[
            w.HTML(CSS, layout=w.Layout(margin="0", height="0")), self._title, self.search,
            w.HBox([self.filter_text, self.meta_filter, self.scope], layout=wrap),
            w.HBox([self.sort_by, self.sort_desc, self.page_size, self.new_id, self.new_button,
                    self.refresh_button], layout=w.Layout(flex_flow="wrap")),
            self.status, self._grid, self.empty,
            w.HBox([self.prev_button, self.page_label, self.next_button]),
        ], layout=w.Layout(width="100%", max_width="100%", min_width="0"))
        self.add_class("cm-panel")
        self.workspace.observe(self._on_current, "current")
        self.workspace.observe(self._on_manager, "manager")
        self._attach(self.workspace.manager)
        self.reload()

    def __repr__(self) -> str:
        where = self.workspace.manager.location if self.workspace.manager else "no store"
        return f"<SessionPanel {where}: {plural(self.total, 'session')}, {self.matching} shown>"

    # --- data and rendering ---------------------------------------------------------------

    @property
    def manager(self) -> SessionManager:
        if self.workspace.manager is None:
            raise ClaudeMagicError("the panel's workspace has no session store (it was closed)")
        return self.workspace.manager

    @property
    def detail(self) -> DetailView:
        """The detail view (metadata, transcript, actions), built when first needed."""
        if self._detail is None:
            from .detail import DetailView

            self._detail = DetailView(self)
            self.children = (*self.children, self._detail)
        return self._detail

    def _attach(self, manager: SessionManager | None) -> None:
        if self._manager is not None:
            self._manager.remove_listener(self._on_event)
        self._manager = manager
        if manager is not None:
            manager.add_listener(self._on_event)

    def reload(self) -> None:
        """Re-read every session header from the store (one ``summaries()`` call)."""
        manager = self.workspace.manager
        owners = manager is not None and manager.has_owners
        self.table.load(manager.summaries() if manager is not None else [],
                        manager.sharing() if owners else None)
        self.scope.layout.display = None if owners else "none"
        where = manager.location if manager is not None else "no store"
        self._title.value = (f"Claude sessions <span class='cm-muted'>· {html.escape(where)}"
                             "</span>")
        self._changed_rows()

    def _changed_rows(self) -> None:
        """After new rows: refresh the sort options, then filter, sort and show the page."""
        options = [(label, key) for key, label, _, _ in BASE_COLUMNS]
        options += [(f"meta.{k}", f"meta.{k}") for k in self.table.all_meta_keys]
        if list(self.sort_by.options) != options:
            current = self.sort_by.value
            self._quiet = True  # options reset the value; sort once, below
            try:
                self.sort_by.options = options
                self.sort_by.value = current if current in dict(options).values() else "updated"
            finally:
                self._quiet = False
        self.select(keep_page=True)

    def select(self, keep_page: bool = False) -> None:
        """Apply the filters and the sort order, then show the first (or same) page."""
        desc = self.sort_desc.value
        self.sort_desc.description = "descending" if desc else "ascending"
        self.sort_desc.icon = "arrow-down" if desc else "arrow-up"
        self.table.select(self.filter_text.value, self.meta_filter.value, self.sort_by.value,
                          desc, self.scope.value)
        self.go(self.page if keep_page else 0)

    def go(self, page: int) -> None:
        """Show page ``page`` (0-based, clamped to the pages there are)."""
        self.page, pages, visible = self.table.page(page, self.page_size.value)
        while len(self._pool) < len(visible):
            self._pool.append(RowView(self))
        current, width = self.workspace.current, f"{self.table.width()}px"
        opened = self._opened()
        for view, s in zip(self._pool, visible, strict=False):
            view.show(s, self.table.render(s), s.id == current, s.id == opened)
            if view.cells.layout.width != width:  # wide tables scroll sideways
                view.cells.layout.width = width
        if self._header.layout.width != width:
            self._header.layout.width = width
        self._shown = len(visible)
        children = self._head + tuple(x for v in self._pool[:len(visible)] for x in v.widgets)
        if self._grid.children != children:
            self._grid.children = children
        self._header.value = self.table.render(None, self.sort_by.value, self.sort_desc.value)
        total = len(self.table.summaries)
        self._show_empty(total)
        self.page_label.value = (f"page {self.page + 1} of {pages} · "
                                 f"{len(self.table.view):,} of {plural(total, 'session')}")
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1

    def _show_empty(self, total: int) -> None:
        """The empty state under the header: no sessions yet, or none matching."""
        if self._shown:
            self.empty.layout.display = "none"
            return
        self.empty.value = ("No sessions match the filters; clear them to see all "
                            f"{plural(total, 'session')}." if total else
                            "No sessions yet: create one with <b>new</b> or run a %%claude cell.")
        self.empty.layout.display = None

    def _opened(self) -> str | None:
        return self._detail.session_id if self._detail is not None else None

    def mark_opened(self) -> None:
        """Highlight the row of the session the detail view shows."""
        current, opened = self.workspace.current, self._opened()
        for view in self._pool[:self._shown]:
            view.mark(view.session_id == current, view.session_id == opened)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The visible page: one dict per row (id, times, counts, model, metadata, current;
        on a team store also owner and shared)."""
        _, _, visible = self.table.page(self.page, self.page_size.value)
        current, sharing = self.workspace.current, self.table.sharing
        return [{"id": str(s.id), "created_at": s.created_at, "updated_at": s.updated_at,
                 "turns": s.stats.turns, "messages": s.stats.message_count,
                 "input_tokens": s.stats.input_tokens, "output_tokens": s.stats.output_tokens,
                 "cost_usd": s.stats.cost_usd, "model": s.stats.last_model,
                 "metadata": dict(s.metadata), "current": s.id == current,
                 **({} if sharing is None else {
                     "owner": owner_text(sharing.get(s.id), "owner"),
                     "shared": owner_text(sharing.get(s.id), "shared")})} for s in visible]

    @property
    def matching(self) -> int:
        """How many sessions pass the filters."""
        return len(self.table.view)

    @property
    def total(self) -> int:
        """How many sessions the store holds (as of the last read)."""
        return len(self.table.summaries)

    def row_view(self, session_id: str) -> RowView:
        """The visible row showing ``session_id`` (KeyError if it is not on this page)."""
        for view in self._pool[:self._shown]:
            if view.session_id == session_id:
                return view
        raise KeyError(f"session {session_id!r} is not on the visible page")

    # --- actions --------------------------------------------------------------------------

    def say(self, text: str, error: bool = False) -> None:
        """Show one line in the status bar (empty ``text``: clear it)."""
        cls = "cm-error" if error else "cm-ok"
        self.status.value = f"<span class='{cls}'>{html.escape(text)}</span>" if text else ""

    def quietly(self, action: Callable[[], object]) -> None:
        """Browsing (filter, sort, page): the last action's message no longer applies."""
        self.say("")
        action()

    def refresh(self) -> str:
        self.reload()
        return f"Re-read the store: {plural(self.total, 'session')}."

    def run(self, action: Callable[[], str]) -> None:
        """Run an action; its result or its error (one line) goes to the status bar."""
        try:
            self.say(action())
        except Exception as exc:  # a click has no caller to raise to: one line, always
            self.say(f"{type(exc).__name__}: {exc}".replace("\n", " "), error=True)

    def switch(self, session_id: str | None) -> None:
        """Make ``session_id`` the workspace's (and so the magics') current session."""
        def act() -> str:
            if session_id is None or not self.manager.exists(session_id):
                raise ClaudeMagicError(f"session {session_id!r} no longer exists; refresh")
            self.workspace.current = session_id
            return f"Switched to session {session_id}."
        self.run(act)

    def open_session(self, session_id: str | None, at: int | None = None) -> None:
        """Show the session's metadata and transcript in the detail view (``at``: starting
        at the turn holding message ``at``)."""
        if session_id is not None:
            self.run(lambda: self.detail.show(session_id, at))

    def _free_id(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``... whichever no session has."""
        name, n = base, 1
        while self.manager.exists(name):
            n += 1
            name = f"{base}-{n}"
        return name

    def branch(self, source: str, at: int | None = None, new_id: str = "") -> str:
        """Copy ``source`` (up to answer ``at``, or all of it) as ``new_id`` (default
        ``<source>-branch``), switch to the copy and open it."""
        target = new_id or self._free_id(f"{source}-branch")
        if at is None:
            fork = self.manager.fork(source, target)
        else:
            fork = self.manager.fork(source, target, at=at)
        self.workspace.current = str(fork.id)
        if self._detail is not None:
            self._detail.new_name.value = ""
        self.reload()
        self.detail.show(str(fork.id))
        where = f" at turn {at}" if at is not None else ""
        return f"Branched session {source}{where} into {fork.id} and switched to it."

    def rename(self, old: str, new: str) -> str:
        """Rename ``old`` to ``new``; the current session follows; the view opens ``new``."""
        if not new:
            raise ClaudeMagicError("type the new id in the box next to rename first")
        self.manager.rename(old, new)
        if self.workspace.current == old:
            self.workspace.current = new
        self.detail.new_name.value = ""
        self.reload()
        self.detail.show(new)
        return f"Renamed session {old} to {new}."

    def new(self, session_id: str | None = None) -> None:
        """Create a session (a fresh id unless given) and switch to it."""
        def act() -> str:
            session = self.new_session(session_id)
            self.workspace.current = session.id
            self.new_id.value = ""
            return f"Created session {session.id} and switched to it."
        self.run(act)

    # --- following changes ----------------------------------------------------------------

    def _on_current(self, change: dict[str, Any]) -> None:
        self.mark_opened()
        if self._detail is not None:
            self._detail.refresh_buttons()

    def _on_manager(self, change: dict[str, Any]) -> None:
        self._attach(change["new"])
        if self._detail is not None:
            self._detail.hide()
        self.reload()

    def _on_event(self, event: str, session_id: str | None) -> None:
        """Manager listener: collect events; in a kernel, apply them once the cell is done."""
        if self._closed:
            return
        with self._event_lock:
            self._pending.add(None if event == "cleared" else session_id)
            if self._scheduled:
                return
            loop = self._loop
            self._scheduled = loop is not None and loop.is_running() and not loop.is_closed()
        if self._scheduled:
            self._loop.call_soon_threadsafe(self.flush)  # type: ignore[union-attr]
        else:
            self.flush()

    def flush(self) -> None:
        """Apply pending change events (a full re-read when there are many)."""
        with self._event_lock:
            pending, self._pending, self._scheduled = self._pending, set(), False
        if self._closed or not pending:
            return
        manager = self.workspace.manager
        if manager is None or None in pending or len(pending) > _FULL_RELOAD_AFTER:
            self.reload()
        else:
            self.table.update(manager, [p for p in pending if p is not None])
            self._changed_rows()
        if self._detail is not None:
            self._detail.follow(pending)

    def close(self) -> None:
        """Stop following the store and close every widget inside the panel.

        The panel itself stays, showing one line: a notebook that still displays it (a panel
        replaced by a newer one) shows that line after a reload, not "model not found"."""
        if self._closed:
            return
        self._closed = True
        self._attach(None)
        self.workspace.unobserve(self._on_current, "current")
        self.workspace.unobserve(self._on_manager, "manager")
        inner: list[Any] = [*self.children, *self._head, *self.search.widgets,
                            *(x for v in self._pool for x in v.widgets)]
        self.children = (self._closed_note(),)
        close_all(inner)

    @staticmethod
    def _closed_note() -> w.HTML:
        return classed(w.HTML("<span class='cm-muted'>This session browser is closed (a newer "
                              "one replaced it). Open one with "
                              "<code>%claude_session panel</code>.</span>"), "cm-closed")

    def dispose(self) -> None:
        """Close the panel and its last widgets too (nothing left in the kernel)."""
        self.close()
        close_all([*self.children, self.layout])
        super().close()


def panel(manager: SessionManager | None = None, workspace: Workspace | None = None, *,
          page_size: int = 25, export_dir: str | Path | None = None,
          new_session: Callable[[str | None], Session] | None = None) -> SessionPanel:
    """Open the session browser.

    Without arguments it uses the ``%load_ext claude_magic`` workspace of the running shell
    (so *switch* changes the magics' current session), else the directory store
    ``.claude_sessions``. ``export_dir``: where *export* writes (default: the working dir).
    ``new_session(id_or_None) -> Session`` creates sessions for *new* (default: a bare one).
    """
    if manager is None and workspace is None:
        workspace = shell_workspace()
        if workspace is None:
            manager = SessionManager(".claude_sessions")
    return SessionPanel(manager, workspace, page_size=page_size, export_dir=export_dir,
                        new_session=new_session)

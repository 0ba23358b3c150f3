"""The session browser's widgets: its stylesheet, the controls above the table (wired to the
panel's actions) and one visible row's widgets, reused page after page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .rows import BASE_COLUMNS, SCOPES

if TYPE_CHECKING:
    from ..session import SessionSummary
    from .browser import SessionPanel

PAGE_SIZES = (10, 25, 50, 100)

CSS = """<style>
.cm-panel {color: var(--jp-ui-font-color1); font-family: var(--jp-ui-font-family);}
.cm-panel .cm-cells {display: flex; white-space: nowrap; font-size: var(--jp-ui-font-size1);}
.cm-panel .cm-c {flex: none; overflow: hidden; text-overflow: ellipsis; padding: 0 6px;
  box-sizing: border-box; color: var(--jp-ui-font-color1);}
.cm-panel .cm-n {text-align: right; font-variant-numeric: tabular-nums;}
.cm-panel .cm-head .cm-c {font-weight: 600; color: var(--jp-ui-font-color2);}
.cm-panel .cm-head {border-bottom: 1px solid var(--jp-border-color1);}
.cm-panel .cm-cells-row {border-bottom: 1px solid var(--jp-border-color3);}
.cm-panel .cm-current .cm-cells {background: var(--jp-layout-color2);}
.cm-panel .cm-current .cm-c-id {font-weight: 600;}
.cm-panel .cm-muted {color: var(--jp-ui-font-color3);}
.cm-panel .cm-error {color: var(--jp-error-color1);}
.cm-panel .cm-ok {color: var(--jp-success-color1);}
.cm-panel .cm-title {font-size: var(--jp-ui-font-size2); font-weight: 600;}
.cm-panel .cm-opened .cm-cells {box-shadow: inset 3px 0 0 var(--jp-brand-color1);
  background: var(--jp-layout-color3);}
.cm-panel .cm-empty {padding: 12px 6px; color: var(--jp-ui-font-color2); font-style: italic;}
.cm-panel .cm-turn {border-bottom: 1px solid var(--jp-border-color3); padding-bottom: 4px;}
.cm-panel .cm-hit {box-shadow: inset 3px 0 0 var(--jp-brand-color1);
  background: var(--jp-layout-color2);}
.cm-panel .cm-compacted {opacity: .6;}
.cm-panel .cm-transcript > *, .cm-panel .cm-turn > *, .cm-panel .cm-hits > * {flex: none;}
.cm-panel .cm-transcript img {max-width: 100%; height: auto;}
.cm-panel .cm-hits {max-height: 260px; overflow: hidden auto;}
.cm-panel .cm-hit-text {font-size: var(--jp-ui-font-size1); white-space: normal;}
.cm-panel .cm-hit-text mark {background: var(--jp-warn-color3); color: inherit;}
</style>"""


class RowView:
    """The widgets of one visible row, reused for whichever session the page shows there."""

    def __init__(self, panel: SessionPanel) -> None:
        self.session_id: str | None = None
        self.switch_button = w.Button(description="switch", layout=w.Layout(width="76px"))
        self.open_button = w.Button(description="open", layout=w.Layout(width="56px"))
        self.cells = w.HTML()
        self.switch_button.add_class("cm-switch")
        self.open_button.add_class("cm-open")
        self.cells.add_class("cm-row")
        self.switch_button.on_click(lambda _: panel.switch(self.session_id))
        self.open_button.on_click(lambda _: panel.open_session(self.session_id))
        self.widgets = (self.switch_button, self.open_button, self.cells)

    def show(self, summary: SessionSummary, html_cells: str, current: bool,
             opened: bool) -> None:
        self.session_id = str(summary.id)
        self.switch_button.tooltip = f"switch to {summary.id}"
        self.open_button.tooltip = f"open {summary.id}"
        self.cells.value = html_cells
        self.mark(current, opened)

    def mark(self, current: bool, opened: bool = False) -> None:
        self.switch_button.description = "current" if current else "switch"
        self.switch_button.disabled = current
        for cls, on in (("cm-current", current), ("cm-opened", opened)):
            if on:
                self.cells.add_class(cls)
            else:
                self.cells.remove_class(cls)


def classed(widget: Any, cls: str) -> Any:
    """``widget`` with the CSS class ``cls`` (for the stylesheet and the browser tests)."""
    widget.add_class(cls)
    return widget


class PanelControls:
    """The controls above the session table (filters, sorting, paging, new, refresh, status)
    and its grid, mixed into :class:`~claude_magic.panel.browser.SessionPanel`, whose actions
    (``select``, ``go``, ``new``, ``run``, ``refresh``, ``quietly``) they call."""

    def _build_controls(self, page_size: int) -> None:
        """Create the controls and the grid, and wire them to the panel's actions."""
        self._title = classed(w.HTML(), "cm-title")
        self.filter_text = classed(w.Text(
            placeholder="filter: words in id, prompt, model, metadata",
            layout=w.Layout(width="340px")), "cm-filter")
        self.meta_filter = classed(w.Text(
            placeholder="metadata: key=value, key2=value2", layout=w.Layout(width="300px")),
            "cm-meta-filter")
        self.scope = classed(w.ToggleButtons(
            options=SCOPES, value="all",
            tooltips=["every session you can see", "your own", "shared with the team"],
            style={"button_width": "56px"}, layout=w.Layout(display="none")), "cm-scope")
        self.sort_by = classed(w.Dropdown(
            description="sort", options=[(label, key) for key, label, _, _ in BASE_COLUMNS],
            value="updated", layout=w.Layout(width="220px")), "cm-sort")
        self.sort_desc = classed(w.ToggleButton(
            value=True, description="descending", icon="arrow-down",
            layout=w.Layout(width="130px")), "cm-sort-desc")
        self.page_size = classed(w.Dropdown(
            description="rows", options=sorted({*PAGE_SIZES, page_size}), value=page_size,
            layout=w.Layout(width="140px")), "cm-page-size")
        self.new_id = classed(w.Text(placeholder="new id (optional)",
                                      layout=w.Layout(width="160px")), "cm-new-id")
        self.new_button = classed(w.Button(
            description="new", icon="plus", tooltip="create a session and switch to it",
            layout=w.Layout(width="80px")),
            "cm-new")
        self.refresh_button = classed(w.Button(
            description="refresh", icon="refresh",
            tooltip="re-read the store (changes made by other processes)",
            layout=w.Layout(width="100px")), "cm-refresh")
        self.status = classed(w.HTML(), "cm-status")
        self._header = classed(w.HTML(), "cm-header")
        self._head = (w.HTML(), w.HTML(), self._header)  # the header row: above the buttons
        # fixed button columns: the header stays put when no row matches; wide tables scroll
        self._grid = classed(w.GridBox(layout=w.Layout(
            grid_template_columns="80px 60px max-content", overflow="auto hidden",
            width="100%", max_width="100%")), "cm-table")
        self.empty = classed(w.HTML(layout=w.Layout(display="none")), "cm-empty")
        self.prev_button = classed(w.Button(description="previous", icon="chevron-left"),
                                    "cm-prev")
        self.next_button = classed(w.Button(description="next", icon="chevron-right"),
                                    "cm-next")
        self.page_label = classed(w.HTML(), "cm-page")
        for widget in (self.filter_text, self.meta_filter, self.scope, self.sort_by,
                       self.sort_desc):
            widget.observe(lambda _: self._quiet or self.quietly(self.select), "value")
        self.page_size.observe(lambda _: self.quietly(lambda: self.go(0)), "value")
        self.prev_button.on_click(lambda _: self.quietly(lambda: self.go(self.page - 1)))
        self.next_button.on_click(lambda _: self.quietly(lambda: self.go(self.page + 1)))
        self.new_button.on_click(lambda _: self.new(self.new_id.value.strip() or None))
        self.refresh_button.on_click(lambda _: self.run(self.refresh))

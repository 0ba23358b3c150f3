"""The panel's search box: full-text search over transcripts (``manager.search``), hits with
their snippets; *open* shows the session at the hit's turn."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..export import plural

if TYPE_CHECKING:
    from .browser import SessionPanel

MAX_HITS = 50
_MARK = re.compile(r"«(.*?)»", re.S)


def snippet_html(snippet: str) -> str:
    """A snippet with its ``«match»`` marks as ``<mark>``, everything else escaped."""
    return _MARK.sub(r"<mark>\1</mark>", html.escape(snippet, quote=False).replace("\n", " "))


def hit_html(hit: Any) -> str:
    """One hit's line: session id, where (message seq and role, or the header), snippet."""
    where = f"message {hit.seq} · {hit.role}" if hit.seq is not None else hit.role
    return (f"<span class='cm-hit-text'><b>{html.escape(str(hit.session_id))}</b> "
            f"<span class='cm-muted'>{html.escape(where)}</span> — "
            f"{snippet_html(hit.snippet)}</span>")


class HitRow(w.HBox):
    """One hit: an *open* button and its line (the widgets are reused for later searches)."""

    def __init__(self, panel: SessionPanel) -> None:
        self.hit: Any = None
        self.open_button = w.Button(description="open", layout=w.Layout(width="56px",
                                                                        flex="none"))
        self.open_button.add_class("cm-hit-open")
        self.text = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.open_button.on_click(lambda _: self.hit is not None and panel.open_session(
            str(self.hit.session_id), self.hit.seq))
        super().__init__([self.open_button, self.text], layout=w.Layout(width="100%"))
        self.add_class("cm-hit-row")

    def show(self, hit: Any) -> None:
        self.hit = hit
        self.open_button.tooltip = f"open {hit.session_id}"
        self.text.value = hit_html(hit)


class SearchBox(w.VBox):
    """A text box (Enter searches), the hits' count, and the hits: ``query``, ``search_button``,
    ``clear_button``, ``hits`` (the rows shown), ``summary``."""

    def __init__(self, panel: SessionPanel) -> None:
        self.panel = panel
        self._pool: list[HitRow] = []
        self.hits: list[HitRow] = []
        self.query = w.Text(placeholder='search transcripts: words, "a phrase", prefix*',
                            continuous_update=False, layout=w.Layout(width="420px"))
        self.query.add_class("cm-search")
        self.search_button = w.Button(description="search", icon="search")
        self.search_button.add_class("cm-search-button")
        self.clear_button = w.Button(description="clear", icon="times",
                                     layout=w.Layout(display="none"))
        self.clear_button.add_class("cm-search-clear")
        self.summary = w.HTML()
        self.summary.add_class("cm-search-summary")
        self.results = w.VBox()
        self.results.add_class("cm-hits")
        self.query.observe(lambda _: panel.run(self.find), "value")
        self.search_button.on_click(lambda _: panel.run(self.find))
        self.clear_button.on_click(lambda _: self.clear())
        super().__init__([w.HBox([self.query, self.search_button, self.clear_button],
                                 layout=w.Layout(flex_flow="wrap")),
                          self.summary, self.results])
        self.add_class("cm-search-box")

    def find(self) -> str:
        """Search for the box's text; show the hits, best first."""
        text = self.query.value.strip()
        if not text:
            self.clear()
            return ""
        found = self.panel.manager.search(text, limit=MAX_HITS)
        while len(self._pool) < len(found):
            self._pool.append(HitRow(self.panel))
        for row, hit in zip(self._pool, found, strict=False):
            row.show(hit)
        self.hits = self._pool[:len(found)]
        self.results.children = tuple(self.hits)
        self.clear_button.layout.display = None
        sessions = len({str(h.session_id) for h in found})
        self.summary.value = (
            f"<span class='cm-muted'>{plural(len(found), 'hit')} in "
            f"{plural(sessions, 'session')} for <b>{html.escape(text)}</b>"
            f"{' (the best ' + str(MAX_HITS) + ')' if len(found) >= MAX_HITS else ''}</span>"
            if found else f"<span class='cm-empty'>Nothing matches <b>{html.escape(text)}</b>."
            "</span>")
        return f"Found {plural(len(found), 'hit')} for {text}."

    def clear(self) -> None:
        self.hits = []
        self.results.children = ()
        self.summary.value = ""
        self.clear_button.layout.display = "none"
        if self.query.value:
            self.query.value = ""  # observed: find() with no text clears again, harmlessly

    @property
    def widgets(self) -> list[Any]:
        """Every widget of the search box (for closing)."""
        return [self, *self._pool]

"""The session panel's table model: rows from ``summaries()``, filtered, sorted, paged, as HTML.

Pure Python (no ipywidgets), so it is cheap to test and to time.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..checks import json_text
from ..costs import cost_text
from ..errors import ClaudeMagicError
from ..manager import SessionManager
from ..session import SessionSummary

if TYPE_CHECKING:
    from ..storage.postgres import Sharing

MAX_META_COLUMNS = 8
META_WIDTH = 120
#: (key, label, width in px, numeric); ``meta.<key>`` columns follow.
BASE_COLUMNS: tuple[tuple[str, str, int, bool], ...] = (
    ("id", "id", 240, False), ("created", "created", 142, False),
    ("updated", "updated", 142, False), ("turns", "turns", 52, True),
    ("tokens", "tokens in / out", 124, True), ("cost", "cost", 76, True),
    ("model", "model", 150, False),
)
Column = tuple[str, str, int, bool]
#: On a team store, after ``id``: who owns the session and whether the team sees it.
OWNER_COLUMNS: tuple[Column, ...] = (("owner", "owner", 120, False),
                                     ("shared", "shared", 64, False))
SCOPES = ("all", "mine", "team")


def owner_text(sharing: Sharing | None, key: str) -> str:
    """The ``owner`` / ``shared`` cell of a session (empty when not known yet)."""
    if sharing is None:
        return ""
    if key == "owner":
        return sharing.owner + (" (you)" if sharing.mine else "")
    return "team" if sharing.visibility == "team" else "private"


def in_scope(sharing: Sharing | None, scope: str) -> bool:
    """Whether a session belongs to ``mine`` / ``team`` / ``all``."""
    if scope == "all":
        return True
    if sharing is None:
        return False
    return sharing.mine if scope == "mine" else sharing.visibility == "team"


def parse_meta_filter(text: str) -> list[tuple[str, str | None]]:
    """``"project=web, reviewed"`` -> ``[("project", "web"), ("reviewed", None)]`` (has key)."""
    wanted = []
    for part in text.split(","):
        if part.strip():
            key, sep, value = part.partition("=")
            wanted.append((key.strip(), value.strip() if sep else None))
    return wanted


def sort_key(column: str) -> Callable[[SessionSummary], Any]:
    """A key for ``column``; returns ``None`` for a missing metadata value (sorted last)."""
    simple: dict[str, Callable[[SessionSummary], Any]] = {
        "id": lambda s: s.id, "created": lambda s: s.created_at,
        "updated": lambda s: (s.updated_at, s.id), "turns": lambda s: s.stats.turns,
        "tokens": lambda s: s.stats.input_tokens + s.stats.output_tokens,
        "cost": lambda s: s.stats.cost_usd, "model": lambda s: s.stats.last_model,
    }
    if column in simple:
        return simple[column]
    key = column.removeprefix("meta.")

    def meta(s: SessionSummary) -> Any:  # numbers before text; mixed types never compared
        value = s.metadata.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, value, "")
        return (1, 0, json_text(value))
    return meta


def cell_text(s: SessionSummary, key: str) -> str:
    """What the table shows for ``key`` (a base column or ``meta.<key>``)."""
    st = s.stats
    if key == "id":
        return str(s.id)
    if key in ("created", "updated"):
        when = s.created_at if key == "created" else s.updated_at
        return when.astimezone().strftime("%Y-%m-%d %H:%M")
    if key == "turns":
        return str(st.turns)
    if key == "tokens":
        return f"{st.input_tokens:,} / {st.output_tokens:,}"
    if key == "cost":
        return cost_text(st)
    if key == "model":
        return st.last_model or "—"
    value = s.metadata.get(key.removeprefix("meta."))
    return "" if value is None else json_text(value)


class SessionRows:
    """Every session's summary, and the filtered and sorted view the table pages through."""

    def __init__(self) -> None:
        self.summaries: list[SessionSummary] = []  # newest first, like the store
        self.view: list[SessionSummary] = []
        self.meta_keys: list[str] = []  # shown as columns (the most common ones)
        self.all_meta_keys: list[str] = []  # offered for sorting
        self.sharing: Mapping[str, Sharing] | None = None  # a team store's owners
        self._hay: dict[str, str] = {}

    def load(self, summaries: list[SessionSummary],
             sharing: Mapping[str, Sharing] | None = None) -> None:
        self.summaries = summaries
        self.sharing = sharing
        # the search text of every row, built once here so that filtering is only lookups
        self._hay = {s.id: self._search_text(s) for s in summaries}
        self._count_meta()

    def update(self, manager: SessionManager, session_ids: Iterable[str]) -> None:
        """Re-read a few sessions (after listener events): replaced, added or removed."""
        by_id = {str(s.id): s for s in self.summaries}
        for session_id in session_ids:
            self._hay.pop(session_id, None)
            try:
                summary = manager.summary(session_id)  # the header only, not the messages
            except ClaudeMagicError:  # damaged or invalid: not shown, like summaries()
                summary = None
            if summary is None:
                by_id.pop(session_id, None)
            else:
                by_id[session_id] = summary
        self.summaries = sorted(by_id.values(), key=lambda s: (s.updated_at, s.id), reverse=True)
        if self.sharing is not None:  # one query for every owner (shared or not, by anyone)
            self.sharing = manager.sharing()
        self._count_meta()

    def _count_meta(self) -> None:
        counts = Counter(key for s in self.summaries for key in s.metadata)
        ranked = sorted(counts, key=lambda k: (-counts[k], k))
        self.meta_keys = sorted(ranked[:MAX_META_COLUMNS])
        self.all_meta_keys = sorted(ranked)

    def _haystack(self, s: SessionSummary) -> str:
        hay = self._hay.get(s.id)
        if hay is None:
            hay = self._hay[s.id] = self._search_text(s)
        return hay

    @staticmethod
    def _search_text(s: SessionSummary) -> str:
        """What the text filter searches: id, prompt, model and ``key=value`` metadata."""
        meta = " ".join(f"{k}={json_text(v)}" for k, v in s.metadata.items())
        return f"{s.id} {s.system_prompt or ''} {s.stats.last_model or ''} {meta}".lower()

    def select(self, text: str, meta_filter: str, column: str, descending: bool,
               scope: str = "all") -> None:
        """Filter (``mine`` / ``team`` on a team store; words in id, prompt, model or
        metadata; ``key=value``) then sort."""
        rows = self.summaries
        if scope != "all" and self.sharing is not None:
            sharing = self.sharing
            rows = [s for s in rows if in_scope(sharing.get(s.id), scope)]
        wanted = parse_meta_filter(meta_filter)
        if wanted:
            rows = [s for s in rows if all(
                k in s.metadata and (v is None or json_text(s.metadata[k]) == v)
                for k, v in wanted)]
        words = text.lower().split()
        if words:
            rows = [s for s in rows if all(word in self._haystack(s) for word in words)]
        if column == "updated" and descending:  # the stored order already
            self.view = list(rows)
            return
        key = sort_key(column)
        present = [s for s in rows if key(s) is not None]
        present.sort(key=key, reverse=descending)
        self.view = present + [s for s in rows if key(s) is None]  # missing values last

    def page(self, number: int, size: int) -> tuple[int, int, list[SessionSummary]]:
        """(page number clamped, page count, that page's rows)."""
        pages = max(1, -(-len(self.view) // size))
        number = min(max(number, 0), pages - 1)
        return number, pages, self.view[number * size:(number + 1) * size]

    def columns(self) -> list[Column]:
        owners = OWNER_COLUMNS if self.sharing is not None else ()
        return [BASE_COLUMNS[0], *owners, *BASE_COLUMNS[1:],
                *((f"meta.{k}", k, META_WIDTH, False) for k in self.meta_keys)]

    def width(self) -> int:
        """The table's width in px (the sum of the column widths)."""
        return sum(width for _, _, width, _ in self.columns())

    def render(self, s: SessionSummary | None, column: str = "", descending: bool = True) -> str:
        """One row's cells as HTML (``s=None``: the header, with the sort arrow)."""
        cells = []
        for key, label, width, numeric in self.columns():
            if s is None:
                arrow = (" ↓" if descending else " ↑") if key == column else ""
                text, title = label + arrow, label
            elif key in ("owner", "shared"):
                text = title = owner_text((self.sharing or {}).get(s.id), key)
            else:
                text = title = cell_text(s, key)
            cls = html.escape(f"cm-c cm-c-{key.replace('.', '-')}" + (" cm-n" if numeric else ""))
            cells.append(f"<span class='{cls}' style='width:{width}px' "
                         f"title='{html.escape(title)}'>{html.escape(text)}</span>")
        kind = "cm-head" if s is None else "cm-cells-row"
        return f"<div class='cm-cells {kind}'>{''.join(cells)}</div>"

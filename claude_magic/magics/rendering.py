"""What the magics display: a live answer updated in place, session tables and views.

Display objects carry both a rich form (Markdown / HTML) and a readable ``repr``, so they
look right in JupyterLab, in a terminal IPython and in a saved notebook.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any

from IPython.display import display

from ..checks import json_text
from ..session import SessionSummary

MetadataDict = dict[str, Any]


class MarkdownText:
    """Markdown for front ends that render it, the same text for those that don't."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


class PlainText(MarkdownText):
    """Text shown as-is (``-f text``)."""

    def _repr_markdown_(self) -> None:  # type: ignore[override]
        return None


class LiveAnswer:
    """One display that grows as chunks arrive, updated in place at most every ``interval``."""

    def __init__(self, fmt: str, *, interval: float = 0.05, placeholder: str = "…") -> None:
        self._wrap = PlainText if fmt == "text" else MarkdownText
        self._interval = interval
        self._text = ""
        self._last_update = 0.0
        self._handle = display(self._wrap(placeholder), display_id=True)

    @property
    def text(self) -> str:
        return self._text

    def add(self, chunk: str) -> None:
        self._text += chunk
        now = time.monotonic()
        if now - self._last_update >= self._interval:
            self._last_update = now
            self._update(self._text)

    def finish(self, text: str | None = None, metadata: MetadataDict | None = None) -> None:
        """Show the final text (defaults to what arrived) with the turn's metadata."""
        self._update(self._text if text is None else text, metadata)

    def _update(self, text: str, metadata: MetadataDict | None = None) -> None:
        if self._handle is not None:
            self._handle.update(self._wrap(text), metadata=metadata or {})


def show_answer(text: str, fmt: str, metadata: MetadataDict) -> None:
    """Display a finished answer once (``--no-stream``)."""
    display(PlainText(text) if fmt == "text" else MarkdownText(text), metadata=metadata)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class SessionTable:
    """The ``%claude_session list`` table: HTML in notebooks, aligned text elsewhere."""

    columns = ("", "id", "updated", "turns", "tokens", "cost $", "model", "metadata")

    def __init__(self, summaries: Sequence[SessionSummary], current: str | None,
                 location: str) -> None:
        self.location = location
        self.rows = [
            (
                "*" if s.id == current else "",
                str(s.id),
                s.updated_at.strftime("%Y-%m-%d %H:%M"),
                str(s.stats.turns),
                str(s.stats.input_tokens + s.stats.output_tokens),
                f"{s.stats.cost_usd:.4f}" if s.stats.cost_usd else "",
                s.settings.get("model") or s.stats.last_model or "",
                ", ".join(f"{k}={_short(json_text(v), 20)}" for k, v in s.metadata.items()),
            )
            for s in summaries
        ]
        self.has_current = any(row[0] for row in self.rows)

    def _caption(self) -> str:
        count = len(self.rows)
        noun = "session" if count == 1 else "sessions"
        return f"{count} {noun} in {self.location}" + (" (* = current)" if self.has_current else "")

    def __repr__(self) -> str:
        if not self.rows:
            return self._caption()
        table = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.columns))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                 for row in table]
        return "\n".join([self._caption(), *lines])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        return (f'<table class="claude-magic-sessions"><caption>{html.escape(self._caption())}'
                f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

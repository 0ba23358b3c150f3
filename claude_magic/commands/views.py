"""Results that both front ends show: a rich form (HTML / Markdown) for notebooks, a readable
``repr`` for terminals and saved outputs, and ``to_json()`` for ``claude-magic --json``.

Importing this module imports no IPython: the terminal command uses it too.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..checks import json_text
from ..costs import cost_text, known_cost
from ..session import SessionSummary

if TYPE_CHECKING:
    from ..session import Session
    from ..storage.postgres import Sharing


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


class SessionView(MarkdownText):
    """``show``: the transcript. In a notebook, Markdown with images inline (from the store's
    assets, when ``storage`` is given), thinking and tool calls collapsed and compacted
    messages greyed in a fold; in a terminal (``text``, ``repr``) plain text with one
    bracketed line per image or collapsed part; as JSON, the session of its JSON export."""

    def __init__(self, session: Session, storage: Any = None) -> None:
        from ..export.transcripts import session_to_text

        super().__init__(session_to_text(session))
        self.session = session
        self.storage = storage

    def _repr_markdown_(self) -> str:
        from ..export.transcripts import data_uri, session_to_markdown
        from ..storage._assets import portable

        session = self.session if self.storage is None else portable(self.storage, self.session)
        return session_to_markdown(session, data_uri)

    def to_json(self) -> Any:
        from ..export import session_to_json

        return json.loads(session_to_json(self.session))["session"]


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_json(summary: SessionSummary, current: str | None,
                 sharing: Sharing | None = None) -> dict[str, Any]:
    """One session of ``list --json``: ids, times, totals and metadata as JSON values (and
    ``owner`` / ``visibility`` on a team store)."""
    stats = summary.stats
    owners = {} if sharing is None else {"owner": sharing.owner,
                                         "visibility": sharing.visibility}
    return {
        "id": str(summary.id), "current": summary.id == current, **owners,
        "created_at": summary.created_at.isoformat(), "updated_at": summary.updated_at.isoformat(),
        "turns": stats.turns, "messages": stats.message_count,
        "input_tokens": stats.input_tokens, "output_tokens": stats.output_tokens,
        "cost_usd": known_cost(stats), "model": summary.settings.get("model") or stats.last_model,
        "metadata": summary.metadata,
    }


class SessionTable:
    """The ``list`` table: HTML in notebooks, aligned text elsewhere, a list in JSON.

    With ``sharing`` (a team store: each session's owner and visibility), ``owner`` and
    ``shared`` columns follow the id."""

    base_columns = ("", "id", "updated", "turns", "tokens", "cost", "model", "metadata")

    def __init__(self, summaries: Sequence[SessionSummary], current: str | None,
                 location: str, sharing: Mapping[str, Sharing] | None = None) -> None:
        self.location = location
        self.summaries = list(summaries)
        self.current = current
        self.sharing = sharing
        self.columns = self.base_columns
        if sharing is not None:
            self.columns = ("", "id", "owner", "shared", *self.base_columns[2:])
        self.rows = [
            (
                "*" if s.id == current else "",
                str(s.id),
                *self._owner_cells(s.id),
                s.updated_at.strftime("%Y-%m-%d %H:%M"),
                str(s.stats.turns),
                str(s.stats.input_tokens + s.stats.output_tokens),
                cost_text(s.stats),
                s.settings.get("model") or s.stats.last_model or "",
                ", ".join(f"{k}={_short(json_text(v), 20)}" for k, v in s.metadata.items()),
            )
            for s in summaries
        ]
        self.has_current = any(row[0] for row in self.rows)

    def _owner_cells(self, session_id: str) -> tuple[str, ...]:
        if self.sharing is None:
            return ()
        found = self.sharing.get(session_id)
        if found is None:  # created between the two reads
            return ("", "")
        return (found.owner + (" (you)" if found.mine else ""),
                "team" if found.visibility == "team" else "")

    def to_json(self) -> list[dict[str, Any]]:
        sharing = self.sharing or {}
        return [summary_json(s, self.current, sharing.get(s.id)) for s in self.summaries]

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

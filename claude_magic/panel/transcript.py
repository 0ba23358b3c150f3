"""A session's transcript for the panel: turns as Markdown, images inline, details collapsed.

Pure Python (no ipywidgets). Thinking, tool calls and tool results are ``<details>`` blocks;
compacted messages (replaced by a summary in requests) are grouped apart so the detail view can
grey and collapse them; images come back from the store's assets as ``data:`` URIs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..blocks import main_argument
from ..compaction import compacted_seqs
from ..export import message_markdown
from ..message import Message


@dataclass(frozen=True, slots=True)
class TurnView:
    """One turn as the detail view shows it: a question and what followed it.

    ``branch_at`` is the ``seq`` of the turn's last complete answer (what ``fork(at=)``
    takes), None when the turn has none; ``compacted``: every message of it is compacted.
    """

    messages: tuple[Message, ...]
    branch_at: int | None
    compacted: bool

    @property
    def seqs(self) -> range:
        return range(self.messages[0].seq, self.messages[-1].seq + 1)


def turn_views(messages: Sequence[Message]) -> list[TurnView]:
    """The messages cut into turns: a new turn at each user message."""
    compacted = compacted_seqs(messages)
    groups: list[list[Message]] = []
    for message in messages:
        if message.role == "user" or not groups:
            groups.append([])
        groups[-1].append(message)
    views = []
    for group in groups:
        answers = [m for m in group if m.role == "assistant" and m.status == "ok"]
        views.append(TurnView(tuple(group), answers[-1].seq if answers else None,
                              all(m.seq in compacted for m in group)))
    return views


def data_uri(block: dict[str, Any]) -> str | None:
    """A base64 image block's ``data:`` URI (an ``attach`` for :func:`message_markdown`)."""
    source = block.get("source", {})
    if source.get("type") != "base64":
        return None
    return f"data:{source['media_type']};base64,{source['data']}"


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A tool call as a collapsed text block: its name and main argument, the input inside."""
    arguments = json.dumps(block.get("input", {}), ensure_ascii=False, indent=2, default=str)
    argument = _escape(main_argument(block.get("input", {})))
    summary = f"Tool call <code>{_escape(block['name'])}</code> {argument}"
    body = f"```json\n{arguments}\n```"
    text = f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"
    return {"type": "text", "text": text}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_view(message: Message) -> str:
    """One message as Markdown: byline, status, text, images inline, details collapsed."""
    if isinstance(message.content, list) and any(b.get("type") == "tool_use"
                                                 for b in message.content):
        content = [_tool_call(b) if b.get("type") == "tool_use" else b for b in message.content]
        message = replace(message, content=content)
    return message_markdown(message, data_uri)


def turn_markdown(turn: TurnView) -> str:
    """A turn's messages as one Markdown document."""
    return "\n\n".join(message_view(m) for m in turn.messages)

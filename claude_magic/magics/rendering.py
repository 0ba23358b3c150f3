"""What the magics display: a live answer updated in place (session tables and views are in
:mod:`claude_magic.commands.views`, shared with the terminal).

Display objects carry both a rich form (Markdown / HTML) and a readable ``repr``, so they
look right in JupyterLab, in a terminal IPython and in a saved notebook.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from IPython.display import display

from ..commands.views import MarkdownText, PlainText, SessionTable

__all__ = ["LiveAnswer", "MarkdownText", "PlainText", "SessionTable", "TerminalAnswer",
           "in_terminal", "show_answer"]

MetadataDict = dict[str, Any]


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


class TerminalAnswer:
    """The live answer in terminal IPython: each piece is written once, where the last one
    ended (a terminal cannot redraw an output as a notebook does)."""

    def __init__(self) -> None:
        self._text = ""

    @property
    def text(self) -> str:
        return self._text

    def add(self, chunk: str) -> None:
        self._text += chunk
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def finish(self, text: str | None = None, metadata: MetadataDict | None = None) -> None:
        """End the line; only what the final text adds to the streamed one is written."""
        final = self._text if text is None else text
        extra = final[len(self._text):] if final.startswith(self._text) else ""
        sys.stdout.write(extra + ("" if (self._text + extra).endswith("\n") else "\n"))
        sys.stdout.flush()


def in_terminal(shell: Any) -> bool:
    """Whether ``shell`` is terminal IPython (no front end that can update an output)."""
    terminal = sys.modules.get("IPython.terminal.interactiveshell")
    return terminal is not None and isinstance(shell, terminal.TerminalInteractiveShell)


def show_answer(text: str, fmt: str, metadata: MetadataDict) -> None:
    """Display a finished answer once (``--no-stream``)."""
    display(PlainText(text) if fmt == "text" else MarkdownText(text), metadata=metadata)

"""``--error``: the notebook's last exception, as plain text, with the cell that raised it."""

from __future__ import annotations

import re
import sys
from typing import Any

from ..errors import MagicUsageError

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CELL_FILE = re.compile(r"<ipython-input-(\d+)-|/ipykernel_\d+/\d+\.py|Cell In\[(\d+)\]")
EXPLAIN = "Explain this error and show how to fix the cell."
MAX_TRACEBACK = 20_000


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def last_exception(shell: Any) -> BaseException:
    """The last exception the notebook showed; one-line error when there was none."""
    value = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if value is None:
        raise MagicUsageError("--error: no cell has raised an exception yet in this kernel; "
                              "run the failing cell first")
    return value


def traceback_text(shell: Any, exc: BaseException) -> str:
    """The traceback as IPython showed it, ANSI codes removed (plain text when IPython
    cannot format it)."""
    import traceback

    try:
        lines = shell.InteractiveTB.structured_traceback(type(exc), exc, exc.__traceback__)
        text = strip_ansi("\n".join(lines))
    except Exception:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > MAX_TRACEBACK:
        text = "[... earlier frames left out]\n" + text[-MAX_TRACEBACK:]
    return text


def failing_cell(shell: Any, exc: BaseException) -> str | None:
    """The source of the cell that raised ``exc``: the innermost frame from a cell's code."""
    tb = exc.__traceback__
    cell = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        source = _cell_source(shell, filename)
        if source is not None:
            cell = source
        tb = tb.tb_next
    return cell


def _cell_source(shell: Any, filename: str) -> str | None:
    compiler = getattr(shell, "compile", None)
    cache = getattr(compiler, "_filename_map", None) or {}
    if filename in cache:  # IPython >= 8: the cell's execution count
        history = shell.user_ns.get("In") or []
        number = cache[filename]
        if isinstance(number, int) and 0 <= number < len(history):
            return history[number]
    import linecache

    if _CELL_FILE.search(filename) or filename.startswith("<ipython-input"):
        lines = linecache.cache.get(filename)
        if lines:
            return "".join(lines[2])
    return None


def error_block(shell: Any) -> dict[str, Any]:
    """A text block with the last exception's traceback and the failing cell's source."""
    exc = last_exception(shell)
    parts = [f"The last cell raised {type(exc).__name__}. Traceback:\n\n```\n"
             f"{traceback_text(shell, exc).strip()}\n```"]
    cell = failing_cell(shell, exc)
    if cell:
        parts.append(f"The cell that raised it:\n\n```python\n{cell.rstrip()}\n```")
    return {"type": "text", "text": "\n\n".join(parts)}

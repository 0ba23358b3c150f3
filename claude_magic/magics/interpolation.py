"""Safe ``{name}`` interpolation of a prompt from the notebook's namespace.

Replaced, when they resolve: ``{name}`` and ``{name.attr.attr}`` for variables the user
defined, ``{In[3]}`` and ``{Out[3]}``. Left exactly as typed:

- everything inside fenced code blocks (lines between ```` ``` ```` fences), so pasted code
  with f-strings, dicts, sets or format strings is sent unchanged;
- references to names that do not exist, to names starting with ``_`` (IPython's ``_``,
  ``_i``, ``_3``...), or to IPython's own names (``exit``, ``get_ipython``...);
- a reference in double braces (``{{name}}``) or touching another brace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from typing import Any

from ..commands.arguments import require_utf8, text_of

_REFERENCE = re.compile(
    r"(?<!\{)\{"
    r"(?:(?P<history>In|Out)\[(?P<index>-?\d+)\]"
    r"|(?P<name>[A-Za-z_]\w*)(?P<attrs>(?:\.[A-Za-z_]\w*)*))"
    r"\}(?!\})"
)
# a fenced code block: an opening fence line, anything, the closing fence (or the end)
_FENCED = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_MISSING = object()


def _resolve(match: re.Match[str], namespace: Mapping[str, Any], hidden: Container[str]) -> Any:
    if match.group("history"):
        history = namespace.get(match.group("history"))
        if history is None:
            return _MISSING
        try:
            return history[int(match.group("index"))]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    name = match.group("name")
    if name.startswith("_") or name in hidden:
        return _MISSING
    value = namespace.get(name, _MISSING)
    for attr in filter(None, match.group("attrs").split(".")):
        if value is _MISSING:
            break
        try:
            value = getattr(value, attr)
        except Exception:  # a property that raises is "not there", like a missing name
            return _MISSING
    return value


def interpolate(text: str, namespace: Mapping[str, Any], hidden: Container[str] = ()) -> str:
    """Replace the references in ``text`` (outside code fences) that resolve in
    ``namespace`` with ``str(value)``; names in ``hidden`` are never replaced. A value whose
    text fails or holds a lone surrogate is a one-line ``MagicUsageError`` naming it."""

    def replace(match: re.Match[str]) -> str:
        value = _resolve(match, namespace, hidden)
        if value is _MISSING:
            return match.group(0)
        return require_utf8(text_of(value, match.group(0)), match.group(0))

    return _substitute(text, replace)


def interpolate_rich(text: str, namespace: Mapping[str, Any], hidden: Container[str] = (),
                     rows: int = 10, chars: int = 20_000) -> tuple[str, list[dict[str, Any]]]:
    """:func:`interpolate` for notebook context: DataFrames and Series become their shape,
    dtypes and first ``rows`` rows; figures and objects with ``_repr_png_`` / ``_repr_jpeg_``
    become image blocks (returned, numbered in the text); other values are cut to ``chars``.
    Returns the text and the image blocks."""
    from ..context.references import render_value

    images: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        value = _resolve(match, namespace, hidden)
        if value is _MISSING:
            return match.group(0)
        rendered = render_value(value, match.group(0), rows, chars)
        if rendered.block is None:
            return rendered.text
        images.append(rendered.block)
        return f"[image {len(images)}: {match.group(0).strip('{}')}]"

    return _substitute(text, replace), images


def _substitute(text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """``text`` with each reference outside code fences passed through ``replace``."""
    pieces, start = [], 0
    for fence in _FENCED.finditer(text):
        pieces.append(_REFERENCE.sub(replace, text[start:fence.start()]))
        pieces.append(fence.group(0))
        start = fence.end()
    pieces.append(_REFERENCE.sub(replace, text[start:]))
    return "".join(pieces)

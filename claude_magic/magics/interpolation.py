"""Safe ``{name}`` interpolation of a prompt from the notebook's namespace.

Only references to things that exist are replaced: ``{name}``, ``{name.attr.attr}``,
``{In[3]}`` and ``{Out[3]}``. Every other brace stays exactly as typed, so pasted code with
dicts, sets, f-strings or format strings is sent unchanged. A reference wrapped in double
braces (``{{name}}``), or touching another brace, is never replaced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(
    r"(?<!\{)\{"
    r"(?:(?P<history>In|Out)\[(?P<index>-?\d+)\]"
    r"|(?P<name>[A-Za-z_]\w*)(?P<attrs>(?:\.[A-Za-z_]\w*)*))"
    r"\}(?!\})"
)
_MISSING = object()


def _resolve(match: re.Match[str], namespace: Mapping[str, Any]) -> Any:
    if match.group("history"):
        history = namespace.get(match.group("history"))
        if history is None:
            return _MISSING
        try:
            return history[int(match.group("index"))]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    value = namespace.get(match.group("name"), _MISSING)
    for attr in filter(None, match.group("attrs").split(".")):
        if value is _MISSING:
            break
        try:
            value = getattr(value, attr)
        except Exception:  # a property that raises is "not there", like a missing name
            return _MISSING
    return value


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace the references in ``text`` that resolve in ``namespace`` with ``str(value)``."""

    def replace(match: re.Match[str]) -> str:
        value = _resolve(match, namespace)
        return match.group(0) if value is _MISSING else str(value)

    return _REFERENCE.sub(replace, text)


"""Text for PostgreSQL: its ``text`` and ``jsonb`` cannot hold NUL, so NUL is escaped.

A NUL becomes ``U+E000 '0'`` and a literal ``U+E000`` becomes two of them, a reversible
escape that leaves every other string (almost all of them) untouched.
"""

from __future__ import annotations

import json
import re
from typing import Any

ESC = "\ue000"
_DECODE = re.compile("\ue000(.)", re.DOTALL)
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_JSON_DECODE = re.compile("\ue000([\ue0000])")


def enc(text: str | None) -> str | None:
    """``text`` ready for a PostgreSQL text column."""
    if text is None or ("\x00" not in text and ESC not in text):
        return text
    return text.replace(ESC, ESC + ESC).replace("\x00", ESC + "0")


def dec(text: str | None) -> str | None:
    """Reverse :func:`enc`."""
    if text is None or ESC not in text:
        return text
    return _DECODE.sub(lambda m: "\x00" if m.group(1) == "0" else m.group(1), text)


def dumps(value: Any) -> str:
    """Plain JSON data as exact JSON text PostgreSQL's ``jsonb`` accepts (NUL escaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if ESC in text:
        text = text.replace(ESC, ESC + ESC)
    if "\\u0000" in text:
        text = _JSON_NUL.sub(lambda m: m.group(1) + ESC + "0", text)
    return text


def json_text(text: str) -> str:
    """Stored JSON text back to standard JSON (reverses the escape of :func:`dumps`)."""
    if ESC not in text:
        return text
    return _JSON_DECODE.sub(lambda m: "\\u0000" if m.group(1) == "0" else ESC, text)


def loads(text: str) -> Any:
    return json.loads(json_text(text))

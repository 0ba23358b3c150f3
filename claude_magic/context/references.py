"""A notebook value as prompt context: a DataFrame's schema and head, a figure as an image,
anything else as bounded text."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from ..blocks import image_block
from ..commands.arguments import require_utf8, text_of
from .limits import check_image

DEFAULT_ROWS = 10
DEFAULT_CHARS = 20_000
_CELL = 200  # characters of one table cell


@dataclass
class Rendered:
    """What a reference becomes: text for the prompt, and an image block when it is one."""

    text: str
    block: dict[str, Any] | None = None


def render_value(value: Any, reference: str, rows: int = DEFAULT_ROWS,
                 chars: int = DEFAULT_CHARS) -> Rendered:
    """``value`` (referenced as ``reference``, e.g. ``{df}``) for the prompt; errors are
    one-line :class:`~claude_magic.errors.MagicUsageError` naming the reference."""
    name = reference.strip("{}")
    if _is_pandas(value, "DataFrame"):
        return Rendered(cap(dataframe_text(value, name, rows), chars))
    if _is_pandas(value, "Series"):
        return Rendered(cap(series_text(value, name, rows), chars))
    image = image_of(value, reference)
    if image is not None:
        return Rendered(f"[image: {name}]", image)
    return Rendered(cap(require_utf8(text_of(value, reference), reference), chars))


def cap(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters with a visible marker of how much was left out."""
    if len(text) <= chars:
        return text
    return f"{text[:chars]}\n[... truncated {len(text) - chars:,} characters]"


def _is_pandas(value: Any, kind: str) -> bool:
    cls = type(value)
    return any(c.__name__ == kind and c.__module__.startswith("pandas")
               for c in cls.__mro__)


def _cell(value: Any) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= _CELL else text[:_CELL - 1] + "…"


def markdown_table(header: list[str], body: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in body]
    return "\n".join(lines)


def dataframe_text(frame: Any, name: str, rows: int) -> str:
    """Shape, columns with dtypes, and the first ``rows`` rows as a Markdown table (only
    ``head`` is read: a frame of any length costs the same)."""
    count, width = frame.shape
    columns = ", ".join(f"{_cell(c)} ({dtype})" for c, dtype in frame.dtypes.items())
    head = frame.head(rows)
    body = [list(row) for row in head.itertuples(index=True, name=None)]
    shown = min(rows, count)
    return (f"DataFrame `{name}`: {count:,} rows x {width:,} columns\n"
            f"Columns (dtype): {columns}\n"
            f"First {shown} rows:\n\n"
            + markdown_table(["", *map(str, frame.columns)], body))


def series_text(series: Any, name: str, rows: int) -> str:
    head = series.head(rows)
    body = [[index, value] for index, value in head.items()]
    return (f"Series `{name}` ({series.name!s}): {len(series):,} values, dtype "
            f"{series.dtype}\nFirst {min(rows, len(series))} values:\n\n"
            + markdown_table(["", str(series.name or "value")], body))


def image_of(value: Any, name: str) -> dict[str, Any] | None:
    """An image block for a matplotlib figure or an object with ``_repr_png_`` /
    ``_repr_jpeg_``; None for other values."""
    if _is_figure(value):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png")
        data, media = buffer.getvalue(), "image/png"
    else:
        found = _repr_image(value)
        if found is None:
            return None
        data, media = found
    check_image(data, f"the image of {name}")
    return image_block(data, media)


def _is_figure(value: Any) -> bool:
    cls = type(value)
    return any(c.__name__ == "Figure" and c.__module__.startswith("matplotlib")
               for c in cls.__mro__) and hasattr(value, "savefig")


def _repr_image(value: Any) -> tuple[bytes, str] | None:
    for method, media in (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg")):
        represent = getattr(value, method, None)
        if not callable(represent) or isinstance(value, type):
            continue
        data = represent()
        if isinstance(data, tuple):  # (data, metadata)
            data = data[0]
        if isinstance(data, str):
            data = base64.b64decode(data)
        if isinstance(data, (bytes, bytearray)) and data:
            return bytes(data), media
    return None

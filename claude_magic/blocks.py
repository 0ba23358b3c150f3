"""Content blocks of a message, in the Messages API's shapes, checked like every other field.

A message's content is text or a list of blocks: ``text``, ``image``, ``document``,
``thinking`` (and ``redacted_thinking``), ``tool_use``, ``tool_result``. Binary data (an image,
a PDF) travels as a ``base64`` source until a store keeps it once, content-addressed: then the
source is ``{"type": "asset", "sha256": ..., "media_type": ...}`` and the bytes live in the
store's assets (:mod:`claude_magic.storage._assets`). Data only, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .checks import check_json_value
from .errors import InvalidMetadata, ValueOutOfRange

BLOCK_TYPES = ("text", "image", "document", "thinking", "redacted_thinking", "tool_use",
               "tool_result")
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
               "image/webp": "webp"}
DOCUMENT_TYPES = {"application/pdf": "pdf"}
MEDIA_EXTENSIONS = {**IMAGE_TYPES, **DOCUMENT_TYPES}
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 8000
MAX_PDF_BYTES = 32 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# fields each block type must have, and their Python types
_REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "text": (("text", str),),
    "image": (("source", dict),),
    "document": (("source", dict),),
    "thinking": (("thinking", str),),
    "redacted_thinking": (("data", str),),
    "tool_use": (("id", str), ("name", str), ("input", dict)),
    "tool_result": (("tool_use_id", str),),
}


def limit_of(media_type: str) -> int:
    """The largest decoded size the API takes for this media type."""
    return MAX_PDF_BYTES if media_type in DOCUMENT_TYPES else MAX_IMAGE_BYTES


def check_blocks(value: Any, what: str = "message content") -> list[dict[str, Any]]:
    """A checked copy of a list of content blocks; ``TypeError`` / ``ValueError`` (one line)
    naming the first bad block."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be str or a list of content blocks, "
                        f"got {type(value).__name__}")
    try:
        blocks = check_json_value(list(value), what)
    except InvalidMetadata as exc:
        raise ValueError(str(exc)) from None
    for index, block in enumerate(blocks):
        _check_block(block, f"{what}[{index}]")
    return blocks


def _check_block(block: Any, where: str, nested: bool = False) -> None:
    if not isinstance(block, dict):
        raise TypeError(f"{where} must be a content block (a dict), got {type(block).__name__}")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        raise ValueError(f"{where} has type {str(kind)[:40]!r}; use one of "
                         f"{', '.join(BLOCK_TYPES)}")
    for name, expected in _REQUIRED[kind]:
        if not isinstance(block.get(name), expected):
            raise ValueError(f"{where} ({kind}) needs {name!r} of type "
                             f"{getattr(expected, '__name__', 'str')}")
    if kind in ("image", "document"):
        _check_source(block["source"], kind, f"{where}.source")
    elif kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list) and not nested:
            for index, inner in enumerate(content):
                _check_block(inner, f"{where}.content[{index}]", nested=True)
        elif content is not None and not isinstance(content, (str, list)):
            raise ValueError(f"{where} (tool_result) content must be text or blocks")


def _check_source(source: dict[str, Any], kind: str, where: str) -> None:
    """A base64, asset, text (documents) or url source of an image or document block."""
    form, media = source.get("type"), source.get("media_type")
    allowed = IMAGE_TYPES if kind == "image" else DOCUMENT_TYPES
    if form == "url":
        if not isinstance(source.get("url"), str):
            raise ValueError(f"{where} (url) needs 'url'")
        return
    if form == "text" and kind == "document":
        if not isinstance(source.get("data"), str):
            raise ValueError(f"{where} (text) needs 'data'")
        return
    if form not in ("base64", "asset"):
        raise ValueError(f"{where} has type {str(form)[:40]!r}; use base64 or asset")
    if media not in allowed:
        raise ValueError(f"{where} media_type {str(media)[:60]!r} is not one of "
                         f"{', '.join(allowed)}")
    if form == "asset":
        if not isinstance(source.get("sha256"), str) or not _SHA256.fullmatch(source["sha256"]):
            raise ValueError(f"{where} needs 'sha256': 64 lowercase hex digits")
        return
    data = source.get("data")
    if not isinstance(data, str) or len(data) % 4 or not (
            _B64.fullmatch(data[:64]) and _B64.fullmatch(data[-4:])):
        raise ValueError(f"{where} needs 'data': base64 text")
    decoded = len(data) // 4 * 3 - data[-2:].count("=")
    if decoded > limit_of(media):
        raise ValueOutOfRange(f"{where} holds {decoded:,} bytes of {media}; the limit is "
                              f"{limit_of(media) // (1024 * 1024)} MB")


def text_of(blocks: list[dict[str, Any]]) -> str:
    """The text blocks' text, joined by blank lines."""
    return "\n\n".join(b["text"] for b in blocks if b.get("type") == "text" and b["text"])


def binary_sources(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every image / document source of ``blocks``, tool results' included (mutable)."""
    for block in blocks:
        if block.get("type") in ("image", "document"):
            yield block["source"]
        elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            yield from binary_sources(block["content"])


def asset_refs(content: str | list[dict[str, Any]]) -> set[str]:
    """The SHA-256 of every asset a message's content references."""
    if isinstance(content, str):
        return set()
    return {s["sha256"] for s in binary_sources(content) if s.get("type") == "asset"}


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(data: str) -> bytes:
    """Base64 text as bytes; ``ValueError`` if it is not base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the block's data is not valid base64") from None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_block(data: bytes, media_type: str) -> dict[str, Any]:
    """An image block with the bytes as base64."""
    return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                        "data": encode(data)}}


def document_block(data: bytes, title: str | None = None) -> dict[str, Any]:
    """A PDF document block with the bytes as base64 (and an optional title)."""
    block: dict[str, Any] = {"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": encode(data)}}
    if title:
        block["title"] = title
    return block


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP from its header; None if unknown."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def human_size(count: int) -> str:
    """``512 B``, ``23 KB``, ``4.2 MB``."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{round(count / 1024)} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def describe(block: Mapping[str, Any], data: bytes | None = None) -> str:
    """A one-line description: ``[image image/png 640x480, 23 KB]``, ``[document
    application/pdf "report.pdf", 1.2 MB]``, ``[tool_use Bash: ls]``, ``[thinking, 120
    characters]``. ``data`` is the decoded bytes when known."""
    kind = block.get("type")
    if kind in ("image", "document"):
        source = block.get("source") or {}
        media = source.get("media_type", source.get("type", "?"))
        if data is None and source.get("type") == "base64":
            data = decode(source["data"])
        parts = []
        size = image_size(data) if data is not None and kind == "image" else None
        if size:
            parts.append(f"{size[0]}x{size[1]}")
        if data is not None:
            parts.append(human_size(len(data)))
        title = f' "{block["title"]}"' if block.get("title") else ""
        return f"[{kind} {media}{title}{' ' if parts else ''}{', '.join(parts)}]"
    if kind == "tool_use":
        return f"[tool_use {block.get('name')}: {main_argument(block.get('input') or {})}]"
    if kind == "tool_result":
        return f"[tool_result{' error' if block.get('is_error') else ''}]"
    if kind == "thinking":
        return f"[thinking, {len(block.get('thinking') or '')} characters]"
    if kind == "redacted_thinking":
        return "[redacted thinking]"
    return str(block.get("text", ""))


_MAIN_KEYS = ("command", "file_path", "path", "pattern", "url", "query", "description",
              "prompt")


def main_argument(arguments: Mapping[str, Any], limit: int = 80) -> str:
    """The argument of a tool call worth showing on one line (a command, a path, ...)."""
    value = next((arguments[k] for k in _MAIN_KEYS if isinstance(arguments.get(k), str)), None)
    if value is None:
        value = next((v for v in arguments.values() if isinstance(v, str)), "")
    line = " ".join(str(value).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def markdown_of(blocks: list[dict[str, Any]],
                attach: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """Blocks as Markdown: text as is; an image linked where ``attach`` gives it a URL (an
    nbformat attachment, a file beside the export), else described; thinking and tool
    results collapsed; one line per tool call."""
    parts = []
    for block in blocks:
        kind = block["type"]
        url = attach(block) if attach is not None and kind == "image" else None
        if kind == "text":
            parts.append(block["text"])
        elif url:
            parts.append(f"![{describe(block)[1:-1]}]({url})")
        elif kind == "thinking":
            parts.append(_details("Thinking", block["thinking"]))
        elif kind == "tool_result":
            parts.append(_details("Tool result" + (" (error)" if block.get("is_error") else ""),
                                  str(block.get("content") if isinstance(block.get("content"),
                                                                         str) else "")))
        elif kind == "tool_use":
            parts.append(_tool_call(block))
        else:
            parts.append(f"*{describe(block)}*")
    return "\n\n".join(part for part in parts if part)


def _tool_call(block: Mapping[str, Any]) -> str:
    """A tool call collapsed: its name and main argument, the whole input inside."""
    import html
    import json

    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False, indent=2, default=str)
    summary = (f"Tool call <code>{html.escape(str(block.get('name')))}</code> "
               f"{html.escape(main_argument(block.get('input') or {}))}")
    return _details(summary, f"```json\n{arguments}\n```")


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"

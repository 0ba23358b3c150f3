"""``--attach PATH``: a file as content blocks (image, PDF document, or UTF-8 text)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..blocks import MAX_PDF_BYTES, document_block, human_size, image_block
from ..errors import MagicUsageError
from ..storage._jsonio import NotRegularFile, TooLarge, read_file
from .limits import check_image, check_pdf

IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".gif": "image/gif", ".webp": "image/webp"}
MAX_TEXT_BYTES = 1024 * 1024


def attach_file(path: str | os.PathLike[str], base: Path | None = None) -> dict[str, Any]:
    """The block for one attached file (relative paths from ``base``); a one-line
    :class:`MagicUsageError` for a missing, special, oversized or unsupported file."""
    shown = os.fspath(path)
    full = Path(shown).expanduser()
    if base is not None and not full.is_absolute():
        full = base / full
    suffix = full.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        data = _read(full, shown, 5 * 1024 * 1024 + 1)
        check_image(data, f"--attach {shown}")
        return image_block(data, IMAGE_SUFFIXES[suffix])
    if suffix == ".pdf":
        data = _read(full, shown, MAX_PDF_BYTES + 1)
        check_pdf(data, f"--attach {shown}")
        return document_block(data, full.name)
    data = _read(full, shown, MAX_TEXT_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MagicUsageError(f"--attach {shown}: not an image (.png .jpg .jpeg .gif .webp), "
                              "a .pdf, nor UTF-8 text; attach one of those") from None
    return {"type": "text", "text": f"File `{full.name}`:\n\n```\n{text}\n```"}


def _read(path: Path, shown: str, limit: int) -> bytes:
    """The file's bytes: a regular file only (no FIFO can hang the kernel, no link is
    followed at the last step), at most ``limit`` bytes."""
    try:
        return read_file(path, limit=limit)
    except FileNotFoundError:
        raise MagicUsageError(f"--attach {shown}: no such file") from None
    except NotRegularFile as exc:
        raise MagicUsageError(f"--attach {shown}: {exc.strerror}, not a regular file; "
                              "attach a file") from None
    except TooLarge:
        what = "PDFs" if path.suffix.lower() == ".pdf" else (
            "images" if path.suffix.lower() in IMAGE_SUFFIXES else "text files")
        most = human_size(limit if what == "text files" else limit - 1).replace(".0 ", " ")
        raise MagicUsageError(f"--attach {shown}: too large; {what} may be at most {most}"
                              ) from None
    except OSError as exc:
        raise MagicUsageError(f"--attach {shown}: {exc.strerror or exc}") from None

"""The API's limits on images and PDFs, checked before anything is sent or stored."""

from __future__ import annotations

from ..blocks import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, MAX_PDF_BYTES, human_size, image_size
from ..errors import MagicUsageError


def check_image(data: bytes, what: str) -> tuple[int, int] | None:
    """The image's size; a one-line :class:`MagicUsageError` past 5 MB or 8,000 px a side."""
    if len(data) > MAX_IMAGE_BYTES:
        raise MagicUsageError(f"{what} is {human_size(len(data))}; images may be at most 5 MB: "
                              "save it smaller (lower dpi, JPEG) and try again")
    size = image_size(data)
    if size and max(size) > MAX_IMAGE_SIDE:
        raise MagicUsageError(f"{what} is {size[0]}x{size[1]} px; images may be at most "
                              f"{MAX_IMAGE_SIDE:,} px a side: resize it and try again")
    return size


def check_pdf(data: bytes, what: str) -> None:
    """A one-line :class:`MagicUsageError` for a PDF past 32 MB or not a PDF at all."""
    if len(data) > MAX_PDF_BYTES:
        raise MagicUsageError(f"{what} is {human_size(len(data))}; PDFs may be at most 32 MB: "
                              "split it and attach the part you need")
    if not data.startswith(b"%PDF"):
        raise MagicUsageError(f"{what} does not start like a PDF (%PDF); attach a real PDF")

"""Assets: the binary data of messages (images, PDFs), kept once per store by SHA-256.

A message reaching a store with ``base64`` sources is stored with ``asset`` sources instead
(:func:`store_assets`): the bytes are put in the store's assets once, whatever how many
messages, turns or forks use them. :func:`expand` turns the references back into base64 for
a request or an export; :func:`collect` removes the assets no readable session references
(after ``delete``, ``clear``, ``prune``). A store holds assets when it has the methods of
:class:`AssetStore`; other stores keep base64 inline (still correct, only larger).

Collection has a grace period (:data:`GRACE_SECONDS`): an asset stored (or stored again)
less than that long ago is never removed, since another process may have put it for a message
it has not appended yet. ``put_asset`` of an asset already held refreshes its time.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..blocks import (
    MAX_PDF_BYTES,
    MEDIA_EXTENSIONS,
    asset_refs,
    binary_sources,
    decode,
    encode,
    sha256_of,
)
from ..errors import StorageError
from ..message import Message
from ..session import Session
from ._jsonio import read_file, write_atomic

_SHA_ONLY = re.compile(r"[0-9a-f]{64}")
GRACE_SECONDS = 600.0
"""Assets stored less than this long ago (seconds) are kept by :func:`collect`."""


@runtime_checkable
class AssetStore(Protocol):
    """What a store offers for assets; every method is atomic."""

    def put_asset(self, sha256: str, media_type: str, data: bytes) -> None:
        """Keep ``data`` under its SHA-256 (when it is already there, only its stored time
        becomes now)."""

    def get_asset(self, sha256: str, media_type: str) -> bytes | None:
        """The bytes, or None when the store does not hold them."""

    def asset_ids(self) -> set[str]:
        """The SHA-256 of every asset held."""

    def asset_times(self) -> dict[str, float]:
        """Each asset's SHA-256 and when it was last stored (seconds since the epoch)."""

    def delete_assets(self, sha256s: Iterable[str]) -> int:
        """Remove these assets; how many were removed."""


def extension(media_type: str) -> str:
    """The file extension of an asset: ``png``, ``jpg``, ``gif``, ``webp``, ``pdf``."""
    return MEDIA_EXTENSIONS.get(media_type, "bin")


def store_assets(storage: Any, message: Message) -> Message:
    """``message`` with each base64 image / document put in ``storage``'s assets and replaced
    by a reference (the message itself when it has none, or the store keeps no assets)."""
    if isinstance(message.content, str) or not isinstance(storage, AssetStore):
        return message
    sources = [s for s in binary_sources(message.content) if s.get("type") == "base64"]
    if not sources:
        return message
    stored = message.copy()
    for source in binary_sources(stored.content):
        if source.get("type") != "base64":
            continue
        data = decode(source["data"])
        digest = sha256_of(data)
        storage.put_asset(digest, source["media_type"], data)
        source.clear()
        source.update(type="asset", sha256=digest, media_type=stored_media(source, data))
    return stored


def stored_media(source: dict[str, Any], data: bytes) -> str:
    """The media type kept with a reference (the one the block declared)."""
    return source.get("media_type") or _sniff(data)


def _sniff(data: bytes) -> str:
    if data[:4] == b"%PDF":
        return "application/pdf"
    return "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"


def expand(storage: Any, content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A copy of ``content`` with each asset reference back as base64 (for a request or an
    export); :class:`StorageError` (one line) when the store lost an asset."""
    if isinstance(content, str) or not asset_refs(content):
        return content
    copied = Message("user", content).content  # a checked deep copy
    for source in binary_sources(copied):
        if source.get("type") != "asset":
            continue
        data = load(storage, source["sha256"], source["media_type"])
        media = source["media_type"]
        source.clear()
        source.update(type="base64", media_type=media, data=encode(data))
    return copied


def load(storage: Any, sha256: str, media_type: str) -> bytes:
    """An asset's bytes; :class:`StorageError` when the store does not hold them."""
    data = storage.get_asset(sha256, media_type) if isinstance(storage, AssetStore) else None
    if data is None:
        raise StorageError(f"the store {getattr(storage, 'location', '?')} has lost the "
                           f"{media_type} asset {sha256[:12]}… a message references; "
                           "re-attach it and send the turn again")
    return data


def referenced(storage: Any) -> set[str] | None:
    """Every asset a readable session references; None when a damaged session could
    reference more (then nothing is collected)."""
    if storage.damaged():
        return None
    refs: set[str] = set()
    for session_id in storage.list_ids():
        session = storage.load(session_id)
        if session is not None:
            for message in session.messages:
                refs |= asset_refs(message.content)
    return refs


_NAMED = re.compile(r'"sha256"\s*:\s*"([0-9a-f]{64})"')


def named_assets(texts: Iterable[str]) -> set[str]:
    """Every SHA-256 named in these JSON texts (a store's raw message rows, damaged or not)."""
    found: set[str] = set()
    for text in texts:
        found.update(_NAMED.findall(text))
    return found


def collect(storage: Any, grace: float | None = None) -> int:
    """Remove the assets no session references any more and stored more than ``grace``
    seconds ago (default :data:`GRACE_SECONDS`); how many were removed. A store may offer
    ``assets_in_use()`` (a fast, conservative scan of its raw rows); else every readable
    session is read, and nothing is removed while a session is damaged. References are read
    before the ages, so an asset put again meanwhile (for a message about to be appended) is
    young by the time it is looked at."""
    if not isinstance(storage, AssetStore) or not storage.asset_ids():
        return 0
    in_use = getattr(storage, "assets_in_use", None)
    refs = in_use() if in_use is not None else referenced(storage)
    if refs is None:
        return 0
    cutoff = time.time() - (GRACE_SECONDS if grace is None else grace)
    unused = {sha for sha, stored in storage.asset_times().items()
              if stored <= cutoff and sha not in refs}
    return storage.delete_assets(unused) if unused else 0


ASSET_DIR = "assets"
_ASSET_NAME = re.compile(r"([0-9a-f]{64})\.[a-z]+")


class AssetFolder:
    """The directory store's assets: readable files ``<root>/assets/<sha256>.<ext>``, written
    atomically, opened without following links or blocking on FIFOs; a file whose bytes do not
    hash to its name counts as missing."""

    def __init__(self, root: Path) -> None:
        self.folder = root / ASSET_DIR

    def _path(self, sha256: str, media_type: str) -> Path:
        if not _SHA_ONLY.fullmatch(sha256):
            raise ValueError(f"not a SHA-256: {sha256[:70]!r}")
        return self.folder / f"{sha256}.{extension(media_type)}"

    def _real_folder(self, create: bool) -> bool:
        """Whether the assets folder is there (made when ``create``); a link or a file in its
        place is a :class:`StorageError`."""
        try:
            mode = os.lstat(self.folder).st_mode
        except FileNotFoundError:
            if not create:
                return False
            os.mkdir(self.folder, 0o700)
            return True
        if not stat.S_ISDIR(mode):
            raise StorageError(f"{self.folder} is not a directory (a link or a file); move it "
                               "away so the store can keep images and PDFs there")
        return True

    def put_asset(self, sha256: str, media_type: str, data: bytes) -> None:
        path = self._path(sha256, media_type)
        self._real_folder(create=True)
        if self.get_asset(sha256, media_type) is not None:
            with contextlib.suppress(FileNotFoundError):
                os.utime(path, follow_symlinks=False)  # stored again: young again (collect)
                return
        write_atomic(self.folder, path, data)

    def get_asset(self, sha256: str, media_type: str) -> bytes | None:
        path = self._path(sha256, media_type)
        if not self._real_folder(create=False):
            return None
        try:
            data = read_file(path, limit=MAX_PDF_BYTES)
        except (OSError, ValueError):
            return None
        return data if sha256_of(data) == sha256 else None

    def asset_ids(self) -> set[str]:
        if not self._real_folder(create=False):
            return set()
        return {m.group(1) for name in os.listdir(self.folder)
                if (m := _ASSET_NAME.fullmatch(name))}

    def asset_times(self) -> dict[str, float]:
        """Each asset file's SHA-256 and modification time (set anew by ``put_asset``)."""
        times: dict[str, float] = {}
        if not self._real_folder(create=False):
            return times
        for name in os.listdir(self.folder):
            if match := _ASSET_NAME.fullmatch(name):
                with contextlib.suppress(FileNotFoundError):
                    times[match.group(1)] = os.lstat(self.folder / name).st_mtime
        return times

    def delete_assets(self, sha256s: Iterable[str]) -> int:
        wanted = set(sha256s)
        if not wanted or not self._real_folder(create=False):
            return 0
        removed = 0
        for name in os.listdir(self.folder):
            match = _ASSET_NAME.fullmatch(name)
            if match and match.group(1) in wanted:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.folder / name)
                    removed += 1
        return removed


def store_session_assets(storage: Any, session: Session) -> Session:
    """``session`` (an import) with its base64 data put in ``storage``'s assets; a reference
    to an asset the store does not hold is a one-line :class:`StorageError` (nothing written:
    export with embedded data, or copy with ``copy_to``, which carries the assets)."""
    if not isinstance(storage, AssetStore) or all(isinstance(m.content, str)
                                                   for m in session.messages):
        return session
    for message in session.messages:
        for source in binary_sources(message.blocks):
            if source.get("type") == "asset":
                load(storage, source["sha256"], source["media_type"])
    session = session.copy()
    session.messages = [store_assets(storage, m) for m in session.messages]
    return session


def portable(storage: Any, session: Session) -> Session:
    """``session`` with its asset references expanded to base64: it no longer needs
    ``storage`` (for a copy into another store, or an export)."""
    if all(isinstance(m.content, str) or not asset_refs(m.content) for m in session.messages):
        return session
    session = session.copy()
    for message in session.messages:
        message.content = expand(storage, message.content)
    return session

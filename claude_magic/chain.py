"""The hash chain that makes a session's history tamper-evident.

Every stored message carries ``ids["hash"]``: the SHA-256 (hex) of the canonical JSON
``[previous hash, role, status, content]`` (compact, keys sorted, UTF-8; the first message's
previous hash is ``""``). ``content`` is the stored content: text, or the content blocks as
stored (images and PDFs as their asset references). Changing a message's role, content or
status, or removing or reordering messages, breaks the chain from that message on.

``mark`` changes a status legitimately: the manager then re-hashes the marked message and
every later one, so a verified chain always describes the statuses stored now. Messages
written before hashes existed gain them on the session's next write (append or mark).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

HASH_KEY = "hash"
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode
_sha256 = hashlib.sha256


_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def canonical(previous: str, role: str, status: str, content: Any) -> bytes:
    """The bytes a message's hash is taken over: exactly ``_encode([previous, role, status,
    content])``; text content takes a shortcut (the first three never need escaping)."""
    if type(content) is str:
        text = f'["{previous}","{role}","{status}",{_string(content)}]'
    else:
        text = _encode([previous, role, status, content])
    return text.encode("utf-8", "surrogatepass")


def message_hash(previous: str, role: str, status: str, content: Any) -> str:
    """The chain hash of one message given the previous message's hash."""
    return _sha256(canonical(previous, role, status, content)).hexdigest()


def stored_hash(message: Any) -> str | None:
    """The hash a stored message carries (None for one written before hashes)."""
    return message.ids.get(HASH_KEY)


def chain(messages: Iterable[Any], previous: str = "") -> list[str]:
    """The hashes the given messages should carry, following ``previous``."""
    hashes = []
    for message in messages:
        previous = message_hash(previous, message.role, message.status, message.content)
        hashes.append(previous)
    return hashes


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`SessionManager.verify` found: ``ok`` when every message matches its hash;
    else ``first_bad_seq`` is the first message whose stored content no longer does."""

    ok: bool
    messages: int
    first_bad_seq: int | None
    reason: str

    def __str__(self) -> str:
        return self.reason


def verify_messages(session_id: str, messages: Sequence[Any]) -> VerifyReport:
    """Check each message's stored hash against its role, status, content and predecessor."""
    previous = ""
    sha256, string, encode = _sha256, _string, canonical
    for index, message in enumerate(messages):
        content = message.content
        try:  # text content inline (the common case): the same bytes as canonical()
            data = (f'["{previous}","{message.role}","{message.status}",{string(content)}]'
                    .encode() if type(content) is str else b"")
        except UnicodeEncodeError:
            data = b""
        if not data:
            data = encode(previous, message.role, message.status, content)
        expected = sha256(data).hexdigest()
        found = message.ids.get(HASH_KEY)
        if found != expected:
            seq = index if message.seq is None else message.seq
            why = ("carries no hash (stored before hashes; the session's next write adds them)"
                   if found is None else
                   "no longer matches its hash: its role, status or content was changed "
                   "outside claude_magic, or an earlier message was removed")
            return VerifyReport(False, len(messages), seq,
                                f"session {session_id!r}: message {seq} ({message.role}) {why}")
        previous = expected
    count = len(messages)
    return VerifyReport(True, count, None, f"session {session_id!r}: all {count} "
                        f"message{'' if count == 1 else 's'} match their hashes")

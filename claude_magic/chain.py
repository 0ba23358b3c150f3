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
from itertools import repeat
from operator import attrgetter
from typing import Any

HASH_KEY = "hash"
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                           allow_nan=False).encode
_sha256 = hashlib.sha256
_ids = attrgetter("ids")


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


def _expected(messages: Sequence[Any], found: list[Any]) -> list[str]:
    """Each message's hash taken after the hash the previous message carries.

    Inline, not through :func:`canonical` (a call per message costs a third of the hash).
    Text with no quote, backslash or newline skips even the escaping: ``["previous","role",
    "status","text"]`` as is, which is the canonical bytes unless the text holds another
    control character (a tab, say); then the two differ, and :func:`_first_bad` checks a
    mismatch against the canonical bytes before reporting it."""
    previous = ["", *found]  # one longer than messages: the last hash follows nothing
    sha256, string = _sha256, _string
    try:
        return [sha256((f'["{p}","{m.role}","{m.status}","{c}"]'
                        if '"' not in c and "\\" not in c and "\n" not in c else
                        f'["{p}","{m.role}","{m.status}",{string(c)}]').encode()).hexdigest()
                if type(c := m.content) is str
                else sha256(canonical(p, m.role, m.status, c)).hexdigest()
                for p, m in zip(previous, messages, strict=False)]
    except UnicodeEncodeError:  # a lone surrogate planted in text: the canonical bytes
        return [message_hash(p, m.role, m.status, m.content)
                for p, m in zip(previous, messages, strict=False)]


def _first_bad(messages: Sequence[Any], found: list[Any]) -> int | None:
    """The index of the first message whose stored hash is not its chain hash, or None.

    Taking each message's hash after the hash the previous one *carries* finds the same
    first bad message as recomputing the chain: up to it, the carried hashes are the chain's.
    A stored hash is also accepted when it hashes the unescaped bytes of text whose only
    escapes would be control characters other than newlines: no writer produces such a hash
    (JSON never holds a raw control character), and no edit can reach one, since those bytes
    differ from every message's canonical bytes."""
    expected = _expected(messages, found)
    if expected == found:
        return None
    for index, (value, stored) in enumerate(zip(expected, found, strict=True)):
        if value != stored:
            message = messages[index]
            previous = found[index - 1] if index else ""
            if message_hash(previous, message.role, message.status, message.content) != stored:
                return index
    return None


def verify_messages(session_id: str, messages: Sequence[Any]) -> VerifyReport:
    """Check each message's stored hash against its role, status, content and predecessor."""
    found = list(map(dict.get, map(_ids, messages), repeat(HASH_KEY)))
    index = _first_bad(messages, found)
    count = len(messages)
    if index is None:
        return VerifyReport(True, count, None, f"session {session_id!r}: all {count} "
                            f"message{'' if count == 1 else 's'} match their hashes")
    message = messages[index]
    seq = index if message.seq is None else message.seq
    why = ("carries no hash (stored before hashes; the session's next write adds them)"
           if found[index] is None else
           "no longer matches its hash: its role, status or content was changed "
           "outside claude_magic, or an earlier message was removed")
    return VerifyReport(False, count, seq,
                        f"session {session_id!r}: message {seq} ({message.role}) {why}")

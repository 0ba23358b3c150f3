"""Message lines of the directory store, and the totals a header does not count yet.

A line is one JSON object per message. It always holds ``seq``, ``role``, ``content`` and
``created_at`` (UTC, written with ``Z``); every other field only when it is not its default:
``status`` (default ``ok``), ``stop_reason`` (default ``end_turn`` in an answer, null in a
prompt), ``error``, ``model``, ``backend``, ``cost_usd``, ``duration_ms`` (default null),
``usage`` (its non-zero counts), ``hash`` (the chain hash,
``ids["hash"]``), ``ids`` (any other backend ids) and ``at``: when the append happened, written
only when that is not the message's own ``created_at`` (see ``DirectoryStorage.append``).
Lines written by earlier versions (every field, the hash inside ``ids``) read the same.

A version-2 header counts the messages file up to ``counted_bytes``; what lies past it (the
*tail*: lines appended since the header was last written) is counted by whoever reads it, from
that offset: :func:`totals`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..chain import HASH_KEY
from ..message import Message, SessionStats, stored_message_from_dict
from ..times import format_time, parse_time
from ._jsonio import _DECODER, check_stored, dumps, loads, open_regular, read_at

#: errors of a message line read back (a planted file can hold anything)
BAD_LINE = (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError)
#: a JSON escape of a UTF-16 surrogate: the only way a line's text can hold a lone one
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: an append rewrites the header once the lines past ``counted_bytes`` would pass this
FOLD_BYTES = 32 * 1024

_USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
          "cache_read_input_tokens")
_ZERO_USAGE = dict.fromkeys(_USAGE, 0)
_OPTIONAL = ("error", "model", "backend", "cost_usd", "duration_ms")
#: the stop reason a line without one has, by role: what a finished answer says
_STOP = {"assistant": "end_turn"}


def utc_text(value: datetime) -> str:
    """A time as a line stores it: :func:`format_time` with ``Z`` for ``+00:00``."""
    return format_time(value)[:-6] + "Z"


def encode(message: Message, at: datetime | None = None) -> bytes:
    """The line of a stored message (``at``: the append's time, when it is not
    ``created_at``), newline included."""
    doc: dict[str, Any] = {"seq": message.seq, "role": message.role,
                           "content": message.content,
                           "created_at": utc_text(message.created_at)}
    if message.status != "ok":
        doc["status"] = message.status
    for name in _OPTIONAL:
        value = getattr(message, name)
        if value is not None:
            doc[name] = value
    if message.stop_reason != _STOP.get(message.role):
        doc["stop_reason"] = message.stop_reason
    usage = {name: count for name in _USAGE if (count := getattr(message.usage, name))}
    if usage:
        doc["usage"] = usage
    ids = message.ids
    if ids:
        if HASH_KEY in ids:
            doc["hash"] = ids[HASH_KEY]
        other = {key: value for key, value in ids.items() if key != HASH_KEY}
        if other:
            doc["ids"] = other
    if at is not None:
        doc["at"] = utc_text(at)
    return dumps(doc) + b"\n"


def expand(doc: Any) -> Any:
    """A line's object with every field :meth:`Message.to_dict` writes (defaults filled in,
    the hash moved into ``ids``, ``at`` left out); anything but an object as it is."""
    if type(doc) is not dict:
        return doc
    full = dict(doc)
    full.pop("at", None)
    found = full.pop(HASH_KEY, None)
    ids = full.setdefault("ids", {})
    if found is not None:
        full["ids"] = {**ids, HASH_KEY: found} if type(ids) is dict else ids
    elif ids is None:
        full["ids"] = {}
    created = full.get("created_at")
    if type(created) is str and created[-1:] == "Z":
        full["created_at"] = created[:-1] + "+00:00"
    usage = full.get("usage")
    if usage is None:
        full["usage"] = dict(_ZERO_USAGE)
    elif type(usage) is dict and len(usage) != 4:
        full["usage"] = {**_ZERO_USAGE, **usage}
    if full.setdefault("status", "ok") is None:
        full["status"] = "ok"
    for name in _OPTIONAL:
        full.setdefault(name, None)
    if "stop_reason" not in full:
        role = full.get("role")
        full["stop_reason"] = _STOP.get(role) if type(role) is str else None
    return full


def checked(data: Any) -> Message:
    """A parsed line as a message, every field checked (a planted file can hold anything)."""
    check_stored(data, "the message")
    message = Message.from_dict(expand(data))
    if type(message.seq) is not int:
        raise TypeError("seq must be an integer")
    return message


def line_hash(doc: Any) -> Any:
    """The chain hash a parsed line carries (either place), or None."""
    if type(doc) is not dict:
        return None
    found = doc.get(HASH_KEY)
    if found is None and type(doc.get("ids")) is dict:
        found = doc["ids"].get(HASH_KEY)
    return found


def set_status(doc: dict[str, Any], status: str, error: str | None) -> None:
    """Set a parsed line's status and error (left out where they are the defaults)."""
    for name, value, default in (("status", status, "ok"), ("error", error, None)):
        if value == default:
            doc.pop(name, None)
        else:
            doc[name] = value


def set_hash(doc: dict[str, Any], value: str) -> None:
    """Set a parsed line's chain hash where its format keeps it."""
    ids = doc.get("ids")
    if HASH_KEY not in doc and type(ids) is dict and HASH_KEY in ids:
        doc["ids"] = {**ids, HASH_KEY: value}  # a line of an earlier version
    else:
        doc[HASH_KEY] = value


def edit_lines(lines: list[bytes], hashes: Mapping[int, str],
               mark: tuple[int, str, str | None] | None) -> bool:
    """In a messages file split at its line ends, set the chain hash of each seq in
    ``hashes`` and, with ``mark`` (seq, status, error), that message's status and error; a
    changed line is encoded again, every other one kept byte for byte. Whether the marked
    message was found."""
    found = False
    for index, line in enumerate(lines[:-1]):  # complete lines only
        try:
            doc = loads(line)
        except ValueError:
            continue
        seq = doc.get("seq") if isinstance(doc, dict) else None
        if type(seq) is not int or (seq not in hashes and (mark is None or seq != mark[0])):
            continue
        if mark is not None and seq == mark[0]:
            set_status(doc, mark[1], mark[2])
            found = True
        if seq in hashes:
            set_hash(doc, hashes[seq])
        lines[index] = dumps(doc)
    return found


def totals(raw: bytes, stats: SessionStats, updated: datetime
           ) -> tuple[SessionStats, datetime, int]:
    """Count the complete lines of ``raw`` into ``stats`` (changed in place) and ``updated``
    (the latest append time: ``at`` or ``created_at``); returns both and the bytes used.
    Damaged lines are skipped (``damaged()`` reports them)."""
    used = raw.rfind(b"\n") + 1
    if not used:
        return stats, updated, 0
    fast = SURROGATE_ESCAPE.search(raw, 0, used) is None
    for line in raw[:used].split(b"\n")[:-1]:
        try:
            doc = _DECODER.decode(line.decode()) if fast else loads(line)
            message = stored_message_from_dict(expand(doc)) if fast else None
            if message is None:
                message = checked(doc)
            stats.add(message)
        except BAD_LINE:
            continue
        when = _appended_at(doc, message)
        if when > updated:
            updated = when
    return stats, updated, used


def _appended_at(doc: dict[str, Any], message: Message) -> datetime:
    """When a line was appended: its ``at``, else (none, or one that cannot be read) the
    message's ``created_at``."""
    at = doc.get("at")
    if at is not None:
        try:
            return parse_time(at)
        except (TypeError, ValueError):
            pass
    return message.created_at


def tail_totals(fd: int, size: int, counted: int | None, stats: SessionStats,
                updated: datetime) -> tuple[SessionStats, datetime, int, bool]:
    """A session's totals and updated_at from its header's (``stats``, ``updated``, counting
    ``counted`` bytes of the messages file open as ``fd``, ``size`` bytes long) and the lines
    past them; also the offset after the last complete line, and whether every line had to
    be counted (``counted`` None, past the end or not at a line's end)."""
    start = counted
    if start is None or start > size or (start and read_at(fd, start - 1, 1) != b"\n"):
        start, stats = 0, SessionStats()
    else:
        stats = stats.copy()
    stats, updated, used = totals(read_at(fd, start, size - start), stats, updated)
    return stats, updated, start + used, start != counted


def file_totals(path: str | os.PathLike[str], counted: int, stats: SessionStats,
                updated: datetime) -> tuple[SessionStats, datetime]:
    """:func:`tail_totals` of a messages file by name, for listings: the header's own when
    the file is missing, not a regular file, or exactly ``counted`` bytes long."""
    try:
        if os.lstat(path).st_size == counted:
            return stats, updated
        fd = open_regular(path)
    except OSError:
        return stats, updated
    try:
        stats, updated, _, _ = tail_totals(fd, os.fstat(fd).st_size, counted, stats, updated)
    except OSError:
        pass
    finally:
        os.close(fd)
    return stats, updated

"""The hash chain's exact bytes are a stored format: hashes computed by the code that wrote
existing stores must verify unchanged forever, and verify must catch every kind of edit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from claude_magic.chain import HASH_KEY, canonical, chain, message_hash, verify_messages
from claude_magic.manager import SessionManager
from claude_magic.message import Message


def _messages() -> list[Message]:
    """Text with every kind of character JSON escapes (or does not), and content blocks."""
    return [
        Message("user", "Hello, world"),
        Message("assistant", 'Quotes " and \\ backslash, tab\t, newline\n, ctrl \x01 \x7f, '
                "é ☃ 𝄞 \u2028", status="incomplete"),
        Message("user", [{"type": "text", "text": "Zürich"},
                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                      "data": "iVBORw0KGgo="}}], status="error"),
        Message("assistant", [{"type": "tool_use", "id": "t1", "name": "Read",
                               "input": {"b": [1, 2.5, True, None], "a": "x"}}]),
        Message("user", ""),
    ]


# Computed by chain.py as of commit 89c309b, before its speed-up: never change these.
PINNED = ["b2b05614cb3c2501883221ec40870ac7c3c6a347ec2ceaf91b02265c13108c72",
          "1b53440f46cf5dc7b40b8692eaa221cd3f7f97ca9cd7a911202dbd57ca094910",
          "7adc2740b9c2195527f36aaf84f5c86c5f14f117fb3aea6bb01e919ef4270eae",
          "26b861cadba55ad2a8c3d0525ac8046fffd337b4fc32575e28bd50afc223129e",
          "7b85331788d3235c8b3368d49edc48e74fffa991cef21acb278ef62098c41fca"]


def _hashed() -> list[Message]:
    messages = _messages()
    for seq, (message, value) in enumerate(zip(messages, PINNED, strict=True)):
        message.ids[HASH_KEY], message.seq = value, seq
    return messages


def test_known_hashes_are_computed_unchanged() -> None:
    messages = _messages()
    assert chain(messages) == PINNED
    previous = ["", *PINNED[:-1]]
    for message, before, expected in zip(messages, previous, PINNED, strict=True):
        data = json.dumps([before, message.role, message.status, message.content],
                          ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        assert canonical(before, message.role, message.status, message.content) == data
        assert message_hash(before, message.role, message.status, message.content) == expected


def test_known_hashes_verify_unchanged() -> None:
    report = verify_messages("s", _hashed())
    assert (report.ok, report.messages, report.first_bad_seq) == (True, 5, None)


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_a_store_writes_the_known_hashes(kind: str, tmp_path: Path) -> None:
    spec = str(tmp_path / "d") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"
    texts = [m for m in _messages() if isinstance(m.content, str)]
    expected = chain(texts)
    assert expected[0] == PINNED[0]
    with SessionManager(spec) as manager:
        manager.create_session("p").build()
        for message in texts:
            manager.append("p", message)
    with SessionManager(spec) as manager:  # read back by a new process' view of the store
        stored = manager.resume("p").messages
        assert [m.ids[HASH_KEY] for m in stored] == expected
        assert manager.verify("p").ok


def _swap(messages: list[Message]) -> None:
    messages[1], messages[2] = messages[2], messages[1]
    messages[1].seq, messages[2].seq = 1, 2


def _remove(messages: list[Message]) -> None:
    del messages[1]
    for seq, message in enumerate(messages):
        message.seq = seq


def _insert(messages: list[Message]) -> None:
    """A message inserted with a hash that is right for its place: the next one breaks."""
    planted = Message("assistant", "planted", seq=2)
    planted.ids[HASH_KEY] = message_hash(PINNED[1], "assistant", "ok", "planted")
    messages.insert(2, planted)
    for seq, message in enumerate(messages):
        message.seq = seq


EDITS = {
    "content text": (lambda m: setattr(m[1], "content", m[1].content + " "), 1),
    "content block": (lambda m: m[3].content[0]["input"].update(a="y"), 3),
    "nested block value": (lambda m: m[2].content[1]["source"].update(media_type="image/gif"),
                           2),
    "role": (lambda m: setattr(m[4], "role", "assistant"), 4),
    "status": (lambda m: setattr(m[0], "status", "error"), 0),
    "order": (_swap, 1),
    "removed": (_remove, 1),
    "inserted": (_insert, 3),
    "hash removed": (lambda m: m[2].ids.pop(HASH_KEY), 2),
    "hash replaced": (lambda m: m[3].ids.update(hash="0" * 64), 3),
    "hash copied from the previous message": (lambda m: m[4].ids.update(hash=PINNED[3]), 4),
    "empty text made non-empty": (lambda m: setattr(m[4], "content", "x"), 4),
    "text replaced by the same text as a block": (
        lambda m: setattr(m[0], "content", [{"type": "text", "text": "Hello, world"}]), 0),
}


@pytest.mark.parametrize("edit", EDITS)
def test_verify_catches_every_edit(edit: str) -> None:
    change, first_bad = EDITS[edit]
    messages = _hashed()
    change(messages)
    report = verify_messages("s", messages)
    assert (report.ok, report.first_bad_seq) == (False, first_bad)
    assert f"message {first_bad} (" in report.reason


def test_key_order_in_blocks_is_not_an_edit() -> None:
    messages = _hashed()
    messages[3].content = [dict(reversed(list(messages[3].content[0].items())))]
    assert verify_messages("s", messages).ok


def test_verify_reads_text_it_cannot_encode_without_crashing() -> None:
    """A lone surrogate is refused by Message, but one planted after it is a mismatch."""
    messages = _hashed()
    messages[1].content = "bad \udc80"
    report = verify_messages("s", messages)
    assert (report.ok, report.first_bad_seq) == (False, 1)


def test_verify_leaves_the_messages_unchanged() -> None:
    messages = _hashed()
    before = copy.deepcopy(messages)
    verify_messages("s", messages)
    assert messages == before


# Control characters other than a newline, a newline, a backslash: each takes another path
# through verify. Also computed by chain.py as of commit 89c309b.
ESCAPED = [("user", "col1\tcol2\r\x0b end",
            "6a815595084a485834284195cecae265d01c87ca76d6196f689143f7ef82dfd7"),
           ("assistant", "line one\nline two",
            "5d29fff707da8a65303816e84b2413fa7cf9a3148a79c54b6c9c91e75257d460"),
           ("user", "path C:\\temp",
            "6da6b75571d164db3a42133271c9095fff2c7328b95ce4be53a3eab67a8766bc")]


def _escaped() -> list[Message]:
    return [Message(role, text, ids={HASH_KEY: value}, seq=seq)
            for seq, (role, text, value) in enumerate(ESCAPED)]


def test_text_with_control_characters_verifies_unchanged() -> None:
    messages = _escaped()
    assert chain(messages) == [value for _, _, value in ESCAPED]
    assert verify_messages("s", messages).ok


@pytest.mark.parametrize(("seq", "before", "after"), [
    (0, "\t", "\\t"), (0, "\t", " "), (1, "\n", "\\n"), (1, "\n", "\r"), (2, "\\", "\\\\"),
    (2, "\\", "/")])
def test_an_escape_written_out_is_an_edit(seq: int, before: str, after: str) -> None:
    """Text whose JSON escapes look like another text's characters is still a different text."""
    messages = _escaped()
    messages[seq].content = messages[seq].content.replace(before, after, 1)
    report = verify_messages("s", messages)
    assert (report.ok, report.first_bad_seq) == (False, seq)


def test_a_planted_hash_that_is_not_hex_is_the_first_bad_message() -> None:
    messages = _hashed()
    messages[1].ids[HASH_KEY] = 'x","user","ok","'
    report = verify_messages("s", messages)
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert "no longer matches its hash" in report.reason


def test_an_empty_session_verifies() -> None:
    report = verify_messages("s", [])
    assert (report.ok, report.messages, report.reason) == (True, 0,
                                                           "session 's': all 0 messages match "
                                                           "their hashes")

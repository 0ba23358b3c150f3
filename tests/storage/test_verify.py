"""The hash chain on every store: appended and marked messages are hashed, verify finds the
first changed message (a hand edit in each store), and sessions from before hashes gain them
on their next write without losing anything."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from claude_magic.chain import HASH_KEY, message_hash
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId


def _chat(manager: SessionManager) -> None:
    manager.create_session("c").build()
    for n in range(4):
        manager.append("c", Message("user" if n % 2 == 0 else "assistant", f"text {n}"))


def test_every_message_is_chained(manager: SessionManager) -> None:
    _chat(manager)
    messages = manager.resume("c").messages
    previous = ""
    for message in messages:
        doc = json.dumps([previous, message.role, message.status, message.content],
                         ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert message.ids[HASH_KEY] == hashlib.sha256(doc.encode()).hexdigest()
        previous = message.ids[HASH_KEY]
    report = manager.verify("c")
    assert (report.ok, report.messages, report.first_bad_seq) == (True, 4, None)


def test_mark_rehashes_from_the_marked_message(manager: SessionManager) -> None:
    _chat(manager)
    before = [m.ids[HASH_KEY] for m in manager.resume("c").messages]
    manager.mark("c", 1, "incomplete", "cut off")
    after = [m.ids[HASH_KEY] for m in manager.resume("c").messages]
    assert after[0] == before[0] and after[1:] != before[1:]
    assert all(a != b for a, b in zip(after[1:], before[1:], strict=True))
    assert manager.verify("c").ok


def _hand_edit(kind: str, manager: SessionManager, tmp_path: Path) -> None:
    """Change message 2's text behind the store's back, as a user with an editor would."""
    storage = manager.storage
    if kind == "memory":
        storage._sessions["c"].messages[2].content = "edited"  # type: ignore[attr-defined]
    elif kind == "directory":
        path = Path(storage.location) / "c.messages.jsonl"
        path.write_bytes(path.read_bytes().replace(b'"text 2"', b'"edited"'))
    elif kind == "sqlite":
        db = sqlite3.connect(storage.path)  # type: ignore[attr-defined]
        db.execute("UPDATE messages SET content = 'edited' WHERE session_id = 'c' AND seq = 2")
        db.commit()
        db.close()
    else:
        with storage._transaction() as cur:  # type: ignore[attr-defined]
            cur.execute("UPDATE claude_magic.messages SET content = 'edited' "
                        "WHERE session_id = 'c' AND seq = 2")


def test_verify_finds_a_hand_edit(kind: str, manager: SessionManager, tmp_path: Path) -> None:
    _chat(manager)
    _hand_edit(kind, manager, tmp_path)
    assert manager.resume("c").messages[2].content == "edited"
    report = manager.verify("c")
    assert (report.ok, report.messages, report.first_bad_seq) == (False, 4, 2)
    assert "message 2 (user) no longer matches its hash" in report.reason


def test_sessions_from_before_hashes_gain_them_on_the_next_write(manager: SessionManager
                                                                 ) -> None:
    old = Session(id=SessionId("old"), messages=[
        Message("user", "q", ids={"request_id": "r1"}), Message("assistant", "a")])
    manager.storage.create(old)  # as a store written before hashes existed holds it
    report = manager.verify("old")
    assert (report.ok, report.first_bad_seq) == (False, 0)
    assert "carries no hash" in report.reason
    manager.append("old", Message("user", "next"))
    messages = manager.resume("old").messages
    assert [m.content for m in messages] == ["q", "a", "next"]
    assert messages[0].ids["request_id"] == "r1"  # nothing else changed
    assert messages[0].ids[HASH_KEY] == message_hash("", "user", "ok", "q")
    assert manager.verify("old").ok


def test_an_import_without_hashes_is_chained_and_carried_hashes_are_kept(
        manager: SessionManager) -> None:
    """An export from before hashes is chained on import (its first append then writes
    one message, not the whole session again); an export's own hashes are kept, so verify
    judges them: a tampered export is reported, never silently re-hashed."""
    plain = Session(id=SessionId("plain"), messages=[
        Message("user", "q", ids={"request_id": "r1"}), Message("assistant", "a")])
    stored = manager.import_session(plain)
    assert HASH_KEY not in plain.messages[0].ids  # the caller's session is left alone
    assert [m.ids[HASH_KEY] for m in stored.messages] == [
        message_hash("", "user", "ok", "q"),
        message_hash(message_hash("", "user", "ok", "q"), "assistant", "ok", "a")]
    assert manager.verify("plain").ok and stored.messages[0].ids["request_id"] == "r1"
    tampered = manager.resume("plain").copy()
    tampered.id = SessionId("tampered")
    tampered.messages[1].content = "changed after export"
    manager.import_session(tampered)
    report = manager.verify("tampered")
    assert (report.ok, report.first_bad_seq) == (False, 1)


def test_a_second_manager_continues_the_chain(persistent_kind: str, open_manager) -> None:
    first, second = open_manager(persistent_kind), open_manager(persistent_kind)
    _chat(first)
    second.append("c", Message("user", "from another kernel"))
    first.append("c", Message("assistant", "seen"))
    second.mark("c", 4, "error", "failed")
    first.append("c", Message("user", "again"))
    assert first.verify("c").ok and second.verify("c").ok

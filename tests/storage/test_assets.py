"""Images and PDFs in every store: kept once by SHA-256, shared by forks, carried by copy_to and
JSON export/import exactly, and collected by delete / clear / prune only when no session
references them and they were not stored moments ago (another process may be about to append
the message that uses them)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from claude_magic.blocks import document_block, image_block, sha256_of
from claude_magic.export import export_data, session_from_json
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import _assets
from claude_magic.storage._assets import collect, portable

from .conftest import backend_for

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0"
       b"\x08\x06\x00\x00\x00" + bytes(range(256)) * 4)
PDF = b"%PDF-1.4\n" + b"x" * 3000 + b"\n%%EOF\n"


def _prompt(text: str = "see") -> Message:
    return Message("user", [image_block(PNG, "image/png"), document_block(PDF, "a.pdf"),
                            {"type": "text", "text": text}])


def _sources(manager: SessionManager, session_id: str) -> list[dict]:
    return [b["source"] for m in manager.resume(session_id).messages for b in m.blocks
            if "source" in b]


def _bytes_of(manager: SessionManager, session_id: str) -> list[bytes]:
    """The binary data of a session's messages, read back through the store."""
    import base64

    session = portable(manager.storage, manager.resume(session_id))
    return [base64.b64decode(b["source"]["data"]) for m in session.messages for b in m.blocks
            if "source" in b]


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_assets, "GRACE_SECONDS", 0.0)


def _three_turns_and_a_fork(manager: SessionManager) -> None:
    manager.create_session("a").build()
    for turn in range(3):
        manager.append("a", _prompt(f"turn {turn}"))
        manager.append("a", Message("assistant", f"answer {turn}"))
    manager.fork("a", "b")


def test_an_image_is_stored_once_and_shared_by_forks(manager: SessionManager) -> None:
    _three_turns_and_a_fork(manager)
    assert manager.storage.asset_ids() == {sha256_of(PNG), sha256_of(PDF)}
    assert {s["type"] for s in _sources(manager, "b")} == {"asset"}  # references, no base64
    assert _bytes_of(manager, "a") == _bytes_of(manager, "b") == [PNG, PDF] * 3


@pytest.mark.parametrize("how", ["delete", "clear", "prune"])
def test_unreferenced_assets_are_removed_past_the_grace(manager: SessionManager, how: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _three_turns_and_a_fork(manager)
    manager.delete("a")
    assert len(manager.storage.asset_ids()) == 2  # b still uses them
    assert _bytes_of(manager, "b") == [PNG, PDF] * 3
    manager.create_session("c").build()
    manager.delete("b")
    assert len(manager.storage.asset_ids()) == 2  # unreferenced, but stored moments ago
    monkeypatch.setattr(_assets, "GRACE_SECONDS", 0.0)
    if how == "delete":
        manager.delete("c")
    elif how == "clear":
        manager.clear()
    else:
        assert manager.prune(keep_last=0, older_than=0) == ["c"]
    assert manager.storage.asset_ids() == set()


def test_an_asset_put_for_a_message_not_yet_appended_survives(manager: SessionManager) -> None:
    # What another process does between storing the image and appending its message.
    manager.create_session("other").build()
    manager.storage.put_asset(sha256_of(PNG), "image/png", PNG)
    manager.create_session("gone").build()
    manager.delete("gone")  # collects: the asset is unreferenced, but young
    assert manager.storage.asset_ids() == {sha256_of(PNG)}
    manager.create_session("late").build()
    manager.append("late", Message("user", [image_block(PNG, "image/png")]))
    assert _bytes_of(manager, "late") == [PNG]
    # the same unreferenced asset with no grace is removed (the rule above is what kept it)
    manager.storage.put_asset(sha256_of(PDF), "application/pdf", PDF)
    assert collect(manager.storage, grace=0) == 1
    assert manager.storage.asset_ids() == {sha256_of(PNG)}


def test_storing_an_asset_again_makes_it_young(manager: SessionManager) -> None:
    storage = manager.storage
    storage.put_asset(sha256_of(PNG), "image/png", PNG)
    time.sleep(0.3)
    storage.put_asset(sha256_of(PNG), "image/png", PNG)  # a new message uses it again
    assert collect(storage, grace=0.2) == 0
    time.sleep(0.3)
    assert collect(storage, grace=0.2) == 1
    assert storage.asset_ids() == set()


def test_copy_to_carries_the_assets(manager: SessionManager, kind: str, tmp_path: Path) -> None:
    _three_turns_and_a_fork(manager)
    target_kind = "sqlite" if kind != "sqlite" else "directory"
    with SessionManager.with_storage(backend_for(target_kind, tmp_path / "to")) as target:
        manager.copy_to(target)
        assert target.storage.asset_ids() == {sha256_of(PNG), sha256_of(PDF)}
        assert {s["type"] for s in _sources(target, "b")} == {"asset"}
        assert _bytes_of(target, "a") == _bytes_of(target, "b") == [PNG, PDF] * 3
        # and back into a fresh store of this kind
        with SessionManager.with_storage(backend_for(kind, tmp_path / "back")) as back:
            target.copy_to(back, ["a"])
            assert back.storage.asset_ids() == {sha256_of(PNG), sha256_of(PDF)}
            assert _bytes_of(back, "a") == [PNG, PDF] * 3


def test_json_export_and_import_are_exact(manager: SessionManager, kind: str,
                                          tmp_path: Path) -> None:
    _three_turns_and_a_fork(manager)
    exported = export_data(manager, "a", "json")
    sources = [b["source"] for m in json.loads(exported)["session"]["messages"]
               if isinstance(m["content"], list) for b in m["content"] if "source" in b]
    assert {s["type"] for s in sources} == {"base64"}  # the data travels with the file
    with SessionManager.with_storage(backend_for(kind, tmp_path / "other")) as other:
        other.import_session(session_from_json(exported))
        assert other.storage.asset_ids() == {sha256_of(PNG), sha256_of(PDF)}
        assert {s["type"] for s in _sources(other, "a")} == {"asset"}
        assert export_data(other, "a", "json") == exported

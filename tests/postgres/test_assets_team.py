"""Images on the team store follow the sessions' row security: a member reads the images of
the sessions they can read and no others, writes only their own, and a fork of a teammate's
session keeps its images when the teammate deletes theirs."""

from __future__ import annotations

import base64

import psycopg
import pytest

from claude_magic.blocks import image_block, sha256_of
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import _assets
from claude_magic.storage._assets import portable

from .pgserver import Server
from .test_team import member, team  # noqa: F401  (the fixture, and what it uses)

SHARED = b"\x89PNG\r\n\x1a\n" + b"shared" * 50
SECRET = b"\x89PNG\r\n\x1a\n" + b"secret" * 50


def _images(manager: SessionManager, session_id: str) -> list[bytes]:
    session = portable(manager.storage, manager.resume(session_id))
    return [base64.b64decode(b["source"]["data"]) for m in session.messages for b in m.blocks
            if b["type"] == "image"]


def test_images_follow_the_sessions_row_security(pg_server: Server, team,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    database, alice, bob, alice_store, bob_store = team
    for session_id, png in (("a-team", SHARED), ("a-private", SECRET)):
        alice_store.create_session(session_id).build()
        alice_store.append(session_id, Message("user", [image_block(png, "image/png"),
                                                        {"type": "text", "text": "look"}]))
    alice_store.storage.set_visibility("a-team", "team")
    assert alice_store.storage.asset_ids() == {sha256_of(SHARED), sha256_of(SECRET)}
    assert _images(bob_store, "a-team") == [SHARED]
    assert bob_store.storage.get_asset(sha256_of(SECRET), "image/png") is None
    with psycopg.connect(pg_server.url(bob, database), autocommit=True) as raw:
        assert raw.execute("SELECT sha256 FROM claude_magic.assets").fetchall() == [
            (sha256_of(SHARED),)]
        assert raw.execute("DELETE FROM claude_magic.assets").rowcount == 0
        assert raw.execute("UPDATE claude_magic.assets SET data = 'x'").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute("INSERT INTO claude_magic.assets (owner_role, sha256, media_type, data) "
                        f"VALUES ('{alice}', '{'0' * 64}', 'image/png', 'x')")
    bob_store.fork("a-team", "b-fork")  # bob takes his own copy of the image
    assert bob_store.storage.asset_ids() == {sha256_of(SHARED)}
    monkeypatch.setattr(_assets, "GRACE_SECONDS", 0.0)
    alice_store.delete("a-team")
    alice_store.delete("a-private")
    assert alice_store.storage.asset_ids() == set()
    assert _images(bob_store, "b-fork") == [SHARED]
    bob_store.delete("b-fork")
    assert bob_store.storage.asset_ids() == set()

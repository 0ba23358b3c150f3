"""Messages with content blocks (text, an image, thinking, a tool call and its result) on the
PostgreSQL store: stored and read back exactly, copied exactly to and from another store."""

from __future__ import annotations

from pathlib import Path

import psycopg

from claude_magic.blocks import image_block
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage._assets import portable

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def rich_messages() -> list[Message]:
    return [
        Message("user", [{"type": "text", "text": "what is in this picture?"},
                         image_block(PNG, "image/png")]),
        Message("assistant", [
            {"type": "thinking", "thinking": "look at it \x00 closely", "signature": "sig=="},
            {"type": "text", "text": "a tiny PNG"},
            {"type": "tool_use", "id": "toolu_1", "name": "measure", "input": {"px": [1, 2]}}],
            model="claude-x"),
        Message("user", [{"type": "tool_result", "tool_use_id": "toolu_1",
                          "content": [{"type": "text", "text": "8x8"}]}]),
        Message("assistant", "plain text still works"),
    ]


def same(one: SessionManager, other: SessionManager, session_id: str) -> bool:
    """Equal sessions, images compared by their bytes (a store with assets refers to them)."""
    return portable(one.storage, one.resume(session_id)) == \
        portable(other.storage, other.resume(session_id))


def test_blocks_round_trip_and_copy_exactly(pg_url: str, tmp_path: Path) -> None:
    with SessionManager.with_storage(pg_url) as team:
        team.create_session("pictures").build()
        for message in rich_messages():
            team.append("pictures", message)
        assert team.resume("pictures").messages[0].content[1]["source"]["type"] == "asset"
        stored = portable(team.storage, team.resume("pictures")).messages  # images expanded
        assert [m.content for m in stored] == [m.content for m in rich_messages()]
        assert stored[1].content[0]["thinking"] == "look at it \x00 closely"
        assert stored[3].content == "plain text still works"
        with psycopg.connect(pg_url, autocommit=True) as raw:  # the text stays searchable
            texts = [r[0] for r in raw.execute(
                "SELECT content FROM claude_magic.messages ORDER BY seq")]
        assert texts[0] == "what is in this picture?" and texts[1] == "a tiny PNG"
        with SessionManager.with_storage(f"sqlite:///{tmp_path / 'out.db'}") as local:
            team.copy_to(local)  # the image becomes one of the SQLite store's assets
            assert local.get("pictures").messages[0].content[1]["source"]["type"] == "asset"
            assert same(local, team, "pictures")
            local.delete("pictures")
            local.create_session("back").build()
            for message in rich_messages():
                local.append("back", message)
            local.copy_to(team, "back")
            assert same(local, team, "back")
            assert portable(team.storage, team.resume("back")).messages[0].content == \
                rich_messages()[0].content
            assert len(team.storage.asset_ids()) == 1  # one image, stored once

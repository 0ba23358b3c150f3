"""Full-text search on every store: words, phrases, prefixes, system prompts, metadata,
text blocks, ranking, limits, session filters, and an index that follows every write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.search import BadQuery, SearchHit


def _fill(manager: SessionManager) -> None:
    manager.create_session("auth").with_system_prompt("You review Python code").with_metadata(
        "project", "web-api").build()
    manager.append("auth", Message("user", "How does the token refresh work in our auth layer?"))
    manager.append("auth", Message("assistant", [
        {"type": "text", "text": "The refresh token is rotated by the authentication service."},
        {"type": "text", "text": "Expired tokens are rejected."}]))
    manager.create_session("cooking").with_metadata("topic", "dinner").build()
    manager.append("cooking", Message("user", "A recipe for risotto, please"))
    manager.append("cooking", Message("assistant", "Toast the rice, then add stock slowly."))


def test_words_phrases_and_prefixes(manager: SessionManager) -> None:
    _fill(manager)
    hits = manager.search("refresh token")
    assert {(h.session_id, h.seq) for h in hits} == {("auth", 0), ("auth", 1)}
    assert all(isinstance(h, SearchHit) and h.score > 0 for h in hits)
    assert [(h.session_id, h.seq) for h in manager.search('"token refresh"')] == [("auth", 0)]
    prefixed = manager.search("authentic*")
    assert [(h.session_id, h.seq, h.role) for h in prefixed] == [("auth", 1, "assistant")]
    assert "«authentication»" in prefixed[0].snippet
    assert manager.search("risotto rice") == []  # every word must be in one message
    assert manager.search("nothinglikethis") == []


def test_system_prompts_metadata_and_text_blocks(manager: SessionManager) -> None:
    _fill(manager)
    system = manager.search("python")
    assert [(h.session_id, h.seq, h.role) for h in system] == [("auth", None, "system")]
    assert system[0].snippet == "You review «Python» code"
    meta = manager.search("dinner")
    assert [(h.session_id, h.seq, h.role) for h in meta] == [("cooking", None, "metadata")]
    assert [h.seq for h in manager.search("expired")] == [1]  # the second text block


def test_best_first_limit_and_session_filter(manager: SessionManager) -> None:
    manager.create_session("a").build()
    manager.create_session("b").build()
    manager.append("a", Message("user", "deploy " + "filler words here " * 40))
    manager.append("b", Message("user", "deploy deploy deploy now"))
    hits = manager.search("deploy")
    assert [h.session_id for h in hits] == ["b", "a"]
    assert hits[0].score > hits[1].score
    assert len(manager.search("deploy", limit=1)) == 1
    assert [h.session_id for h in manager.search("deploy", session_ids=["a"])] == ["a"]
    with pytest.raises(ValueError, match="limit"):
        manager.search("deploy", limit=0)
    with pytest.raises(BadQuery, match="no word"):
        manager.search(' "" * ')


def test_the_index_follows_every_write(manager: SessionManager) -> None:
    _fill(manager)
    assert manager.search("risotto")
    manager.update("cooking", system_prompt="You are a chef", metadata={"topic": "lunch"})
    assert [h.role for h in manager.search("chef")] == ["system"]
    assert manager.search("dinner") == []
    manager.append("cooking", Message("user", "and a saffron variant?"))
    assert [h.seq for h in manager.search("saffron")] == [2]
    manager.rename("cooking", "kitchen")
    assert {h.session_id for h in manager.search("risotto")} == {"kitchen"}
    manager.delete("kitchen")
    assert manager.search("risotto") == [] and manager.search("saffron") == []


def test_another_process_writing_is_seen(persistent_kind: str, open_manager) -> None:
    first, second = open_manager(persistent_kind), open_manager(persistent_kind)
    _fill(first)
    assert first.search("risotto")  # warms any cache
    second.append("cooking", Message("user", "what about paella"))
    assert [h.seq for h in first.search("paella")] == [2]
    second.delete("cooking")
    assert first.search("risotto") == []


def test_sqlite_migration_indexes_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with SessionManager(f"sqlite:///{path}") as manager:
        _fill(manager)
    db = sqlite3.connect(path)  # make it a database from before migration 006
    for name in ("messages", "sessions"):
        for trigger in ("insert", "delete", "update"):
            db.execute(f"DROP TRIGGER {name}_fts_{trigger}")
        db.execute(f"DROP TABLE {name}_fts")
    db.execute("DELETE FROM _migrations WHERE name = '006_search'")
    db.commit()
    db.close()
    with SessionManager(f"sqlite:///{path}") as manager:
        assert [h.session_id for h in manager.search("risotto")] == ["cooking"]
        assert [h.role for h in manager.search("python")] == ["system"]

"""The replay backend serves a recorded answer only while it matches its chain hash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from claude_magic.client import Client, Config
from claude_magic.errors import ReplayMismatch
from claude_magic.manager import SessionManager

PROMPTS = ["What is ownership?", "And borrowing?"]


def _record(spec: str) -> SessionManager:
    manager = SessionManager(spec)
    recorder = Client(Config(backend="echo"), manager=manager)
    sid = manager.create_session("rec").build().id
    for prompt in PROMPTS:
        recorder.query(prompt).session(sid).send()
    return manager


def test_replayed_answers_carry_the_recorded_hash(tmp_path: Path) -> None:
    manager = _record(f"sqlite:///{tmp_path}/s.db")
    replayer = Client(Config(backend="replay", replay_source="rec"), manager=manager)
    rerun = manager.create_session("rerun").build().id
    for prompt in PROMPTS:
        replayer.query(prompt).session(rerun).send()
    recorded = [m for m in manager.resume("rec").messages if m.role == "assistant"]
    replayed = [m for m in manager.resume("rerun").messages if m.role == "assistant"]
    assert [m.ids["replayed_hash"] for m in replayed] == [m.ids["hash"] for m in recorded]
    assert manager.verify("rerun").ok


def test_an_edited_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    manager = _record(f"sqlite:///{path}")
    db = sqlite3.connect(path)
    db.execute("UPDATE messages SET content = 'forged' WHERE session_id = 'rec' AND seq = 3")
    db.commit()
    db.close()
    replayer = Client(Config(backend="replay", replay_source="rec"), manager=manager)
    rerun = manager.create_session("rerun").build().id
    replayer.query(PROMPTS[0]).session(rerun).send()  # answer 1 is unchanged
    with pytest.raises(ReplayMismatch, match=r"recorded answer 3 .* no longer matches its hash"):
        replayer.query(PROMPTS[1]).session(rerun).send()

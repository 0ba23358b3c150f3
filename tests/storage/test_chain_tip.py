"""A manager's first append to a long session links to the newest message alone (the store's
``chain_tip``), not by reading every message; the chain still verifies. When the newest
message carries no hash (stored before hashes), the whole session is read and hashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_magic import SessionManager
from claude_magic.message import Message


@pytest.fixture(params=["sqlite", "directory"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else str(tmp_path / "d")


def test_a_new_managers_append_reads_only_the_newest_message(spec: str,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    with SessionManager(spec) as first:
        sid = first.create_session().build().id
        for number in range(40):
            first.append(sid, Message("user" if number % 2 == 0 else "assistant", f"m{number}"))
    with SessionManager(spec) as fresh:
        def no_full_read(*args: object) -> None:
            raise AssertionError("the whole session was read to append one message")

        monkeypatch.setattr(fresh.storage, "load", no_full_read)
        monkeypatch.setattr(fresh.storage, "load_since", no_full_read)
        stored = fresh.append(sid, Message("user", "one more"))
        monkeypatch.undo()
        assert stored.seq == 40
        assert fresh.verify(sid).ok, fresh.verify(sid)
        assert fresh.resume(sid).messages[-1].ids["hash"] == stored.ids["hash"]


def test_an_unhashed_newest_message_makes_the_append_hash_the_session(tmp_path: Path) -> None:
    root = tmp_path / "d"
    with SessionManager(str(root)) as manager:
        sid = manager.create_session().build().id
        manager.append(sid, Message("user", "q"))
        manager.append(sid, Message("assistant", "a"))
    path = root / f"{sid}.messages.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for doc in lines:  # as a version before hashes wrote them
        doc.pop("hash")  # (a line of this version keeps it beside the other fields)
    path.write_text("".join(json.dumps(doc) + "\n" for doc in lines))
    with SessionManager(str(root)) as fresh:
        assert not fresh.verify(sid).ok
        fresh.append(sid, Message("user", "again"))
        assert fresh.verify(sid).ok, fresh.verify(sid)

"""Directory store: the states a killed writer can leave, and the header index (.index.json).

Random SIGKILLs (test_processes.py) rarely land inside one write() call, so each state a kill
can leave behind is also built here on purpose.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend, _headers
from claude_magic.storage._headers import INDEX_NAME, INDEX_REFRESH, HeaderCache


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def manager(root: Path):
    with SessionManager.with_storage(StorageBackend.file(root)) as opened:
        opened.create_session("s").build()
        opened.append("s", Message("user", "q"))
        opened.append("s", Message("assistant", "a"))
        yield opened


def test_a_torn_last_line_is_ignored_then_cut(manager: SessionManager, root: Path) -> None:
    path = root / "s.messages.jsonl"
    good = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 2, "role": "user", "content": "half wri')  # killed mid-write
    assert [m.content for m in manager.resume("s").messages] == ["q", "a"]
    assert manager.damaged() == []  # never acknowledged, so not damage
    assert manager.append("s", Message("user", "next")).seq == 2
    assert path.read_bytes().startswith(good) and b"half wri" not in path.read_bytes()
    assert [m.content for m in manager.resume("s").messages] == ["q", "a", "next"]
    assert manager.summaries()[0].stats.message_count == 3


def test_a_line_without_its_header_update_is_counted_at_once(manager: SessionManager,
                                                              root: Path) -> None:
    line = Message("user", "written, then killed", seq=2).to_dict()  # as older versions did
    with open(root / "s.messages.jsonl", "ab") as handle:
        handle.write(json.dumps(line).encode() + b"\n")
    assert manager.summaries()[0].stats.message_count == 3  # the header counts the rest
    assert manager.summary("s").stats.turns == 2
    assert len(manager.resume("s").messages) == 3  # the message itself is there
    assert manager.append("s", Message("assistant", "after")).seq == 3
    stats = manager.summaries()[0].stats
    assert (stats.message_count, stats.turns) == (4, 2)


def test_leftover_temp_files(manager: SessionManager, root: Path) -> None:
    fresh, old = root / ".tmp-fresh", root / ".tmp-old"
    fresh.write_bytes(b'{"half": ')
    old.write_bytes(b"")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert manager.list() == ["s"]
    assert manager.damaged() == []
    assert fresh.exists() and not old.exists()  # a writer may still own the fresh one


def test_a_killed_create_leaves_no_session(manager: SessionManager, root: Path) -> None:
    (root / "x.messages.jsonl").write_text('{"seq": 0}\n')  # messages written, header not
    assert manager.list() == ["s"]
    assert manager.get("x") is None
    manager.create_session("x").build()
    assert manager.resume("x").messages == []
    assert not (root / "x.messages.jsonl").exists()


def backdate(root: Path, seconds: float = 60) -> None:
    """Make every header old enough for its cached key to be trusted."""
    when = time.time() - seconds
    for path in root.glob("*.json"):
        os.utime(path, (when, when))


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = HeaderCache._read

    def spy(self: HeaderCache, name: str, *args: object) -> object:
        reads.append(name)
        return original(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(HeaderCache, "_read", spy)
    return reads


def test_the_index_spares_reading_headers(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    total = INDEX_REFRESH + 36
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        for index in range(total):
            manager.create_session(f"s{index:03}").with_metadata("i", index).build()
        expected = manager.list()
    backdate(root)
    reads = count_reads(monkeypatch)
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        assert manager.list() == expected
    assert len(reads) == total and (root / INDEX_NAME).is_file()

    reads.clear()
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        assert manager.list() == expected  # every header known from the index
        assert reads == []
        manager.update("s005", metadata={"changed": True})
        assert manager.list()[0] == "s005"
        assert reads == ["s005.json"]
        assert manager.summaries()[0].metadata == {"i": 5, "changed": True}

    reads.clear()
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        assert manager.list()[0] == "s005"
        assert reads == ["s005.json"]  # only what changed since the index was written
        assert manager.count() == total


def test_a_damaged_or_stale_index_is_only_a_cache(root: Path) -> None:
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        for index in range(INDEX_REFRESH + 1):
            manager.create_session(f"s{index:03}").build()
        expected = manager.list()
    backdate(root)
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        manager.list()
    index_path = root / INDEX_NAME
    doc = json.loads(index_path.read_text())
    name, row = next(iter(doc["entries"].items()))
    doc["entries"]["ghost.json"] = row  # a file that is not there
    doc["entries"][name] = [row[0] + 1, *row[1:]]  # a key that no longer matches
    index_path.write_text(json.dumps(doc))
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        assert manager.list() == expected
    for garbage in (b"", b"{", b"[]", b'{"format": "claude-magic/index", "version": 99}',
                    b'{"format": "claude-magic/index", "version": 1, "entries": {"a": 1}}'):
        index_path.write_bytes(garbage)
        with SessionManager.with_storage(StorageBackend.file(root)) as manager:
            assert manager.list() == expected
            assert manager.damaged() == []


def test_recent_files_are_read_again(manager: SessionManager, root: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A header written within the trust margin is re-read: a same-tick rewrite is seen."""
    monkeypatch.setattr(_headers, "TRUST_MARGIN_NS", 3600 * 10**9)  # immune to a slow machine
    reads = count_reads(monkeypatch)
    manager.list()
    manager.list()
    assert reads == ["s.json", "s.json"]
    backdate(root, seconds=7200)
    manager.list()
    manager.list()
    assert reads == ["s.json"] * 3

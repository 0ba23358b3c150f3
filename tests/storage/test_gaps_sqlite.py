"""SQLite store gaps, met as a user meets them: planted links and FIFOs at the database and
its side files, text another tool wrote that is not UTF-8, message rows only Python refuses,
a read-only open that must create nothing, and store specs with an unknown scheme."""

from __future__ import annotations

import os
import sqlite3
import warnings
from pathlib import Path

import pytest

from claude_magic.errors import DamagedSession, StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend, open_storage

from . import oslevel
from .oslevel import run_as_nobody

nobody_dir = oslevel.nobody_dir


def seed(path: Path, ids: str = "abcd") -> None:
    """Sessions ``a``.. each with two messages, closed cleanly."""
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        for session_id in ids:
            manager.create_session(session_id).build()
            manager.append(session_id, Message("user", f"question {session_id}"))
            manager.append(session_id, Message("assistant", f"answer {session_id}"))


def raw(path: Path, *statements: str) -> None:
    """Run SQL the way another tool would (plain sqlite3, no claude_magic)."""
    db = sqlite3.connect(path)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()


# --- links and special files at the database and its side files -----------------------


@pytest.mark.timeout(20)
def test_a_symlinked_database_is_refused_naming_the_given_path(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
    link = tmp_path / "link.db"
    link.symlink_to(outside)
    with pytest.raises(StorageError) as info:
        open_storage(f"sqlite:///{link}")
    text = str(info.value)
    assert "\n" not in text and str(link) in text and "symbolic link" in text
    assert "move it aside" not in text
    assert outside.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.db", "outside.txt"]


@pytest.mark.timeout(20)
def test_a_link_to_another_database_is_never_written(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    raw(other, "CREATE TABLE mine (x)")
    before = other.read_bytes()
    (tmp_path / "s.db").symlink_to(other)
    with pytest.raises(StorageError, match="give the path of the database file itself"):
        SessionManager.with_storage(StorageBackend.sqlite(tmp_path / "s.db"))
    assert other.read_bytes() == before
    assert not Path(f"{other}-wal").exists()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("what", ["fifo", "directory"])
def test_a_special_file_as_the_database_is_refused_without_hanging(tmp_path: Path,
                                                                   what: str) -> None:
    path = tmp_path / "s.db"
    os.mkfifo(path) if what == "fifo" else path.mkdir()
    with pytest.raises(StorageError) as info:
        open_storage(f"sqlite:///{path}")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
@pytest.mark.parametrize("what", ["symlink", "fifo", "dangling symlink"])
def test_planted_side_files_are_refused_and_never_followed(tmp_path: Path, suffix: str,
                                                           what: str) -> None:
    path = tmp_path / "s.db"
    seed(path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    side = Path(f"{path}{suffix}")
    if what == "symlink":
        side.symlink_to(victim)
    elif what == "fifo":
        os.mkfifo(side)
    else:
        side.symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError) as info:
        SessionManager.with_storage(StorageBackend.sqlite(path))
    text = str(info.value)
    assert "\n" not in text and side.name in text and f"remove {side}" in text
    assert victim.read_text() == "precious"
    assert not (tmp_path / "nowhere").exists()
    side.unlink()  # once removed, the store opens and holds what it held
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        assert sorted(manager.list()) == ["a", "b", "c", "d"]


def test_a_symlinked_folder_on_the_way_is_the_users_choice(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    with SessionManager.with_storage(StorageBackend.sqlite(tmp_path / "via" / "s.db")) as m:
        m.create_session("x").build()
    assert (real / "s.db").is_file()


# --- text that is not UTF-8 -------------------------------------------------------------


def test_text_that_is_not_utf8_is_a_damaged_entry_never_fatal(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seed(path)
    raw(path,
        "UPDATE sessions SET system_prompt = CAST(x'ff41' AS TEXT) WHERE id = 'a'",
        "UPDATE sessions SET last_model = CAST(x'c3' AS TEXT) WHERE id = 'b'",
        "INSERT INTO sessions (id, created_at, updated_at) VALUES (CAST(x'7a80' AS TEXT), "
        "'2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00')",
        "UPDATE messages SET content = CAST(x'80ff' AS TEXT) WHERE session_id = 'c' "
        "AND seq = 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
            assert sorted(manager.list()) == ["c", "d"]
            assert manager.count() == 2
            assert sorted(s.id for s in manager.summaries()) == ["c", "d"]
            assert sorted(manager.to_dataframe()["id"]) == ["c", "d"]
            for session_id in ("a", "b"):
                with pytest.raises(DamagedSession, match="not UTF-8"):
                    manager.get(session_id)
                with pytest.raises(DamagedSession):
                    manager.update(session_id, metadata={"x": 1})
            assert [m.content for m in manager.resume("c").messages] == ["question c"]
            locations = [entry.location for entry in manager.damaged()]
            assert [loc.rsplit("#", 1)[1] for loc in locations] == ["z\\x80", "a", "b", "c:1"]
            assert manager.clear() == 2  # c and d: the damaged rows stay
            assert manager.list() == []
        assert len([w for w in caught if "c:1" in str(w.message)]) == 1  # reported once
    db = sqlite3.connect(path)
    db.text_factory = bytes
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 3
    assert db.execute("SELECT system_prompt FROM sessions WHERE id = 'a'").fetchone()[0] \
        == b"\xffA"
    db.close()


def test_text_written_later_by_another_tool_is_seen_by_an_open_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seed(path)
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        assert len(manager.list()) == 4
        raw(path, "UPDATE sessions SET metadata = '{\"k\": \"' || CAST(x'ff' AS TEXT) || '\"}' "
                  "WHERE id = 'd'")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert sorted(manager.list()) == ["a", "b", "c"]
            assert [e.session_id for e in manager.damaged()] == ["d"]


def test_damaged_reports_messages_only_python_refuses(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    seed(path)
    raw(path, "UPDATE messages SET extra = '{\"usage\": {\"input_tokens\": \"many\"}}' "
              "WHERE session_id = 'b' AND seq = 0",
              "UPDATE messages SET extra = '{\"duration_ms\": \"slow\"}' "
              "WHERE session_id = 'd' AND seq = 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
            entries = manager.damaged()
            assert [(e.session_id, e.location.rsplit(":", 1)[1]) for e in entries] == [
                ("b", "0"), ("d", "1")]
            assert "input_tokens" in entries[0].reason
            assert len(manager.resume("b").messages) == 1
            manager.damaged()
    assert len([w for w in caught if "#b:0" in str(w.message)]) == 1


# --- a read-only open creates nothing -----------------------------------------------------


READER = """
from claude_magic.manager import SessionManager
from claude_magic.storage import StorageBackend
manager = SessionManager.with_storage(StorageBackend.sqlite(PATH))
print(sorted(map(str, manager.list())), manager.resume("a").messages[0].content)
try:
    manager.create_session("new").build()
except Exception as exc:
    print(type(exc).__name__)
"""


@pytest.mark.parametrize("mode", [0o644, 0o444, 0o664])
def test_a_reader_that_cannot_write_creates_no_side_file(nobody_dir: Path, mode: int) -> None:
    path = nobody_dir / "s.db"
    seed(path, "ab")
    path.chmod(mode)
    result = run_as_nobody(READER.replace("PATH", repr(str(path))), cwd=nobody_dir)
    assert result.stdout.splitlines() == ["['a', 'b'] question a", "StorageError"], result.stderr
    assert sorted(p.name for p in nobody_dir.iterdir()) == ["s.db"]


def test_a_reader_uses_the_side_files_a_writer_left(nobody_dir: Path) -> None:
    path = nobody_dir / "s.db"
    seed(path, "ab")
    path.chmod(0o644)
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as writer:
        writer.append("a", Message("user", "while open"))  # -wal and -shm exist now
        result = run_as_nobody(READER.replace("PATH", repr(str(path))), cwd=nobody_dir)
        assert result.stdout.splitlines()[0] == "['a', 'b'] question a", result.stderr
        owners = {p.name: p.stat().st_uid for p in nobody_dir.iterdir()}
    assert set(owners.values()) == {0}, owners


# --- store specs ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["s3://bucket/sessions", "mysql://u:secret@h/db", "http://x",
                                  "memory://", "redis://localhost:6379/0"])
def test_an_unknown_scheme_is_one_line_listing_the_known_specs(tmp_path: Path, spec: str,
                                                                monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError) as info:
        StorageBackend.parse(spec)
    text = str(info.value)
    assert "\n" not in text and "secret" not in text
    for known in ("directory", "sqlite:///", "memory", "postgresql://"):
        assert known in text
    assert list(tmp_path.iterdir()) == []  # no folder named like the URL


@pytest.mark.parametrize("damage", [
    "UPDATE sessions SET metadata = 'not json' WHERE id = 'a'",
    "UPDATE sessions SET system_prompt = CAST(x'ff' AS TEXT) WHERE id = 'a'",
    "UPDATE sessions SET input_tokens = 1e30 WHERE id = 'a'",
])
def test_overwrite_never_replaces_a_damaged_row(tmp_path: Path, damage: str) -> None:
    from claude_magic.session import Session

    path = tmp_path / "s.db"
    seed(path)
    raw(path, damage)
    db = sqlite3.connect(path)
    db.text_factory = bytes
    before = db.execute("SELECT * FROM sessions WHERE id = 'a'").fetchall()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
            with pytest.raises(DamagedSession):
                manager.import_session(Session(id="a"), overwrite=True)
            with pytest.raises(DamagedSession):
                manager.create_session("a").overwrite().build()
    assert db.execute("SELECT * FROM sessions WHERE id = 'a'").fetchall() == before
    db.close()

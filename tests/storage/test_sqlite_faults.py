"""The OS refusing a SQLite write: a read-only file or folder, no permission, a full disk.

Each refused write is one ``StorageError`` line naming the file and the cause, and changes
nothing a later reader sees; reading a read-only store still works. Permission cases run as
``nobody`` (root ignores file modes); the full disk is a real small tmpfs.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from claude_magic.errors import StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend

from . import oslevel
from .oslevel import fill, run_as_nobody

full_disk = oslevel.full_disk  # fixtures: a small tmpfs, a folder nobody can use
nobody_dir = oslevel.nobody_dir


def seed(path: Path, *, sessions: int = 2) -> None:
    """A store with sessions ``s0``.. each holding one message, closed cleanly (as root)."""
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        for n in range(sessions):
            manager.create_session(f"s{n}").with_metadata("n", n).build()
            manager.append(f"s{n}", Message("user", f"question {n}"))


def dump(path: Path) -> list[tuple[object, ...]]:
    """Every session and message row, read with plain sqlite3 as an immutable file (so this
    reader, root, creates no ``-wal`` / ``-shm`` file that would make the folder writable)."""
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        rows = db.execute("SELECT id, metadata, updated_at, message_count FROM sessions "
                          "ORDER BY id").fetchall()
        rows += db.execute("SELECT session_id, seq, content FROM messages "
                           "ORDER BY session_id, seq").fetchall()
    db.close()
    return rows


#: Run as nobody: open the store, read it, try each write, print one line per outcome.
READ_AND_TRY_WRITES = """
import sys
from claude_magic.errors import StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message
try:
    manager = SessionManager.with_storage(SPEC)
except StorageError as exc:
    print("OPEN-REFUSED", exc)
    raise SystemExit(0)
print("LIST", sorted(map(str, manager.list())))
print("READ", manager.resume("s0").messages[0].content, manager.count())
writes = {
    "create": lambda: manager.create_session("new").build(),
    "append": lambda: manager.append("s0", Message("user", "more")),
    "update": lambda: manager.update("s0", metadata={"n": 99}),
    "mark": lambda: manager.mark("s0", 0, "error", "x"),
    "delete": lambda: manager.delete("s1"),
    "clear": lambda: manager.clear(),
}
for name, write in writes.items():
    try:
        write()
        print("WROTE", name)
    except StorageError as exc:
        print("REFUSED", name, str(exc).replace(chr(10), "<NL>"))
"""


def run_reader(spec: str, cwd: Path) -> list[str]:
    result = run_as_nobody(READ_AND_TRY_WRITES.replace("SPEC", repr(spec)), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def check_read_only_outcome(lines: list[str], path: Path, cause: str) -> None:
    assert lines[0] == "LIST ['s0', 's1']", lines
    assert lines[1] == "READ question 0 2", lines
    refused = [line for line in lines if line.startswith("REFUSED")]
    assert len(refused) == 6, lines  # every write refused, none half-done
    for line in refused:
        assert "<NL>" not in line and str(path) in line and cause in line, line


def test_a_read_only_file_is_read_and_every_write_refused(nobody_dir: Path) -> None:
    path = nobody_dir / "s.db"
    seed(path)
    path.chmod(0o444)
    before = dump(path)
    lines = run_reader(f"sqlite:///{path}", nobody_dir)
    check_read_only_outcome(lines, path, "read-only")
    assert dump(path) == before


def test_a_read_only_folder_is_read_and_every_write_refused(nobody_dir: Path) -> None:
    folder = nobody_dir / "ro"
    folder.mkdir()
    path = folder / "s.db"
    seed(path)
    path.chmod(0o666)  # the file itself is writable; its folder is not (no -wal, -shm)
    folder.chmod(0o555)
    before = dump(path)
    lines = run_reader(f"sqlite:///{path}", nobody_dir)
    check_read_only_outcome(lines, path, "read-only")
    assert sorted(p.name for p in folder.iterdir()) == ["s.db"]
    assert dump(path) == before


def test_a_file_nobody_may_read_is_one_line_naming_it(nobody_dir: Path) -> None:
    path = nobody_dir / "s.db"
    seed(path)
    path.chmod(0o600)  # root's; nobody can neither read nor write it
    lines = run_reader(f"sqlite:///{path}", nobody_dir)
    assert len(lines) == 1 and lines[0].startswith("OPEN-REFUSED"), lines
    assert str(path) in lines[0]


def test_a_new_database_in_a_folder_nobody_may_write(nobody_dir: Path) -> None:
    folder = nobody_dir / "locked"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)
    lines = run_reader(f"sqlite:///{folder / 'new.db'}", nobody_dir)
    assert len(lines) == 1 and lines[0].startswith("OPEN-REFUSED"), lines
    assert str(folder / "new.db") in lines[0] and "denied" in lines[0].lower(), lines
    assert list(folder.iterdir()) == []


def test_a_full_disk_refuses_writes_and_keeps_what_was_there(full_disk: Path) -> None:
    path = full_disk / "s.db"
    seed(path)
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as manager:
        before = dump(path)
        fill(full_disk)
        big = "x" * 200_000
        attempts = {
            "append": lambda: manager.append("s0", Message("user", big)),
            "create": lambda: manager.create_session("new").with_system_prompt(big).build(),
            "update": lambda: manager.update("s0", metadata={"big": big}),
        }
        for name, attempt in attempts.items():
            with pytest.raises(StorageError) as refused:
                attempt()
            text = str(refused.value)
            assert "\n" not in text and str(path) in text and "disk is full" in text, (name, text)
        assert dump(path) == before
        assert manager.resume("s0").messages[0].content == "question 0"
        os.remove(full_disk / "filler.bin")
        manager.append("s0", Message("user", "after freeing space"))  # the store still works
    with SessionManager.with_storage(StorageBackend.sqlite(path)) as reopened:
        assert [m.content for m in reopened.resume("s0").messages] == ["question 0",
                                                                        "after freeing space"]
        assert not reopened.exists("new")

"""What ``DamagedSession`` tells the user to do fits what holds the session: a file is moved
aside, a database row repaired with SQL; in both, deleting the session frees its id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from claude_magic.errors import DamagedSession
from claude_magic.manager import SessionManager


def test_a_damaged_file_is_moved_aside(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    with SessionManager(str(root)) as manager:
        manager.create_session("ok").build()
        (root / "broken.json").write_bytes(b"\x00 not JSON")
        with pytest.raises(DamagedSession) as caught:
            manager.get("broken")
        error = caught.value
        assert (error.session_id, error.kind) == ("broken", "file")
        assert str(root / "broken.json") in str(error)
        assert str(error).endswith("; move the file aside or delete the session to reuse its "
                                   "id")
        assert "\n" not in str(error) and "SQL" not in str(error)
        assert manager.delete("broken") is True  # as the advice says
        manager.create_session("broken").build()


def test_a_damaged_row_is_repaired_with_sql() -> None:
    error = DamagedSession("s", "postgresql://u@h/db", "unreadable row (bad time)", kind="row")
    assert str(error) == ("session 's' is damaged (unreadable row (bad time)) at "
                          "postgresql://u@h/db; repair the row with SQL (it is never "
                          "overwritten) or delete the session to reuse its id")
    assert error.kind == "row" and error.reason == "unreadable row (bad time)"


def test_a_damaged_sqlite_row_is_repaired_with_sql(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SessionManager(f"sqlite:///{path}") as manager:
        manager.create_session("broken").build()
        with sqlite3.connect(path) as db:  # another tool plants a time SQLite accepts
            db.execute("UPDATE sessions SET updated_at = '0001-01-01T00:00:00+14:00' "
                       "WHERE id = 'broken'")
        db.close()
        with pytest.raises(DamagedSession) as caught:
            manager.update("broken", metadata={"k": "v"})
        error = caught.value
        assert (error.session_id, error.kind) == ("broken", "row")
        assert str(error).endswith("; repair the row with SQL (it is never overwritten) or "
                                   "delete the session to reuse its id")
        assert "\n" not in str(error) and "move the file" not in str(error)
        assert manager.delete("broken") is True  # as the advice says
        manager.create_session("broken").build()

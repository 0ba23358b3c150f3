"""Rows planted by another tool with values SQL reads but Python refuses (a 5,000-digit integer,
a number past 64 bits, a float past its range, JSON nested deeper than 100): damaged entries,
reported once, left out of every listing, refused by writes, never removed by ``clear()``."""

from __future__ import annotations

import psycopg
import pytest

from claude_magic.errors import DamagedSession
from claude_magic.manager import SessionManager
from claude_magic.message import Message

PLANTED = {
    "huge-int": ('{"n": ' + "9" * 5000 + "}", "{}"),
    "big-int": ('{"n": 18446744073709551616}', "{}"),
    "huge-float": ("{}", '{"x": 1e400}'),
    "deep": ('{"a":' + "[" * 150 + "1" + "]" * 150 + "}", "{}"),
}
#: values that look suspicious to SQL (``plain`` false) but that Python reads: kept
FINE = {"long-text": ('{"phone": "12345678901234567890123"}', "{}"),
        "max-int": ('{"n": 9223372036854775807}', '{"e": 1.5e300}')}


def plant(url: str, rows: dict[str, tuple[str, str]]) -> None:
    with psycopg.connect(url, autocommit=True) as tool:
        for session_id, (metadata, settings) in rows.items():
            tool.execute("INSERT INTO claude_magic.sessions (id, metadata_json, settings_json, "
                         "created_at, updated_at) VALUES (%s, %s, %s, now(), now())",
                         (session_id, metadata, settings))


def test_values_python_refuses_are_damaged_entries(pg_url: str) -> None:
    with SessionManager.with_storage(pg_url) as manager:
        manager.create_session("good").with_metadata("k", 1).build()
        plant(pg_url, {**PLANTED, **FINE})
        with pytest.warns(Warning, match="damaged") as caught:
            listed = manager.list()
        assert sorted(listed) == ["good", "long-text", "max-int"]
        assert sum("huge-int" in str(w.message) for w in caught) == 1
        assert "5000 digits" in next(str(w.message) for w in caught if "huge-int" in
                                     str(w.message))
        assert manager.count() == 3
        assert sorted(s.id for s in manager.summaries()) == ["good", "long-text", "max-int"]
        columns = manager.summary_columns()
        assert sorted(columns.ids) == ["good", "long-text", "max-int"]
        assert manager.get("max-int").metadata == {"n": 2**63 - 1}
        assert {d.session_id for d in manager.damaged()} == set(PLANTED)
        for session_id in PLANTED:
            assert manager.exists(session_id)
            with pytest.raises(DamagedSession):
                manager.get(session_id)
            with pytest.raises(DamagedSession):
                manager.append(session_id, Message("user", "x"))
            with pytest.raises(DamagedSession):
                manager.update(session_id, metadata={"a": 1})
        assert manager.clear() == 3
        assert all(manager.exists(session_id) for session_id in PLANTED)
        assert manager.list() == [] and manager.count() == 0

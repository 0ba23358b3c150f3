"""The directory store's summary columns (what a DataFrame of sessions is built from) come
from ``.summaries.json`` while each header is unchanged, and from the header itself as soon
as it changes or when the cache is damaged: always what the headers hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claude_magic import SessionManager
from claude_magic.message import Message
from claude_magic.storage._headers import INDEX_REFRESH, SUMMARIES_NAME
from claude_magic.storage.base import SummaryColumns
from claude_magic.times import format_time


def as_rows(columns: SummaryColumns) -> list[tuple]:
    times = [[t if isinstance(t, str) else format_time(t) for t in column]
             for column in (columns.created_at, columns.updated_at)]
    return list(zip(columns.ids, columns.system_prompts, columns.metadata, *times,
                    columns.message_count, columns.turns, columns.input_tokens,
                    columns.output_tokens, columns.cost_usd, columns.last_model, strict=True))


def expected(manager: SessionManager) -> list[tuple]:
    return as_rows(SummaryColumns.of(manager.summaries()))


def age(root: Path) -> None:
    """Make every file older than the header cache's trust margin."""
    for path in root.iterdir():
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)


def test_columns_follow_the_headers_through_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "d"
    with SessionManager(str(root)) as manager:
        for number in range(INDEX_REFRESH + 6):
            sid = manager.create_session(f"s{number:03}").with_metadata("n", number).build().id
            manager.append(sid, Message("user", f"q{number}"))
    age(root)
    with SessionManager(str(root)) as manager:
        assert as_rows(manager.summary_columns()) == expected(manager)
    assert (root / SUMMARIES_NAME).is_file()  # written by that first read
    with SessionManager(str(root)) as manager:  # a fresh kernel: rows from the cache
        first = manager.summary_columns()
        assert as_rows(first) == expected(manager)
        first.metadata[0]["n"] = "changed by the caller"
        assert as_rows(manager.summary_columns()) == expected(manager)  # a copy each time
    # a header edited by hand: its (inode, mtime, size) key changes
    header = root / "s007.json"
    doc = json.loads(header.read_text())
    doc["system_prompt"] = "edited"
    header.unlink()
    header.write_text(json.dumps(doc))
    with SessionManager(str(root)) as manager:
        rows = as_rows(manager.summary_columns())
        assert rows == expected(manager)
        assert dict((r[0], r[1]) for r in rows)["s007"] == "edited"


@pytest.mark.parametrize("damage", ["not json", '{"format": "claude-magic/summaries", '
                                    '"version": 1, "entries": {"s001.json": [1, 2]}}'])
def test_a_damaged_cache_is_read_past(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "d"
    with SessionManager(str(root)) as manager:
        for number in range(INDEX_REFRESH + 2):
            manager.create_session(f"s{number:03}").build()
    age(root)
    with SessionManager(str(root)) as manager:
        manager.summary_columns()
    (root / SUMMARIES_NAME).write_text(damage)
    with SessionManager(str(root)) as manager:
        assert as_rows(manager.summary_columns()) == expected(manager)


def test_headers_younger_than_the_trust_margin_are_never_cached(tmp_path: Path) -> None:
    root = tmp_path / "d"
    with SessionManager(str(root)) as manager:
        for number in range(INDEX_REFRESH + 6):
            manager.create_session(f"s{number:03}").with_metadata("n", number).build()
        assert as_rows(manager.summary_columns()) == expected(manager)
        assert not (root / SUMMARIES_NAME).exists()  # just written: read each time instead
    with SessionManager(str(root)) as manager:
        assert as_rows(manager.summary_columns()) == expected(manager)

"""Directory store: hypothesis plants header files and message lines another tool could write.

Whatever is planted, reading never raises anything but ``DamagedSession`` for that one session,
a planted file is either a readable session or reported by ``damaged()``, and it is never
rewritten.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_magic.errors import DamagedSession
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend

SCALARS = (st.none() | st.booleans() | st.text(max_size=8)
           | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                              "2024-01-01T00:00:00Z", "not a time", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=12)
FIELDS = ("format", "version", "id", "system_prompt", "metadata", "settings", "created_at",
          "updated_at", "stats")
BASE = {"format": "claude-magic/session", "version": 1, "id": "planted",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
STATS = st.fixed_dictionaries({}, optional={
    name: VALUES | st.integers(min_value=-(2**64), max_value=2**64)
    for name in ("message_count", "turns", "input_tokens", "output_tokens", "cost_usd")})
HEADERS = st.builds(lambda changes, stats: {**BASE, **changes, "stats": stats},
                    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3),
                    STATS | VALUES)
LINES = st.lists(st.builds(lambda doc, seq: {"seq": seq, "role": "user", "content": "x", **doc},
                           st.dictionaries(st.sampled_from(
                               ["seq", "role", "content", "created_at", "status", "usage",
                                "cost_usd", "model"]), VALUES, max_size=2),
                           st.integers(min_value=-5, max_value=2**64)),
                 max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(header=HEADERS | VALUES, lines=LINES, raw=st.binary(max_size=40))
def test_planted_files_are_read_or_reported_never_fatal(header: object, lines: list[dict],
                                                        raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sessions"
        with SessionManager.with_storage(StorageBackend.file(root)) as manager:
            manager.create_session("good").build()
            manager.append("good", Message("user", "kept"))
        planted = {
            "planted.json": json.dumps(header).encode(),
            "planted.messages.jsonl": b"".join(json.dumps(x).encode() + b"\n" for x in lines)
            + raw + b"\n",
        }
        for name, data in planted.items():
            (root / name).write_bytes(data)
        with (SessionManager.with_storage(StorageBackend.file(root)) as manager,
              warnings.catch_warnings()):
            warnings.simplefilter("ignore")
            listed = manager.list()
            assert "good" in listed and set(listed) <= {"good", "planted"}
            assert [str(s.id) for s in manager.summaries()] == [str(i) for i in listed]
            assert manager.summary_columns().ids == [str(i) for i in listed]
            damaged = manager.damaged()
            try:
                session = manager.get("planted")
            except DamagedSession:
                session = None
            if "planted" not in listed:
                assert session is None
                if isinstance(header, dict) and header.get("format") == BASE["format"]:
                    assert any("planted.json" in d.location for d in damaged)
            assert manager.resume("good").messages[0].content == "kept"
        for name, data in planted.items():
            assert (root / name).read_bytes() == data

"""to_dataframe / messages_dataframe: columns, dtypes and values, on every store."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable

import pandas as pd
import pytest

from claude_magic import SessionNotFound
from claude_magic.export import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    messages_dataframe,
    text_dtype,
    to_dataframe,
)
from claude_magic.manager import SessionManager

UTC = "datetime64[us, UTC]"
TEXT = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"  # pandas 2: object
SESSION_DTYPES = {
    "id": TEXT, "created_at": UTC, "updated_at": UTC, "system_prompt": TEXT, "turns": "int64",
    "messages": "int64", "input_tokens": "int64", "output_tokens": "int64",
    "cost_usd": "float64", "model": TEXT,
}


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def test_sessions_frame_columns_dtypes_and_values(
        manager: SessionManager, filled: Callable[[SessionManager], list[str]]) -> None:
    ids = filled(manager)
    frame = manager.to_dataframe()
    assert list(frame.columns) == [*SESSION_COLUMNS, "meta.priority", "meta.project",
                                   "meta.ratio", "meta.reviewed", "meta.tags"]
    assert dtypes(frame) == {**SESSION_DTYPES, "meta.priority": "Int64", "meta.project": TEXT,
                             "meta.ratio": "float64", "meta.reviewed": "boolean",
                             "meta.tags": "object"}
    assert list(frame["id"]) == ids  # newest first, like the store
    row = frame.set_index("id").loc["s-new"]
    session = manager.resume("s-new")
    assert row["created_at"] == pd.Timestamp(session.created_at)
    assert row["updated_at"].tzname() == "UTC"
    assert row["turns"] == 3  # user messages
    assert row["messages"] == 7
    assert row["input_tokens"] == 100 + 101 + 102
    assert row["output_tokens"] == 20 + 21 + 22
    assert row["cost_usd"] == pytest.approx(0.0125 * 6)
    assert row["model"] == "claude-opus-4-1"
    assert row["system_prompt"] == "You review | pipes\nand lines."
    assert row["meta.tags"] == ["a", "b"]
    assert row["meta.ratio"] == 2.0
    empty = frame.set_index("id").loc["s-empty"]
    assert pd.isna(empty["meta.project"]) and pd.isna(empty["meta.priority"])
    assert pd.isna(empty["model"]) and pd.isna(empty["system_prompt"])
    assert empty["turns"] == 0 and empty["cost_usd"] == 0.0
    mid = frame.set_index("id").loc["s-mid"]
    assert mid["meta.priority"] == 10 and mid["turns"] == 2  # the failed prompt is a turn too


def test_frame_is_ready_for_analysis(manager: SessionManager,
                                     filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    frame = to_dataframe(manager)
    per_project = frame.groupby("meta.project")["cost_usd"].sum()
    assert per_project["web"] == pytest.approx(0.0125 * (1 + 2) + 0.0125 * (1 + 2 + 3))
    weekly = frame.set_index("created_at").resample("W")["turns"].sum()
    assert weekly.sum() == 2 + 2 + 3 + 0


def test_empty_store_gives_empty_frames_with_the_columns(manager: SessionManager) -> None:
    frame = to_dataframe(manager)
    assert frame.empty and list(frame.columns) == list(SESSION_COLUMNS)
    assert dtypes(frame) == SESSION_DTYPES
    messages = messages_dataframe(manager)
    assert messages.empty and list(messages.columns) == list(MESSAGE_COLUMNS)
    assert str(messages["created_at"].dtype) == UTC


def test_messages_frame_one_list_and_all(manager: SessionManager,
                                         filled: Callable[[SessionManager], list[str]]) -> None:
    ids = filled(manager)
    one = manager.messages_dataframe("s-mid")
    assert list(one.columns) == list(MESSAGE_COLUMNS)
    assert list(one["seq"]) == [0, 1, 2]
    assert list(one["role"]) == ["user", "assistant", "user"]
    assert list(one["status"]) == ["ok", "ok", "error"]
    assert one["error"].iloc[2] == "BackendTimeout: no answer in 600 s"
    assert math.isnan(one["cost_usd"].iloc[0]) and one["cost_usd"].iloc[1] == 0.0125
    assert dict(one.iloc[1][["input_tokens", "output_tokens", "cache_creation_input_tokens",
                              "cache_read_input_tokens"]]) == {
        "input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 7}
    assert dtypes(one) == {
        "session_id": TEXT, "seq": "int64", "role": TEXT, "content": TEXT,
        "created_at": UTC, "status": TEXT, "error": TEXT, "model": TEXT, "backend": TEXT,
        "input_tokens": "int64", "output_tokens": "int64",
        "cache_creation_input_tokens": "int64", "cache_read_input_tokens": "int64",
        "cost_usd": "float64", "stop_reason": TEXT, "duration_ms": "float64"}
    two = messages_dataframe(manager, ["s-old", "s-new"])
    assert list(two["session_id"]) == ["s-old"] * 4 + ["s-new"] * 7  # in the order asked
    everything = messages_dataframe(manager)
    assert list(dict.fromkeys(everything["session_id"])) == [i for i in ids if i != "s-empty"]
    assert len(everything) == 4 + 3 + 7


def test_missing_text_stays_missing_not_the_string_none(
        manager: SessionManager, filled: Callable[[SessionManager], list[str]]) -> None:
    filled(manager)
    assert text_dtype() == TEXT
    frame = to_dataframe(manager).set_index("id")
    assert list(frame["system_prompt"].isna()) == [True, False, False, True]  # newest first
    assert frame["meta.project"].isna().tolist() == [True, False, False, False]
    assert frame["model"].isna().tolist() == [True, False, False, False]
    messages = messages_dataframe(manager, "s-mid")
    assert messages["error"].isna().tolist() == [True, True, False]
    assert messages["stop_reason"].isna().tolist() == [True, False, True]
    for column in ("system_prompt", "model", "meta.project"):
        assert "None" not in frame[column].dropna().tolist()
    assert "None" not in frame.to_csv()
    assert "None" not in messages.to_csv()


def test_messages_frame_of_a_missing_session_raises(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFound, match="'nope' not found"):
        messages_dataframe(manager, ["nope"])


def test_dataframes_work_without_ipython_and_import_claude_magic_stays_light(tmp_path) -> None:
    code = (
        "import sys\n"
        "sys.modules['IPython'] = None  # any import of IPython now fails\n"
        "import claude_magic\n"
        "heavy = {'pandas', 'nbformat', 'ipywidgets'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        f"m = claude_magic.SessionManager({str(tmp_path / 'store')!r})\n"
        "m.create_session('a').with_metadata('k', 1).build()\n"
        "print(m.to_dataframe()['meta.k'].tolist(), len(m.messages_dataframe()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1] 0"

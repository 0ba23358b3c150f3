"""The directory store's append as a user meets it: one fsynced line, a header that counts the
messages file up to ``counted_bytes`` (readers count the rest), lean lines, stores written by
earlier versions, listing caches that see a grown file, and the lock's descriptor kept open."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from claude_magic.errors import StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage
from claude_magic.session import SessionId
from claude_magic.storage._headers import INDEX_NAME, INDEX_REFRESH, SUMMARIES_NAME
from claude_magic.storage._lines import FOLD_BYTES, expand
from claude_magic.storage.files import DirectoryStorage

from .oslevel import ROOT

HOUR_AGO = time.time() - 3600


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def header_of(root: Path, sid: str) -> dict[str, object]:
    return json.loads((root / f"{sid}.json").read_bytes())


def age(root: Path) -> None:
    """Make every file an hour old, as sessions written earlier are (caches trust them)."""
    for path in root.iterdir():
        os.utime(path, (HOUR_AGO, HOUR_AGO), follow_symlinks=False)


def test_an_append_writes_one_line_and_leaves_the_header(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        header = (tmp_path / "s.json").read_bytes()
        inode = (tmp_path / "s.json").stat().st_ino
        manager.append("s", Message("user", "q"))
        manager.append("s", Message("assistant", "a", model="m", usage=Usage(3, 4)))
        assert (tmp_path / "s.json").read_bytes() == header  # counted_bytes 0: all is tail
        assert (tmp_path / "s.json").stat().st_ino == inode
        stats = manager.summary("s").stats
        assert (stats.message_count, stats.turns, stats.input_tokens, stats.output_tokens,
                stats.last_model) == (2, 1, 3, 4, "m")
        assert manager.get("s").updated_at == manager.summary("s").updated_at
        assert manager.list() == ["s"] and manager.verify("s").ok


def test_lines_hold_only_what_is_not_a_default(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        plain = manager.append("s", Message("user", "q"))
        answer = manager.append("s", Message("assistant", "a", stop_reason="end_turn"))
        full = manager.append("s", Message(
            "assistant", "a", status="incomplete", error="cut", model="m", backend="b",
            usage=Usage(output_tokens=7), cost_usd=0.5, stop_reason=None, duration_ms=1.5,
            ids={"message_id": "msg_1"}))
        first, finished, second = lines_of(tmp_path / "s.messages.jsonl")
        assert set(first) == {"seq", "role", "content", "created_at", "hash"}
        assert set(finished) == set(first)  # an answer's stop reason is end_turn by default
        assert first["created_at"].endswith("Z") and first["hash"] == plain.ids["hash"]
        assert second["usage"] == {"output_tokens": 7}
        assert second["ids"] == {"message_id": "msg_1"} and second["stop_reason"] is None
        stored = manager.resume("s").messages
        assert stored == [plain, answer, full]  # every field back, the defaults filled in
        assert manager.fork("s", "t").messages == stored  # a fork copies them as they are


def test_updated_at_moves_forward_with_every_append(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        times = [manager.summary("s").updated_at]
        old = datetime(2001, 1, 1, tzinfo=timezone.utc)
        future = datetime.now(timezone.utc) + timedelta(days=3650)
        for created in (None, old, future, None):
            message = Message("user", "x") if created is None else Message("user", "x",
                                                                           created_at=created)
            stored = manager.append("s", message)
            times.append(manager.summary("s").updated_at)
            assert manager.get("s").updated_at == times[-1]
            if created is None:  # the message's own time: nothing more written
                assert times[-1] == stored.created_at
        assert times == sorted(set(times))  # strictly increasing
        assert times[-2] < future - timedelta(days=3000)  # never the message's future time
        written = lines_of(tmp_path / "s.messages.jsonl")
        assert ["at" in line for line in written] == [False, True, True, False]
        listed = manager.summary("s").updated_at
        manager.append("s", Message("user", "after the listing"))
        assert manager.storage.delete(SessionId("s"), if_updated_at=listed) is False
        assert manager.exists("s")


def test_the_header_is_rewritten_once_the_uncounted_lines_pass_the_limit(
        tmp_path: Path) -> None:
    text = "x" * 3000
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        rewrites, inode = 0, (tmp_path / "s.json").stat().st_ino
        for number in range(40):
            manager.append("s", Message("user", f"{number} {text}"))
            if (tmp_path / "s.json").stat().st_ino != inode:
                rewrites, inode = rewrites + 1, (tmp_path / "s.json").stat().st_ino
            counted = header_of(tmp_path, "s").get("counted_bytes", 0)
            data = (tmp_path / "s.messages.jsonl").read_bytes()
            assert len(data) - counted <= FOLD_BYTES
            assert counted == 0 or data[:counted].endswith(b"\n")
            with SessionManager(str(tmp_path)) as fresh:
                assert fresh.summary("s").stats.message_count == number + 1
        assert rewrites == 40 * 3000 // FOLD_BYTES  # about one rewrite per FOLD_BYTES


def test_a_hand_edited_messages_file_is_recounted(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        for text in ("one", "two", "three"):
            manager.append("s", Message("user", text))
        manager.update("s", metadata={"k": 1})  # the header counts all three lines now
        assert header_of(tmp_path, "s")["counted_bytes"] == (
            tmp_path / "s.messages.jsonl").stat().st_size
    path = tmp_path / "s.messages.jsonl"
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])  # two lines removed
    with SessionManager(str(tmp_path)) as manager:
        assert manager.summary("s").stats.message_count == 1
        assert manager.append("s", Message("user", "again")).seq == 1
        assert header_of(tmp_path, "s")["counted_bytes"] == path.stat().st_size  # recounted
        assert manager.summary("s").stats.message_count == 2


def old_store(root: Path, lag: bool) -> list[Message]:
    """A store as claude_magic before this format wrote it: a version-1 header whose totals
    count every line (or, with ``lag``, all but the last: a writer killed between its line
    and its header), lines holding every field, the chain hash inside ``ids``."""
    with SessionManager(str(root)) as manager:
        manager.create_session("s").with_metadata("k", "v").build()
        for text in ("q", "a", "q2"):
            manager.append("s", Message("user" if text != "a" else "assistant", text,
                                        usage=Usage(2, 3)))
        messages = manager.resume("s").messages
        updated = manager.summary("s").updated_at
    lines = [json.dumps(m.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
             for m in messages]
    (root / "s.messages.jsonl").write_text("".join(lines))
    counted = messages[:-1] if lag else messages
    header = {"format": "claude-magic/session", "version": 1, "id": "s",
              "system_prompt": None, "metadata": {"k": "v"}, "settings": {},
              "created_at": messages[0].created_at.isoformat(),
              "updated_at": updated.isoformat(),
              "stats": {"message_count": len(counted), "turns": 2 if not lag else 1,
                        "input_tokens": 2 * len(counted), "output_tokens": 3 * len(counted),
                        "cost_usd": 0.0, "last_model": None},
              "epoch": 12345}
    (root / "s.json").write_text(json.dumps(header, indent=2) + "\n")
    return messages


@pytest.mark.parametrize("lag", (False, True), ids=("in-step", "one-behind"))
def test_a_store_of_the_earlier_format_stays_readable_and_writable(tmp_path: Path,
                                                                   lag: bool) -> None:
    messages = old_store(tmp_path, lag)
    old_lines = (tmp_path / "s.messages.jsonl").read_bytes()
    with SessionManager(str(tmp_path)) as manager:
        assert manager.resume("s").messages == messages
        assert manager.list() == ["s"] and manager.damaged() == []
        assert manager.verify("s").ok
        assert manager.summary("s").stats.message_count == 3  # recounted when it lags
        manager.update("s", metadata={"k": "w"})
        stored = manager.append("s", Message("assistant", "a2", usage=Usage(1, 1)))
        assert stored.seq == 3 and manager.verify("s").ok
        stats = manager.summary("s").stats
        assert (stats.message_count, stats.turns, stats.input_tokens) == (4, 2, 7)
    header = header_of(tmp_path, "s")
    data = (tmp_path / "s.messages.jsonl").read_bytes()
    assert header["version"] == 2 and header["metadata"] == {"k": "w"}
    assert data.startswith(old_lines)  # the old lines are kept byte for byte
    assert header.get("counted_bytes", 0) <= len(data)
    with SessionManager(str(tmp_path)) as manager:
        assert [m.content for m in manager.resume("s").messages] == ["q", "a", "q2", "a2"]
        assert manager.summary("s").stats.message_count == 4


def test_a_version_this_store_does_not_know_is_refused_in_one_line(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
    header = header_of(tmp_path, "s")
    header["version"] = 3
    (tmp_path / "s.json").write_text(json.dumps(header))
    with SessionManager(str(tmp_path)) as manager, pytest.warns(Warning, match="upgrade"):
        assert manager.list() == []
        assert "version 3" in manager.damaged()[0].reason


def test_old_lines_hashes_and_marks_in_one_file(tmp_path: Path) -> None:
    old_store(tmp_path, lag=False)
    with SessionManager(str(tmp_path)) as manager:
        manager.append("s", Message("assistant", "lean"))
        manager.mark("s", 0, "error", "refused")
        manager.mark("s", 3, "error", "refused too")
        assert [m.status for m in manager.resume("s").messages] == ["error", "ok", "ok",
                                                                    "error"]
        assert manager.verify("s").ok
    first, *_, last = lines_of(tmp_path / "s.messages.jsonl")
    assert "hash" in first["ids"] and "hash" not in first  # kept where it was
    assert "hash" in last and last["status"] == "error"
    with SessionManager(str(tmp_path)) as manager:
        manager.mark("s", 3, "ok")
        assert "status" not in lines_of(tmp_path / "s.messages.jsonl")[-1]


APPEND_ELSEWHERE = """
    import os, signal, sys
    import claude_magic.storage.files
    from claude_magic.manager import SessionManager
    from claude_magic.message import Message
    if sys.argv[2] == "killed":  # right after the line is written, before anything else
        real, calls = os.utime, []
        def utime(*args, **kwargs):
            calls.append(args)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        os.utime = utime
    with SessionManager(sys.argv[1]) as manager:
        manager.append("s000", Message("assistant", "from another process", model="m"))
"""


@pytest.mark.parametrize("writer", ("done", "killed"))
def test_listing_caches_see_lines_appended_by_another_process(tmp_path: Path,
                                                               writer: str) -> None:
    count = INDEX_REFRESH + 6
    with SessionManager(str(tmp_path)) as manager:
        for number in range(count):
            manager.create_session(f"s{number:03}").build()
            manager.append(f"s{number:03}", Message("user", "q"))
    age(tmp_path)
    with SessionManager(str(tmp_path)) as manager:  # writes both caches
        newest = manager.list()[0]
        manager.summary_columns()
    assert (tmp_path / INDEX_NAME).exists() and (tmp_path / SUMMARIES_NAME).exists()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(APPEND_ELSEWHERE),
                           str(tmp_path), writer], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == (0 if writer == "done" else -signal.SIGKILL), done.stderr
    assert newest != "s000"
    with SessionManager(str(tmp_path)) as manager:
        assert manager.list()[0] == "s000"
        columns = manager.summary_columns()
        row = columns.ids.index("s000")
        assert columns.message_count[row] == 2 and columns.last_model[row] == "m"
        assert manager.summaries()[0].stats.message_count == 2


def test_the_lock_is_never_shared_with_a_forked_child(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path, lock_timeout=0.3)
    with SessionManager(storage) as manager:
        manager.create_session("s").build()  # the lock file is open from here on
        with storage._locked():
            pid = os.fork()
            if pid == 0:  # the child: its inherited descriptor must not count as the lock
                try:
                    manager.append("s", Message("user", "from the child"))
                except StorageError as exc:
                    os._exit(7 if "stayed locked" in str(exc) else 1)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
        assert manager.resume("s").messages == []


def test_a_lock_file_replaced_meanwhile_is_opened_again(tmp_path: Path) -> None:
    first = DirectoryStorage(tmp_path, lock_timeout=0.3)
    second = DirectoryStorage(tmp_path, lock_timeout=0.3)
    with first._locked():
        pass  # first keeps its descriptor of this .lock open
    (tmp_path / ".lock").unlink()
    with second._locked(), pytest.raises(StorageError, match="stayed locked"), \
            first._locked():  # second created and locked a new .lock
        pass
    with first._locked():  # free again: first finds the new file
        pass
    first.close()
    second.close()


def test_a_killed_appender_never_leaves_the_lock_held(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
    script = textwrap.dedent("""
        import os, signal, sys
        from claude_magic.manager import SessionManager
        from claude_magic.message import Message
        manager = SessionManager(sys.argv[1])
        real = os.fsync
        def fsync(fd):
            os.kill(os.getpid(), signal.SIGKILL)  # holding the lock, the line not synced
        os.fsync = fsync
        manager.append("s", Message("user", "killed"))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL, done.stderr
    storage = DirectoryStorage(tmp_path, lock_timeout=1)
    with SessionManager(storage) as manager:
        assert manager.append("s", Message("user", "next")).seq == 1
        assert manager.summary("s").stats.message_count == 2


def test_expand_reads_every_shape_a_line_has_had() -> None:
    lean = {"seq": 0, "role": "user", "content": "x", "created_at": "2026-01-01T00:00:00Z",
            "hash": "h", "usage": {"input_tokens": 1}}
    full = expand(lean)
    assert full["ids"] == {"hash": "h"} and full["status"] == "ok"
    assert full["usage"] == {"input_tokens": 1, "output_tokens": 0,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert full["created_at"] == "2026-01-01T00:00:00+00:00"
    assert Message.from_dict(full).created_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert expand([1, 2]) == [1, 2]


#: the last commit whose directory store wrote version-1 headers and full lines
PREVIOUS_FORMAT = "5ae3142fb779d7edfa32e47e2a729a968ceda7e5"

WRITE_OLD = """
    import sys
    from claude_magic.manager import SessionManager
    from claude_magic.message import Message, Usage
    with SessionManager(sys.argv[1]) as manager:
        manager.create_session("s").with_system_prompt("be brief").with_metadata("k", 1).build()
        for number in range(5):
            manager.append("s", Message("user", f"q{number}", model="m"))
            manager.append("s", Message("assistant", f"a{number}", model="m",
                                        usage=Usage(10, 20), cost_usd=0.01))
        manager.mark("s", 2, "error", "refused")
        manager.fork("s", "f")
    """

READ_NEW = """
    import json, sys, warnings
    from claude_magic.manager import SessionManager
    warnings.simplefilter("ignore")
    with SessionManager(sys.argv[1]) as manager:
        print(json.dumps({"list": manager.list(),
                          "damaged": [d.reason for d in manager.damaged()]}))
    """


def run_code(tree: Path, script: str, root: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(root)],
                          capture_output=True, text=True, timeout=120, cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_store_written_by_the_previous_code_is_read_and_written(tmp_path: Path) -> None:
    old = tmp_path / "old-code"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_FORMAT,
                              "claude_magic"], capture_output=True, check=True, timeout=60)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    root = tmp_path / "store"
    run_code(old, WRITE_OLD, root)
    assert header_of(root, "s")["version"] == 1
    old_lines = (root / "s.messages.jsonl").read_bytes()
    with SessionManager(str(root)) as manager:
        session = manager.resume("s")
        assert [m.content for m in session.messages] == [
            text for n in range(5) for text in (f"q{n}", f"a{n}")]
        assert session.messages[2].status == "error" and session.system_prompt == "be brief"
        stats = manager.summary("s").stats
        assert (stats.message_count, stats.turns, stats.input_tokens) == (10, 5, 50)
        assert manager.verify("s").ok and manager.verify("f").ok
        assert manager.damaged() == [] and sorted(manager.list()) == ["f", "s"]
        manager.append("s", Message("user", "from the new code"))
        manager.mark("s", 4, "error", "also refused")
        assert manager.verify("s").ok
        assert manager.summary("s").stats.message_count == 11
    assert header_of(root, "s")["version"] == 2
    lines = (root / "s.messages.jsonl").read_bytes().splitlines(keepends=True)
    assert lines[:4] == old_lines.splitlines(keepends=True)[:4]  # unmarked lines as they were
    # the previous code reports the new header as damaged, never misreads its totals
    out = json.loads(run_code(old, READ_NEW, root))
    assert out["list"] == ["f"] and any("upgrade claude_magic" in r for r in out["damaged"])


def test_two_store_objects_taking_turns_keep_one_chain(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as first, SessionManager(str(tmp_path)) as second:
        first.create_session("s").build()
        for number in range(6):  # each append follows the other object's
            (first if number % 2 else second).append("s", Message("user", f"m{number}"))
            if number == 3:
                first.mark("s", 0, "ok")  # a rewrite of both files in between
        assert [m.seq for m in first.resume("s").messages] == list(range(6))
        assert first.verify("s").ok and second.verify("s").ok
        assert second.summary("s").stats.message_count == 6


def test_where_a_header_time_cannot_be_set_the_header_is_rewritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_magic.storage import _dir_append

    monkeypatch.setattr(_dir_append, "_TOUCH_FD", False)  # as on Windows
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        for number in range(3):
            manager.append("s", Message("user", f"m{number}"))
            assert header_of(tmp_path, "s")["counted_bytes"] == (
                tmp_path / "s.messages.jsonl").stat().st_size
            assert header_of(tmp_path, "s")["stats"]["message_count"] == number + 1
        assert manager.verify("s").ok


@pytest.mark.parametrize("counted", ("12", -1, 2**63, 1.5, True, ""))
def test_a_header_with_an_impossible_counted_bytes_is_damaged(tmp_path: Path,
                                                              counted: object) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        manager.append("s", Message("user", "q"))
    header = header_of(tmp_path, "s")
    header["counted_bytes"] = counted
    (tmp_path / "s.json").write_text(json.dumps(header))
    with SessionManager(str(tmp_path)) as manager, pytest.warns(Warning, match="counted_bytes"):
        assert manager.list() == []
        assert "counted_bytes" in manager.damaged()[0].reason
        with pytest.raises(Exception, match="counted_bytes") as refused:
            manager.append("s", Message("user", "refused"))
        assert "\n" not in str(refused.value)


def test_a_line_with_an_unreadable_append_time_counts_at_its_creation(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path)) as manager:
        manager.create_session("s").build()
        manager.append("s", Message("user", "q"))
    path = tmp_path / "s.messages.jsonl"
    line = json.loads(path.read_bytes())
    line["at"] = "yesterday"
    path.write_text(json.dumps(line) + "\n")
    with SessionManager(str(tmp_path)) as manager:
        assert manager.summary("s").stats.message_count == 1
        assert manager.summary("s").updated_at == manager.resume("s").messages[0].created_at
        assert [m.content for m in manager.resume("s").messages] == ["q"]


def test_stores_dropped_without_close_leave_no_descriptor_open(tmp_path: Path) -> None:
    import gc

    before = len(os.listdir("/proc/self/fd"))
    for number in range(50):
        manager = SessionManager(str(tmp_path))  # never closed
        manager.create_session(f"s{number}").build()  # the lock's descriptor opens
        del manager
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before

"""Directory store: the OS refusing a write, planted impossible values, and races.

An operation that raised changed nothing a later reader can see, and its error is one line
naming the path and the cause. Faults are injected at each write step (``os.open`` — which
temp files and the lock use too —, ``os.write``, ``os.fsync``, ``os.replace``, ``os.link``,
``os.ftruncate``), and met for real on a full tmpfs and in a folder ``nobody`` cannot write.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from claude_magic.errors import ClaudeMagicError, StorageError, StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId
from claude_magic.storage import StorageBackend

from .oslevel import ROOT, fill, full_disk, nobody_dir, run_as_nobody  # noqa: F401

ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO, errno.EDQUOT)
STEPS = ("open", "write", "fsync", "replace", "link", "ftruncate")

OPS: dict[str, Callable[[SessionManager], object]] = {
    "create": lambda m: m.create_session("new").with_metadata("a", 1).build(),
    "overwrite": lambda m: m.import_session(
        Session(id=SessionId("s"), messages=[Message("user", "replaced")]), overwrite=True),
    "append": lambda m: m.append("s", Message("user", "more")),
    "append-new": lambda m: m.append("empty", Message("user", "first")),
    "update": lambda m: m.update("s", metadata={"k": "changed"}),
    "mark": lambda m: m.mark("s", 0, "error", "marked"),
    "fork": lambda m: m.fork("s", "copy"),
    "delete": lambda m: m.delete("s"),
}


def make_store(root: Path) -> None:
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        manager.create_session("s").with_metadata("k", "v").build()
        manager.append("s", Message("user", "q"))
        manager.append("s", Message("assistant", "a"))
        manager.create_session("empty").build()


def state(root: Path) -> tuple[dict[str, bytes], list[tuple[str, object, list[object]]]]:
    """The store's files (not temp files, index or lock) and what a new reader sees."""
    files = {p.name: p.read_bytes() for p in root.iterdir()
             if p.is_file() and not p.name.startswith((".tmp-", ".index", ".lock"))}
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        seen = [(str(s.id), s.metadata, [(m.content, m.status) for m in s.messages])
                for s in (manager.resume(i) for i in manager.list())]
        assert manager.damaged() == []
    return files, seen


class Fault:
    """Make ``os.<step>`` raise ``OSError(code)`` on its ``fail_at``-th call (0: only count)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, step: str, fail_at: int,
                 code: int) -> None:
        self.calls, self.fail_at, self.code = 0, fail_at, code
        self.real = getattr(os, step)
        monkeypatch.setattr(os, step, self)

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(self.code, os.strerror(self.code))
        return self.real(*args, **kwargs)


def run_with_fault(root: Path, operation: str, step: str, fail_at: int,
                   code: int) -> tuple[int, BaseException | None]:
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        manager.list()
        with pytest.MonkeyPatch.context() as patch:
            fault = Fault(patch, step, fail_at, code)
            try:
                OPS[operation](manager)
            except ClaudeMagicError as exc:
                return fault.calls, exc
    return fault.calls, None


@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
@pytest.mark.parametrize("operation", sorted(OPS))
def test_a_failed_write_step_changes_nothing(tmp_path: Path, operation: str,
                                             code: int) -> None:
    failures = 0
    for step in STEPS:
        counting = tmp_path / f"{step}-count"
        make_store(counting)
        calls, error = run_with_fault(counting, operation, step, 0, code)
        assert error is None
        for fail_at in range(1, calls + 1):
            root = tmp_path / f"{step}-{fail_at}"
            make_store(root)
            before = state(root)
            _, error = run_with_fault(root, operation, step, fail_at, code)
            if error is None:
                continue  # the step failed after the change was committed (a cleanup)
            failures += 1
            text = str(error)
            assert isinstance(error, StorageError), text
            assert "\n" not in text and os.strerror(code) in text and str(root) in text
            assert state(root) == before, (step, fail_at, text)
    assert failures > 0


def test_a_full_disk_refuses_writes_and_changes_nothing(full_disk: Path) -> None:  # noqa: F811
    root = full_disk / "sessions"
    make_store(root)
    fill(full_disk)
    before = state(root)
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        for operation in ("create", "update", "mark", "fork", "overwrite"):
            with pytest.raises(StorageError) as caught:
                OPS[operation](manager)
            text = str(caught.value)
            assert "No space left on device" in text and "\n" not in text and str(root) in text
        assert manager.resume("s").messages[1].content == "a"
    assert state(root) == before
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        # an append writes one line: stored, durably, where the file's last block has room,
        # else refused with nothing changed
        try:
            manager.append("s", Message("user", "more"))
        except StorageError as exc:
            assert "No space left on device" in str(exc) and "\n" not in str(exc)
            assert state(root) == before
        else:
            assert [m.content for m in manager.resume("s").messages] == ["q", "a", "more"]
            assert manager.summary("s").stats.message_count == 3
    (full_disk / "filler.bin").unlink()
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        count = manager.summary("s").stats.message_count
        assert manager.append("s", Message("user", "room again")).seq == count


READ_ONLY = """
    import json, sys
    from claude_magic.errors import StorageError
    from claude_magic.manager import SessionManager
    from claude_magic.message import Message
    manager = SessionManager.with_storage(sys.argv[1] if len(sys.argv) > 1 else {root!r})
    out = {{"list": manager.list(), "summaries": [s.id for s in manager.summaries()],
           "messages": [m.content for m in manager.resume("s").messages],
           "damaged": [str(d) for d in manager.damaged()], "errors": []}}
    for write in (lambda: manager.append("s", Message("user", "x")),
                  lambda: manager.create_session("new").build(),
                  lambda: manager.update("s", metadata={{"k": 2}}),
                  lambda: manager.delete("s")):
        try:
            write()
            out["errors"].append(None)
        except StorageError as exc:
            out["errors"].append(str(exc))
    print(json.dumps(out))
"""


@pytest.mark.parametrize("file_mode", (0o644, 0o666), ids=("files-read-only", "files-writable"))
def test_a_read_only_folder_reads_and_refuses_writes(nobody_dir: Path,  # noqa: F811
                                                     file_mode: int) -> None:
    root = nobody_dir / "sessions"
    make_store(root)
    for path in root.iterdir():
        path.chmod(file_mode)
    root.chmod(0o755)  # owned by root: nobody cannot create, rename or remove in it
    before = state(root)
    result = run_as_nobody(READ_ONLY.format(root=str(root)), cwd=nobody_dir)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["list"] == ["empty", "s"] and out["summaries"] == ["empty", "s"]
    assert out["messages"] == ["q", "a"] and out["damaged"] == []
    for text in out["errors"]:
        assert text is not None and "Permission denied" in text and "\n" not in text
    assert state(root) == before


# --- planted impossible values ------------------------------------------------------------

def header(**fields: object) -> dict[str, object]:
    doc = {"format": "claude-magic/session", "version": 1, "id": "bad",
           "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
           "metadata": {}, "stats": {"message_count": 0}}
    doc.update(fields)
    return doc


DEEP = "[" * 100_000 + "]" * 100_000
IMPOSSIBLE_HEADERS = {
    "time-overflows": json.dumps(header(updated_at="0001-01-01T00:00:00+14:00")),
    "created-overflows": json.dumps(header(created_at="9999-12-31T23:59:59-14:00")),
    "nested-100000": json.dumps(header())[:-1] + ', "metadata": {"x": ' + DEEP + "}}",
    "nested-300": json.dumps(header(metadata={"x": json.loads("[" * 300 + "]" * 300)})),
    "huge-int": json.dumps(header())[:-1] + ', "metadata": {"n": ' + "9" * 5000 + "}}",
    "int-past-64-bit": json.dumps(header(metadata={"n": 2**64})),
    "total-past-64-bit": json.dumps(header(stats={"message_count": 2**63})),
    "negative-total": json.dumps(header(stats={"turns": -1})),
    "cost-infinite": json.dumps(header())[:-1] + ', "stats": {"cost_usd": 1e999}}',
}


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE_HEADERS))
def test_a_header_with_impossible_values_is_damaged(tmp_path: Path, name: str) -> None:
    root = tmp_path / "sessions"
    make_store(root)
    planted = IMPOSSIBLE_HEADERS[name].encode()
    (root / "bad.json").write_bytes(planted)
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        with pytest.warns(StorageWarning, match="bad.json"):
            assert manager.list() == ["empty", "s"]
        assert [s.id for s in manager.summaries()] == ["empty", "s"]
        assert manager.summary_columns().ids == ["empty", "s"]
        assert len(manager.to_dataframe()) == 2
        assert [Path(d.location).name for d in manager.damaged()] == ["bad.json"]
        with pytest.raises(StorageError) as caught:
            manager.get("bad")
        assert "\n" not in str(caught.value)
        for write in (lambda: manager.append("bad", Message("user", "x")),
                      lambda: manager.update("bad", metadata={}),
                      lambda: manager.create_session("bad").build()):
            with pytest.raises(ClaudeMagicError):
                write()
    assert (root / "bad.json").read_bytes() == planted  # never overwritten


IMPOSSIBLE_LINES = {
    "time-overflows": '{"seq": 2, "role": "user", "content": "x", '
                      '"created_at": "0001-01-01T00:00:00+14:00"}',
    "nested-100000": '{"seq": 2, "role": "user", "content": ' + DEEP + "}",
    "huge-int": '{"seq": ' + "9" * 5000 + ', "role": "user", "content": "x"}',
    "usage-past-64-bit": '{"seq": 2, "role": "assistant", "content": "x", '
                         '"usage": {"input_tokens": ' + str(2**64) + "}}",
}


@pytest.mark.parametrize("name", sorted(IMPOSSIBLE_LINES))
def test_a_message_line_with_impossible_values_is_damaged(tmp_path: Path, name: str) -> None:
    root = tmp_path / "sessions"
    make_store(root)
    path = root / "s.messages.jsonl"
    with open(path, "ab") as handle:
        handle.write(IMPOSSIBLE_LINES[name].encode() + b"\n")
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        with pytest.warns(StorageWarning, match="s.messages.jsonl:3"):
            assert [m.content for m in manager.resume("s").messages] == ["q", "a"]
        assert [d.location.rsplit("/", 1)[-1] for d in manager.damaged()] == [
            "s.messages.jsonl:3"]
        assert manager.append("s", Message("user", "after")).seq >= 2
        assert [m.content for m in manager.resume("s").messages] == ["q", "a", "after"]


# --- races --------------------------------------------------------------------------------

def test_prune_never_deletes_a_session_updated_after_it_listed(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    make_store(root)
    with SessionManager.with_storage(StorageBackend.file(root)) as pruner, \
            SessionManager.with_storage(StorageBackend.file(root)) as other:
        listed = pruner.summary("s")
        other.append("s", Message("user", "just now"))  # another process, after the listing
        assert pruner.storage.delete(SessionId("s"), if_updated_at=listed.updated_at) is False
        assert len(pruner.resume("s").messages) == 3
        current = pruner.summary("s").updated_at
        assert pruner.storage.delete(SessionId("s"), if_updated_at=current) is True
        assert pruner.storage.delete(SessionId("missing"), if_updated_at=current) is False


KILLED_APPEND = """
    import os, signal, sys
    import claude_magic.storage._dir_append as dir_append
    from claude_magic.manager import SessionManager
    from claude_magic.message import Message
    kill_at = sys.argv[2]
    if kill_at == "before-header":
        dir_append.FOLD_BYTES = 0  # this append rewrites the header too
    real = {name: getattr(os, name) for name in ("write", "fsync", "replace", "utime")}
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    def write(fd, data):
        if kill_at == "mid-line":  # half the line reaches the file
            real["write"](fd, bytes(data)[: len(data) // 2])
            die()
        return real["write"](fd, data)
    touched = []
    def utime(*args, **kwargs):
        touched.append(args)
        if kill_at == "before-line" and len(touched) == 1:  # the header's time is set
            die()
        if kill_at == "after-line" and len(touched) == 2:  # the line is written
            die()
        return real["utime"](*args, **kwargs)
    def fsync(fd):
        if kill_at == "before-fsync":
            die()
        return real["fsync"](fd)
    def replace(src, dst, *args, **kwargs):
        if kill_at == "before-header" and str(dst).endswith("s.json"):
            die()  # the line is stored, the header counting it is not
        return real["replace"](src, dst, *args, **kwargs)
    manager = SessionManager.with_storage(sys.argv[1])
    manager.resume("s")
    os.write, os.fsync, os.replace, os.utime = write, fsync, replace, utime
    manager.append("s", Message("user", "from a killed writer"))
"""

KILLS = ("mid-line", "before-line", "after-line", "before-fsync", "before-header",
         "before-header", "mid-line")


def test_writers_killed_at_each_step_leave_exact_totals(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    make_store(root)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = textwrap.dedent(KILLED_APPEND)
    path = root / "s.messages.jsonl"
    for kill_at in KILLS:
        done = subprocess.run([sys.executable, "-c", code, str(root), kill_at], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == -signal.SIGKILL, done.stderr
        complete = path.read_bytes().count(b"\n")
        json.loads((root / "s.json").read_bytes())  # the header is whole, old or new
        with SessionManager.with_storage(StorageBackend.file(root)) as manager:
            messages = manager.resume("s").messages
            assert [m.seq for m in messages] == list(range(complete)), kill_at
            assert manager.summary("s").stats.message_count == complete, kill_at
            listed = {summary.id: summary for summary in manager.summaries()}
            assert listed["s"].stats.message_count == complete, kill_at
            assert manager.damaged() == []
    assert complete == 6  # two answers and the four complete lines of killed writers
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        assert manager.append("s", Message("user", "next")).seq == 6  # the torn line is cut
        assert manager.summary("s").stats.message_count == 7
        assert manager.verify("s").ok

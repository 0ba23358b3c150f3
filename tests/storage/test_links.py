"""Directory store: links, FIFOs, sockets and directories planted at the store's names.

A session folder is shared space, so each planted entry is a damaged entry: never read through,
written through, truncated or followed, reported once by ``damaged()`` and skipped; listing
never blocks on a FIFO. Each test also checks that the link's target, outside the store, is
untouched.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from claude_magic.errors import ClaudeMagicError, DamagedSession, StorageError, StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.session import Session, SessionId
from claude_magic.storage import StorageBackend
from claude_magic.storage._headers import INDEX_REFRESH

KINDS = ("link-file", "link-dir", "dangling", "fifo", "socket", "directory")
SESSION_NAMES = ("victim.json", "victim.messages.jsonl")
SECRET = b'{"format": "claude-magic/session", "version": 1, "id": "victim", "secret": 1}\n'


@pytest.fixture(autouse=True)
def never_hang() -> Iterator[None]:
    """A blocked open (a FIFO without O_NONBLOCK) fails the test in seconds, not minutes."""
    def stuck(signum: int, frame: object) -> None:
        raise TimeoutError("the store blocked on a planted entry")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside the store that planted links point at."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "target.json").write_bytes(SECRET)
    (path / "subdir").mkdir()
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


def snapshot(directory: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry's (mode, bytes of regular files), without following links."""
    out = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[str(path.relative_to(directory))] = (stat.S_IFMT(st.st_mode), data)
    return out


def plant(path: Path, kind: str, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put a link, FIFO, socket or directory at ``path`` (replacing what is there)."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "link-file":
        path.symlink_to(outside / "target.json")
    elif kind == "link-dir":
        path.symlink_to(outside / "subdir")
    elif kind == "dangling":
        path.symlink_to(outside / "missing.json")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        monkeypatch.chdir(path.parent)  # a socket path must be short: bind the bare name
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path.name)
        server.close()
    else:
        path.mkdir()


@pytest.fixture
def store(root: Path) -> Iterator[SessionManager]:
    with SessionManager.with_storage(StorageBackend.file(root)) as manager:
        for session_id in ("good", "victim"):
            manager.create_session(session_id).with_metadata("k", session_id).build()
            manager.append(session_id, Message("user", f"{session_id} question"))
            manager.append(session_id, Message("assistant", f"{session_id} answer"))
        yield manager


def fresh(root: Path) -> SessionManager:
    return SessionManager.with_storage(StorageBackend.file(root))


def damaged_by_name(manager: SessionManager) -> dict[str, str]:
    return {Path(e.location).name: e.reason for e in manager.damaged()}


REASONS = {"link-file": "symbolic link", "link-dir": "symbolic link", "dangling": "symbolic link",
           "fifo": "FIFO", "socket": "socket", "directory": "directory"}


@pytest.mark.parametrize("name", SESSION_NAMES)
@pytest.mark.parametrize("kind", KINDS)
def test_reads_skip_and_report_a_planted_entry(store: SessionManager, root: Path,
                                               outside: Path, name: str, kind: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plant(root / name, kind, outside, monkeypatch)
    before = snapshot(outside)
    with fresh(root) as manager, pytest.warns(StorageWarning, match="victim"):
        assert manager.list() == ["good"]
        assert [s.id for s in manager.summaries()] == ["good"]
        assert manager.summary_columns().ids == ["good"]
        assert list(manager.to_dataframe()["id"]) == ["good"]
        assert manager.count() == 1
        found = damaged_by_name(manager)
        assert list(found) == [name] and REASONS[kind] in found[name]
        assert manager.damaged() == manager.damaged()  # reported once, stable
        with pytest.raises(DamagedSession, match=REASONS[kind]) as caught:
            manager.get("victim")
        assert "\n" not in str(caught.value) and name in str(caught.value)
        with pytest.raises(DamagedSession):
            manager.summary("victim")
        assert manager.resume("good").messages[1].content == "good answer"
    assert snapshot(outside) == before


def _writes() -> dict[str, Callable[[SessionManager], object]]:
    return {
        "create": lambda m: m.import_session(Session(id=SessionId("victim")), overwrite=True),
        "create-new": lambda m: m.create_session("victim").build(),
        "append": lambda m: m.append("victim", Message("user", "more")),
        "update": lambda m: m.update("victim", metadata={"k": "changed"}),
        "mark": lambda m: m.mark("victim", 0, "error", "x"),
        "fork-from": lambda m: m.fork("victim", "copy"),
        "fork-into": lambda m: m.fork("good", "victim"),
        "import": lambda m: m.import_session(Session(id=SessionId("victim"),
                                                     messages=[Message("user", "imported")]),
                                             overwrite=True),
    }


WRITES = _writes()


@pytest.mark.parametrize("operation", sorted(WRITES))
@pytest.mark.parametrize("name", SESSION_NAMES)
@pytest.mark.parametrize("kind", KINDS)
def test_writes_refuse_to_replace_a_planted_entry(store: SessionManager, root: Path,
                                                  outside: Path, name: str, kind: str,
                                                  operation: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    plant(root / name, kind, outside, monkeypatch)
    before, store_before = snapshot(outside), snapshot(root)
    with fresh(root) as manager, pytest.warns(StorageWarning):
        manager.list()
        with pytest.raises(ClaudeMagicError) as caught:
            WRITES[operation](manager)
        text = str(caught.value)
        assert "\n" not in text
        if operation != "create-new":  # an existing name: SessionExists says so
            assert isinstance(caught.value, StorageError) and name in text
        assert manager.list() == ["good"]
    assert snapshot(outside) == before
    assert snapshot(root) == store_before  # nothing written, renamed or truncated


@pytest.mark.parametrize("name", SESSION_NAMES)
@pytest.mark.parametrize("kind", ("link-file", "link-dir", "dangling", "fifo", "socket"))
def test_delete_removes_the_entry_never_its_target(store: SessionManager, root: Path,
                                                   outside: Path, name: str, kind: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plant(root / name, kind, outside, monkeypatch)
    before = snapshot(outside)
    with fresh(root) as manager, pytest.warns(StorageWarning):
        manager.list()
        assert manager.exists("victim")
        assert manager.delete("victim") is True
        assert manager.damaged() == [] and manager.list() == ["good"]
    assert not os.path.lexists(root / "victim.json")
    assert not os.path.lexists(root / "victim.messages.jsonl")
    assert snapshot(outside) == before


@pytest.mark.parametrize("name", SESSION_NAMES)
def test_delete_refuses_a_directory(store: SessionManager, root: Path, name: str,
                                    outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plant(root / name, "directory", outside, monkeypatch)
    (root / name / "keep.txt").write_text("mine")
    store_before = snapshot(root)
    with fresh(root) as manager, pytest.raises(DamagedSession, match="directory"):
        manager.delete("victim")
    assert snapshot(root) == store_before


@pytest.mark.parametrize("kind", KINDS)
def test_clear_and_prune_leave_planted_entries(store: SessionManager, root: Path,
                                               outside: Path, kind: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plant(root / "victim.json", kind, outside, monkeypatch)
    plant(root / "other.messages.jsonl", kind, outside, monkeypatch)
    before = snapshot(outside)
    with fresh(root) as manager, pytest.warns(StorageWarning):
        assert manager.prune(timedelta(microseconds=1)) == ["good"]
        manager.create_session("again").build()
        assert manager.clear() == 1
        assert {Path(e.location).name for e in manager.damaged()} == {
            "victim.json", "other.messages.jsonl"}
    assert os.path.lexists(root / "victim.json")
    assert os.path.lexists(root / "other.messages.jsonl")
    assert snapshot(outside) == before


@pytest.mark.parametrize("name", (".index.json", ".tmp-planted", ".search.sqlite",
                                  ".search.sqlite-wal"))
@pytest.mark.parametrize("kind", KINDS)
def test_planted_index_or_temp_entry_is_reported_and_left(store: SessionManager, root: Path,
                                                          outside: Path, name: str, kind: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    plant(root / name, kind, outside, monkeypatch)
    os.utime(root / name, (1, 1), follow_symlinks=False)  # old as a killed writer's leftover
    before, mode = snapshot(outside), (root / name).lstat()
    with fresh(root) as manager, pytest.warns(StorageWarning, match=name):
        for number in range(INDEX_REFRESH + 1):  # enough for the index to be saved
            manager.create_session(f"s{number}").build()
        assert len(manager.list()) == INDEX_REFRESH + 3
        assert manager.get("good").messages[0].content == "good question"
        assert list(damaged_by_name(manager)) == [name]
        assert [h.session_id for h in manager.search("good question")] == ["good"]
        manager.append("good", Message("user", "still writable"))
        manager.delete("s0")
    with fresh(root) as manager, pytest.warns(StorageWarning):
        assert len(manager.list()) == INDEX_REFRESH + 2
    after = (root / name).lstat()
    assert (after.st_ino, after.st_mode) == (mode.st_ino, mode.st_mode)  # left alone
    assert snapshot(outside) == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_lock_refuses_writes_but_reads_work(store: SessionManager, root: Path,
                                                      outside: Path, kind: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    plant(root / ".lock", kind, outside, monkeypatch)
    before = snapshot(outside)
    with fresh(root) as manager, pytest.warns(StorageWarning, match=r"\.lock"):
        assert sorted(manager.list()) == ["good", "victim"]
        assert manager.get("victim").messages[1].content == "victim answer"
        with pytest.raises(StorageError, match=r"\.lock") as caught:
            manager.append("good", Message("user", "x"))
        assert "\n" not in str(caught.value)
        with pytest.raises(StorageError, match=r"\.lock"):
            manager.create_session("new").build()
        assert list(damaged_by_name(manager)) == [".lock"]
    assert snapshot(outside) == before
    assert len(fresh(root).resume("good").messages) == 2


def test_a_linked_store_root_is_the_users_choice(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with SessionManager.with_storage(StorageBackend.file(tmp_path / "link")) as manager:
        manager.create_session("s").build()
        manager.append("s", Message("user", "hi"))
        assert manager.list() == ["s"] and manager.damaged() == []
    assert (real / "s.json").is_file()


def test_a_header_swapped_for_a_link_to_a_valid_session_is_not_followed(
        store: SessionManager, root: Path, outside: Path) -> None:
    """The link's target is a readable session header: following it would list it."""
    target = outside / "victim.json"
    target.write_bytes((root / "victim.json").read_bytes())
    (root / "victim.json").unlink()
    (root / "victim.json").symlink_to(target)
    with fresh(root) as manager, pytest.warns(StorageWarning):
        assert manager.list() == ["good"]
        assert json.loads(target.read_bytes())["id"] == "victim"

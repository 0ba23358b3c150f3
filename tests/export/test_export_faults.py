"""Exports and imports against a hostile file system: FIFOs, links, devices and huge files
to import; read-only folders, full disks and planted links at an export's destination."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from claude_magic.errors import ClaudeMagicError
from claude_magic.export import (
    InvalidExport,
    export_session,
    import_session_file,
    sessions_export,
)
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.testing.shell import TestingShell

from ..storage import oslevel

nobody_dir = oslevel.nobody_dir
full_disk = oslevel.full_disk


@pytest.fixture
def filled() -> SessionManager:
    manager = SessionManager()
    manager.create_session("s1").with_system_prompt("be brief").build()
    manager.append("s1", Message("user", "hello"))
    manager.append("s1", Message("assistant", "hi"))
    return manager


# --- import: only a regular file, never through a link, never blocking -------------------


def _plant(tmp_path: Path, kind: str, good: Path) -> Path:
    path = tmp_path / "in.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        path.symlink_to(good)
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere.json")
    elif kind == "directory":
        path.mkdir()
    elif kind == "huge":
        with open(path, "wb") as file:
            file.truncate((1 << 30) + 1)  # sparse: never read whole
    return path


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "symlink", "dangling symlink", "directory", "huge"])
def test_import_refuses_what_is_not_a_regular_file(tmp_path: Path, filled: SessionManager,
                                                   kind: str) -> None:
    good = export_session(filled, "s1", "json", tmp_path / "good.json")
    target = SessionManager()
    path = _plant(tmp_path, kind, good)
    with pytest.raises(InvalidExport) as info:
        import_session_file(target, path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert target.list() == []
    assert import_session_file(target, good).id == "s1"  # the real file imports


@pytest.mark.timeout(20)
def test_import_from_a_device_is_one_line(filled: SessionManager) -> None:
    with pytest.raises(InvalidExport, match="not a regular file"):
        import_session_file(filled, "/dev/zero")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "symlink", "huge"])
def test_the_import_command_uses_the_library_guard(tmp_path: Path, filled: SessionManager,
                                                   kind: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    good = export_session(filled, "s1", "json", tmp_path / "good.json")
    path = _plant(tmp_path, kind, good)
    shell = TestingShell.fresh()
    try:
        shell.run_cell(f"%load_ext claude_magic\n%claude_session storage {tmp_path / 'st'}")
        capsys.readouterr()
        with pytest.raises(ClaudeMagicError):
            shell.run_cell(f"%claude_session import {path}")
        shown = capsys.readouterr().out.strip().splitlines()
        assert len(shown) == 1 and str(path) in shown[0], shown
        shell.run_cell(f"%claude_session import {good}")
        assert "Imported session s1" in capsys.readouterr().out
    finally:
        shell.run_cell("%unload_ext claude_magic")
        TestingShell.discard()


# --- export: the destination, not the temp file; nothing half-written --------------------


WRITE_AS_NOBODY = """
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.export import export_session, sessions_export
m = SessionManager()
m.create_session("s1").build()
m.append("s1", Message("user", "hello"))
for call in (lambda: export_session(m, "s1", "md", TARGET),
             lambda: sessions_export(m, "csv", TARGET)):
    try:
        call()
        print("WROTE")
    except OSError as exc:
        print(type(exc).__name__, exc.filename, exc.strerror)
"""


def test_a_refused_export_names_the_destination_and_leaves_the_old_file(
        nobody_dir: Path) -> None:
    folder = nobody_dir / "readonly"
    folder.mkdir()
    old = folder / "s1.md"
    old.write_text("old export\n")
    folder.chmod(0o555)
    code = WRITE_AS_NOBODY.replace("TARGET", repr(str(old)))
    result = oslevel.run_as_nobody(code, cwd=nobody_dir)
    lines = result.stdout.splitlines()
    assert lines == [f"PermissionError {old} Permission denied"] * 2, result.stderr
    assert old.read_text() == "old export\n"
    assert sorted(p.name for p in folder.iterdir()) == ["s1.md"]


def test_an_export_to_a_full_disk_names_the_destination(full_disk: Path,
                                                        filled: SessionManager) -> None:
    filled.append("s1", Message("user", "x" * 200_000))
    old = full_disk / "s1.json"
    old.write_text("old export\n")
    oslevel.fill(full_disk)
    for call in (lambda: export_session(filled, "s1", "json", old),
                 lambda: sessions_export(filled, "csv", old)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.filename == str(old) and ".tmp" not in str(info.value)
    assert old.read_text() == "old export\n"
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler.bin", "s1.json"]


def test_the_magic_shows_a_refused_export_in_one_line(nobody_dir: Path) -> None:
    folder = nobody_dir / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    code = f"""
from claude_magic.testing.shell import TestingShell
shell = TestingShell.fresh()
shell.run_cell("%load_ext claude_magic")
shell.run_cell("%claude_session storage memory")
shell.run_cell("%claude_session new s1")
try:
    shell.run_cell("%claude_session export s1 --format md --out {folder}/s1.md")
except Exception as exc:
    print("CAUGHT", type(exc).__name__, str(exc))
"""
    result = oslevel.run_as_nobody(code, cwd=nobody_dir)
    shown = [line for line in result.stdout.splitlines() if "PermissionError" in line]
    caught = [line for line in result.stdout.splitlines() if line.startswith("CAUGHT")]
    assert len(shown) == 1 and len(caught) == 1, (result.stdout, result.stderr)
    assert caught[0].startswith("CAUGHT MagicError %claude_session export: permission denied")
    assert f"{folder}/s1.md" in shown[0] and ".tmp-" not in result.stdout
    assert list(folder.iterdir()) == []


# --- a planted link at the destination is replaced, never written through ----------------


@pytest.mark.parametrize("fmt", ["md", "json", "ipynb", "csv"])
def test_an_export_replaces_a_planted_link_not_its_target(tmp_path: Path,
                                                          filled: SessionManager,
                                                          fmt: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim.chmod(0o600)
    link = tmp_path / f"s1.{fmt}"
    link.symlink_to(victim)
    written = export_session(filled, "s1", fmt, tmp_path)
    assert written == link and not link.is_symlink() and link.is_file()
    assert victim.read_text() == "precious"
    mask = os.umask(0)
    os.umask(mask)
    assert link.stat().st_mode & 0o777 == 0o666 & ~mask  # a new file's mode, not the target's


def test_a_dangling_link_counts_as_an_existing_file(tmp_path: Path,
                                                   filled: SessionManager) -> None:
    link = tmp_path / "s1.md"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        export_session(filled, "s1", "md", link, overwrite=False)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.mark.timeout(20)
def test_an_export_over_a_fifo_replaces_it_without_hanging(tmp_path: Path,
                                                           filled: SessionManager) -> None:
    fifo = tmp_path / "s1.md"
    os.mkfifo(fifo)
    assert export_session(filled, "s1", "md", fifo) == fifo
    assert fifo.is_file() and "Claude session" in fifo.read_text()

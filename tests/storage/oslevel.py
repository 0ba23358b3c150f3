"""Real OS conditions for the fault tests: a full file system and an unprivileged user.

CI runs as root, which ignores file modes, so permission cases run in a child process as
``nobody`` (``setpriv``); a full disk is a small ``tmpfs`` mounted for the test. Both need
root: without it the tests that use them fail (they never skip what they claim to test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"{what} needs root (CI runs as root); run the tests as root")


@contextlib.contextmanager
def small_tmpfs(size_kib: int = 512) -> Iterator[Path]:
    """A fresh ``tmpfs`` of ``size_kib`` KiB, unmounted afterwards: writes past it get ENOSPC."""
    require_root("mounting a small tmpfs")
    mount = Path(tempfile.mkdtemp(prefix="cm-tmpfs-"))
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0777",
                             "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        mount.rmdir()
        pytest.fail(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()


def fill(directory: Path) -> None:
    """Fill the file system of ``directory`` until a write gets ``ENOSPC``."""
    fd = os.open(directory / "filler.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@pytest.fixture
def full_disk() -> Iterator[Path]:
    """A directory on a small tmpfs (fill it with :func:`fill` once the store is set up)."""
    with small_tmpfs() as mount:
        yield mount


def shared_dir(prefix: str = "cm-nobody-") -> Path:
    """A directory outside pytest's private ``tmp_path`` (mode 0700) that ``nobody`` can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o777)
    return path


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A world-writable scratch directory for :func:`run_as_nobody`, removed afterwards."""
    path = shared_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_as_nobody(code: str, *, cwd: Path | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as user ``nobody`` with this interpreter and this checkout on
    ``sys.path``; returns the finished process (stdout, stderr, returncode)."""
    require_root("switching to user nobody")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv is missing (Debian's util-linux)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd or "/tmp"),
           "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    return subprocess.run(
        [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

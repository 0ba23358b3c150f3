"""The shipped TestingShell leaves nothing behind for the interpreter's exit."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from claude_magic.testing.shell import TestingShell


def test_discarded_shell_is_freed(store_dir: Path) -> None:
    """IPython registers each shell with atexit; a discarded shell must not stay alive until
    exit (each one is reset there with a full garbage collection: a slow pytest exit)."""
    shell = TestingShell.fresh()
    shell.run_cell("%load_ext claude_magic")
    shell.run_cell("%claude_session new kept")
    shell.run_cell("%unload_ext claude_magic")
    ref = weakref.ref(shell)
    del shell
    TestingShell.discard()
    gc.collect()
    assert ref() is None


def test_fresh_closes_the_previous_shell(store_dir: Path) -> None:
    first = TestingShell.fresh()
    ref = weakref.ref(first)
    del first
    second = TestingShell.fresh()
    gc.collect()
    assert ref() is None
    assert TestingShell.instance() is second
    TestingShell.discard()

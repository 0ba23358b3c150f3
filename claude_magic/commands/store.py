"""Which store a front end opens: the default rule, specs made absolute, a readable check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .boundary import magic_errors

if TYPE_CHECKING:
    from ..manager import SessionManager

STORAGE_ENV = "CLAUDE_MAGIC_STORAGE"
DEFAULT_DIRECTORY = ".claude_sessions"



def default_storage(notebook_dir: Path) -> str:
    """``$CLAUDE_MAGIC_STORAGE``, else ``.claude_sessions/`` beside the notebook (absolute)."""
    from_env = os.environ.get(STORAGE_ENV, "").strip()
    if from_env:
        return from_env
    return str(notebook_dir / DEFAULT_DIRECTORY)


def terminal_storage(folder: Path) -> str:
    """The terminal's default: the folder's ``.claude_sessions/`` when it exists (the store
    of the notebooks beside it), else ``$CLAUDE_MAGIC_STORAGE``, else ``.claude_sessions/``."""
    local = folder / DEFAULT_DIRECTORY
    if local.is_dir():
        return str(local)
    return default_storage(folder)


def absolute_spec(spec: str) -> str:
    """Resolve a relative directory or ``sqlite:///`` path now, so ``%cd`` cannot move it.

    A ``scheme://`` the stores do not know is refused by :meth:`StorageBackend.parse`.
    """
    from ..storage import StorageBackend

    backend = StorageBackend.parse(spec)
    if backend.kind not in ("file", "sqlite") or backend.path is None:
        return str(backend)  # memory, or a server's URL
    resolved = os.path.abspath(Path(backend.path).expanduser())  # a link stays a link
    return str(StorageBackend(backend.kind, resolved))


def open_readable(spec: str, tb_hint: str | None = None) -> SessionManager:
    """A manager on ``spec`` whose store could be opened and read, else a one-line error."""
    from ..manager import SessionManager

    hint = {} if tb_hint is None else {"tb_hint": tb_hint}
    with magic_errors(f"cannot use the store {spec}", **hint):
        manager = SessionManager.with_storage(spec)
    try:
        with magic_errors(f"cannot read the store {spec}", **hint):
            manager.list()
            manager.damaged()
    except BaseException:
        manager.close()
        raise
    return manager

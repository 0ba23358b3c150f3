"""Operations beyond the :class:`~claude_magic.storage.base.Storage` protocol (search,
rename, re-hashing a chain), found for any store: its own method when it has one (the
PostgreSQL store, other stores), else the helper module of a built-in store."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_MODULES = {"MemoryStorage": "_memory_ops", "DirectoryStorage": "_dir_ops",
            "SQLiteStorage": "_sqlite_ops"}


def store_op(storage: Any, name: str) -> Callable[..., Any] | None:
    """``storage.<name>`` bound, or the built-in helper taking the store first, or None."""
    method = getattr(storage, name, None)
    if method is not None:
        return method
    module = _MODULES.get(type(storage).__name__)
    if module is None:
        return None
    function = getattr(importlib.import_module(f"{__package__}.{module}"), name, None)
    return None if function is None else (lambda *a, **k: function(storage, *a, **k))

"""claude_magic: named, persistent Claude conversations for IPython and Jupyter.

``%load_ext claude_magic`` registers ``%claude_session``, ``%%claude`` and ``%claude``. The
library underneath works without IPython: ``SessionManager``, ``SessionBuilder``, ``Client``...
Names are imported on first use, so importing the package costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "SessionId": "session",
    "Session": "session",
    "Message": "message",
    "Usage": "message",
    "SessionBuilder": "session",
    "SessionSummary": "session",
    "SessionManager": "manager",
    "StorageBackend": "storage",
    "Client": "client",
    "Config": "client",
    "Response": "client",
    "Query": "client",
    "Stream": "client",
    "panel": "panel",
    "to_dataframe": "export",
    "messages_dataframe": "export",
    "ClaudeMagicError": "errors",
    "SessionNotFound": "errors",
    "SessionExists": "errors",
    "InvalidSessionId": "errors",
    "InvalidMetadata": "errors",
    "StorageError": "errors",
    "DamagedSession": "errors",
    "BackendError": "errors",
    "AuthenticationError": "errors",
    "RateLimitError": "errors",
    "OverloadedError": "errors",
    "BackendTimeout": "errors",
    "BackendUnavailable": "errors",
    "BadRequest": "errors",
    "CLINotFound": "errors",
    "ReplayMismatch": "errors",
    "Workspace": "workspace",
}

__all__ = [*sorted(_EXPORTS), "load_ipython_extension", "unload_ipython_extension"]

if TYPE_CHECKING:
    from .client import Client, Config, Query, Response, Stream  # noqa: F401
    from .errors import (  # noqa: F401
        AuthenticationError,
        BackendError,
        BackendTimeout,
        BackendUnavailable,
        BadRequest,
        ClaudeMagicError,
        CLINotFound,
        DamagedSession,
        InvalidMetadata,
        InvalidSessionId,
        OverloadedError,
        RateLimitError,
        ReplayMismatch,
        SessionExists,
        SessionNotFound,
        StorageError,
    )
    from .manager import SessionManager  # noqa: F401
    from .message import Message, Usage  # noqa: F401
    from .session import Session, SessionBuilder, SessionId, SessionSummary  # noqa: F401
    from .storage import StorageBackend  # noqa: F401
    from .workspace import Workspace  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'claude_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext claude_magic``: register the magics on this shell."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext claude_magic``."""
    from .magics import unload

    unload(ipython)

"""Fakes for tests, shipped so users can test their own notebooks without a network or a key.

- :class:`~claude_magic.testing.fake_server.FakeMessagesServer`: a Messages API server on
  127.0.0.1 (JSON and SSE streaming, scripted replies and failures, every request recorded).
  ``python -m claude_magic.testing.fake_server`` runs one and prints its URL.
- :class:`~claude_magic.testing.fake_claude.FakeClaude`: a fake ``claude`` executable printing
  real stream-json lines, with per-session state, scripted errors and an argv log.

Nothing here calls a model; every default answer says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fake_claude import FakeClaude  # noqa: F401
    from .fake_server import FakeMessagesServer  # noqa: F401

_EXPORTS = {"FakeMessagesServer": "fake_server", "FakeClaude": "fake_claude"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'claude_magic.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)

"""How a turn reaches a model: ``anthropic``, ``claude-code``, ``replay`` and ``echo``.

Each backend module is imported only when a turn first uses it, so importing the client stays
cheap (the ``anthropic`` SDK alone takes about a second to import).
"""

from __future__ import annotations

import importlib

from .base import Backend, TurnRequest, TurnResult

# backend name -> (module, class); a constant table, not a registry that changes at run time
BACKEND_CLASSES: dict[str, tuple[str, str]] = {
    "anthropic": ("anthropic_api", "AnthropicBackend"),
    "claude-code": ("claude_code", "ClaudeCodeBackend"),
    "replay": ("replay", "ReplayBackend"),
    "echo": ("echo", "EchoBackend"),
}


def create_backend(name: str) -> Backend:
    """A new backend object for ``name`` (one of :data:`BACKEND_CLASSES`)."""
    module_name, class_name = BACKEND_CLASSES[name]
    module = importlib.import_module(f".{module_name}", __name__)
    return getattr(module, class_name)()


__all__ = ["BACKEND_CLASSES", "Backend", "TurnRequest", "TurnResult", "create_backend"]

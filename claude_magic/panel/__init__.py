"""The session browser: an ipywidgets panel over a SessionManager and a Workspace.

``claude_magic.panel()`` opens it (this package is callable too, so ``claude_magic.panel()``
works however it was imported). It uses the library and the :class:`Workspace` only, never the
magics. Modules: :mod:`.browser` (the panel), :mod:`.widgets` (its controls, row widgets and
stylesheet), :mod:`.rows` (the table model, pure Python), :mod:`.detail` (one opened session),
:mod:`.transcript` (a session as HTML), :mod:`.search` (the search box).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .browser import SessionPanel, panel
from .widgets import PAGE_SIZES

__all__ = ["PAGE_SIZES", "SessionPanel", "panel"]


class _CallablePackage(types.ModuleType):
    """``claude_magic.panel`` is this package once imported; calling it opens a panel."""

    def __call__(self, *args: Any, **kwargs: Any) -> SessionPanel:
        return panel(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

"""The IPython front end: ``%claude_session``, ``%%claude`` and ``%claude``.

Thin by design: parse the line, call the library, display the result.
"""

from .extension import ClaudeMagics, get_magics, load, unload

__all__ = ["ClaudeMagics", "get_magics", "load", "unload"]

"""Where errors leave a front end: every failure becomes one line, never a traceback wall.

:func:`magic_errors` wraps each magic's whole run (``%claude_session``, ``%%claude``,
``%claude``) and each ``claude-magic`` command:

- claude_magic's own errors (``ClaudeMagicError``) pass unchanged: they already render as
  one line through their ``_render_traceback_``;
- expected failures of the world (``OSError`` such as permission denied, disk full or is a
  directory; ``ValueError``, ``TypeError``, ``OverflowError``, ``RecursionError``,
  ``MemoryError``) become a :class:`MagicError` that names the magic, the cause and what to do;
- anything else is a bug: one line that says so and how to see the whole traceback.

Either way ``%tb`` right after shows the original, full traceback, for a bug report.
"""

from __future__ import annotations

import contextlib
import errno
import traceback
from collections.abc import Iterator

from ..errors import ClaudeMagicError

EXPECTED = (OSError, ValueError, TypeError, OverflowError, RecursionError, MemoryError)

_OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and retry",
    errno.EDQUOT: "the disk quota is exceeded; free some space and retry",
    errno.EACCES: "choose another path, or change its permissions",
    errno.EPERM: "choose another path, or change its permissions",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.EISDIR: "give a file path, not a directory",
    errno.ENOTDIR: "a part of the path is a file, not a directory; check the path",
    errno.ENOENT: "check that the path exists",
    errno.ELOOP: "the path is a symbolic link (or a loop of them); give the real file",
}


class MagicError(ClaudeMagicError):
    """An OS or value error (or a bug) that reached a magic, shown as one line.

    ``label`` is what the line starts with (the original error's type, or ``InternalError``);
    ``__cause__`` is the original error. The first rendering is the one line; a later one
    (``%tb``) is the original error's full traceback.
    """

    def __init__(self, message: str, label: str) -> None:
        super().__init__(message)
        self.label = label
        self._shown = False

    def _render_traceback_(self) -> list[str]:
        cause = self.__cause__
        if self._shown and cause is not None:
            return "".join(traceback.format_exception(cause)).splitlines()
        self._shown = True
        return [f"\x1b[31m{self.label}\x1b[0m: {self}"]


def describe_os_error(exc: OSError) -> str:
    """``permission denied: /ro/x.md; choose a path you can write...`` (one line)."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    where = f": {exc.filename}" if exc.filename is not None else ""
    advice = _OS_ADVICE.get(exc.errno or 0)
    return f"{reason}{where}" + (f"; {advice}" if advice else "")


TB_HINT = "run %tb for the full traceback"


def error_line(where: str, exc: BaseException, tb_hint: str = TB_HINT) -> MagicError:
    """The one-line :class:`MagicError` for ``exc`` raised while running ``where``
    (``tb_hint`` says how to see the whole traceback of a bug)."""
    from ..backends.base import one_line

    if isinstance(exc, OSError):
        detail = describe_os_error(exc)
    elif isinstance(exc, RecursionError):
        detail = f"the input is nested too deeply to handle ({exc})"
    elif isinstance(exc, MemoryError):
        detail = "not enough memory for this input"
    elif isinstance(exc, EXPECTED):
        detail = str(exc) or type(exc).__name__
    else:
        return MagicError(one_line(
            f"{where} failed unexpectedly with {type(exc).__name__}: {exc}; this is a bug in "
            f"claude_magic: {tb_hint} and report it", 400), "InternalError")
    return MagicError(one_line(f"{where}: {detail}", 400), type(exc).__name__)


def command_name(magic: str, line: str) -> str:
    """``%claude_session export`` for the line ``export --format md`` (for error lines)."""
    word = line.split(maxsplit=1)[0] if line.strip() else ""
    return f"{magic} {word}" if word.isidentifier() else magic


@contextlib.contextmanager
def magic_errors(where: str, tb_hint: str = TB_HINT) -> Iterator[None]:
    """Run a command: every ``Exception`` leaves as a one-line ``ClaudeMagicError``."""
    try:
        yield
    except ClaudeMagicError:
        raise
    except Exception as exc:
        raise error_line(where, exc, tb_hint) from exc

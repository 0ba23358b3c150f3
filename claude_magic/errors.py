"""One exception family for everything claude_magic raises.

Every message is a single line that names what went wrong and says what to do next,
so the magics can show it as-is instead of a traceback.
"""

from __future__ import annotations

from typing import Literal


class ClaudeMagicError(Exception):
    """Base class of every error raised by claude_magic."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the one line that says what to do."""
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class MagicUsageError(ClaudeMagicError, ValueError):
    """A magic was called wrongly (bad option, unknown subcommand, nothing to send).

    Unlike IPython's own ``UsageError`` it is a real error of the cell, so "Run All" stops and
    notebook tests (nbval) fail on it; it still shows as one line.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mUsageError\x1b[0m: {self}"]


# --- sessions and storage ---------------------------------------------------------------


class InvalidSessionId(ClaudeMagicError, ValueError):
    """A session id that does not match the allowed pattern."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        text = repr(str(value)) if isinstance(value, str) else repr(value)
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(
            f"invalid session id {shown}: {reason}; use 1-128 letters, digits, '-', '_' or '.', "
            "not starting with '.' or '-', not ending with '.'"
        )


class SessionNotFound(ClaudeMagicError, LookupError):
    """No session with this id exists in the store."""

    def __init__(self, session_id: str, hint: str = "") -> None:
        self.session_id = session_id
        hint = hint or "list the sessions with manager.list() or `%claude_session list`"
        super().__init__(f"session {str(session_id)!r} not found; {hint}")


class SessionExists(ClaudeMagicError):
    """A session with this id already exists and overwrite was not asked for."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"session {str(session_id)!r} already exists; pick another id, or replace it "
            "(builder.overwrite(), import_session(..., overwrite=True), --overwrite)"
        )


class InvalidMetadata(ClaudeMagicError, TypeError):
    """Metadata (or a setting) that cannot be stored as JSON."""


class ValueOutOfRange(ClaudeMagicError, ValueError):
    """A number, total or time beyond what every store, time zone and pandas can hold."""


class StorageError(ClaudeMagicError):
    """The store could not be opened, read or written."""


class DamagedSession(StorageError):
    """A session's file or rows exist but cannot be read; it is never overwritten silently.

    ``kind`` says what holds it, so the advice fits: a ``"file"`` is moved aside, a ``"row"``
    of a database (SQLite, PostgreSQL) is repaired with SQL; deleting frees the id in both."""

    def __init__(self, session_id: str, location: str, reason: str, *,
                 kind: Literal["file", "row"] = "file") -> None:
        self.session_id = session_id
        self.location = location
        self.reason = reason
        self.kind = kind
        fix = ("move the file aside" if kind == "file" else
               "repair the row with SQL (it is never overwritten)")
        super().__init__(f"session {str(session_id)!r} is damaged ({reason}) at {location}; "
                         f"{fix} or delete the session to reuse its id")


# --- talking to a model -----------------------------------------------------------------


class BackendError(ClaudeMagicError):
    """A turn could not be completed by the backend."""


class AuthenticationError(BackendError):
    """The backend refused the credentials (HTTP 401/403)."""


class RateLimitError(BackendError):
    """The backend asked us to slow down (HTTP 429) and retries did not help."""


class OverloadedError(BackendError):
    """The backend is overloaded (HTTP 529) or failed (HTTP 5xx) after retries."""


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


class BackendUnavailable(BackendError):
    """The backend could not be reached (connection refused, DNS, missing dependency)."""


class BadRequest(BackendError):
    """The backend rejected the request as invalid (HTTP 400/404/413)."""


class ContextWindowExceeded(BadRequest):
    """A request would not fit (or did not fit) the model's context window."""


class BudgetExceeded(ClaudeMagicError):
    """A session's recorded cost reached its budget; the turn was refused before sending."""


class CLINotFound(BackendUnavailable):
    """The Claude Code CLI executable could not be found."""


class ReplayMismatch(BackendError):
    """The replay backend was asked a prompt that differs from the recording."""


class StorageWarning(UserWarning):
    """A store skipped something it could not read (a damaged file or row)."""

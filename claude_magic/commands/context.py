"""What a subcommand is given by the front end that runs it, and what it gives back.

A :class:`Context` holds the manager (opened on first use), the current session, where files
go, and the few things only one front end can do (switch the store, open the panel, store a
result in a variable). A handler returns a result: a :class:`Message` (a line for people,
data for ``--json``), a view from :mod:`.views`, or a value; the context's ``out`` sink shows
it: rich HTML / Markdown in a kernel, plain text or JSON in a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import MagicUsageError
from ..session import SessionId
from .arguments import did_you_mean

if TYPE_CHECKING:
    from ..manager import SessionManager


class Output(Protocol):
    """Where a front end shows a handler's result; returns what the magic should return."""

    def show(self, result: Any) -> Any: ...

    def write(self, text: str) -> None:
        """Write a piece of a streamed answer at once."""


class Message:
    """A one- or few-line report for people, with the same facts as data for ``--json``."""

    def __init__(self, text: str, /, **data: Any) -> None:
        self.text = text
        self.data = data

    def __repr__(self) -> str:
        return self.text

    def to_json(self) -> Any:
        return {"message": self.text, **self.data} if self.text else self.data


@dataclass
class Selection:
    """The current session of a front end that has no workspace (the terminal)."""

    current: str | None = None


@dataclass
class Context:
    """Everything a subcommand may use. ``prog`` names the front end in messages
    (``%claude_session`` or ``claude-magic``)."""

    open_manager: Callable[[], SessionManager]
    out: Output
    prog: str
    export_dir: Path
    workspace: Any = field(default_factory=Selection)  # anything with a ``current`` attribute
    terminal: bool = False
    system_prompt: str | None = None
    namespace: MutableMapping[str, Any] | None = None  # where ``-o VAR`` stores a result
    use_storage: Callable[[str], SessionManager] | None = None
    open_panel: Callable[[], Any] | None = None
    open_client: Callable[[], Any] | None = None  # the front end's Client (for compact)

    @property
    def manager(self) -> SessionManager:
        return self.open_manager()

    @property
    def current(self) -> str | None:
        return self.workspace.current

    @current.setter
    def current(self, value: str | None) -> None:
        self.workspace.current = value

    def list_hint(self) -> str:
        return f"see {self.prog} list"


def resolve_id(ctx: Context, text: str) -> SessionId:
    """An existing session's id from its exact id or a unique prefix, else a one-line error."""
    session_id = SessionId(text)  # InvalidSessionId is already a one-line error
    manager = ctx.manager
    if manager.exists(session_id):
        return session_id
    ids = manager.list()
    matches = [i for i in ids if i.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise MagicUsageError(f"{text!r} matches {len(matches)} sessions ({shown}); "
                              "type more of the id")
    raise MagicUsageError(f"no session {text!r} in {manager.location}"
                          f"{did_you_mean(text, ids)}; {ctx.list_hint()}")


def current_id(ctx: Context, given: str | None = None) -> SessionId:
    """The session named on the line, else the current one, else a one-line error."""
    if given:
        return resolve_id(ctx, given)
    current = ctx.current
    if current is None:
        if ctx.terminal:
            raise MagicUsageError(f"name a session (an id or a unique prefix); {ctx.list_hint()}")
        raise MagicUsageError(f"no current session; create one with {ctx.prog} new [ID] "
                              f"or pick one with {ctx.prog} switch ID")
    if not ctx.manager.exists(current):
        ctx.current = None
        raise MagicUsageError(f"the current session {current!r} no longer exists; "
                              f"switch to another with {ctx.prog} switch ID")
    return SessionId(current)


def confirm(yes: bool, action: str) -> None:
    """A one-line error unless ``--yes`` was given."""
    if not yes:
        raise MagicUsageError(f"{action} cannot be undone; add --yes to confirm")


def plural(count: int, noun: str = "session") -> str:
    """``1 session``, ``2 sessions``, ``1,000 messages``: the export's wording, as everywhere."""
    from ..export.transcripts import plural as counted

    return counted(count, noun)

"""The state one notebook's front ends share: the manager and the current session."""

from __future__ import annotations

from traitlets import Any, HasTraits, Unicode


class Workspace(HasTraits):
    """One per shell: the magics and the panel read and set the same current session.

    ``current`` is observable (``workspace.observe(fn, "current")``), so the panel marks the
    session a ``%claude_session switch`` chose, and a click in the panel switches the magics.
    """

    # not an Instance trait: checking the class would import the store at %load_ext
    manager = Any(None, allow_none=True, help="The SessionManager, opened on first use.")
    current = Unicode(None, allow_none=True, help="Id of the current session, or None.")

"""The state one notebook's front ends share: the manager and the current session."""

from __future__ import annotations

import sys

from traitlets import Any, HasTraits, Unicode


class Workspace(HasTraits):
    """One per shell: the magics and the panel read and set the same current session.

    ``current`` is observable (``workspace.observe(fn, "current")``), so the panel marks the
    session a ``%claude_session switch`` chose, and a click in the panel switches the magics.
    """

    # not an Instance trait: checking the class would import the store at %load_ext
    manager = Any(None, allow_none=True, help="The SessionManager, opened on first use.")
    current = Unicode(None, allow_none=True, help="Id of the current session, or None.")


def shell_workspace(shell: object = None) -> Workspace | None:
    """The workspace ``%load_ext claude_magic`` made for ``shell`` (default: the running
    IPython), its store opened; None without a shell or the extension.

    Found through the shell's magics registry, so nothing here imports the magics.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    registry = getattr(getattr(shell, "magics_manager", None), "registry", {})
    front = registry.get("ClaudeMagics")
    workspace = getattr(front, "workspace", None)
    if not isinstance(workspace, Workspace):
        return None
    if workspace.manager is None:
        front.manager  # noqa: B018 - the extension opens its store on first use
    return workspace

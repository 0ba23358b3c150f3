"""The ``ClaudeMagics`` class: configuration, per-shell state, and the magics' entry points.

One instance per shell holds the :class:`~claude_magic.workspace.Workspace` (the manager and
the current session) and a lazily made :class:`~claude_magic.client.Client`. The work is done
by :mod:`claude_magic.commands` through :mod:`.session_commands` (``%claude_session``)
and :mod:`.prompt` (``%%claude``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, observe, validate

from ..commands.boundary import command_name, magic_errors
from ..commands.store import (
    DEFAULT_DIRECTORY,
    STORAGE_ENV,
    absolute_spec,
    default_storage,
    open_readable,
)
from ..errors import ClaudeMagicError, MagicUsageError
from ..workspace import Workspace

if TYPE_CHECKING:
    from ..client import Client
    from ..manager import SessionManager


def notebook_directory(shell: Any) -> Path:
    """The directory of the running notebook, else the kernel's working directory.

    Jupyter Server sets ``JPY_SESSION_NAME`` to the notebook's absolute path (a relative one is
    relative to the server's root, which the kernel does not know: its working directory is
    then the notebook's); VS Code puts ``__vsc_ipynb_file__`` in the user namespace.
    """
    candidates = [os.environ.get("JPY_SESSION_NAME"),
                  getattr(shell, "user_ns", {}).get("__vsc_ipynb_file__")]
    for candidate in candidates:
        if candidate and str(candidate).endswith(".ipynb"):
            path = Path(candidate).expanduser()
            if path.is_absolute() and path.parent.is_dir():
                return path.parent.resolve()
    return Path.cwd().resolve()


@magics_class
class ClaudeMagics(Magics):
    """``%claude_session``, ``%%claude`` and ``%claude``; see ``%config ClaudeMagics``."""

    backend = Unicode(
        "auto", help="auto (anthropic with ANTHROPIC_API_KEY, else offline echo), anthropic, "
        "claude-code, replay or echo."
    ).tag(config=True)
    model = Unicode("", help="Model for new turns; empty means the client's default.").tag(
        config=True)
    max_tokens = Int(4096, help="Largest answer, in tokens.").tag(config=True)
    storage = Unicode(
        "", help="Where sessions live: a directory, sqlite:///path or memory. Empty means "
        f"${STORAGE_ENV}, else {DEFAULT_DIRECTORY}/ beside the notebook."
    ).tag(config=True)
    stream = Bool(True, help="Show answers as they arrive.").tag(config=True)
    system_prompt = Unicode(
        None, allow_none=True, help="System prompt of sessions created without one."
    ).tag(config=True)
    interpolate = Bool(True, help="Replace {name} references to existing variables.").tag(
        config=True)
    timeout = Float(600.0, help="Seconds to wait for one answer.").tag(config=True)
    update_interval = Float(0.05, help="Seconds between live display updates.").tag(config=True)
    cache = Unicode("5m", allow_none=True, help="Prompt caching (anthropic): 5m (default), "
                    "1h, or None / '' for off.").tag(config=True)
    context = Unicode("warn", help="When a request nears the context window: warn (default), "
                      "compact (summarise older turns first) or truncate (leave the oldest "
                      "turns out of the request).").tag(config=True)
    budget_usd = Float(None, allow_none=True, help="Refuse turns in a session whose recorded "
                       "cost reached this many dollars (a session's budget_usd setting "
                       "wins); None: no budget.").tag(config=True)
    context_rows = Int(10, help="Rows of a DataFrame or Series a {reference} sends (with its "
                       "shape and dtypes; never the whole frame).").tag(config=True)
    context_chars = Int(20_000, help="Most characters a {reference} to any other value "
                        "sends (the rest is cut, with a marker).").tag(config=True)
    backend_options = Dict(
        help="More client options: retries, base_url, claude_binary, permission_mode, "
        "allowed_tools, max_turns, cwd (default: the notebook's directory), replay_source."
    ).tag(config=True)

    def __init__(self, shell: Any, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        #: the notebook's directory, fixed at load time so a later %cd changes nothing
        self.notebook_dir = notebook_directory(shell)
        self._storage_spec = absolute_spec(self.storage or default_storage(self.notebook_dir))
        self.workspace = Workspace()
        self._client: Client | None = None
        #: the session browser opened by ``%claude_session panel`` (one live panel per kernel)
        self.panel: Any = None

    # --- state ----------------------------------------------------------------------------

    @property
    def manager(self) -> SessionManager:
        """The session manager, opened on first use (``%load_ext`` creates no files)."""
        if self.workspace.manager is None:
            from ..manager import SessionManager

            self.workspace.manager = SessionManager.with_storage(self._storage_spec)
        return self.workspace.manager

    @property
    def storage_spec(self) -> str:
        return self._storage_spec

    def use_storage(self, spec: str) -> SessionManager:
        """Switch to another store; the current session is forgotten. The new store must open
        and be readable (list and damaged entries) first: else the error is raised and the old
        store and current session stay in use."""
        resolved = absolute_spec(spec)
        manager = open_readable(resolved)
        old = self.workspace.manager
        self._storage_spec = resolved
        self.workspace.manager = manager
        self.workspace.current = None
        self._client = None
        if old is not None:
            old.close()
        return manager

    @validate("storage")
    def _switch_storage(self, proposal: Any) -> str:
        """``%config ClaudeMagics.storage = X`` switches now; if X fails, nothing changes."""
        if hasattr(self, "workspace"):  # not while __init__ applies the config
            try:
                self.use_storage(proposal["value"] or default_storage(self.notebook_dir))
            except ClaudeMagicError as exc:  # a TraitError makes %config keep the old value
                raise TraitError(str(exc)) from exc
        return str(proposal["value"])

    @validate("context_rows", "context_chars")
    def _check_context_limits(self, proposal: Any) -> int:
        value = proposal["value"]
        least = 0 if proposal["trait"].name == "context_rows" else 100
        if value < least:
            raise TraitError(f"ClaudeMagics.{proposal['trait'].name} must be at least {least}, "
                             f"got {value}")
        return value

    @validate("max_tokens")
    def _check_max_tokens(self, proposal: Any) -> int:
        from ..commands.arguments import check_max_tokens

        try:
            return check_max_tokens(proposal["value"], "ClaudeMagics.max_tokens")
        except MagicUsageError as exc:
            raise TraitError(str(exc)) from None

    @observe("backend", "model", "max_tokens", "timeout", "backend_options", "cache", "context",
             "budget_usd")
    def _client_settings_changed(self, change: dict[str, Any]) -> None:
        self._client = None  # rebuilt with the new settings on next use

    @property
    def client(self) -> Client:
        """The client, made on first use with this shell's settings."""
        if self._client is None:
            from ..client import Client, Config

            options: dict[str, Any] = {"cwd": str(self.notebook_dir),
                                       **self.backend_options, "backend": self.backend,
                                       "max_tokens": self.max_tokens, "timeout": self.timeout,
                                       "cache": self.cache or None, "context": self.context,
                                       "budget_usd": self.budget_usd}
            if self.model:
                options["model"] = self.model
            try:
                config = Config(**options)
            except (TypeError, ValueError) as exc:
                raise MagicUsageError(f"check %config ClaudeMagics: {exc}") from None
            self._client = Client(config, manager=self.manager)
        return self._client

    def open_panel(self) -> Any:
        """``%claude_session panel``: a new session browser (the old one stops listening)."""
        from ..panel import panel

        if self.panel is not None:  # one live panel per kernel
            self.panel.close()

        def new_session(session_id: str | None) -> Any:
            builder = self.manager.create_session(session_id)
            return builder.with_system_prompt(self.system_prompt).build()

        self.panel = panel(manager=self.manager, workspace=self.workspace,
                           export_dir=self.notebook_dir, new_session=new_session)
        return self.panel

    def close(self) -> None:
        """Release the panel and the store (``%unload_ext``)."""
        if self.panel is not None:
            self.panel.close()
            self.panel = None
        if self.workspace.manager is not None:
            self.workspace.manager.close()
            self.workspace.manager = None
        self._client = None

    # --- magics ---------------------------------------------------------------------------

    @no_var_expand
    @line_magic
    def claude_session(self, line: str) -> Any:
        """Manage sessions: ``%claude_session help`` lists the subcommands."""
        from .session_commands import run_session_command

        with magic_errors(command_name("%claude_session", line)):
            return run_session_command(self, line)

    @no_var_expand
    @line_magic("claude")
    def claude_line(self, line: str) -> Any:
        """``%claude [options] PROMPT``: the one-line ``%%claude`` (``--`` ends the options;
        ``%claude --help`` lists them)."""
        from .prompt import run_prompt, split_line_magic

        with magic_errors("%claude"):
            return run_prompt(self, *split_line_magic(line))

    @no_var_expand
    @cell_magic("claude")
    def claude_cell(self, line: str, cell: str) -> Any:
        """``%%claude [options]``: send the cell in the current session, streaming the answer.

        ``%%claude --help`` lists the options.
        """
        from .prompt import run_prompt

        with magic_errors("%%claude"):
            return run_prompt(self, line, cell)


def load(shell: Any) -> ClaudeMagics:
    """Register the magics on ``shell`` (idempotent)."""
    existing = shell.magics_manager.registry.get(ClaudeMagics.__name__)
    if isinstance(existing, ClaudeMagics):
        return existing
    magics = ClaudeMagics(shell)
    shell.register_magics(magics)
    transforms = getattr(shell, "input_transformers_cleanup", None)
    if transforms is not None and lone_claude_cell not in transforms:
        transforms.append(lone_claude_cell)
    return magics


def lone_claude_cell(lines: list[str]) -> list[str]:
    """A ``%%claude OPTIONS`` cell with no body runs as ``%claude OPTIONS``: ``--help`` shows
    the help, anything else says there is nothing to send (IPython would refuse the cell with
    a hint towards ``%claude``, which used to send the options as a prompt)."""
    if not lines or "".join(lines[1:]).strip():
        return lines
    first = lines[0].strip()
    if first == "%%claude" or first.startswith(("%%claude ", "%%claude\t")):
        return [first[1:] + "\n"]
    return lines


def unload(shell: Any) -> None:
    """Unregister the magics and release the store."""
    magics = shell.magics_manager.registry.pop(ClaudeMagics.__name__, None)
    if magics is None:
        return
    for kind, table in magics.magics.items():
        for name in table:
            shell.magics_manager.magics[kind].pop(name, None)
    transforms = getattr(shell, "input_transformers_cleanup", None)
    if transforms is not None and lone_claude_cell in transforms:
        transforms.remove(lone_claude_cell)
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    magics.close()


def get_magics(shell: Any = None) -> ClaudeMagics | None:
    """The loaded ``ClaudeMagics`` of ``shell`` (default: the running IPython), or None."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        return None
    magics = shell.magics_manager.registry.get(ClaudeMagics.__name__)
    return magics if isinstance(magics, ClaudeMagics) else None

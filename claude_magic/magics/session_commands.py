"""``%claude_session SUBCOMMAND ...``: the kernel's side of the shared subcommand table.

The subcommands live in :mod:`claude_magic.commands`; this module gives them a context (the
shell's manager, current session, notebook folder, namespace) and shows their results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..commands.arguments import split_line
from ..commands.context import Context, Message
from ..commands.table import run_command

if TYPE_CHECKING:
    from .extension import ClaudeMagics


class KernelOutput:
    """Messages are printed; views and values go back to IPython to be displayed (HTML,
    Markdown) as the magic's result."""

    def show(self, result: Any) -> Any:
        if isinstance(result, Message):
            print(result.text)
            return None
        return result

    def write(self, text: str) -> None:
        print(text, end="", flush=True)


def context_of(magics: ClaudeMagics) -> Context:
    """The context the subcommands run in, for this shell."""
    return Context(open_manager=lambda: magics.manager, out=KernelOutput(),
                   prog="%claude_session", export_dir=magics.notebook_dir,
                   workspace=magics.workspace, system_prompt=magics.system_prompt,
                   namespace=magics.shell.user_ns, use_storage=magics.use_storage,
                   open_panel=magics.open_panel, open_client=lambda: magics.client)


def show_current(magics: ClaudeMagics) -> Any:
    """Bare ``%claude_session``: the current session, or how to get one."""
    if magics.workspace.current is None:
        count = magics.manager.count()
        print(f"No current session ({count} in {magics.manager.location}). "
              "Create one with %claude_session new [ID] or switch with %claude_session switch ID.")
        return None
    return run_command(context_of(magics), ["show"])


def run_session_command(magics: ClaudeMagics, line: str) -> Any:
    """Parse ``line`` and run the subcommand.

    Bad arguments raise ``MagicUsageError``; library errors (``ClaudeMagicError``) propagate and
    IPython shows them as one line through their ``_render_traceback_``.
    """
    words = split_line(line, magics.shell.user_ns)
    if not words:
        return show_current(magics)
    return run_command(context_of(magics), words)

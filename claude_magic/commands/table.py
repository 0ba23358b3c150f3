"""The one table of subcommands, shared by ``%claude_session`` and ``claude-magic``.

Each :class:`Subcommand` names its argparse configuration and its handler; ``terminal`` and
``kernel`` say which front ends offer it (``switch`` and ``panel`` need a kernel; ``ask`` is
the terminal's ``%%claude``). :func:`run_command` parses the words, runs the
handler with the front end's :class:`~.context.Context`, and gives the result to its sink.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MagicUsageError
from . import ask, cleanup, find, sessions, team, transfer, usage
from .arguments import ArgumentsError, HelpShown, MagicArgumentParser, did_you_mean
from .context import Context, Message, plural

Handler = Callable[[Context, argparse.Namespace], Any]


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str
    handler: Handler
    configure: Callable[[MagicArgumentParser], None]
    terminal: bool = True
    kernel: bool = True

    def parser(self, prog: str = "%claude_session") -> MagicArgumentParser:
        parser = MagicArgumentParser(prog=f"{prog} {self.name}", description=self.summary)
        self.configure(parser)
        return parser


def no_args(p: MagicArgumentParser) -> None:
    """No arguments."""


def storage_args(p: MagicArgumentParser) -> None:
    p.add_argument("spec", nargs="?",
                   help="a directory, sqlite:///path, postgresql://user@host/db or memory")
    p.add_argument("--init", action="store_true",
                   help="set the store up explicitly (a team store: its schema, row-level "
                        "security and team role, as the database owner)")


def cmd_storage(ctx: Context, args: argparse.Namespace) -> Message:
    lines: list[str] = []
    if args.spec:
        if ctx.use_storage is None:
            raise MagicUsageError(f"{ctx.prog} storage takes no store; choose one with "
                                  f"{ctx.prog} --store SPEC")
        if args.init:  # set up before switching: a refusal leaves the old store in use
            lines.append(_set_up_spec(args.spec))
        ctx.use_storage(args.spec)
    elif args.init:
        lines.append(team.set_up(ctx.manager))
    manager = ctx.manager
    damaged = [str(entry) for entry in manager.damaged()]
    lines.append(f"Sessions are stored in {manager.location} ({plural(manager.count())}).")
    lines += [f"  damaged, skipped: {entry}" for entry in damaged]
    return Message("\n".join(lines), location=manager.location, count=manager.count(),
                   damaged=damaged)


def _set_up_spec(spec: str) -> str:
    from .store import absolute_spec, open_readable

    manager = open_readable(absolute_spec(spec))
    try:
        return team.set_up(manager)
    finally:
        manager.close()


def cmd_panel(ctx: Context, args: argparse.Namespace) -> Any:
    if ctx.open_panel is None:
        raise MagicUsageError("the session browser needs a notebook; use "
                              f"{ctx.prog} list and {ctx.prog} show here")
    return ctx.open_panel()


def help_args(p: MagicArgumentParser) -> None:
    p.add_argument("subcommand", nargs="?", help="a subcommand to explain")


def commands_for(ctx: Context) -> dict[str, Subcommand]:
    """The subcommands this front end offers."""
    return {name: c for name, c in SUBCOMMANDS.items()
            if (c.terminal if ctx.terminal else c.kernel)}


def help_text(ctx: Context) -> str:
    table = commands_for(ctx)
    width = max(len(name) for name in table)
    lines = [f"{ctx.prog} SUBCOMMAND [options]   (SUBCOMMAND --help for details)", ""]
    lines += [f"  {c.name.ljust(width)}  {c.summary}" for c in table.values()]
    if not ctx.terminal:
        lines += ["", "Bare %claude_session shows the current session. "
                  "Ask with %%claude or %claude."]
    return "\n".join(lines)


def cmd_help(ctx: Context, args: argparse.Namespace) -> None:
    if args.subcommand:
        lookup(ctx, args.subcommand).parser(ctx.prog).print_help()
        return None
    print(help_text(ctx))
    return None


SUBCOMMANDS: dict[str, Subcommand] = {
    c.name: c
    for c in (
        Subcommand("new", "create a session and switch to it", sessions.cmd_new,
                   sessions.new_args),
        Subcommand("switch", "make another session current", sessions.cmd_switch,
                   sessions.one_id_args, terminal=False),
        Subcommand("list", "list sessions, newest first", sessions.cmd_list, sessions.list_args),
        Subcommand("show", "show a session's metadata and transcript", sessions.cmd_show,
                   sessions.optional_id_args),
        Subcommand("meta", "show, set or unset metadata", sessions.cmd_meta,
                   sessions.meta_args),
        Subcommand("settings", "show or set per-session model, backend, max_tokens",
                   sessions.cmd_settings, sessions.meta_args),
        Subcommand("system", "show or set the system prompt", sessions.cmd_system,
                   sessions.system_args),
        Subcommand("fork", "copy the current session (up to answer TURN with --at) and "
                   "switch to the copy", sessions.cmd_fork, sessions.fork_args),
        Subcommand("rename", "give a session another id (the current one follows)",
                   find.cmd_rename, find.rename_args),
        Subcommand("search", "full-text search over prompts, answers, system prompts and "
                   "metadata", find.cmd_search, find.search_args),
        Subcommand("verify", "check a session's hash chain (stored messages unchanged)",
                   find.cmd_verify, find.verify_args),
        Subcommand("delete", "delete a session (with --yes)", cleanup.cmd_delete,
                   cleanup.delete_args),
        Subcommand("clear", "delete every session (with --yes)", cleanup.cmd_clear,
                   cleanup.clear_args),
        Subcommand("prune", "delete old sessions (lists them without --yes)",
                   cleanup.cmd_prune, cleanup.prune_args),
        Subcommand("export", "write a session as ipynb, md, json, csv or a DataFrame",
                   transfer.cmd_export, transfer.export_args),
        Subcommand("import", "load a session from a JSON export", transfer.cmd_import,
                   transfer.import_args),
        Subcommand("copy", "copy sessions exactly into another store (--to SPEC)",
                   team.cmd_copy, team.copy_args),
        Subcommand("share", "share a session with the team (PostgreSQL store)", team.cmd_share,
                   team.share_args),
        Subcommand("unshare", "make a shared session private again", team.cmd_unshare,
                   team.share_args),
        Subcommand("usage", "tokens, cache writes and reads, and cost by session, model or day",
                   usage.cmd_usage, usage.usage_args),
        Subcommand("compact", "summarise a session's older turns (they stay, no longer sent)",
                   usage.cmd_compact, usage.compact_args),
        Subcommand("panel", "open the session browser", cmd_panel, no_args, terminal=False),
        Subcommand("storage", "show or change where sessions are stored", cmd_storage,
                   storage_args),
        Subcommand("ask", "ask in a session (a new one unless -s ID), streaming the answer",
                   ask.cmd_ask, ask.ask_args, kernel=False),
        Subcommand("help", "this list, or help on one subcommand", cmd_help, help_args),
    )
}


def lookup(ctx: Context, name: str) -> Subcommand:
    """The subcommand ``name`` of this front end, else a one-line usage error."""
    table = commands_for(ctx)
    if name in table:
        return table[name]
    raise ArgumentsError(f"unknown subcommand {name!r}{did_you_mean(name, table)}; "
                         f"see {ctx.prog} help")


def run_command(ctx: Context, words: list[str]) -> Any:
    """Parse ``words`` (a subcommand and its arguments), run it, show its result.

    Bad arguments raise :class:`ArgumentsError`; other errors (``ClaudeMagicError``) pass.
    """
    try:
        if words[0] in ("-h", "--help"):
            words = ["help"]
        command = lookup(ctx, words[0])
        args = command.parser(ctx.prog).parse(words[1:])
        return ctx.out.show(command.handler(ctx, args))
    except HelpShown:
        return None

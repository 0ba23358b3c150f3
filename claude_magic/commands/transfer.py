"""Subcommands that move sessions in and out of the store: export, import."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import MagicUsageError
from .arguments import MagicArgumentParser
from .context import Context, Message, current_id, plural


def export_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id or prefix (default: the current session)")
    p.add_argument("--format", "-f", dest="fmt", default="ipynb",
                   choices=("ipynb", "md", "json", "csv", "df"), help="what to produce")
    p.add_argument("--out", metavar="PATH",
                   help="file or directory to write (default: <id>.<ext> beside the notebook; "
                        "in a terminal, '-' writes to standard output)")
    p.add_argument("-o", "--output", metavar="VAR",
                   help="store the result in VAR instead of writing a file (unless --out)")
    p.add_argument("--all", action="store_true",
                   help="with --format df or csv: one row per session, for every session")


def _terminal_export(ctx: Context, args: argparse.Namespace) -> None:
    """Refuse what only a kernel can hold (a DataFrame, a variable)."""
    if args.output:
        raise MagicUsageError(f"{ctx.prog} export: -o VAR needs a kernel; "
                              "write a file with --out PATH (or --out - for standard output)")
    if args.fmt == "df":
        raise MagicUsageError(f"{ctx.prog} export: a DataFrame needs Python; "
                              "use --format csv")


def cmd_export(ctx: Context, args: argparse.Namespace) -> Any:
    from ..export import export_session, sessions_export

    if ctx.terminal:
        _terminal_export(ctx, args)
    to_stdout = ctx.terminal and args.out == "-"
    in_memory = to_stdout or args.fmt == "df" or (args.output and not args.out)
    path = None if in_memory else (args.out or ctx.export_dir)
    try:
        if args.all:
            result = sessions_export(ctx.manager, args.fmt, path)
        else:
            result = export_session(ctx.manager, current_id(ctx, args.id), args.fmt, path)
    except ValueError as exc:  # OSError: the front end's boundary names the path and the cause
        raise MagicUsageError(f"{ctx.prog} export: {exc}") from None
    if to_stdout:
        return _as_text(result)
    if args.output and ctx.namespace is not None:
        ctx.namespace[args.output] = result
    if path is not None:
        return Message(f"Wrote {result}.", path=str(result))
    return None if args.output else result


def _as_text(result: Any) -> Any:
    """An export for standard output: text as is, a notebook as its JSON."""
    from .views import PlainText

    if not isinstance(result, str):
        import nbformat

        result = nbformat.writes(result)
    return PlainText(result.rstrip("\n"))


def import_args(p: MagicArgumentParser) -> None:
    p.add_argument("path", help="a JSON file written by export --format json")
    p.add_argument("--as", dest="new_id", metavar="ID", help="store it under this id")
    p.add_argument("--overwrite", action="store_true", help="replace a session with this id")
    p.add_argument("--switch", action="store_true", help="make it the current session")


def cmd_import(ctx: Context, args: argparse.Namespace) -> Message:
    from ..export import import_session_file

    session = import_session_file(ctx.manager, args.path, overwrite=args.overwrite,
                                  new_id=args.new_id)
    if args.switch:
        ctx.current = session.id
    return Message(f"Imported session {session.id} ({plural(len(session.messages), 'message')}).",
                   id=str(session.id), messages=len(session.messages))

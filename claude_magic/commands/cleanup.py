"""Subcommands that delete: delete, clear, prune."""

from __future__ import annotations

import argparse

from ..errors import MagicUsageError
from .arguments import MagicArgumentParser
from .context import Context, Message, confirm, plural, resolve_id


def delete_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", help="session id (exact, or a unique prefix)")
    p.add_argument("--yes", action="store_true", help="confirm")


def cmd_delete(ctx: Context, args: argparse.Namespace) -> Message:
    session_id = resolve_id(ctx, args.id)
    confirm(args.yes, f"deleting session {session_id}")
    ctx.manager.delete(session_id)
    if ctx.current == session_id:
        ctx.current = None
    return Message(f"Deleted session {session_id}.", deleted=[session_id])


def clear_args(p: MagicArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="confirm")


def cmd_clear(ctx: Context, args: argparse.Namespace) -> Message:
    confirm(args.yes, f"deleting every session in {ctx.manager.location}")
    count = ctx.manager.clear()
    ctx.current = None
    return Message(f"Deleted {plural(count)}.", count=count)


def prune_args(p: MagicArgumentParser) -> None:
    p.add_argument("--older-than", metavar="AGE", help="e.g. 30d, 12h, 2w: not updated since")
    p.add_argument("--keep-last", type=int, default=0, metavar="N",
                   help="always keep the N most recently updated sessions")
    p.add_argument("--yes", action="store_true", help="delete (without it, only list)")


def cmd_prune(ctx: Context, args: argparse.Namespace) -> Message:
    try:
        doomed = ctx.manager.prune(args.older_than, keep_last=args.keep_last,
                                   dry_run=not args.yes)
    except OverflowError:
        raise MagicUsageError(f"{ctx.prog} prune: the age {args.older_than!r} reaches "
                              "past the year 1; use a smaller one, e.g. 365d") from None
    except ValueError as exc:
        raise MagicUsageError(f"{ctx.prog} prune: {exc}") from None
    data = {"sessions": [str(i) for i in doomed], "deleted": bool(args.yes and doomed)}
    if not doomed:
        return Message("No session to prune.", **data)
    if not args.yes:
        return Message(f"Would delete {len(doomed)} session(s): {', '.join(doomed)}; "
                       "add --yes to do it.", **data)
    if ctx.current in doomed:
        ctx.current = None
    return Message(f"Deleted {len(doomed)} session(s): {', '.join(doomed)}.", **data)

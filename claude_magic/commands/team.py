"""Subcommands across stores and people: copy to another store, share and unshare (team store),
and setting up a store (``storage SPEC --init``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import MagicUsageError
from .arguments import MagicArgumentParser
from .context import Context, Message, current_id, plural, resolve_id

if TYPE_CHECKING:
    from ..manager import SessionManager


def copy_args(p: MagicArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="ID", help="sessions to copy (ids or unique prefixes)")
    p.add_argument("--to", required=True, metavar="SPEC",
                   help="the store to copy into: a directory, sqlite:///path or postgresql://...")
    p.add_argument("--all", action="store_true", help="copy every session")
    p.add_argument("--overwrite", action="store_true",
                   help="replace sessions the target already has with these ids")


def cmd_copy(ctx: Context, args: argparse.Namespace) -> Message:
    from ..storage import StorageBackend
    from .store import absolute_spec, open_readable

    if args.all == bool(args.ids):
        raise MagicUsageError(f"{ctx.prog} copy: name the sessions to copy (ID ...) or give "
                              "--all, not both")
    ids = None if args.all else [resolve_id(ctx, text) for text in args.ids]
    spec = absolute_spec(args.to)
    if StorageBackend.parse(spec).kind == "memory":
        raise MagicUsageError(f"{ctx.prog} copy: a memory store would be gone at once; copy to "
                              "a directory, sqlite:///path or postgresql://...")
    target = open_readable(spec)
    try:
        report = ctx.manager.copy_to(target, ids, overwrite=args.overwrite)
    finally:
        target.close()
    return Message(str(report), target=report.target, copied=[str(i) for i in report.copied],
                   messages=report.messages, replaced=[str(i) for i in report.replaced])


def share_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id or prefix (default: the current session)")


def _owners(ctx: Context) -> SessionManager:
    """The manager, when its store has owners; else the one-line error."""
    from ..manager import NO_OWNERS

    manager = ctx.manager
    if not manager.has_owners:
        raise MagicUsageError(f"{NO_OWNERS}; {manager.location} is not one (switch with "
                              f"{ctx.prog} storage postgresql://...)")
    return manager


def cmd_share(ctx: Context, args: argparse.Namespace) -> Message:
    manager = _owners(ctx)
    session_id = current_id(ctx, args.id)
    manager.share(session_id, "team")
    return Message(f"Shared session {session_id} with the team.", id=str(session_id),
                   visibility="team")


def cmd_unshare(ctx: Context, args: argparse.Namespace) -> Message:
    manager = _owners(ctx)
    session_id = current_id(ctx, args.id)
    manager.share(session_id, "private")
    return Message(f"Session {session_id} is private again.", id=str(session_id),
                   visibility="private")


def set_up(manager: SessionManager) -> str:
    """Set the store up explicitly (a team store: schema, policies, team role; as its
    database owner); returns a line saying what is ready."""
    setup = getattr(manager.storage, "setup", None)
    if setup is not None:
        return str(setup())
    return f"The store {manager.location} is ready ({plural(manager.count())})."

"""``usage`` (the usage ledger) and ``compact`` (summarise a session's older turns)."""

from __future__ import annotations

import argparse
from typing import Any

from ..ledger import GROUPINGS
from .arguments import MagicArgumentParser
from .context import Context, Message, current_id


def usage_args(p: MagicArgumentParser) -> None:
    p.add_argument("--by", choices=GROUPINGS, default="session",
                   help="one row per session (default), model or day")
    p.add_argument("-s", "--session", action="append", metavar="ID",
                   help="only this session (repeatable; default: every session)")
    p.add_argument("-o", "--output", metavar="VAR",
                   help="store the DataFrame (without the total row) in VAR")


def cmd_usage(ctx: Context, args: argparse.Namespace) -> Any:
    """The ledger with a ``total`` row: turns, input, cache writes and reads, output, cost."""
    from ..ledger import usage, with_total

    ids = [current_id(ctx, given) for given in args.session] if args.session else None
    frame = usage(ctx.manager, by=args.by, session_ids=ids)
    if args.output and ctx.namespace is not None:
        ctx.namespace[args.output] = frame
    if ctx.terminal:
        return Message(with_total(frame).to_string(), rows=frame.reset_index()
                       .to_dict(orient="records"))
    return with_total(frame)


def compact_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="the session (default: the current one)")
    p.add_argument("--keep-last", type=int, default=2, metavar="N",
                   help="answered turns kept as they are (default 2)")
    p.add_argument("--instructions", metavar="TEXT",
                   help="what the summary should also keep or stress")


def cmd_compact(ctx: Context, args: argparse.Namespace) -> Message:
    """Summarise the session's answered turns but the last N with its own backend."""
    from ..errors import MagicUsageError

    if args.keep_last < 0:
        raise MagicUsageError(f"--keep-last must be 0 or more, got {args.keep_last}")
    session_id = current_id(ctx, args.id)
    client = ctx.open_client() if ctx.open_client is not None else _default_client(ctx)
    summary = client.compact(session_id, keep_last=args.keep_last,
                             instructions=args.instructions)
    offline = " (offline: no model was called)" if summary.offline else ""
    cost = f", ${summary.cost_usd:.4f}" if summary.cost_usd else ""
    return Message(f"Compacted {summary.compacted} turn(s) of session {session_id} into a "
                   f"summary (turn {summary.turn}{cost}){offline}; they stay in the "
                   "transcript and are no longer sent.", id=str(session_id),
                   compacted=summary.compacted, turn=summary.turn, summary=str(summary))


def _default_client(ctx: Context) -> Any:
    from ..client import Client, Config

    return Client(Config(cwd=str(ctx.export_dir)), manager=ctx.manager)

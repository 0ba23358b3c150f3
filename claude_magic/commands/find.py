"""``search`` (full text over sessions), ``rename`` and ``verify`` (the hash chain)."""

from __future__ import annotations

import argparse
import html
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import MagicUsageError, StorageError
from ..search import BadQuery
from .arguments import MagicArgumentParser
from .context import Context, Message, current_id, resolve_id

if TYPE_CHECKING:
    from ..search import SearchHit


def search_args(p: MagicArgumentParser) -> None:
    p.add_argument("text", nargs="+", help='words, "a phrase" (quoted) or a prefix such as auth*')
    p.add_argument("--limit", type=int, default=20, metavar="N",
                   help="show at most N hits, best first (default 20)")
    p.add_argument("-o", "--output", metavar="VAR", help="store the hits (a list) in VAR")


def cmd_search(ctx: Context, args: argparse.Namespace) -> HitTable:
    if args.limit < 1:
        raise MagicUsageError(f"--limit must be 1 or more, got {args.limit}")
    text = " ".join(args.text)
    try:
        hits = ctx.manager.search(text, limit=args.limit)
    except BadQuery as exc:
        raise MagicUsageError(str(exc)) from None
    if args.output and ctx.namespace is not None:
        ctx.namespace[args.output] = hits
    return HitTable(text, hits, ctx.prog, ctx.terminal)


class HitTable:
    """Search hits: session, turn, role, score and snippet (``«match»``), best first."""

    columns = ("session", "turn", "role", "score", "snippet")

    def __init__(self, text: str, hits: Sequence[SearchHit], prog: str, terminal: bool) -> None:
        self.text, self.hits = text, list(hits)
        self.rows = [(h.session_id, "" if h.seq is None else str(h.seq), h.role,
                      f"{h.score:.3g}", h.snippet) for h in self.hits]
        self.hint = ("" if not self.hits or terminal
                     else f"open a hit's session with {prog} switch ID")

    def caption(self) -> str:
        count = len(self.hits)
        found = f"{count} hit{'' if count == 1 else 's'}" if count else "No hits"
        return f"{found} for {self.text!r}" + (f"; {self.hint}" if self.hint else "")

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.hits]

    def __repr__(self) -> str:
        if not self.rows:
            return self.caption()
        table = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)),
                            row[4]]) for row in table]
        return "\n".join([self.caption(), *lines])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{_marked(cell)}</td>" for cell in row) + "</tr>"
                       for row in self.rows)
        return (f'<table class="claude-magic-hits"><caption>{html.escape(self.caption())}'
                f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _marked(cell: str) -> str:
    """Escaped HTML with ``«match»`` shown as ``<mark>match</mark>``."""
    return html.escape(cell).replace("«", "<mark>").replace("»", "</mark>")


def rename_args(p: MagicArgumentParser) -> None:
    p.add_argument("old", help="the session's id (or a unique prefix)")
    p.add_argument("new", help="its new id")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a session that already has the new id")


def cmd_rename(ctx: Context, args: argparse.Namespace) -> Message:
    old = resolve_id(ctx, args.old)
    ctx.manager.rename(old, args.new, overwrite=args.overwrite)
    if ctx.current == old:
        ctx.current = args.new
    return Message(f"Renamed session {old} to {args.new}.", old=str(old), id=args.new)


def verify_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="the session (default: the current one)")


def cmd_verify(ctx: Context, args: argparse.Namespace) -> Message:
    session_id = current_id(ctx, args.id)
    report = ctx.manager.verify(session_id)
    if not report.ok and ctx.terminal:  # exit status 1 for scripts, one line
        raise StorageError(f"verify failed: {report.reason}")
    return Message(report.reason, id=str(session_id), ok=report.ok, messages=report.messages,
                   first_bad_seq=report.first_bad_seq)

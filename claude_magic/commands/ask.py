"""``claude-magic ask``: one turn from the shell, streamed to the terminal as it arrives."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import MagicUsageError
from .arguments import MagicArgumentParser, check_max_tokens, check_model, require_utf8
from .context import Context, Message, current_id

if TYPE_CHECKING:
    from ..client import Query, Response


def ask_args(p: MagicArgumentParser) -> None:
    p.add_argument("prompt", nargs="*", help="what to ask ('-' or nothing: read standard input)")
    p.add_argument("-s", "--session", metavar="ID",
                   help="continue this session (id or unique prefix; default: a new session)")
    p.add_argument("--new", metavar="ID", help="create the session with this id and ask there")
    p.add_argument("-m", "--model", help="model for this turn")
    p.add_argument("--system", metavar="TEXT",
                   help="system prompt (of the new session, or for this turn)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="largest answer for this turn")
    p.add_argument("--backend", help="auto (default), anthropic, claude-code, replay or echo")


def read_prompt(words: list[str]) -> str:
    """The prompt from the words, or standard input when they are ``-`` or none (not a tty)."""
    if words and words != ["-"]:
        return " ".join(words)
    if not words and sys.stdin.isatty():
        raise MagicUsageError("nothing to ask: give the prompt (claude-magic ask 'PROMPT') "
                              "or pipe it to standard input")
    return sys.stdin.read()


def _session(ctx: Context, args: argparse.Namespace) -> tuple[str, bool]:
    """The session to ask in, and whether it was created for this turn."""
    if args.session and args.new:
        raise MagicUsageError("give -s ID (an existing session) or --new ID, not both")
    if args.session:
        return current_id(ctx, args.session), False
    session = ctx.manager.create_session(args.new).with_system_prompt(args.system).build()
    print(f"Created session {session.id}; continue it with: {ctx.prog} ask -s {session.id} ...",
          file=sys.stderr)
    return session.id, True


def _query(ctx: Context, args: argparse.Namespace, prompt: str, session_id: str,
           created: bool) -> Query:
    from ..client import Client, Config

    client = Client(Config(cwd=str(ctx.export_dir)), manager=ctx.manager)
    query = client.query(prompt).session(session_id)
    if args.backend:
        query = query.backend(args.backend)
    if args.model:
        query = query.model(args.model)
    if args.system is not None and not created:
        query = query.system(args.system)
    if args.max_tokens is not None:
        query = query.max_tokens(args.max_tokens)
    return query


def answer_json(response: Response) -> dict[str, Any]:
    """``ask --json``: the answer and what the turn recorded."""
    return {"session_id": str(response.session_id), "turn": response.turn,
            "text": str(response), "model": response.model, "backend": response.backend,
            "offline": bool(response.offline), "cost_usd": response.cost_usd,
            "usage": response.usage.to_dict() if response.usage is not None else None}


def cmd_ask(ctx: Context, args: argparse.Namespace) -> Message:
    """Stream the answer through ``ctx.out.write`` (nothing in ``--json`` mode), then report."""
    if args.max_tokens is not None:
        check_max_tokens(args.max_tokens, "--max-tokens")
    if args.model is not None:
        args.model = check_model(args.model, "--model")
    prompt = require_utf8(read_prompt(args.prompt), "the prompt").strip()
    if not prompt:
        raise MagicUsageError("nothing to ask: the prompt is empty")
    session_id, created = _session(ctx, args)
    query = _query(ctx, args, prompt, session_id, created)
    with query.stream() as chunks:
        try:
            for chunk in chunks:
                ctx.out.write(chunk)
        except BaseException:
            ctx.out.write("\n")
            raise
    response = chunks.response
    if not str(response).endswith("\n"):
        ctx.out.write("\n")
    return Message("", **answer_json(response))

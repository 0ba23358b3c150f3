"""Subcommands on one session: new, switch, list, show, meta, settings, system, fork."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import MagicUsageError
from ..storage.base import metadata_matches
from .arguments import (
    MagicArgumentParser,
    check_max_tokens,
    check_model,
    did_you_mean,
    parse_pairs,
    shown_value,
)
from .context import Context, Message, current_id, resolve_id
from .views import SessionTable, SessionView


def new_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id (default: a new UUID)")
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument("--meta", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="metadata; VALUE is read as JSON when it can be (3, true, [1,2])")
    p.add_argument("--model", help="model for this session's turns")
    p.add_argument("--backend", help="backend for this session's turns")
    p.add_argument("--overwrite", action="store_true", help="replace a session with this id")


def cmd_new(ctx: Context, args: argparse.Namespace) -> Message:
    builder = ctx.manager.create_session(args.id)
    system = args.system if args.system is not None else ctx.system_prompt
    builder.with_system_prompt(system).overwrite(args.overwrite)
    for key, value in parse_pairs(args.meta).items():
        builder.with_metadata(key, value)
    if args.model is not None:
        builder.with_model(check_setting("model", args.model))
    if args.backend is not None:
        builder.with_backend(check_setting("backend", args.backend))
    session = builder.build()
    ctx.current = session.id
    switched = "" if ctx.terminal else " and switched to it"
    return Message(f"Created session {session.id}{switched}.", id=str(session.id))


def one_id_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", help="session id or a unique prefix of it")


def cmd_switch(ctx: Context, args: argparse.Namespace) -> Message:
    ctx.current = resolve_id(ctx, args.id)
    return Message(f"Switched to session {ctx.current}.", id=ctx.current)


def list_args(p: MagicArgumentParser) -> None:
    p.add_argument("--meta", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="only sessions with these metadata values")
    p.add_argument("--limit", type=int, help="show at most N sessions (newest first)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--mine", dest="scope", action="store_const", const="mine",
                       default="all", help="only your own sessions (PostgreSQL store)")
    scope.add_argument("--team", dest="scope", action="store_const", const="team",
                       help="only sessions shared with the team (PostgreSQL store)")


def cmd_list(ctx: Context, args: argparse.Namespace) -> SessionTable:
    wanted = parse_pairs(args.meta)
    if args.limit is not None and args.limit < 0:
        raise MagicUsageError("--limit must be 0 or more")
    manager = ctx.manager
    if args.scope != "all" and not manager.has_owners:
        raise MagicUsageError(f"--{args.scope} needs a PostgreSQL store (owners and "
                              f"visibility); {manager.location} has no owners")
    scoped = {} if args.scope == "all" else {"scope": args.scope}
    sharing = manager.sharing(**scoped) if manager.has_owners else None
    summaries = [s for s in manager.summaries(**scoped)
                 if metadata_matches(s.metadata, wanted)]
    if args.limit is not None:
        summaries = summaries[: args.limit]
    return SessionTable(summaries, ctx.current, manager.location, sharing)


def optional_id_args(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id or prefix (default: the current session)")


def cmd_show(ctx: Context, args: argparse.Namespace) -> SessionView:
    return SessionView(ctx.manager.resume(current_id(ctx, args.id)), ctx.manager.storage)


def meta_args(p: MagicArgumentParser) -> None:
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="entries to set")
    p.add_argument("--unset", nargs="+", action="extend", default=[], metavar="KEY",
                   help="keys to remove")
    p.add_argument("-s", "--session", help="session id (default: the current session)")


def _edit(ctx: Context, args: argparse.Namespace, what: str) -> Message:
    """Show, set or unset the session's ``metadata`` or ``settings``."""
    session_id = current_id(ctx, args.session)
    if not args.pairs and not args.unset:
        entries = getattr(ctx.manager.resume(session_id), what)
        text = "\n".join(f"{k} = {v!r}" for k, v in entries.items()) or f"(no {what})"
        return Message(text, id=str(session_id), **{what: entries})
    values = parse_pairs(args.pairs, what)
    if what == "settings":
        values = {key: check_setting(key, value) for key, value in values.items()}
        ctx.manager.update(session_id, settings=values, unset_settings=args.unset)
    else:
        ctx.manager.update(session_id, metadata=values, unset=args.unset)
    return Message(f"Updated the {what} of session {session_id}.", id=str(session_id))


def cmd_meta(ctx: Context, args: argparse.Namespace) -> Message:
    return _edit(ctx, args, "metadata")


def cmd_settings(ctx: Context, args: argparse.Namespace) -> Message:
    return _edit(ctx, args, "settings")


def check_backend(name: object) -> str:
    """A backend name the client knows, else a one-line error listing them."""
    from ..client import BACKENDS

    if name not in BACKENDS:
        raise MagicUsageError(f"unknown backend {shown_value(name)}"
                              f"{did_you_mean(str(name), BACKENDS)}; "
                              f"choose one of {', '.join(BACKENDS)}")
    return str(name)


def check_budget_setting(value: object) -> float:
    """A session budget in dollars (``budget_usd=2.5``), else a one-line error."""
    from ..config import check_budget

    try:
        budget = check_budget(value)
    except ValueError as exc:
        raise MagicUsageError(str(exc)) from None
    if budget is None:
        raise MagicUsageError("budget_usd must be a number; remove it with --unset budget_usd")
    return budget


SETTINGS: dict[str, Callable[[object], object]] = {
    "model": check_model, "backend": check_backend, "max_tokens": check_max_tokens,
    "budget_usd": check_budget_setting}


def check_setting(key: str, value: object) -> Any:
    """A per-session setting checked before it is stored, else a one-line error."""
    if key not in SETTINGS:
        raise MagicUsageError(f"unknown setting {shown_value(key)}{did_you_mean(key, SETTINGS)}; "
                              f"the settings are {', '.join(SETTINGS)}")
    return SETTINGS[key](value)


def system_args(p: MagicArgumentParser) -> None:
    p.add_argument("text", nargs="*", help="the new system prompt (omit to show it)")
    p.add_argument("--clear", action="store_true", help="remove the system prompt")
    p.add_argument("-s", "--session", help="session id (default: the current session)")


def cmd_system(ctx: Context, args: argparse.Namespace) -> Message:
    session_id = current_id(ctx, args.session)
    if args.clear:
        ctx.manager.update(session_id, system_prompt=None)
        return Message(f"Removed the system prompt of session {session_id}.", id=session_id)
    if args.text:
        ctx.manager.update(session_id, system_prompt=" ".join(args.text))
        return Message(f"Set the system prompt of session {session_id}.", id=session_id)
    prompt = ctx.manager.resume(session_id).system_prompt
    return Message(prompt if prompt is not None else "(no system prompt)", id=session_id,
                   system_prompt=prompt)


def fork_args(p: MagicArgumentParser) -> None:
    p.add_argument("new_id", nargs="?", help="id of the copy (default: a new UUID)")
    p.add_argument("--from", dest="source", help="session to copy (default: the current one)")
    p.add_argument("--at", type=int, metavar="TURN",
                   help="keep the conversation up to and including answer TURN (the turn "
                        "%%%%claude's output metadata shows)")


def cmd_fork(ctx: Context, args: argparse.Namespace) -> Message:
    source = current_id(ctx, args.source)
    try:
        fork = ctx.manager.fork(source, args.new_id, at=args.at)
    except ValueError as exc:  # no answer at that turn
        raise MagicUsageError(str(exc)) from None
    ctx.current = fork.id
    switched = "" if ctx.terminal else " and switched to it"
    at = "" if args.at is None else f" at turn {args.at}"
    return Message(f"Forked session {source}{at} into {fork.id}{switched}.", source=source,
                   id=fork.id, at=args.at)

"""``%claude_session SUBCOMMAND ...``: one table maps each subcommand to its parser and handler."""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import MagicUsageError
from ..session import SessionId
from ..storage.base import metadata_matches
from .arguments import (
    HelpShown,
    MagicArgumentParser,
    check_max_tokens,
    check_model,
    did_you_mean,
    parse_pairs,
    shown_value,
    split_line,
)
from .rendering import MarkdownText, SessionTable

if TYPE_CHECKING:
    from .extension import ClaudeMagics

Handler = Callable[["ClaudeMagics", argparse.Namespace], Any]


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str
    handler: Handler
    configure: Callable[[MagicArgumentParser], None]

    def parser(self) -> MagicArgumentParser:
        parser = MagicArgumentParser(prog=f"%claude_session {self.name}",
                                     description=self.summary)
        self.configure(parser)
        return parser


# --- helpers shared by the handlers -------------------------------------------------------


def resolve_id(magics: ClaudeMagics, text: str) -> SessionId:
    """An existing session's id from its exact id or a unique prefix, else a one-line error."""
    session_id = SessionId(text)  # InvalidSessionId is already a one-line error
    if magics.manager.exists(session_id):
        return session_id
    ids = magics.manager.list()
    matches = [i for i in ids if i.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise MagicUsageError(f"{text!r} matches {len(matches)} sessions ({shown}); "
                              "type more of the id")
    raise MagicUsageError(f"no session {text!r} in {magics.manager.location}"
                          f"{did_you_mean(text, ids)}; see %claude_session list")


def current_id(magics: ClaudeMagics, given: str | None = None) -> SessionId:
    """The session named on the line, else the current one, else a one-line error."""
    if given:
        return resolve_id(magics, given)
    current = magics.workspace.current
    if current is None:
        raise MagicUsageError("no current session; create one with %claude_session new [ID] "
                              "or pick one with %claude_session switch ID")
    if not magics.manager.exists(current):
        magics.workspace.current = None
        raise MagicUsageError(f"the current session {current!r} no longer exists; "
                              "switch to another with %claude_session switch ID")
    return SessionId(current)


def _confirm(args: argparse.Namespace, action: str) -> None:
    if not args.yes:
        raise MagicUsageError(f"{action} cannot be undone; add --yes to confirm")


# --- handlers -----------------------------------------------------------------------------


def _new(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id (default: a new UUID)")
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument("--meta", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="metadata; VALUE is read as JSON when it can be (3, true, [1,2])")
    p.add_argument("--model", help="model for this session's turns")
    p.add_argument("--backend", help="backend for this session's turns")
    p.add_argument("--overwrite", action="store_true", help="replace a session with this id")


def cmd_new(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    builder = magics.manager.create_session(args.id)
    system = args.system if args.system is not None else magics.system_prompt
    builder.with_system_prompt(system).overwrite(args.overwrite)
    for key, value in parse_pairs(args.meta).items():
        builder.with_metadata(key, value)
    if args.model is not None:
        builder.with_model(check_setting("model", args.model))
    if args.backend is not None:
        builder.with_backend(check_setting("backend", args.backend))
    session = builder.build()
    magics.workspace.current = session.id
    print(f"Created session {session.id} and switched to it.")


def _one_id(p: MagicArgumentParser) -> None:
    p.add_argument("id", help="session id or a unique prefix of it")


def cmd_switch(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    magics.workspace.current = resolve_id(magics, args.id)
    print(f"Switched to session {magics.workspace.current}.")


def _list(p: MagicArgumentParser) -> None:
    p.add_argument("--meta", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="only sessions with these metadata values")
    p.add_argument("--limit", type=int, help="show at most N sessions (newest first)")


def cmd_list(magics: ClaudeMagics, args: argparse.Namespace) -> SessionTable:
    wanted = parse_pairs(args.meta)
    summaries = [s for s in magics.manager.summaries() if metadata_matches(s.metadata, wanted)]
    if args.limit is not None:
        if args.limit < 0:
            raise MagicUsageError("--limit must be 0 or more")
        summaries = summaries[: args.limit]
    return SessionTable(summaries, magics.workspace.current, magics.manager.location)



def _optional_id(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id or prefix (default: the current session)")


def cmd_show(magics: ClaudeMagics, args: argparse.Namespace) -> MarkdownText:
    from ..export import session_to_markdown

    session = magics.manager.resume(current_id(magics, args.id))
    return MarkdownText(session_to_markdown(session))


def _meta(p: MagicArgumentParser) -> None:
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="entries to set")
    p.add_argument("--unset", nargs="+", action="extend", default=[], metavar="KEY",
                   help="keys to remove")
    p.add_argument("-s", "--session", help="session id (default: the current session)")


def _edit(magics: ClaudeMagics, args: argparse.Namespace, what: str) -> None:
    """Show, set or unset the session's ``metadata`` or ``settings``."""
    session_id = current_id(magics, args.session)
    if not args.pairs and not args.unset:
        entries = getattr(magics.manager.resume(session_id), what)
        print("\n".join(f"{k} = {v!r}" for k, v in entries.items()) or f"(no {what})")
        return
    values = parse_pairs(args.pairs, what)
    if what == "settings":
        values = {key: check_setting(key, value) for key, value in values.items()}
        magics.manager.update(session_id, settings=values, unset_settings=args.unset)
    else:
        magics.manager.update(session_id, metadata=values, unset=args.unset)
    print(f"Updated the {what} of session {session_id}.")


def cmd_meta(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    _edit(magics, args, "metadata")


def cmd_settings(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    _edit(magics, args, "settings")


def check_backend(name: object) -> str:
    """A backend name the client knows, else a one-line error listing them."""
    from ..client import BACKENDS

    if name not in BACKENDS:
        raise MagicUsageError(f"unknown backend {shown_value(name)}"
                              f"{did_you_mean(str(name), BACKENDS)}; "
                              f"choose one of {', '.join(BACKENDS)}")
    return str(name)


SETTINGS: dict[str, Callable[[object], object]] = {
    "model": check_model, "backend": check_backend, "max_tokens": check_max_tokens}


def check_setting(key: str, value: object) -> Any:
    """A per-session setting checked before it is stored, else a one-line error."""
    if key not in SETTINGS:
        raise MagicUsageError(f"unknown setting {shown_value(key)}{did_you_mean(key, SETTINGS)}; "
                              f"the settings are {', '.join(SETTINGS)}")
    return SETTINGS[key](value)


def _system(p: MagicArgumentParser) -> None:
    p.add_argument("text", nargs="*", help="the new system prompt (omit to show it)")
    p.add_argument("--clear", action="store_true", help="remove the system prompt")
    p.add_argument("-s", "--session", help="session id (default: the current session)")


def cmd_system(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    session_id = current_id(magics, args.session)
    if args.clear:
        magics.manager.update(session_id, system_prompt=None)
        print(f"Removed the system prompt of session {session_id}.")
    elif args.text:
        magics.manager.update(session_id, system_prompt=" ".join(args.text))
        print(f"Set the system prompt of session {session_id}.")
    else:
        prompt = magics.manager.resume(session_id).system_prompt
        print(prompt if prompt is not None else "(no system prompt)")


def _fork(p: MagicArgumentParser) -> None:
    p.add_argument("new_id", nargs="?", help="id of the copy (default: a new UUID)")
    p.add_argument("--from", dest="source", help="session to copy (default: the current one)")


def cmd_fork(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    source = current_id(magics, args.source)
    fork = magics.manager.fork(source, args.new_id)
    magics.workspace.current = fork.id
    print(f"Forked session {source} into {fork.id} and switched to it.")


def _delete(p: MagicArgumentParser) -> None:
    p.add_argument("id", help="session id (exact, or a unique prefix)")
    p.add_argument("--yes", action="store_true", help="confirm")


def cmd_delete(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    session_id = resolve_id(magics, args.id)
    _confirm(args, f"deleting session {session_id}")
    magics.manager.delete(session_id)
    if magics.workspace.current == session_id:
        magics.workspace.current = None
    print(f"Deleted session {session_id}.")


def _clear(p: MagicArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="confirm")


def cmd_clear(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    _confirm(args, f"deleting every session in {magics.manager.location}")
    count = magics.manager.clear()
    magics.workspace.current = None
    print(f"Deleted {count} session{'s' if count != 1 else ''}.")


def _prune(p: MagicArgumentParser) -> None:
    p.add_argument("--older-than", metavar="AGE", help="e.g. 30d, 12h, 2w: not updated since")
    p.add_argument("--keep-last", type=int, default=0, metavar="N",
                   help="always keep the N most recently updated sessions")
    p.add_argument("--yes", action="store_true", help="delete (without it, only list)")


def cmd_prune(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    try:
        doomed = magics.manager.prune(args.older_than, keep_last=args.keep_last,
                                      dry_run=not args.yes)
    except OverflowError:
        raise MagicUsageError(f"%claude_session prune: the age {args.older_than!r} reaches "
                              "past the year 1; use a smaller one, e.g. 365d") from None
    except ValueError as exc:
        raise MagicUsageError(f"%claude_session prune: {exc}") from None
    if not doomed:
        print("No session to prune.")
    elif not args.yes:
        print(f"Would delete {len(doomed)} session(s): {', '.join(doomed)}; add --yes to do it.")
    else:
        if magics.workspace.current in doomed:
            magics.workspace.current = None
        print(f"Deleted {len(doomed)} session(s): {', '.join(doomed)}.")


def _export(p: MagicArgumentParser) -> None:
    p.add_argument("id", nargs="?", help="session id or prefix (default: the current session)")
    p.add_argument("--format", "-f", dest="fmt", default="ipynb",
                   choices=("ipynb", "md", "json", "csv", "df"), help="what to produce")
    p.add_argument("--out", metavar="PATH",
                   help="file or directory to write (default: <id>.<ext> beside the notebook)")
    p.add_argument("-o", "--output", metavar="VAR",
                   help="store the result in VAR instead of writing a file (unless --out)")
    p.add_argument("--all", action="store_true",
                   help="with --format df or csv: one row per session, for every session")


def cmd_export(magics: ClaudeMagics, args: argparse.Namespace) -> Any:
    from ..export import export_session, sessions_export

    in_memory = args.fmt == "df" or (args.output and not args.out)
    path = None if in_memory else (args.out or magics.notebook_dir)
    try:
        if args.all:
            result = sessions_export(magics.manager, args.fmt, path)
        else:
            result = export_session(magics.manager, current_id(magics, args.id), args.fmt, path)
    except ValueError as exc:  # OSError: the magic's boundary names the path and the cause
        raise MagicUsageError(f"%claude_session export: {exc}") from None
    if args.output:
        magics.shell.user_ns[args.output] = result
    if path is not None:
        print(f"Wrote {result}.")
        return None
    return None if args.output else result


def _import(p: MagicArgumentParser) -> None:
    p.add_argument("path", help="a JSON file written by %claude_session export --format json")
    p.add_argument("--as", dest="new_id", metavar="ID", help="store it under this id")
    p.add_argument("--overwrite", action="store_true", help="replace a session with this id")
    p.add_argument("--switch", action="store_true", help="make it the current session")


def read_regular_file(path: str) -> bytes:
    """The bytes of the regular file ``path``, never through a symbolic link and never
    blocking on a FIFO or device; anything else is a one-line error."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    source = os.path.expanduser(path)
    if os.path.islink(source):
        raise MagicUsageError(f"{path} is a symbolic link; import the file it points to "
                              f"({os.path.realpath(source)})")
    fd = os.open(source, flags)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise MagicUsageError(f"{path} is not a regular file; give a JSON file written "
                                  "by %claude_session export --format json")
        return file.read()


def cmd_import(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    from ..export import session_from_json

    if args.path.endswith(".ipynb"):
        raise MagicUsageError(f"{args.path} is a notebook; only JSON exports can be imported "
                              "(export with --format json)")
    session = session_from_json(read_regular_file(args.path))
    if args.new_id is not None:
        session = replace(session, id=SessionId(args.new_id))
    session = magics.manager.import_session(session, overwrite=args.overwrite)
    if args.switch:
        magics.workspace.current = session.id
    print(f"Imported session {session.id} ({len(session.messages)} messages).")


def _nothing(p: MagicArgumentParser) -> None:
    """No arguments."""


def cmd_panel(magics: ClaudeMagics, args: argparse.Namespace) -> Any:
    from ..widget import panel

    if magics.panel is not None:  # one live panel per kernel: the old one stops listening
        magics.panel.close()

    def new_session(session_id: str | None) -> Any:
        builder = magics.manager.create_session(session_id)
        return builder.with_system_prompt(magics.system_prompt).build()

    magics.panel = panel(manager=magics.manager, workspace=magics.workspace,
                         export_dir=magics.notebook_dir, new_session=new_session)
    return magics.panel


def _storage(p: MagicArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="a directory, sqlite:///path or memory")


def cmd_storage(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    if args.spec:
        magics.use_storage(args.spec)
    manager = magics.manager
    print(f"Sessions are stored in {manager.location} ({manager.count()} sessions).")
    for entry in manager.damaged():
        print(f"  damaged, skipped: {entry}")


def _help(p: MagicArgumentParser) -> None:
    p.add_argument("subcommand", nargs="?", help="a subcommand to explain")


def cmd_help(magics: ClaudeMagics, args: argparse.Namespace) -> None:
    if args.subcommand:
        SUBCOMMANDS[_lookup(args.subcommand)].parser().print_help()
        return
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["%claude_session SUBCOMMAND [options]   (SUBCOMMAND --help for details)", ""]
    lines += [f"  {c.name.ljust(width)}  {c.summary}" for c in SUBCOMMANDS.values()]
    lines += ["", "Bare %claude_session shows the current session. Ask with %%claude or %claude."]
    print("\n".join(lines))


SUBCOMMANDS: dict[str, Subcommand] = {
    c.name: c
    for c in (
        Subcommand("new", "create a session and switch to it", cmd_new, _new),
        Subcommand("switch", "make another session current", cmd_switch, _one_id),
        Subcommand("list", "list sessions, newest first", cmd_list, _list),
        Subcommand("show", "show a session's metadata and transcript", cmd_show, _optional_id),
        Subcommand("meta", "show, set or unset metadata", cmd_meta, _meta),
        Subcommand("settings", "show or set per-session model, backend, max_tokens",
                   cmd_settings, _meta),
        Subcommand("system", "show or set the system prompt", cmd_system, _system),
        Subcommand("fork", "copy the current session and switch to the copy", cmd_fork, _fork),
        Subcommand("delete", "delete a session (with --yes)", cmd_delete, _delete),
        Subcommand("clear", "delete every session (with --yes)", cmd_clear, _clear),
        Subcommand("prune", "delete old sessions (lists them without --yes)", cmd_prune,
                   _prune),
        Subcommand("export", "write a session as ipynb, md, json, csv or a DataFrame",
                   cmd_export, _export),
        Subcommand("import", "load a session from a JSON export", cmd_import, _import),
        Subcommand("panel", "open the session browser", cmd_panel, _nothing),
        Subcommand("storage", "show or change where sessions are stored", cmd_storage,
                   _storage),
        Subcommand("help", "this list, or help on one subcommand", cmd_help, _help),
    )
}


def _lookup(name: str) -> str:
    if name in SUBCOMMANDS:
        return name
    raise MagicUsageError(f"unknown subcommand {name!r}{did_you_mean(name, SUBCOMMANDS)}; "
                          "see %claude_session help")


def show_current(magics: ClaudeMagics) -> Any:
    """Bare ``%claude_session``: the current session, or how to get one."""
    if magics.workspace.current is None:
        count = magics.manager.count()
        print(f"No current session ({count} in {magics.manager.location}). "
              "Create one with %claude_session new [ID] or switch with %claude_session switch ID.")
        return None
    return cmd_show(magics, argparse.Namespace(id=None))


def run_session_command(magics: ClaudeMagics, line: str) -> Any:
    """Parse ``line`` and run the subcommand.

    Bad arguments raise ``MagicUsageError``; library errors (``ClaudeMagicError``) propagate and
    IPython shows them as one line through their ``_render_traceback_``.
    """
    words = split_line(line, magics.shell.user_ns)
    try:
        if not words:
            return show_current(magics)
        if words[0] in ("-h", "--help"):
            words = ["help"]
        command = SUBCOMMANDS[_lookup(words[0])]
        args = command.parser().parse(words[1:])
        return command.handler(magics, args)
    except HelpShown:
        return None

"""``claude-magic``: the subcommands of ``%claude_session`` in a terminal, plus ``ask``.

Thin, like the magics: it parses the global options, opens the store and runs the shared
table of :mod:`claude_magic.commands` with a terminal context (plain text, or JSON with
``--json``). Exit status: 0 on success, 1 on a ``ClaudeMagicError`` (one line on standard
error), 2 on a usage error. Everything past the standard library is imported on first use,
so ``claude-magic --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

PROG = "claude-magic"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
TB_HINT = "run again with --traceback for the full traceback"

DESCRIPTION = """\
Manage claude_magic sessions from a terminal, and ask from the shell.

The store (--store SPEC): a directory, sqlite:///path or memory. Default: the
.claude_sessions/ folder of the current directory when it exists (the store of the
notebooks beside it), else $CLAUDE_MAGIC_STORAGE, else .claude_sessions/ here.
"""


def top_parser() -> argparse.ArgumentParser:
    """The global options; the subcommand's words are parsed by the shared table."""
    p = argparse.ArgumentParser(prog=PROG, add_help=False, allow_abbrev=False,
                                usage=f"{PROG} [--store SPEC] [--json] SUBCOMMAND [options]")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--store", metavar="SPEC")
    p.add_argument("--json", action="store_true")
    p.add_argument("--traceback", action="store_true")
    p.add_argument("command", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def take_json(words: list[str]) -> tuple[list[str], bool]:
    """``--json`` may also follow the subcommand (before a ``--``)."""
    end = words.index("--") if "--" in words else len(words)
    found = "--json" in words[:end]
    return [w for i, w in enumerate(words) if not (i < end and w == "--json")], found


class TerminalOutput:
    """Plain text (a view's ``repr``) or, with ``--json``, its ``to_json()``; streamed
    answers are written as they arrive (not in ``--json`` mode, which prints the result)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def show(self, result: Any) -> None:
        if result is None:
            return
        if self.as_json and hasattr(result, "to_json"):
            print(json.dumps(result.to_json(), ensure_ascii=False, indent=2, default=str))
            return
        text = result.text if hasattr(result, "_repr_markdown_") else repr(result)
        if text:
            print(text)

    def write(self, text: str) -> None:
        if not self.as_json:
            sys.stdout.write(text)
            sys.stdout.flush()


def terminal_context(store: str | None, as_json: bool, opened: list[Any]) -> Any:
    """A context on the chosen store (opened on first use, into ``opened`` for the caller
    to close), with no current session."""
    from .commands.context import Context
    from .commands.store import absolute_spec, terminal_storage

    folder = Path.cwd()
    spec = absolute_spec(store or terminal_storage(folder))
    def open_manager() -> Any:
        if not opened:
            from .manager import SessionManager

            opened.append(SessionManager.with_storage(spec))
        return opened[0]

    return Context(open_manager=open_manager, out=TerminalOutput(as_json), prog=PROG,
                   export_dir=folder, terminal=True)


def _no_store() -> Any:
    raise AssertionError("the help opens no store")


def print_help(file: Any = None) -> None:
    from .commands.context import Context
    from .commands.table import help_text

    ctx = Context(open_manager=_no_store, out=TerminalOutput(False), prog=PROG,
                  export_dir=Path("."), terminal=True)
    print(f"usage: {PROG} [--store SPEC] [--json] [--traceback] SUBCOMMAND [options]\n",
          file=file)
    print(DESCRIPTION, file=file)
    print(help_text(ctx), file=file)
    print("\nGlobal options: --store SPEC (see above); --json: output for scripts; "
          "--traceback: show a bug's whole traceback.", file=file)


def error_text(exc: BaseException) -> str:
    """``SessionNotFound: session 'x' not found; ...`` on one line, without colours."""
    from .errors import MagicUsageError

    text = str(exc).replace("\n", " ")
    if isinstance(exc, MagicUsageError):
        return text if text.startswith(f"{PROG} ") else f"{PROG}: error: {text}"
    return f"{PROG}: {getattr(exc, 'label', None) or type(exc).__name__}: {text}"


def run(opts: argparse.Namespace, as_json: bool) -> int:
    """Run one subcommand; the exit status."""
    from .commands.arguments import ArgumentsError
    from .commands.boundary import magic_errors
    from .commands.table import run_command
    from .errors import ClaudeMagicError

    opened: list[Any] = []
    boundary = (contextlib.nullcontext() if opts.traceback
                else magic_errors(f"{PROG} {opts.command}", TB_HINT))
    try:
        with boundary:
            try:
                run_command(terminal_context(opts.store, as_json, opened),
                            [opts.command, *opts.args])
            except BrokenPipeError:  # e.g. `claude-magic list | head -1`: the reader is done
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ArgumentsError as exc:
        print(error_text(exc), file=sys.stderr)
        return EXIT_USAGE
    except ClaudeMagicError as exc:
        if opts.traceback:
            raise
        print(error_text(exc), file=sys.stderr)
        return EXIT_ERROR
    finally:
        for manager in opened:
            manager.close()


def main(argv: list[str] | None = None) -> int:
    """The ``claude-magic`` entry point."""
    words, as_json = take_json(list(sys.argv[1:] if argv is None else argv))
    opts = top_parser().parse_args(words)  # bad global options: argparse exits 2
    if opts.help or opts.command is None or (opts.command == "help" and not opts.args):
        print_help(sys.stdout if opts.command or opts.help else sys.stderr)
        return EXIT_OK if opts.command or opts.help else EXIT_USAGE
    try:
        return run(opts, as_json)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

"""``%%claude`` and ``%claude``: send a prompt in a session and show the answer as it streams."""

from __future__ import annotations

import argparse
import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from IPython.display import JSON, display

from ..commands.arguments import (
    HelpShown,
    MagicArgumentParser,
    check_max_tokens,
    check_model,
    require_utf8,
    split_line,
)
from ..commands.context import current_id
from ..errors import MagicUsageError
from .interpolation import interpolate_rich
from .rendering import LiveAnswer, TerminalAnswer, in_terminal, show_answer
from .session_commands import context_of

if TYPE_CHECKING:
    from ..client import Client, Query, Response
    from .extension import ClaudeMagics

FORMATS = ("markdown", "text", "code", "json")
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


@lru_cache(maxsize=1)
def prompt_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%%claude", description=(
        "Send the cell to Claude in the current session and stream the answer. "
        "{name}, {name.attr}, {In[N]} and {Out[N]} are replaced when they exist; "
        "every other brace is sent as typed."))
    p.add_argument("-s", "--session", metavar="ID", help="ask in this session (this cell only)")
    p.add_argument("--new", nargs="?", const="", metavar="ID",
                   help="create a session (optionally with this id), switch to it and ask there")
    p.add_argument("--overwrite", action="store_true",
                   help="with --new ID: replace a session with that id (so the cell can rerun)")
    p.add_argument("-m", "--model", help="model for this turn")
    p.add_argument("--system", metavar="TEXT",
                   help="system prompt for this turn (with --new: of the new session)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="largest answer for this turn")
    p.add_argument("-f", "--format", dest="fmt", choices=FORMATS, default="markdown",
                   help="markdown (default), text, code (answer's code into a new cell below) "
                        "or json (parsed and shown as JSON)")
    p.add_argument("--no-stream", dest="stream", action="store_false", default=None,
                   help="wait for the whole answer instead of streaming it")
    p.add_argument("-o", "--output", metavar="VAR",
                   help="store the response in VAR (with -f json: the parsed value)")
    p.add_argument("--no-interpolate", dest="interpolate", action="store_false", default=None,
                   help="send {braces} exactly as typed")
    p.add_argument("-a", "--attach", action="append", metavar="PATH", default=[],
                   help="attach a file (repeatable): .png .jpg .jpeg .gif .webp as an image, "
                        ".pdf as a document, else UTF-8 text")
    p.add_argument("--error", action="store_true",
                   help="attach the last exception and the cell that raised it (alone: ask "
                        "to explain and fix it)")
    p.add_argument("--think", nargs="?", const="on", metavar="BUDGET",
                   help=f"extended thinking: a token budget (>= 1024; default "
                        f"{DEFAULT_THINKING}) or 'adaptive'; before a one-line prompt "
                        "write --think=N")
    return p


DEFAULT_THINKING = 4096


def thinking_of(value: str | None) -> int | str | None:
    """``--think`` as a setting: None, ``"adaptive"`` or a budget (one-line error if bad)."""
    from ..config import check_thinking

    if value is None:
        return None
    if value == "on":
        return DEFAULT_THINKING
    try:
        return check_thinking(value if value == "adaptive" else int(value))
    except ValueError:
        raise MagicUsageError(f"--think {value}: give a budget of at least 1024 tokens or "
                              "'adaptive'") from None


def context_blocks(magics: ClaudeMagics, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The last error (``--error``) and the attached files (``--attach``), each checked
    against the API's limits now (one line for the first that fails)."""
    from ..context import attach_file, error_block

    blocks = [error_block(magics.shell)] if args.error else []
    return blocks + [attach_file(path) for path in args.attach]


def prompt_content(text: str, blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """The user message: the text alone, or images and documents first, then text blocks,
    then the prompt (the order the API reads best)."""
    if not blocks:
        return text
    binary = [b for b in blocks if b["type"] in ("image", "document")]
    texts = [b for b in blocks if b["type"] not in ("image", "document")]
    return [*binary, *texts, {"type": "text", "text": text}]


def _session_for(magics: ClaudeMagics, args: argparse.Namespace) -> str:
    """The session this cell talks in, creating one when needed."""
    if args.new is not None:
        builder = magics.manager.create_session(args.new or None).overwrite(args.overwrite)
        session = builder.with_system_prompt(
            args.system if args.system is not None else magics.system_prompt).build()
        magics.workspace.current = session.id
        print(f"Created session {session.id} and switched to it.")
        return session.id
    if args.session:
        return current_id(context_of(magics), args.session)
    if magics.workspace.current is None:
        session = (magics.manager.create_session()
                   .with_system_prompt(magics.system_prompt).build())
        magics.workspace.current = session.id
        print(f"Created session {session.id} (no session was current).")
        return session.id
    return current_id(context_of(magics))


def _build_query(client: Client, args: argparse.Namespace, prompt: str | list[dict[str, Any]],
                 session_id: str) -> Query:
    query = client.query(prompt).session(session_id).asides()
    if args.think is not None:
        query = query.think(thinking_of(args.think))
    if args.model:
        query = query.model(args.model)
    if args.system is not None and args.new is None:
        query = query.system(args.system)
    if args.max_tokens is not None:
        query = query.max_tokens(args.max_tokens)
    return query


def turn_metadata(response: Response) -> dict[str, Any]:
    """Display metadata linking a notebook output to its turn in the session."""
    return {"claude_magic": {
        "session_id": str(response.session_id),
        "turn": response.turn,
        "hash": response.ids.get("hash"),  # the answer's chain hash (claude_magic.chain)
        "model": response.model,
        "backend": response.backend,
        "offline": bool(response.offline),
        "usage": response.usage.to_dict() if response.usage is not None else None,
        "cost_usd": response.cost_usd,
    }}


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of an answer, in order."""
    return [block.strip("\n") for block in _FENCE.findall(text)]


def extract_code(text: str) -> str:
    """The code blocks of an answer joined (or the whole answer when it has none)."""
    blocks = code_blocks(text)
    return "\n\n".join(blocks) if blocks else text.strip()


def put_code_below(magics: ClaudeMagics, response: Response) -> None:
    """``-f code``: the answer's code blocks in a new cell below, or one line saying none."""
    blocks = code_blocks(str(response))
    if not blocks:
        print(f"The answer has no code block, so no cell was added (turn {response.turn} of "
              f"session {response.session_id}).")
        return
    magics.shell.set_next_input("\n\n".join(blocks), replace=False)


def parse_json_answer(response: Response) -> Any:
    text = extract_code(str(response))
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MagicUsageError(f"the answer is not valid JSON ({exc}); it is kept as turn "
                              f"{response.turn} of session {response.session_id}") from None


def _ask(magics: ClaudeMagics, query: Query, fmt: str, stream: bool) -> Response:
    if not stream:
        response = query.send()
        show_answer(str(response), "text" if fmt == "text" else "markdown",
                    turn_metadata(response))
        return response
    live: LiveAnswer | TerminalAnswer
    if in_terminal(magics.shell):
        live = TerminalAnswer()
    else:
        live = LiveAnswer("text" if fmt == "text" else "markdown",
                          interval=magics.update_interval)
    # the context manager closes the stream at once on an error or Ctrl-C, so the turn is
    # recorded (prompt marked error, partial answer kept) before the error reaches the user
    asides = Asides()
    with query.stream() as chunks:
        try:
            for chunk in chunks:
                live.add(asides.add(chunk))
        except BaseException:
            live.finish(live.text + ("\n\n*(answer incomplete)*" if live.text else ""))
            raise
    response = chunks.response
    live.finish(asides.compose(str(response), fmt), turn_metadata(response))
    return response


class Asides:
    """Thinking and tool-call lines that arrived with an answer: shown as they stream, then
    folded above the answer (thinking collapsed)."""

    def __init__(self) -> None:
        self.thinking: list[str] = []
        self.tools: list[str] = []
        self.answering = False

    def add(self, chunk: str) -> str:
        """Note an aside; returns what to show live for ``chunk``."""
        kind = getattr(chunk, "kind", None)
        if kind == "thinking":
            self.thinking.append(chunk)
            return chunk if len(self.thinking) > 1 else f"*thinking…* {chunk}"
        if kind == "tool":
            self.tools.append(str(chunk))
            return f"\n\n`{chunk}`\n\n"
        first, self.answering = not self.answering, True
        return "\n\n---\n\n" + chunk if first and self.thinking else chunk

    def compose(self, answer: str, fmt: str) -> str:
        """The final output: thinking (collapsed in Markdown), one line per tool call, then
        the answer."""
        parts = []
        thought = "".join(self.thinking)
        if thought and fmt == "text":
            parts.append(f"[thinking]\n{thought}\n[/thinking]")
        elif thought:
            parts.append(f"<details><summary>Thinking ({len(thought):,} characters)</summary>"
                         f"\n\n{thought}\n\n</details>")
        lines = [f"`{line}`" if fmt != "text" else line for line in self.tools]
        if lines:
            parts.append("  \n".join(lines))
        return "\n\n".join([*parts, answer]) if parts else answer


def split_line_magic(line: str) -> tuple[str, str]:
    """``%claude [options] PROMPT``: the options' text and the prompt, as typed.

    Options come first and end at the first word that is not one (or at ``--``); an option
    that takes a value takes the next word. ``--new`` takes an id only as ``--new=ID``.
    """
    import io
    import shlex

    takes_value = {o for a in prompt_parser()._actions if a.nargs is None
                   for o in a.option_strings}
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    end = 0
    expect_value = False
    try:
        while (word := lexer.get_token()) is not None:
            if not expect_value and (word == "--" or not word.startswith("-")):
                if word == "--":
                    return line[:end], line[stream.tell():].lstrip()
                return line[:end], line[end:].lstrip()
            expect_value = not expect_value and word in takes_value
            end = stream.tell()
    except ValueError:  # unbalanced quotes: in an option, parsing it says so; else the prompt
        rest = line[end:].lstrip()
        if expect_value or rest.startswith("-"):
            return line, ""
        return line[:end], rest
    return line[:end], ""


def run_prompt(magics: ClaudeMagics, line: str, cell: str) -> None:
    """Run ``%%claude`` (``line`` = options, ``cell`` = prompt) or ``%claude PROMPT``."""
    try:
        args = prompt_parser().parse(split_line(line, magics.shell.user_ns))
    except HelpShown:
        return None
    # everything is checked before anything is created or sent
    if args.max_tokens is not None:
        check_max_tokens(args.max_tokens, "--max-tokens")
    if args.model is not None:
        args.model = check_model(args.model, "--model")
    if args.overwrite and not args.new:
        raise MagicUsageError("--overwrite goes with --new ID")
    if args.think is not None:
        thinking_of(args.think)
    use_interpolation = magics.interpolate if args.interpolate is None else args.interpolate
    cell = cell.rstrip("\n")  # IPython ends every cell body with a newline
    shell = magics.shell
    images: list[dict[str, Any]] = []
    prompt = cell
    if use_interpolation:
        prompt, images = interpolate_rich(cell, shell.user_ns, shell.user_ns_hidden,
                                          magics.context_rows, magics.context_chars)
    require_utf8(prompt, "the prompt")
    blocks = images + context_blocks(magics, args)
    if not prompt.strip() and args.error:
        from ..context.lasterror import EXPLAIN

        prompt = EXPLAIN
    if not prompt.strip():
        raise MagicUsageError("nothing to send: write the prompt in the cell under %%claude "
                              "(or after %claude)")
    client = magics.client  # a configuration error shows now, before a session is created
    session_id = _session_for(magics, args)
    query = _build_query(client, args, prompt_content(prompt, blocks), session_id)
    stream = magics.stream if args.stream is None else args.stream
    response = _ask(magics, query, args.fmt, stream)
    if stream:  # one small line: tokens in (cached) / out, cost, how full the window is
        from ..ledger import status_line

        print(status_line(response))

    result: Any = response
    if args.fmt == "code":
        put_code_below(magics, response)
    elif args.fmt == "json":
        result = parse_json_answer(response)
        display(JSON(result) if isinstance(result, (dict, list)) else result)
    if args.output:
        magics.shell.user_ns[args.output] = result
    _remember_as_result(magics, response)
    return None


def _remember_as_result(magics: ClaudeMagics, response: Response) -> None:
    """Make ``_`` (and ``Out[n]``) hold the response without displaying it a second time."""
    displayhook = getattr(magics.shell, "displayhook", None)
    if displayhook is not None and hasattr(displayhook, "update_user_ns"):
        displayhook.update_user_ns(response)

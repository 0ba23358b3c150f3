"""The ``claude-code`` backend: runs the Claude Code CLI, one process per turn.

``claude -p --output-format stream-json --verbose --include-partial-messages``, the prompt on
stdin (no length limit, no confusion with options). A session's first turn passes
``--session-id <new uuid4>`` and the session's system prompt; later turns pass ``--resume <id>``
(plus ``--fork-session``, see below) where ``<id>`` is the CLI's own session id, read from its
``init``/``result`` lines and stored on the answer as ``ids["claude_session_id"]``, so it always
derives from the session's history. With ``fork_session`` (the default) every turn continues a
copy of the CLI conversation: a failed turn, or a fork of our session, never leaks into the
conversation the next turn resumes. Binary: ``Config.claude_binary``, then ``$CLAUDE_BINARY``,
then ``claude`` on ``PATH``, then the CLI bundled in the ``claude-agent-sdk`` wheel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..blocks import main_argument
from ..compaction import is_summary
from ..errors import (
    AuthenticationError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    CLINotFound,
    OverloadedError,
    RateLimitError,
)
from ..message import Message, Usage
from .base import Aside, TurnRequest, TurnResult, attach_result, cut_short, one_line

if TYPE_CHECKING:
    from ..config import Config

INSTALL_HINT = "install it with `npm install -g @anthropic-ai/claude-code`"
TOOL_EXCERPT = 2000  # characters of a tool result kept in the stored answer
SESSION_ID_KEY = "claude_session_id"


def find_binary(config: Config) -> str:
    """The CLI to run; raises :class:`CLINotFound` saying how to install it."""
    chosen = config.claude_binary or os.environ.get("CLAUDE_BINARY")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            origin = "Config.claude_binary" if config.claude_binary else "CLAUDE_BINARY"
            raise CLINotFound(f"the Claude Code CLI {chosen!r} (from {origin}) was not found or "
                              f"is not executable; fix the path, or {INSTALL_HINT}")
        return found
    found = shutil.which("claude") or _bundled_binary()
    if found is None:
        raise CLINotFound(f"the Claude Code CLI `claude` is not on PATH; {INSTALL_HINT}, "
                          "or set CLAUDE_BINARY / Config(claude_binary=...) to its path")
    return found


def _bundled_binary() -> str | None:
    """The CLI inside an installed ``claude-agent-sdk`` wheel (found without importing it)."""
    try:
        spec = importlib.util.find_spec("claude_agent_sdk")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_bundled" / "claude"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def cli_session_to_resume(history: Sequence[Message]) -> str | None:
    """The CLI session id of the last answer, if that answer came from the CLI and was given
    after the session's last compaction (else a fresh CLI conversation starts, seeded with the
    summary and the turns kept after it)."""
    summary = max((m.seq or 0 for m in history if is_summary(m)), default=None)
    for message in reversed(history):
        if message.role == "assistant":
            if summary is not None and (message.seq or 0) <= summary:
                return None
            return message.ids.get(SESSION_ID_KEY) or None
    return None


def folded_history(history: Sequence[Message]) -> str:
    """Earlier turns as text, for a CLI conversation started on a session that already has
    turns from another backend (the CLI cannot be given prior messages any other way)."""
    lines = ["Earlier turns of this conversation (answered through another backend):"]
    for message in history:
        lines.append(f"\n{message.role.capitalize()}: {message.text}")
    return "\n".join(lines)


def has_binary(blocks: list[dict[str, Any]] | None) -> bool:
    """Whether a prompt's blocks hold an image or a document (sent as stream-json input)."""
    return bool(blocks) and any(b["type"] in ("image", "document") for b in blocks or ())


def stream_json_input(blocks: list[dict[str, Any]]) -> str:
    """The prompt as the CLI's ``--input-format stream-json`` input: one user message line
    with its content blocks (images and PDFs as base64), as the Messages API takes them."""
    return json.dumps({"type": "user", "message": {"role": "user", "content": blocks}}) + "\n"


def build_argv(binary: str, request: TurnRequest, *, stream_input: bool = False) -> list[str]:
    """The command line for one turn (the prompt goes to stdin: as text, or with
    ``stream_input`` as one stream-json user message carrying images and PDFs)."""
    config = request.config
    argv = [binary, "-p", "--output-format", "stream-json", "--verbose",
            "--include-partial-messages", "--model", request.model,
            "--permission-mode", config.permission_mode]
    if stream_input:
        argv += ["--input-format", "stream-json"]
    resume = cli_session_to_resume(request.history)
    if resume:
        argv += ["--resume", resume]
        if config.fork_session:
            argv.append("--fork-session")
    else:
        argv += ["--session-id", str(uuid.uuid4())]
        if request.system:
            argv += ["--system-prompt", request.system]
        if request.history:
            argv += ["--append-system-prompt", folded_history(request.history)]
    if config.max_turns is not None:
        argv += ["--max-turns", str(config.max_turns)]
    if config.allowed_tools:
        argv += ["--allowedTools", *config.allowed_tools]
    return argv


class ClaudeCodeBackend:
    """One ``claude`` process per turn; its stream-json output parsed line by line."""

    name = "claude-code"

    def __repr__(self) -> str:
        return "ClaudeCodeBackend()"

    def stream_turn(self, request: TurnRequest) -> Iterator[str | TurnResult]:
        config = request.config
        binary = has_binary(request.blocks)
        argv = build_argv(find_binary(config), request, stream_input=binary)
        cwd = config.cwd or os.getcwd()
        env = dict(os.environ)
        if config.base_url:
            env["ANTHROPIC_BASE_URL"] = config.base_url
        stdin = stream_json_input(request.blocks) if binary and request.blocks else request.prompt
        run = _Process(argv, cwd, stdin, config.timeout, env)
        try:
            parser = _Parser()
            for line in run.lines():
                yield from parser.feed(line)
            code = run.wait()
            if run.timed_out:
                raise BackendTimeout(cut_short(
                    f"Claude Code did not finish within {config.timeout:g} s and was stopped "
                    "(raise Config(timeout=...) if it is slow)", parser.chars, request))
            yield parser.finish(code, run.stderr_tail(), request)
        finally:
            run.stop()


class _Process:
    """A CLI process in its own process group, with stdin fed and stderr drained by threads
    and a watchdog that kills the group at the timeout."""

    def __init__(self, argv: list[str], cwd: str, prompt: str, timeout: float,
                 env: dict[str, str]) -> None:
        if not Path(cwd).is_dir():
            raise BackendUnavailable(f"the working directory {cwd!r} for Claude Code does not "
                                     "exist; fix Config(cwd=...)")
        try:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except (FileNotFoundError, PermissionError) as exc:
            raise CLINotFound(f"cannot run the Claude Code CLI {argv[0]!r} "
                              f"({exc.strerror}); {INSTALL_HINT}") from exc
        self.timed_out = False
        self._stderr: deque[str] = deque(maxlen=20)
        self._threads = [threading.Thread(target=self._feed, args=(prompt,), daemon=True),
                         threading.Thread(target=self._drain, daemon=True)]
        for thread in self._threads:
            thread.start()
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _feed(self, prompt: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            self.proc.stdin.write(prompt.encode())
            self.proc.stdin.close()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            text = raw.decode("utf-8", "replace").strip()
            if text:
                self._stderr.append(text)

    def _expire(self) -> None:
        self.timed_out = True
        self._kill()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def lines(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def wait(self) -> int:
        code = self.proc.wait()
        self._threads[1].join(timeout=5)
        return code

    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    def stop(self) -> None:
        """Cancel the watchdog; kill the process group if it is still running; close pipes."""
        self._timer.cancel()
        if self.proc.poll() is None:
            self._kill()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if pipe is not None:
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()


class _Parser:
    """Turns stream-json lines into text chunks and, at the end, a result or an error."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.model: str | None = None
        self.result: dict[str, Any] | None = None
        self.streamed: set[str] = set()  # message ids whose text came as stream events
        self.current: str | None = None  # message id of the stream events being read
        self.unstopped = False  # the last API message streamed began and never reached its stop
        self.last_text_message: str | None = None
        self.noise: list[str] = []
        self.yielded: list[str] = []  # the text chunks yielded so far
        self.completed: list[tuple[str, str]] = []  # (message id, text) of assistant lines
        self.blocks: list[dict[str, Any]] = []  # text, tool_use and tool_result, in order
        self.tools: dict[str, dict[str, Any]] = {}  # tool_use id -> its block

    def feed(self, raw: bytes) -> Iterator[str]:
        line = raw.strip()
        if not line.startswith(b"{"):
            if line:
                self.noise.append(one_line(line.decode("utf-8", "replace"), 200))
            return
        try:
            data = json.loads(line)
        except ValueError:
            return
        kind = data.get("type")
        if data.get("session_id"):
            self.session_id = data["session_id"]
        if kind == "system" and data.get("subtype") == "init":
            self.model = data.get("model") or self.model
        elif kind == "stream_event":
            yield from self._event(data.get("event") or {})
        elif kind == "assistant":
            message = data.get("message") or {}
            self.model = message.get("model") or self.model
            message_id = message.get("id") or ""
            for block in message.get("content") or []:
                if block.get("type") == "text" and block.get("text"):
                    self.completed.append((message_id, block["text"]))
                    self.blocks.append({"type": "text", "text": block["text"]})
                    if message_id not in self.streamed:
                        yield from self._text(message_id, block["text"])
                elif block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    self._tool_use(block)
        elif kind == "user":
            for block in (data.get("message") or {}).get("content") or []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    yield from self._tool_result(block)
        elif kind == "result":
            self.result = data

    def _tool_use(self, block: dict[str, Any]) -> None:
        stored = {"type": "tool_use", "id": block["id"], "name": str(block.get("name") or "?"),
                  "input": block.get("input") if isinstance(block.get("input"), dict) else {}}
        self.tools[stored["id"]] = stored
        self.blocks.append(stored)

    def _tool_result(self, block: dict[str, Any]) -> Iterator[str]:
        """Store an excerpt of a tool's result; show one line: tool, argument, outcome."""
        content = block.get("content")
        if isinstance(content, list):
            content = "\n".join(str(b.get("text", f"[{b.get('type')}]")) for b in content
                                 if isinstance(b, dict))
        text = str(content or "")
        if len(text) > TOOL_EXCERPT:
            text = text[:TOOL_EXCERPT] + f"\n[... {len(text) - TOOL_EXCERPT:,} more characters]"
        use_id = str(block.get("tool_use_id") or "")
        error = bool(block.get("is_error"))
        self.blocks.append({"type": "tool_result", "tool_use_id": use_id, "content": text,
                            "is_error": error})
        use = self.tools.get(use_id, {"name": "tool", "input": {}})
        outcome = "error" if error else "ok"
        first = one_line(text, 60)
        yield Aside(f"{use['name']} {main_argument(use['input'])} → {outcome}"
                    + (f": {first}" if first else ""), "tool")

    def _event(self, event: dict[str, Any]) -> Iterator[str]:
        if event.get("type") == "message_start":
            self.current = (event.get("message") or {}).get("id")
            self.unstopped = True
        elif event.get("type") == "message_stop":
            self.unstopped = False
        elif event.get("type") == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                self.streamed.add(self.current or "")
                yield from self._text(self.current or "", delta["text"])

    def _text(self, message_id: str, text: str) -> Iterator[str]:
        if self.last_text_message is not None and message_id != self.last_text_message:
            self.yielded.append("\n\n")
            yield "\n\n"  # text of a later model message (after a tool call)
        self.last_text_message = message_id
        self.yielded.append(text)
        yield text

    @property
    def chars(self) -> int:
        """How many characters of text were yielded so far."""
        return sum(map(len, self.yielded))

    def final_text(self) -> str | None:
        """The answer as the CLI's completed messages (``assistant`` lines) give it, when that
        differs from the text streamed: the CLI streams the partial text of an API attempt it
        then retries (an ``api_retry`` line), and that attempt never gets an assistant line."""
        parts: list[str] = []
        last: str | None = None
        for message_id, text in self.completed:
            if last is not None and message_id != last:
                parts.append("\n\n")
            parts.append(text)
            last = message_id
        final = "".join(parts)
        return final if self.completed and final != "".join(self.yielded) else None

    def finish(self, code: int, stderr: list[str], request: TurnRequest) -> TurnResult:
        """The turn's result from the ``result`` line; without one (the CLI exited or was
        killed first) the answer is incomplete whatever the exit code."""
        result = self.result
        if result is None:
            raise BackendError(cut_short(f"Claude Code {_ended(code)} before its result line",
                                         self.chars, request, self._tail(stderr)))
        usage = Usage.from_dict(result.get("usage"))
        cost = next((result[k] for k in ("total_cost_usd", "cost_usd", "total_cost")
                     if isinstance(result.get(k), (int, float))), None)
        ids = {}
        session_id = result.get("session_id") or self.session_id
        if session_id:
            ids[SESSION_ID_KEY] = session_id
        if result.get("num_turns") is not None:
            ids["num_turns"] = str(result["num_turns"])
        turn = TurnResult(text=result.get("result"), final_text=self.final_text(),
                          model=self.model or request.model,
                          stop_reason=result.get("stop_reason"), usage=usage,
                          cost_usd=float(cost) if cost is not None else None, ids=ids,
                          blocks=self.blocks if self.tools else None)
        if result.get("is_error") or result.get("subtype") != "success":
            raise attach_result(_result_error(result, code), turn)
        if code != 0:
            raise attach_result(BackendError(
                f"Claude Code {_ended(code)} after a successful result ({self._tail(stderr)})"
                "; send the prompt again"), turn)
        if self.unstopped:  # some CLI versions call a cut API stream a success, unretried
            raise attach_result(BackendError(cut_short(
                "Claude Code reported success, but the API stream of its last message ended "
                "before message_stop", self.chars, request)), turn)
        return turn

    def _tail(self, stderr: list[str]) -> str:
        """The last lines of stderr (else of stdout's non-JSON lines), for an error message."""
        if stderr:
            return "stderr: " + one_line(" | ".join(stderr[-3:]), 160)
        if self.noise:
            return "output: " + one_line(self.noise[-1], 160)
        return "nothing on stderr"


def _ended(code: int) -> str:
    """How the process ended: ``exited with code N`` or ``was killed by SIGKILL``."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"


def _result_error(result: dict[str, Any], code: int) -> BackendError:
    subtype = result.get("subtype") or "error"
    errors = result.get("errors") or []
    detail = one_line("; ".join(str(e) for e in errors) or result.get("result") or subtype)
    status = result.get("api_error_status")
    if isinstance(status, int):
        text = f"Claude Code got an API error {status}: {detail}"
        if status in (401, 403):
            return AuthenticationError(f"{text}; check ANTHROPIC_API_KEY or run `claude` to log in")
        if status == 429:
            return RateLimitError(f"{text}; wait a moment and try again")
        if status >= 500:
            return OverloadedError(f"{text}; try again shortly")
        if status in (400, 404, 413):
            return BadRequest(text)
        return BackendError(text)
    if subtype == "error_max_turns":
        return BackendError(f"Claude Code stopped at its turn limit after {result.get('num_turns')}"
                            f" turns ({detail}); raise Config(max_turns=...)")
    if "No conversation found" in detail:
        return BackendError(f"Claude Code cannot resume this session ({detail}); its transcript "
                            "lives under ~/.claude/projects/<cwd>, so run from the same directory"
                            " and CLAUDE_CONFIG_DIR")
    return BackendError(f"Claude Code failed ({subtype}, exit code {code}): {detail}")

"""A fake ``claude`` (Claude Code CLI) executable for tests: real stream-json, no model.

``FakeClaude(tmp_dir)`` writes an executable ``claude`` wrapper into ``tmp_dir`` and keeps its
state there: the per-session transcripts (so ``--resume`` works and unknown ids fail as in the
real CLI), a script of replies and failures, and ``calls.jsonl`` with every invocation's argv::

    fake = FakeClaude(tmp_path)
    fake.reply("Hello")                    # the next run answers "Hello"
    fake.error("max_turns")                # the one after fails like the real CLI
    Config(backend="claude-code", claude_binary=str(fake.path))
    fake.calls[-1]["argv"]

Default answers say ``[fake claude — no model was called] turn N: You said: ...`` where N counts
the turns of the resumed conversation. The key is never recorded, only whether one was set.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import signal
import stat
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ..backends.base import split_words

DEFAULT_PREFIX = "[fake claude — no model was called]"
STATE_ENV = "FAKE_CLAUDE_DIR"
VERSION = "2.1.330 (Claude Code; fake)"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_VALUE_OPTIONS = {"--output-format", "--input-format", "--model", "--system-prompt",
                  "--append-system-prompt", "--session-id", "--resume", "-r", "--max-turns",
                  "--permission-mode", "--fallback-model", "--settings", "--mcp-config"}
_LIST_OPTIONS = {"--allowedTools", "--allowed-tools", "--disallowedTools",
                 "--disallowed-tools", "--add-dir"}
_FLAGS = {"-p", "--print", "--verbose", "--include-partial-messages", "--fork-session",
          "--continue", "-c", "--dangerously-skip-permissions", "--strict-mcp-config"}


class FakeClaude:
    """A fake CLI installed in ``directory``; script it, then read ``calls`` and ``sessions``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = install(self.directory)

    def __repr__(self) -> str:
        return f"FakeClaude({str(self.path)!r})"

    def _push(self, item: dict[str, Any]) -> FakeClaude:
        with _locked(self.directory):
            script = _read_script(self.directory)
            script.append(item)
            _write_json(self.directory / "script.json", script)
        return self

    def reply(self, text: str, *, chunks: list[str] | None = None,
              usage: dict[str, int] | None = None, cost: float | None = None,
              tool_use: str | None = None, model: str | None = None,
              new_session_id: bool = False, noise: bool = False,
              retried: str | None = None, tool_input: dict[str, Any] | None = None,
              tool_result: str = "ok", tool_error: bool = False,
              cut: bool = False) -> FakeClaude:
        """Script a successful run. ``tool_use="Read"`` first emits a message using that tool
        and its result (two model turns); ``new_session_id`` answers a ``--resume`` under a
        fresh id (as some CLI versions did); ``noise`` adds non-JSON lines to stdout;
        ``retried`` first streams that text as an API attempt cut short, then an
        ``api_retry`` line (as the real CLI does when a stream ends before message_stop).
        ``tool_input``, ``tool_result`` and ``tool_error`` shape that tool call. ``cut``
        streams the text as an API attempt cut before ``message_stop`` and still reports
        success, with an empty result and no retry (as the CLI of claude-agent-sdk 0.2.82
        does)."""
        return self._push({"kind": "reply", "text": text, "chunks": chunks, "usage": usage,
                           "cost": cost, "tool_use": tool_use, "model": model,
                           "new_session_id": new_session_id, "noise": noise,
                           "retried": retried, "tool_input": tool_input or {},
                           "tool_result": tool_result, "tool_error": tool_error,
                           "cut": cut})

    def error(self, kind: str, *, text: str = "", message: str | None = None,
              status: int = 529) -> FakeClaude:
        """Script a failed run: ``max_turns``, ``during_execution`` or ``api`` (an API error
        result with ``status``), after streaming ``text``."""
        if kind not in ("max_turns", "during_execution", "api"):
            raise ValueError("kind must be max_turns, during_execution or api")
        return self._push({"kind": kind, "text": text, "message": message, "status": status})

    def exit(self, code: int, stderr: str = "Error: something went wrong",
             text: str = "", *, cut: bool = False) -> FakeClaude:
        """Script a run that streams ``text`` then exits with ``code`` and no result line;
        ``cut`` stops mid-message (its stream events only: no ``assistant`` line, no
        ``message_stop``)."""
        return self._push({"kind": "exit", "code": code, "stderr": stderr, "text": text,
                           "cut": cut})

    def killed(self, signum: int = signal.SIGKILL, stderr: str = "", text: str = "", *,
               cut: bool = True) -> FakeClaude:
        """Script a run that streams ``text`` (mid-message unless ``cut=False``), writes
        ``stderr``, then dies of signal ``signum`` with no result line."""
        return self._push({"kind": "killed", "signum": int(signum), "stderr": stderr,
                           "text": text, "cut": cut})

    def hang(self, seconds: float = 60.0, text: str = "") -> FakeClaude:
        """Script a run that streams ``text`` then sleeps (for timeout tests)."""
        return self._push({"kind": "hang", "seconds": seconds, "text": text})

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every invocation so far: ``argv`` (without the program), ``cwd``, ``stdin``."""
        log = self.directory / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def transcript(self, session_id: str, cwd: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The fake's stored conversation for this id, as resumed from ``cwd``."""
        path = _session_path(self.directory, os.fspath(cwd), session_id)
        return json.loads(path.read_text()) if path.exists() else None


def install(directory: str | os.PathLike[str], name: str = "claude") -> Path:
    """Write an executable wrapper ``directory/name`` running this module; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"os.environ.setdefault({STATE_ENV!r}, {str(directory)!r})\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from claude_magic.testing.fake_claude import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# --- state ----------------------------------------------------------------------------------


class _locked:
    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"

    def __enter__(self) -> None:
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _read_script(directory: Path) -> list[dict[str, Any]]:
    path = directory / "script.json"
    return json.loads(path.read_text()) if path.exists() else []


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _session_path(directory: Path, cwd: str, session_id: str) -> Path:
    return directory / "projects" / re.sub(r"[^A-Za-z0-9]", "-", cwd) / f"{session_id}.json"


# --- the executable -------------------------------------------------------------------------


class _Usage(Exception):
    pass


def _parse(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1:])
            break
        name, _, inline = arg.partition("=")
        if name in _FLAGS:
            opts[name] = True
        elif name in _VALUE_OPTIONS:
            if inline:
                opts[name] = inline
            elif i + 1 < len(argv):
                i += 1
                opts[name] = argv[i]
            else:
                raise _Usage(f"error: option '{name} <value>' argument missing")
        elif name in _LIST_OPTIONS:
            values = [inline] if inline else []
            while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
                values.append(argv[i])
            opts[name] = values
        elif arg.startswith("-") and arg != "-":
            raise _Usage(f"error: unknown option '{arg}'")
        else:
            positional.append(arg)
        i += 1
    return opts, positional


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    directory = Path(os.environ.get(STATE_ENV) or Path.home() / ".fake-claude")
    directory.mkdir(parents=True, exist_ok=True)
    if argv in (["--version"], ["-v"]):
        print(VERSION)
        return 0
    try:
        opts, positional = _parse(argv)
    except _Usage as exc:
        _log_call(directory, argv, None)
        print(exc, file=sys.stderr)
        return 1
    prompt = " ".join(positional) if positional else None
    stdin_prompt = None
    if prompt is None and not sys.stdin.isatty():
        stdin_prompt = prompt = sys.stdin.read()
    _log_call(directory, argv, stdin_prompt)
    return _run(directory, opts, prompt)


def _log_call(directory: Path, argv: list[str], stdin: str | None) -> None:
    record = {"argv": argv, "cwd": os.getcwd(), "stdin": stdin,
              "api_key_set": bool(os.environ.get("ANTHROPIC_API_KEY")),
              "base_url": os.environ.get("ANTHROPIC_BASE_URL"), "pid": os.getpid(),
              "time": time.time()}
    with _locked(directory), open(directory / "calls.jsonl", "a") as log:
        log.write(json.dumps(record) + "\n")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _run(directory: Path, opts: dict[str, Any], prompt: str | None) -> int:
    if not (opts.get("-p") or opts.get("--print")):
        return _fail("Error: this fake claude only supports --print (-p) mode")
    fmt = opts.get("--output-format", "text")
    if fmt == "stream-json" and not opts.get("--verbose"):
        return _fail("Error: When using --print, --output-format=stream-json requires --verbose")
    if opts.get("--input-format") == "stream-json":
        if fmt != "stream-json":
            return _fail("Error: --input-format=stream-json requires "
                         "output-format=stream-json.")
        try:
            prompt = stream_json_prompt(prompt or "")
        except ValueError as exc:
            return _fail(f"Error: {exc}")
    if not prompt or not prompt.strip():
        return _fail("Error: Input must be provided either through stdin or as a prompt "
                     "argument when using --print")
    cwd = os.getcwd()
    resume = opts.get("--resume") or opts.get("-r")
    requested = opts.get("--session-id")
    if requested is not None:
        if not _UUID.fullmatch(requested):
            return _fail("Error: Invalid session ID. Must be a valid UUID.")
        if _session_path(directory, cwd, requested).exists():
            return _fail(f"Error: Session ID {requested} is already in use.")
    with _locked(directory):
        script = _read_script(directory)
        item = script.pop(0) if script else {"kind": "reply", "text": None}
        _write_json(directory / "script.json", script)
    state: dict[str, Any] = {"system": opts.get("--system-prompt"), "messages": []}
    if resume:
        path = _session_path(directory, cwd, resume)
        if not path.exists():
            message = f"No conversation found with session ID: {resume}"
            print(message, file=sys.stderr)
            _result(fmt, {"subtype": "error_during_execution", "is_error": True, "num_turns": 0,
                          "session_id": resume, "total_cost_usd": 0, "errors": [message]},
                    usage={})
            return 1
        state = json.loads(path.read_text())
    fork = bool(opts.get("--fork-session")) or bool(resume and item.get("new_session_id"))
    session_id = str(uuid.uuid4()) if fork or not (resume or requested) else (resume or requested)
    return _turn(directory, opts, fmt, prompt, item, state, session_id, cwd)


def stream_json_prompt(raw: str) -> str:
    """The text of stream-json input's user messages, each image or document named by its
    media type and size (``[image image/png, 1234 bytes]``)."""
    parts: list[str] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            content = data["message"]["content"] if data.get("type") == "user" else []
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"invalid stream-json input line: {line[:60]!r}") from None
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if block.get("type") == "text":
                parts.append(block["text"])
            elif block.get("type") in ("image", "document"):
                size = len(base64.b64decode(block["source"]["data"]))
                parts.append(f"[{block['type']} {block['source']['media_type']}, {size} bytes]")
    return " ".join(parts)


def _turn(directory: Path, opts: dict[str, Any], fmt: str, prompt: str, item: dict[str, Any],
          state: dict[str, Any], session_id: str, cwd: str) -> int:
    model = item.get("model") or opts.get("--model") or "claude-sonnet-4-6"
    partial = bool(opts.get("--include-partial-messages")) and fmt == "stream-json"
    history = state["messages"]
    turn = sum(1 for m in history if m["role"] == "user") + 1
    kind = item["kind"]
    text = item.get("text")
    if kind == "reply" and text is None:
        text = f"{DEFAULT_PREFIX} turn {turn}: You said: {prompt.strip()}"
    text = text or ""
    if fmt == "stream-json":
        _emit({"type": "system", "subtype": "init", "cwd": cwd, "session_id": session_id,
               "tools": ["Bash", "Edit", "Read", "Write"], "mcp_servers": [], "model": model,
               "permissionMode": opts.get("--permission-mode", "default"),
               "apiKeySource": "ANTHROPIC_API_KEY" if os.environ.get("ANTHROPIC_API_KEY")
               else "none", "claude_code_version": VERSION, "uuid": str(uuid.uuid4())})
        if item.get("noise"):
            sys.stdout.write("Warning: this line is not JSON\n\n")
    history.append({"role": "user", "content": prompt})
    state["messages"] = history
    input_tokens = sum(len(m["content"].split()) for m in history) + 10
    num_turns = 1
    if kind == "reply" and item.get("tool_use"):
        num_turns = 2
        _message(fmt, partial, session_id, model, "Let me check.", input_tokens,
                 tool=item["tool_use"], tool_input=item.get("tool_input") or {})
        if fmt == "stream-json":
            _emit({"type": "user", "message": {"role": "user", "content": [
                {"tool_use_id": "toolu_fake", "type": "tool_result",
                 "content": item.get("tool_result", "ok"),
                 "is_error": bool(item.get("tool_error"))}]},
                "parent_tool_use_id": None, "session_id": session_id})
    chunks = item.get("chunks") or split_words(text)
    if item.get("retried"):
        _retried(fmt, partial, session_id, model, item["retried"], input_tokens)
    if kind == "api":
        for attempt in (1, 2):
            if fmt == "stream-json":
                _emit({"type": "system", "subtype": "api_retry", "attempt": attempt,
                       "max_retries": 2, "retry_delay_ms": 1, "error_status": item["status"],
                       "error": "overloaded_error", "session_id": session_id})
    if text:
        _message(fmt, partial, session_id, model, text, input_tokens, chunks=chunks,
                 cut=bool(item.get("cut")))
    if kind == "hang":
        time.sleep(float(item["seconds"]))
        return 0
    if kind in ("exit", "killed"):
        if item["stderr"]:
            print(item["stderr"], file=sys.stderr, flush=True)
        if kind == "killed":
            os.kill(os.getpid(), item["signum"])
            time.sleep(10)  # a signal that does not kill: still no result line
        return int(item.get("code", 1))
    usage = {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "output_tokens": len(chunks) if text else 0}
    usage.update(item.get("usage") or {})
    cost = item.get("cost")
    if cost is None:
        cost = round(usage["input_tokens"] * 3e-6 + usage["output_tokens"] * 15e-6, 8)
    if text:
        history.append({"role": "assistant", "content": text})
    _write_json(_session_path(directory, cwd, session_id), state)
    base = {"session_id": session_id, "total_cost_usd": cost, "num_turns": num_turns,
            "duration_ms": 12, "duration_api_ms": 8,
            "modelUsage": {model: {"inputTokens": usage["input_tokens"],
                                   "outputTokens": usage["output_tokens"], "costUSD": cost}},
            "permission_denials": []}
    if kind == "reply":
        cut = bool(item.get("cut"))
        _result(fmt, {**base, "subtype": "success", "is_error": False,
                      "result": "" if cut else text, "stop_reason": None if cut else "end_turn"},
                usage)
        return 0
    if kind == "max_turns":
        limit = opts.get("--max-turns", "1")
        _result(fmt, {**base, "subtype": "error_max_turns", "is_error": True, "num_turns": 2,
                      "errors": [item.get("message") or
                                 f"Reached maximum number of turns ({limit})"]}, usage)
        return 1
    if kind == "during_execution":
        _result(fmt, {**base, "subtype": "error_during_execution", "is_error": True,
                      "errors": [item.get("message") or "Execution failed: tool crashed"]},
                usage)
        return 1
    status = item["status"]
    _result(fmt, {**base, "subtype": "success", "is_error": True, "api_error_status": status,
                  "result": item.get("message") or
                  f'API Error: {status} {{"type":"error","error":{{"type":"overloaded_error",'
                  '"message":"Overloaded"}}', "stop_reason": None}, usage)
    return 1


def _message(fmt: str, partial: bool, session_id: str, model: str, text: str,
             input_tokens: int, *, chunks: list[str] | None = None,
             tool: str | None = None, cut: bool = False,
             tool_input: dict[str, Any] | None = None) -> None:
    """One model message: its stream events (with ``--include-partial-messages``), then one
    ``assistant`` line per content block, as the real CLI prints them. ``cut``: only the
    events up to the last text delta (a message that stopped mid-way)."""
    if fmt != "stream-json":
        return
    message_id = f"msg_fake_{uuid.uuid4().hex[:20]}"
    common = {"parent_tool_use_id": None, "session_id": session_id}

    def event(data: dict[str, Any]) -> None:
        if partial:
            _emit({"type": "stream_event", "event": data, **common, "uuid": str(uuid.uuid4())})

    event({"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
    event({"type": "content_block_start", "index": 0,
           "content_block": {"type": "text", "text": ""}})
    for chunk in chunks or [text]:
        event({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": chunk}})
    if cut:
        return
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if tool:
        blocks.append({"type": "tool_use", "id": "toolu_fake", "name": tool,
                       "input": tool_input or {}})
    for block in blocks:
        _emit({"type": "assistant", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}, **common,
            "uuid": str(uuid.uuid4())})
    event({"type": "content_block_stop", "index": 0})
    event({"type": "message_delta", "delta": {"stop_reason": "tool_use" if tool else "end_turn"},
           "usage": {"output_tokens": len(chunks or [text])}})
    event({"type": "message_stop"})


def _retried(fmt: str, partial: bool, session_id: str, model: str, text: str,
             input_tokens: int) -> None:
    """An API attempt cut short, as the real CLI shows it: the text deltas that arrived, a
    ``message_stop`` of its own making, no ``assistant`` line, then an ``api_retry`` line."""
    _message(fmt, partial, session_id, model, text, input_tokens, chunks=split_words(text),
             cut=True)
    if fmt == "stream-json":
        if partial:
            for event in ({"type": "content_block_stop", "index": 0}, {"type": "message_stop"}):
                _emit({"type": "stream_event", "event": event, "session_id": session_id,
                       "parent_tool_use_id": None, "uuid": str(uuid.uuid4())})
        _emit({"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
               "retry_delay_ms": 1, "error_status": None, "error": "unknown",
               "session_id": session_id})


def _result(fmt: str, data: dict[str, Any], usage: dict[str, int]) -> None:
    line = {"type": "result", "duration_ms": 0, "duration_api_ms": 0, **data, "usage": usage}
    if fmt in ("stream-json", "json"):
        _emit(line)
    elif "result" in line:
        print(line["result"])


if __name__ == "__main__":
    raise SystemExit(main())

"""``claude-magic`` as a user meets it: real processes, real stores, real exit codes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_magic import SessionManager
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell

from .conftest import Cli, clean_env


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


# --- help, entry points, exit codes ------------------------------------------------------


def test_help_lists_the_terminal_subcommands_and_imports_nothing_heavy(cli: Cli) -> None:
    out = cli.ok("--help")
    for name in ("list", "show", "export", "import", "prune", "delete", "storage", "ask"):
        assert f"  {name} " in out
    assert "  panel " not in out and "  switch " not in out  # they need a kernel
    assert "CLAUDE_MAGIC_STORAGE" in out
    probe = ("import sys, io, contextlib; from claude_magic.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
             "print(sorted(m for m in ('IPython', 'anthropic', 'pandas', 'nbformat', "
             "'ipywidgets', 'claude_magic.manager') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=clean_env(), timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


def test_python_dash_m_is_the_same_command(cli: Cli) -> None:
    cli.ok("new", "m1")
    done = subprocess.run([sys.executable, "-m", "claude_magic", "--json", "list"],
                          cwd=cli.folder, env=cli.env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert [row["id"] for row in json.loads(done.stdout)] == ["m1"]


def test_exit_codes(cli: Cli) -> None:
    assert cli("list").returncode == 0
    for usage in (["list", "--bogus"], ["frobnicate"], ["--no-such-option"], [],
                  ["prune", "--keep-last", "x"]):
        done = cli(*usage)
        assert done.returncode == 2, (usage, done.stderr)
        assert "Traceback" not in done.stderr
    missing = cli("show", "nope")
    assert missing.returncode == 1
    assert "no session 'nope'" in one_line_error(missing)
    assert "see claude-magic list" in missing.stderr
    unconfirmed = cli("new", "x") and cli("delete", "x")
    assert unconfirmed.returncode == 1
    assert "add --yes" in one_line_error(unconfirmed)
    bad_id = cli("new", "../escape")
    assert bad_id.returncode == 1
    assert "InvalidSessionId" in one_line_error(bad_id)
    assert cli("ask", "--help").returncode == 0
    assert "usage: claude-magic ask" in cli("help", "ask").stdout


def test_os_errors_are_one_line(cli: Cli, folder: Path) -> None:
    cli.ok("new", "s1")
    done = cli("export", "s1", "--format", "md", "--out", str(folder / "no" / "such" / "x.md"))
    assert done.returncode == 1
    assert "does not exist" in one_line_error(done)
    done = cli("import", str(folder / "missing.json"))
    assert done.returncode == 1
    assert "no such file" in one_line_error(done).lower()


# --- subcommands and --json ----------------------------------------------------------------


def test_list_show_meta_and_json(cli: Cli) -> None:
    cli.ok("new", "alpha", "--meta", "project=web", "level=3", "--system", "Be terse.")
    cli.ok("new", "beta")
    table = cli.ok("list")
    assert "2 sessions in" in table and "project=web" in table
    rows = json.loads(cli.ok("list", "--json", "--meta", "project=web"))
    assert [(r["id"], r["metadata"], r["turns"]) for r in rows] == [
        ("alpha", {"project": "web", "level": 3}, 0)]
    shown = json.loads(cli.ok("--json", "show", "alp"))  # a unique prefix
    assert shown["id"] == "alpha" and shown["system_prompt"] == "Be terse."
    shown_text = cli.ok("show", "alpha")  # plain text in a terminal
    assert "Claude session alpha\n" in shown_text and "project: web" in shown_text
    cli.ok("meta", "-s", "alpha", "owner=ana")
    assert json.loads(cli.ok("--json", "meta", "-s", "alpha"))["metadata"]["owner"] == "ana"
    done = cli("show")  # no current session in a terminal
    assert done.returncode == 1 and "name a session" in one_line_error(done)


def test_prune_delete_and_their_json(cli: Cli, folder: Path) -> None:
    for name in ("old1", "old2", "keep"):
        cli.ok("new", name)
    dry = json.loads(cli.ok("prune", "--older-than", "0s", "--keep-last", "1", "--json"))
    assert dry["deleted"] is False and sorted(dry["sessions"]) == ["old1", "old2"]
    assert len(json.loads(cli.ok("list", "--json"))) == 3  # nothing deleted without --yes
    done = json.loads(cli.ok("prune", "--older-than", "0s", "--keep-last", "1", "--yes",
                             "--json"))
    assert done["deleted"] is True
    assert [r["id"] for r in json.loads(cli.ok("list", "--json"))] == ["keep"]
    usage = json.loads(cli.ok("--json", "usage"))
    assert [row["session"] for row in usage["rows"]] == ["keep"]
    assert cli.ok("delete", "keep", "--yes").strip() == "Deleted session keep."
    assert SessionManager.with_storage(folder / ".claude_sessions").list() == []


def test_export_import_round_trip(cli: Cli, folder: Path) -> None:
    cli.ok("new", "src", "--system", "sys")
    cli.ok("ask", "-s", "src", "--backend", "echo", "hello")
    text = cli.ok("export", "src", "--format", "json", "--out", "-")
    assert json.loads(text)["session"]["id"] == "src"
    out = cli.ok("export", "src", "--format", "json")
    assert out.strip() == f"Wrote {folder / 'src.json'}."
    cli.ok("import", "src.json", "--as", "copy")
    copy = json.loads(cli.ok("--json", "show", "copy"))
    assert [m["role"] for m in copy["messages"]] == ["user", "assistant"]
    assert cli.ok("export", "src", "--format", "md", "--out", "-").startswith("# Claude session")
    done = cli("export", "src", "--format", "df")
    assert done.returncode == 1 and "use --format csv" in one_line_error(done)


def test_storage_and_the_default_store_rule(cli: Cli, folder: Path) -> None:
    env_store = folder / "from-env.db"
    cli.env["CLAUDE_MAGIC_STORAGE"] = f"sqlite:///{env_store}"
    cli.ok("new", "in-env")  # no .claude_sessions/ here: the environment's store
    assert env_store.is_file() and not (folder / ".claude_sessions").exists()
    assert "from-env.db (1 session)" in cli.ok("storage")
    (folder / ".claude_sessions").mkdir()  # the folder's store wins once it exists
    assert json.loads(cli.ok("--json", "storage"))["count"] == 0
    cli.ok("new", "local")
    assert (folder / ".claude_sessions" / "local.json").is_file()
    other = folder / "elsewhere"
    assert cli.ok("--store", str(other), "--json", "list") == "[]\n"
    cli.ok("--store", "elsewhere", "new", "there")  # relative to the current folder
    assert (other / "there.json").is_file()
    done = cli("storage", "memory")
    assert done.returncode == 1 and "--store SPEC" in one_line_error(done)
    from claude_magic.commands.store import absolute_spec

    assert absolute_spec("postgresql://me@localhost/db") == "postgresql://me@localhost/db"
    done = cli("--store", "ftp://host/x", "list")
    assert done.returncode == 1 and "unknown storage scheme" in one_line_error(done)


# --- ask ---------------------------------------------------------------------------------


def test_ask_offline_is_labelled_and_continues_a_session(cli: Cli) -> None:
    done = cli("ask", "first question")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[offline echo — no model was called")
    assert "You said: first question" in done.stdout
    session_id = done.stderr.split("Created session ")[1].split(";")[0]
    cli.ok("ask", "-s", session_id, "second")
    answer = json.loads(cli.ok("--json", "ask", "-s", session_id, "-", input="third\n"))
    assert answer["offline"] is True and answer["model"] is None and answer["turn"] == 5
    assert "You said: third" in answer["text"]
    assert json.loads(cli.ok("--json", "show", session_id))["messages"][-1]["role"] == \
        "assistant"
    done = cli("ask", "-s", "nope", "x")
    assert done.returncode == 1 and "no session 'nope'" in one_line_error(done)


def test_ask_streams_from_the_api_with_history(cli: Cli, server: FakeMessagesServer) -> None:
    cli.env.update(ANTHROPIC_API_KEY="sk-dummy-test-key", ANTHROPIC_BASE_URL=server.url)
    cli.ok("new", "chat", "--system", "You are terse.")
    server.reply("Paris.")
    assert cli.ok("ask", "-s", "chat", "Capital of France?") == "Paris.\n"
    server.slow("one two three", delay=0.4, chunks=["one ", "two ", "three"])
    proc = subprocess.Popen(cli.command("ask", "-s", "chat", "--model", "claude-test", "More?"),
                            cwd=cli.folder, env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        first = read_until(proc, b"one ")
        assert proc.poll() is None and b"three" not in first  # printed before the end
        rest, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert (first + rest).decode() == "one two three\n"
    request = server.message_requests[-1]
    assert request.body["model"] == "claude-test"
    assert [m["role"] for m in request.messages] == ["user", "assistant", "user"]
    assert "You are terse." in json.dumps(request.body["system"])
    api_error = (server.fail(401), cli("ask", "-s", "chat", "again"))[1]
    assert api_error.returncode == 1
    assert "AuthenticationError" in one_line_error(api_error)
    assert "sk-dummy-test-key" not in api_error.stderr + api_error.stdout


def read_until(proc: subprocess.Popen[bytes], wanted: bytes, timeout: float = 20) -> bytes:
    """What ``proc`` wrote to stdout until ``wanted`` appeared (while it may still run)."""
    assert proc.stdout is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            piece = os.read(proc.stdout.fileno(), 4096)
            assert piece, seen
            seen += piece
    return seen


# --- a store shared with a kernel ------------------------------------------------------------


def test_store_shared_with_a_kernel(cli: Cli, folder: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    shell = TestingShell.fresh()
    try:
        shell.run_cell("%load_ext claude_magic")
        shell.run_cell("%claude_session new from-kernel --meta origin=notebook")
        rows = json.loads(cli.ok("--json", "list"))
        assert [(r["id"], r["metadata"]) for r in rows] == [
            ("from-kernel", {"origin": "notebook"})]
        cli.ok("ask", "-s", "from-kernel", "hello from the shell")
        capsys.readouterr()
        shell.run_cell("%claude_session show")
        shown = shell.run_cell("%claude_session show").result
        assert "hello from the shell" in repr(shown)
        shell.run_cell("%%claude\nand from the notebook")
        rows = json.loads(cli.ok("--json", "list"))
        assert rows[0]["turns"] == 2
        cli.ok("delete", "from-kernel", "--yes")
        shell.run_cell("%claude_session list")
        assert "0 sessions" in repr(shell.run_cell("%claude_session list").result)
    finally:
        shell.run_cell("%unload_ext claude_magic")
        TestingShell.discard()

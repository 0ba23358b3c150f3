"""Hostile input at the magics, through a real InteractiveShell: every failure is one line,
nothing is created or sent by a refused command, a failed storage switch changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claude_magic.errors import ClaudeMagicError, MagicUsageError
from claude_magic.magics import get_magics
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell

from ..storage import oslevel

nobody_dir = oslevel.nobody_dir  # the fixture


def fails(shell: TestingShell, code: str, capsys: pytest.CaptureFixture) -> ClaudeMagicError:
    """Run ``code``; it must fail with a ClaudeMagicError shown as exactly one line."""
    capsys.readouterr()
    with pytest.raises(ClaudeMagicError) as info:
        shell.run_cell(code)
    shown = capsys.readouterr().out.strip().splitlines()
    assert len(shown) == 1, shown
    assert "Traceback" not in shown[0] and "----" not in shown[0]
    return info.value


def state(shell: TestingShell) -> tuple[str, str | None, list[str]]:
    magics = get_magics(shell)
    return magics.storage_spec, magics.workspace.current, sorted(magics.manager.list())


# --- storage switch -----------------------------------------------------------------------


@pytest.fixture
def kept(shell: TestingShell) -> TestingShell:
    shell.run_cell("%claude_session new kept")
    return shell


BAD_STORES = ["sqlite parent is a file", "directory store is a file",
              "directory store under a file", "sqlite path is a directory",
              "garbage sqlite file", "unknown scheme", "uncreatable directory",
              "empty sqlite path", "sqlite file links to a text file", "sqlite file is a FIFO"]


def _bad_stores(tmp: Path) -> dict[str, str]:
    (tmp / "afile").write_text("a file, not a directory\n")
    (tmp / "adir.db").mkdir()
    (tmp / "garbage.db").write_bytes(b"not a database, just bytes\n" * 200)
    (tmp / "link.db").symlink_to(tmp / "afile")
    os.mkfifo(tmp / "fifo.db")
    return {
        "sqlite parent is a file": f"sqlite:///{tmp / 'afile' / 'sub' / 'x.db'}",
        "directory store is a file": str(tmp / "afile"),
        "directory store under a file": str(tmp / "afile" / "sessions"),
        "sqlite path is a directory": f"sqlite:///{tmp / 'adir.db'}",
        "garbage sqlite file": f"sqlite:///{tmp / 'garbage.db'}",
        "unknown scheme": "s3://bucket/sessions",
        "uncreatable directory": "/proc/claude-magic-sessions",
        "empty sqlite path": "sqlite:///",
        "sqlite file links to a text file": f"sqlite:///{tmp / 'link.db'}",
        "sqlite file is a FIFO": f"sqlite:///{tmp / 'fifo.db'}",
    }


@pytest.mark.parametrize("case", BAD_STORES)
def test_failed_storage_switch_changes_nothing(kept: TestingShell, tmp_path: Path,
                                               capsys: pytest.CaptureFixture, case: str) -> None:
    spec = _bad_stores(tmp_path)[case]
    before = state(kept)
    error = fails(kept, f"%claude_session storage {spec}", capsys)
    assert state(kept) == before == (before[0], "kept", ["kept"])
    kept.run_cell("%claude_session new still-works")
    assert get_magics(kept).manager.exists("still-works"), error


def test_failed_storage_switch_by_config_changes_nothing(kept: TestingShell,
                                                         tmp_path: Path) -> None:
    (tmp_path / "garbage.db").write_bytes(b"garbage" * 500)
    before = state(kept)
    kept.run_cell(f"%config ClaudeMagics.storage = 'sqlite:///{tmp_path / 'garbage.db'}'")
    assert state(kept) == before
    assert get_magics(kept).storage == ""  # the refused value was not kept either


def test_unknown_scheme_says_what_works(kept: TestingShell,
                                        capsys: pytest.CaptureFixture) -> None:
    error = fails(kept, "%claude_session storage s3://bucket/x", capsys)
    assert "unknown storage scheme 's3'" in str(error) and "sqlite:///" in str(error)


# --- OS refusals, as an unprivileged user and on a full disk --------------------------------

_AS_NOBODY = """
import json, os
from claude_magic.errors import ClaudeMagicError
from claude_magic.testing.shell import TestingShell

ip = TestingShell.fresh()
ip.run_cell("%load_ext claude_magic")
ip.run_cell("%claude_session new kept")
magics = ip.magics_manager.registry["ClaudeMagics"]
for line in LINES:
    try:
        ip.run_cell(line)
        outcome = "ok"
    except ClaudeMagicError as exc:
        outcome = getattr(exc, "label", type(exc).__name__) + ": " + str(exc)
    print(json.dumps([line, outcome, magics.workspace.current, magics.manager.list()]))
"""


def test_permission_refusals_are_one_line(nobody_dir: Path) -> None:
    store = nobody_dir / "store"
    unreadable = nobody_dir / "unreadable"
    unreadable.mkdir(mode=0o333)
    unreadable.chmod(0o333)  # nobody may enter and write, not list
    readonly = nobody_dir / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    secret = nobody_dir / "secret.json"
    secret.write_text('{"id": "secret"}')
    secret.chmod(0o600)
    lines = [
        "%claude_session storage /root/claude-magic-sessions",
        f"%claude_session storage sqlite:///{readonly / 'sub' / 'x.db'}",
        f"%claude_session storage {unreadable}",
        f"%claude_session export --format md --out {readonly / 'x.md'}",
        f"%claude_session import {secret}",
    ]
    code = f"LINES = {lines!r}\n" + _AS_NOBODY
    os.environ.pop("CLAUDE_MAGIC_STORAGE", None)
    result = oslevel.run_as_nobody(
        f"import os; os.environ['CLAUDE_MAGIC_STORAGE'] = {str(store)!r}\n" + code,
        cwd=nobody_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(r) for r in result.stdout.splitlines() if r.startswith("[")]
    assert [r[0] for r in rows] == lines
    for line, outcome, current, ids in rows:
        assert outcome != "ok", line
        assert current == "kept" and ids == ["kept"], line
        assert "ermission denied" in outcome or "cannot" in outcome, outcome
    assert rows[3][1].startswith("PermissionError: %claude_session export: permission denied")
    assert not (readonly / "x.md").exists()


def test_full_disk_is_one_line(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    with oslevel.small_tmpfs() as mount:
        shell.run_cell(f"%claude_session storage {mount / 'sessions'}")
        shell.run_cell("%claude_session new before --system 'short'")
        oslevel.fill(mount)
        error = fails(shell, "%claude_session new after --system " + "x" * 9000, capsys)
        assert "No space left on device" in str(error) or "no space" in str(error), error
        error = fails(shell, f"%claude_session export before --format md --out {mount}", capsys)
        assert "no space left on device" in str(error) and "free some space" in str(error)
        assert get_magics(shell).manager.list() == ["before"]
        shell.run_cell("%claude_session storage memory")  # let the mount go


def test_export_onto_a_directory_names_it(shell: TestingShell, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    shell.run_cell("%claude_session new talk")
    (tmp_path / "out" / "talk.md").mkdir(parents=True)
    error = fails(shell, f"%claude_session export --format md --out {tmp_path / 'out'}", capsys)
    assert "directory" in str(error).lower()
    blocked = tmp_path / "afile"
    blocked.write_text("x")
    error = fails(shell, f"%claude_session export --format md --out {blocked}/x.md", capsys)
    assert str(blocked) in str(error)


# --- values the library refuses, and values too big ----------------------------------------


@pytest.mark.parametrize("age", ["1000000d", "100000000000000000000000d", "99999999w"])
def test_prune_with_an_age_past_year_one(shell: TestingShell, capsys: pytest.CaptureFixture,
                                         age: str) -> None:
    shell.run_cell("%claude_session new stays")
    error = fails(shell, f"%claude_session prune --older-than {age} --yes", capsys)
    assert isinstance(error, MagicUsageError) and age in str(error)
    assert get_magics(shell).manager.list() == ["stays"]


BAD_SETTINGS = {
    "model=": "model must be a non-empty model name",
    "model=3": "model must be a non-empty model name",
    "model='  '": "model must be a non-empty model name",
    "max_tokens=true": "max_tokens must be a whole number",
    "max_tokens=1.5": "max_tokens must be a whole number",
    "max_tokens='\"100\"'": "max_tokens must be a whole number",
    "max_tokens=0": "from 1 to 1,000,000",
    "max_tokens=-5": "from 1 to 1,000,000",
    "max_tokens=1000001": "from 1 to 1,000,000",
    "max_tokens=" + "9" * 5000: "max_tokens must be a whole number",
    "max_tokens=" + "9" * 4000: "got a 4000-digit number",
    "backend=nope": "unknown backend 'nope'",
    "backend=3": "unknown backend 3",
    "temperature=1": "unknown setting 'temperature'; the settings are model, backend, max_tokens",
    "modle=x": "did you mean 'model'",
}


@pytest.mark.parametrize("pair", list(BAD_SETTINGS))
def test_settings_are_checked_before_storing(shell: TestingShell,
                                             capsys: pytest.CaptureFixture, pair: str) -> None:
    shell.run_cell("%claude_session new s --model m-1")
    error = fails(shell, f"%claude_session settings backend=echo {pair}", capsys)
    assert isinstance(error, MagicUsageError) and BAD_SETTINGS[pair] in str(error)
    assert len(str(error)) < 200
    assert get_magics(shell).manager.resume("s").settings == {"model": "m-1"}


def test_good_settings_are_stored(shell: TestingShell) -> None:
    shell.run_cell("%claude_session new s")
    shell.run_cell("%claude_session settings model=claude-x max_tokens=1000000 backend=echo")
    assert get_magics(shell).manager.resume("s").settings == {
        "model": "claude-x", "max_tokens": 1000000, "backend": "echo"}


@pytest.mark.parametrize("options", ["--model ''", "--backend ''", "--backend nope"])
def test_new_checks_model_and_backend(shell: TestingShell, capsys: pytest.CaptureFixture,
                                      options: str) -> None:
    fails(shell, f"%claude_session new n {options}", capsys)
    assert not get_magics(shell).manager.exists("n")


# --- text UTF-8 cannot store -----------------------------------------------------------------

SURROGATE_LINES = {
    "%claude_session new --system $x": "$x",
    "%claude_session new $x": "$x",
    "%claude_session new n --meta k=$x": "$x",
    "%claude_session new n --meta $x=1": "$x",
    "%claude_session new n --model pre-$x": "$x",
    "%claude_session system $x": "$x",
    "%claude_session meta k=$x": "$x",
    "%claude_session settings model=$x": "$x",
    "%claude_session export --format md --out $x": "$x",
    "%claude_session switch $x": "$x",
    "%claude_session storage $x": "$x",
    "%claude_session import $x": "$x",
    "%claude $x": "",  # %claude's line is the prompt: {x} is its interpolation, $x is text
}


@pytest.mark.parametrize("line", [k for k, v in SURROGATE_LINES.items() if v])
def test_lone_surrogate_from_a_dollar_variable(shell: TestingShell,
                                               capsys: pytest.CaptureFixture, line: str) -> None:
    shell.run_cell("%claude_session new base")
    before = state(shell)
    shell.user_ns["x"] = "ok\ud800"
    error = fails(shell, line, capsys)
    assert isinstance(error, MagicUsageError)
    assert "$x holds text UTF-8 cannot store" in str(error)
    assert state(shell) == before


@pytest.mark.parametrize(("line", "named"), [
    ("new n --system ok\ud800", "--system"),
    ("new n --meta k=\udfff", "--meta"),
    ("new \ud800", "ID"),
])
def test_lone_surrogate_typed_into_options(shell: TestingShell, capsys: pytest.CaptureFixture,
                                           line: str, named: str) -> None:
    shell.user_ns["line"] = line
    error = fails(shell, "get_ipython().run_line_magic('claude_session', line)", capsys)
    assert f"{named} holds text UTF-8 cannot store" in str(error)
    assert get_magics(shell).manager.list() == []


@pytest.mark.parametrize(("options", "prompt", "named"), [
    ("", "Summarise {x}", "{x}"),
    ("--new fresh", "Summarise {x}", "{x}"),
    ("--system $x", "Hello", "$x"),
    ("-m $x", "Hello", "$x"),
    ("--no-interpolate", "Hello \ud800", "the prompt"),
    ("", "Hello \udc80 there", "the prompt"),
])
def test_lone_surrogate_in_a_prompt_sends_nothing(ip: TestingShell, server: FakeMessagesServer,
                                                  capsys: pytest.CaptureFixture, options: str,
                                                  prompt: str, named: str) -> None:
    ip.user_ns["x"] = "bad \ud800 text"
    ip.user_ns["cell"] = prompt
    ip.user_ns["options"] = options
    error = fails(ip, "get_ipython().run_cell_magic('claude', options, cell)", capsys)
    assert f"{named} holds text UTF-8 cannot store" in str(error)
    assert server.message_requests == []
    assert get_magics(ip).manager.list() == []  # no session was created for it


def test_value_whose_str_fails(ip: TestingShell, server: FakeMessagesServer,
                               capsys: pytest.CaptureFixture) -> None:
    ip.run_cell("class Bad:\n    def __str__(self):\n        raise RuntimeError('no text')\n")
    ip.run_cell("bad = Bad()")
    error = fails(ip, "%%claude\nLook at {bad}", capsys)
    assert "cannot turn {bad} into text: RuntimeError: no text" in str(error)
    fails(ip, "%claude_session new --system $bad", capsys)
    assert server.message_requests == [] and get_magics(ip).manager.list() == []


# --- hostile import files ------------------------------------------------------------------


def _hostile(tmp: Path, kind: str) -> Path:
    path = tmp / f"{kind}.json"
    good = {"format": "claude-magic/session-export", "version": 1,
            "session": {"id": "imported"}}
    writers = {
        "not json": lambda: path.write_text("hello, world"),
        "binary": lambda: path.write_bytes(b"\xff\xfe\x00garbage"),
        "empty": lambda: path.write_bytes(b""),
        "nested deep": lambda: path.write_text("[" * 100_000 + "]" * 100_000),
        "nested deep object": lambda: path.write_text(
            '{"id": "x", "metadata": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001),
        "huge int": lambda: path.write_text('{"id": "x", "metadata": {"n": ' + "9" * 5000 + "}}"),
        "int past 64 bits": lambda: path.write_text('{"id": "x", "metadata": {"n": 2e400}}'),
        "id not text": lambda: path.write_text('{"id": 5}'),
        "messages not a list": lambda: path.write_text('{"id": "x", "messages": "hi"}'),
        "a list": lambda: path.write_text("[1, 2, 3]"),
        "wrong format": lambda: path.write_text(json.dumps({**good, "format": "other"})),
        "bad id": lambda: path.write_text('{"id": "../../etc/passwd"}'),
        "directory": lambda: path.mkdir(),
        "fifo": lambda: os.mkfifo(path),
        "symlink": lambda: (tmp / "real.json").write_text('{"id": "x"}') or path.symlink_to(
            tmp / "real.json"),
        "dangling symlink": lambda: path.symlink_to(tmp / "nowhere.json"),
        "missing": lambda: None,
        "notebook": lambda: None,
    }
    writers[kind]()
    if kind == "notebook":
        path = tmp / "n.ipynb"
        path.write_text("{}")
    return path


HOSTILE = ["not json", "binary", "empty", "nested deep", "nested deep object", "huge int",
           "int past 64 bits", "id not text", "messages not a list", "a list", "wrong format",
           "bad id", "directory", "fifo", "symlink", "dangling symlink", "missing", "notebook"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_import_file_is_one_line(shell: TestingShell, tmp_path: Path,
                                         capsys: pytest.CaptureFixture, kind: str) -> None:
    shell.run_cell("%claude_session new base")
    before = state(shell)
    path = _hostile(tmp_path, kind)
    fails(shell, f"%claude_session import {path} --switch", capsys)
    assert state(shell) == before
    fails(shell, "get_ipython().run_line_magic('claude_session', 'import /dev/null')", capsys)


def test_import_from_special_files(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    error = fails(shell, "%claude_session import /dev/zero", capsys)
    assert "not a regular file" in str(error)


# --- bugs -----------------------------------------------------------------------------------


def test_a_bug_is_one_line_and_tb_shows_it(shell: TestingShell, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_magic.manager import SessionManager

    def broken(self: SessionManager) -> list:
        raise KeyError("planted bug")

    monkeypatch.setattr(SessionManager, "summaries", broken)
    error = fails(shell, "%claude_session list", capsys)
    assert error.label == "InternalError"
    assert "%claude_session list failed unexpectedly with KeyError: 'planted bug'" in str(error)
    assert "run %tb for the full traceback" in str(error)
    shell.run_cell("%tb")
    full = capsys.readouterr().out
    assert "Traceback (most recent call last)" in full and "def broken" not in full
    assert "raise KeyError" in full and "planted bug" in full


def test_os_error_from_the_library_names_the_cause(shell: TestingShell,
                                                   capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from claude_magic.manager import SessionManager

    def disk_full(self: SessionManager, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/sessions/x.json")

    shell.run_cell("%claude_session new s")
    monkeypatch.setattr(SessionManager, "update", disk_full)
    error = fails(shell, "%claude_session meta a=1", capsys)
    assert error.label == "OSError"
    assert str(error) == ("%claude_session meta: no space left on device: /data/sessions/x.json; "
                          "the disk is full; free some space and retry")


@pytest.mark.parametrize("value", ["0", "-1", "10**7", "True"])
def test_config_max_tokens_is_checked(shell: TestingShell, value: str) -> None:
    shell.run_cell("%config ClaudeMagics.max_tokens = 2000")
    shell.run_cell(f"%config ClaudeMagics.max_tokens = {value}")
    assert get_magics(shell).max_tokens == 2000

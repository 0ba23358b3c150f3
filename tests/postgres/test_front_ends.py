"""The team store in the front ends: ``%claude_session`` through a real shell and ``claude-magic``
as a real process: storage --init, share / unshare, list --mine / --team with owners, copy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_magic.errors import ClaudeMagicError, MagicUsageError, StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.testing.shell import TestingShell

from .pgserver import OWNER, Server
from .test_team import member

SCRIPT = Path(sys.executable).with_name("claude-magic")


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestingShell]:
    """A kernel in an empty notebook folder (its store: ``.claude_sessions``)."""
    monkeypatch.chdir(tmp_path)
    for name in ("CLAUDE_MAGIC_STORAGE", "JUPYTERHUB_USER", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    ip = TestingShell.fresh()
    ip.run_cell("%load_ext claude_magic")
    yield ip
    ip.run_cell("%unload_ext claude_magic")
    TestingShell.discard()


def run(shell: TestingShell, line: str) -> object:
    return shell.run_cell(line).result


def printed(shell: TestingShell, line: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    shell.run_cell(line)
    return capsys.readouterr().out


def terminal(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def database_of(url: str) -> str:
    return url.split("?")[0].rsplit("/", 1)[1]


def test_storage_init_as_the_owner_and_refused_for_a_member(
        shell: TestingShell, pg_server: Server, pg_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = printed(shell, f"%claude_session storage {pg_url} --init", capsys)
    assert "is set up: schema claude_magic" in out and "group role claude_magic_team" in out
    assert "CREATE ROLE name LOGIN IN ROLE claude_magic_team" in out
    assert f"Sessions are stored in {pg_url} (0 sessions)." in out
    run(shell, "%claude_session new mine")
    bob = member(pg_server, "bob")
    member_url = pg_server.url(bob, database_of(pg_url))
    with pytest.raises(StorageError) as caught:
        shell.run_cell(f"%claude_session storage {member_url} --init")
    assert "\n" not in str(caught.value)
    assert f"{bob} may not set up the team store" in str(caught.value)
    assert f"only its database owner ({OWNER}) can" in str(caught.value)
    assert shell.run_cell("%claude_session").result is not None  # still on the owner's store
    assert "mine" in repr(run(shell, "%claude_session list"))
    done = terminal(Path.cwd(), "--store", pg_url, "storage", "--init")  # the terminal too
    assert done.returncode == 0 and "is set up" in done.stdout, done.stderr


def test_a_database_owner_who_may_not_create_roles_gets_one_line(
        pg_server: Server, pg_url: str) -> None:
    database = database_of(pg_url)
    pg_server.sql("CREATE ROLE plain_owner LOGIN")
    pg_server.sql(f"CREATE DATABASE {database}_b OWNER plain_owner")
    url = pg_server.url("plain_owner", f"{database}_b", team_role="team_nobody_made")
    with pytest.raises(StorageError) as caught:
        SessionManager.with_storage(url)
    message = str(caught.value)
    assert "\n" not in message and "cannot create the group role team_nobody_made" in message
    assert "CREATE ROLE team_nobody_made NOLOGIN" in message
    pg_server.sql("CREATE ROLE team_nobody_made NOLOGIN")  # what the administrator does
    with SessionManager.with_storage(url) as manager:
        assert manager.list() == []


def test_share_unshare_and_list_with_owners(shell: TestingShell, pg_server: Server,
                                            pg_url: str, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "ana")
    run(shell, f"%claude_session storage {pg_url}")
    run(shell, "%claude_session new notes")
    run(shell, "%claude_session new review")
    assert printed(shell, "%claude_session share", capsys).strip() == \
        "Shared session review with the team."
    bob = member(pg_server, "bob")
    monkeypatch.delenv("JUPYTERHUB_USER")  # bob's kernel: his role names him
    with SessionManager.with_storage(pg_server.url(bob, database_of(pg_url))) as bobs:
        assert bobs.list() == ["review"]
        bobs.create_session("bobs-own").build()
        bobs.share("bobs-own")
        table = run(shell, "%claude_session list")
        assert table.columns[:4] == ("", "id", "owner", "shared")
        text = repr(table)
        assert "ana (you)" in text and f"{bob}  " in text
        rows = {row[1]: row for row in table.rows}
        assert rows["review"][2:4] == ("ana (you)", "team")
        assert rows["notes"][2:4] == ("ana (you)", "")
        assert rows["bobs-own"][2:4] == (bob, "team")
        assert "<th>owner</th>" in table._repr_html_()
        assert [row[1] for row in run(shell, "%claude_session list --mine").rows] == \
            ["review", "notes"]
        assert [row[1] for row in run(shell, "%claude_session list --team").rows] == \
            ["bobs-own", "review"]
        assert printed(shell, "%claude_session unshare rev", capsys).strip() == \
            "Session review is private again."
        assert bobs.list() == ["bobs-own"]
        with pytest.raises(StorageError, match=f"belongs to {bob}"):
            shell.run_cell("%claude_session share bobs-own")
    with pytest.raises(MagicUsageError, match="--team: not allowed with argument --mine"):
        shell.run_cell("%claude_session list --mine --team")
    manager = shell.run_cell("from claude_magic.magics.extension import get_magics\n"
                             "get_magics().manager").result
    frame = manager.to_dataframe()
    assert list(frame.columns[:3]) == ["id", "owner", "visibility"]
    assert dict(zip(frame["id"], frame["visibility"], strict=True)) == {
        "review": "private", "notes": "private", "bobs-own": "team"}
    done = terminal(Path.cwd(), "--store", pg_url, "--json", "list", "--mine")
    assert done.returncode == 0, done.stderr
    assert [(s["id"], s["owner"], s["visibility"]) for s in json.loads(done.stdout)] == [
        ("review", "ana", "private"), ("notes", "ana", "private")]


def test_sharing_on_a_store_without_owners_is_one_line(shell: TestingShell) -> None:
    run(shell, "%claude_session new local")
    for line in ("%claude_session share", "%claude_session unshare local"):
        with pytest.raises(MagicUsageError) as caught:
            shell.run_cell(line)
        assert str(caught.value).startswith("sharing needs a PostgreSQL store;")
        assert "\n" not in str(caught.value)
    with pytest.raises(MagicUsageError, match="--team needs a PostgreSQL store"):
        shell.run_cell("%claude_session list --team")
    assert "owner" not in run(shell, "%claude_session list").columns


def test_copy_from_a_notebook_folder_into_the_team_store_and_back(
        shell: TestingShell, pg_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "%claude_session new first --meta project=web")
    run(shell, "%claude_session new second")
    folder = SessionManager.with_storage(tmp_path / ".claude_sessions")
    folder.append("second", Message("user", "a question"))
    folder.append("second", Message("assistant", "an answer", model="claude-x"))
    out = printed(shell, f"%claude_session copy --all --to {pg_url}", capsys)
    assert out.strip() == f"Copied 2 sessions (2 messages) to {pg_url}."
    with SessionManager.with_storage(pg_url) as team:
        assert team.get("second") == folder.get("second")
        assert team.get("first") == folder.get("first")
    with pytest.raises(ClaudeMagicError, match="'first' already exists"):
        shell.run_cell(f"%claude_session copy fir --to {pg_url}")
    out = printed(shell, f"%claude_session copy fir --to {pg_url} --overwrite", capsys)
    assert out.strip() == f"Copied 1 session (0 messages) to {pg_url}; replaced 1 there."
    with pytest.raises(MagicUsageError, match="or give --all, not both"):
        shell.run_cell(f"%claude_session copy first --all --to {pg_url}")
    with pytest.raises(MagicUsageError, match="or give --all, not both"):
        shell.run_cell(f"%claude_session copy --to {pg_url}")
    with pytest.raises(MagicUsageError, match="memory store would be gone"):
        shell.run_cell("%claude_session copy --all --to memory")
    with pytest.raises(StorageError, match="onto itself"):
        shell.run_cell("%claude_session copy --all --to .claude_sessions")
    # and back, from the terminal: the team store into a SQLite file
    done = terminal(tmp_path, "--store", pg_url, "--json", "copy", "second",
                    "--to", "sqlite:///back.db")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["copied"] == ["second"] and report["messages"] == 2
    with SessionManager.with_storage(f"sqlite:///{tmp_path / 'back.db'}") as back:
        assert back.get("second") == folder.get("second")
    folder.close()

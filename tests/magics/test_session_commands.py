"""``%claude_session`` through a real InteractiveShell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from claude_magic import SessionManager
from claude_magic.errors import InvalidSessionId, MagicUsageError
from claude_magic.magics import get_magics
from claude_magic.testing.shell import TestingShell


def run(shell: TestingShell, line: str):
    return shell.run_cell(line).result


def manager_of(shell: TestingShell) -> SessionManager:
    magics = get_magics(shell)
    assert magics is not None
    return magics.manager


def current(shell: TestingShell) -> str | None:
    return get_magics(shell).workspace.current


# --- loading and where sessions live ------------------------------------------------------


def test_load_creates_no_files_until_used(shell: TestingShell, store_dir: Path) -> None:
    assert not store_dir.exists()
    run(shell, "%claude_session new first")
    assert (store_dir / "first.json").is_file()


def test_default_store_is_absolute_and_survives_cd(shell: TestingShell, store_dir: Path,
                                                   tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell.run_cell(f"%cd {elsewhere}")
    run(shell, "%claude_session new after-cd")
    assert (store_dir / "after-cd.json").is_file()
    assert not (elsewhere / ".claude_sessions").exists()


def test_store_follows_the_notebook_path(store_dir: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    notebook_dir = tmp_path / "project"
    notebook_dir.mkdir()
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook_dir / "analysis.ipynb"))
    ip = TestingShell.fresh()
    ip.run_cell("%load_ext claude_magic")
    assert get_magics(ip).storage_spec == str(notebook_dir / ".claude_sessions")


def test_store_from_environment_and_config(store_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_MAGIC_STORAGE", "sqlite:///env.db")
    ip = TestingShell.fresh()
    ip.run_cell("%load_ext claude_magic")
    run(ip, "%claude_session new in-sqlite")
    assert (tmp_path / "env.db").is_file()
    ip.run_cell("%config ClaudeMagics.storage = 'memory'")
    assert manager_of(ip).location == "memory"
    assert manager_of(ip).list() == []
    assert current(ip) is None


def test_extension_from_config_and_reload(store_dir: Path) -> None:
    from traitlets.config import Config

    cfg = Config()
    cfg.ClaudeMagics.storage = "memory"
    cfg.ClaudeMagics.max_tokens = 123
    ip = TestingShell.fresh(cfg)
    ip.run_cell("%load_ext claude_magic")
    magics = get_magics(ip)
    assert magics.max_tokens == 123 and magics.storage_spec == "memory"
    ip.run_cell("%reload_ext claude_magic")
    assert get_magics(ip) is not magics
    ip.run_cell("%unload_ext claude_magic")
    assert get_magics(ip) is None
    assert "claude_session" not in ip.magics_manager.magics["line"]
    assert "claude" not in ip.magics_manager.magics["cell"]
    assert not any(type(c).__name__ == "ClaudeMagics" for c in ip.configurables)


def test_config_lists_the_traits(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    shell.run_cell("%config ClaudeMagics")
    out = capsys.readouterr().out
    for trait in ("backend", "model", "max_tokens", "storage", "stream", "system_prompt",
                  "interpolate", "timeout"):
        assert f"ClaudeMagics.{trait}" in out


def test_load_ext_imports_no_heavy_module(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'claude_magic')\n"
        "heavy = ['anthropic', 'pandas', 'ipywidgets', 'nbformat', 'sqlite3', 'httpx']\n"
        "print([m for m in heavy if m in sys.modules and m not in before])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={**os.environ, "HOME": str(tmp_path)})
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- subcommands --------------------------------------------------------------------------


def test_new_with_everything(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    run(shell, '%claude_session new review --system "You review code" '
               "--meta project=web-api level=3 tags='[\"a\", \"b\"]' --model m-1 --backend echo")
    assert "Created session review" in capsys.readouterr().out
    session = manager_of(shell).resume("review")
    assert session.system_prompt == "You review code"
    assert session.metadata == {"project": "web-api", "level": 3, "tags": ["a", "b"]}
    assert session.settings == {"model": "m-1", "backend": "echo"}
    assert current(shell) == "review"


def test_new_without_id_makes_uuid_and_uses_default_system(shell: TestingShell) -> None:
    shell.run_cell("%config ClaudeMagics.system_prompt = 'Default prompt'")
    run(shell, "%claude_session new")
    session = manager_of(shell).resume(current(shell))
    assert len(session.id) == 36 and session.system_prompt == "Default prompt"


def test_new_existing_id_needs_overwrite(shell: TestingShell) -> None:
    run(shell, "%claude_session new dup --meta v=1")
    with pytest.raises(Exception, match="already exists"):
        run(shell, "%claude_session new dup")
    run(shell, "%claude_session new dup --overwrite --meta v=2")
    assert manager_of(shell).resume("dup").metadata == {"v": 2}


def test_switch_exact_prefix_ambiguous_and_unknown(shell: TestingShell) -> None:
    for name in ("alpha-1", "alpha-2", "beta"):
        run(shell, f"%claude_session new {name}")
    run(shell, "%claude_session switch be")
    assert current(shell) == "beta"
    run(shell, "%claude_session switch alpha-1")
    assert current(shell) == "alpha-1"
    with pytest.raises(MagicUsageError, match="matches 2 sessions"):
        run(shell, "%claude_session switch alpha")
    with pytest.raises(MagicUsageError, match="did you mean 'beta'"):
        run(shell, "%claude_session switch betta")
    with pytest.raises(InvalidSessionId):
        run(shell, "%claude_session switch ../etc")


def test_list_marks_current_filters_and_limits(shell: TestingShell) -> None:
    run(shell, "%claude_session new a --meta team=x")
    run(shell, "%claude_session new b --meta team=y")
    run(shell, "%claude_session new c --meta team=x")
    table = run(shell, "%claude_session list")
    assert [row[1] for row in table.rows] == ["c", "b", "a"]
    assert [row[0] for row in table.rows] == ["*", "", ""]
    text, markup = repr(table), table._repr_html_()
    assert "3 sessions" in text and "team=x" in text
    assert "<table" in markup and "<td>c</td>" in markup
    filtered = run(shell, "%claude_session list --meta team=x --limit 1")
    assert [row[1] for row in filtered.rows] == ["c"]


def test_list_escapes_html(shell: TestingShell) -> None:
    run(shell, "%claude_session new x --meta 'note=<script>alert(1)</script>'")
    markup = run(shell, "%claude_session list")._repr_html_()
    assert "<script>" not in markup and "&lt;script&gt;" in markup


def test_meta_set_unset_and_show(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    run(shell, "%claude_session new m --meta a=1 b=2")
    run(shell, "%claude_session meta c=three --unset a")
    assert manager_of(shell).resume("m").metadata == {"b": 2, "c": "three"}
    capsys.readouterr()
    run(shell, "%claude_session meta")
    assert "c = 'three'" in capsys.readouterr().out
    with pytest.raises(MagicUsageError, match="KEY=VALUE"):
        run(shell, "%claude_session meta novalue")


def test_system_set_show_clear(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    run(shell, "%claude_session new s")
    run(shell, "%claude_session system You are terse.")
    assert manager_of(shell).resume("s").system_prompt == "You are terse."
    capsys.readouterr()
    run(shell, "%claude_session system")
    assert capsys.readouterr().out.strip() == "You are terse."
    run(shell, "%claude_session system --clear")
    assert manager_of(shell).resume("s").system_prompt is None


def test_fork_copies_and_switches(shell: TestingShell) -> None:
    from claude_magic.message import Message

    run(shell, "%claude_session new base --system P --meta k=v")
    manager_of(shell).append("base", Message("user", "hello"))
    run(shell, "%claude_session fork copy")
    assert current(shell) == "copy"
    fork = manager_of(shell).resume("copy")
    assert fork.system_prompt == "P" and [m.content for m in fork.messages] == ["hello"]
    assert fork.metadata == {"k": "v", "forked_from": "base"}


def test_delete_needs_yes_and_forgets_current(shell: TestingShell) -> None:
    run(shell, "%claude_session new gone")
    with pytest.raises(MagicUsageError, match="--yes"):
        run(shell, "%claude_session delete gone")
    assert manager_of(shell).exists("gone")
    run(shell, "%claude_session delete gone --yes")
    assert not manager_of(shell).exists("gone")
    assert current(shell) is None
    with pytest.raises(MagicUsageError, match="no session 'gone'"):
        run(shell, "%claude_session delete gone --yes")


def test_clear_needs_yes(shell: TestingShell) -> None:
    run(shell, "%claude_session new one")
    run(shell, "%claude_session new two")
    with pytest.raises(MagicUsageError, match="--yes"):
        run(shell, "%claude_session clear")
    assert manager_of(shell).count() == 2
    run(shell, "%claude_session clear --yes")
    assert manager_of(shell).count() == 0 and current(shell) is None


def test_prune_lists_then_deletes(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    from claude_magic.session import Session, SessionId
    from claude_magic.times import utc_now

    manager = manager_of(shell)
    old = utc_now() - timedelta(days=40)
    manager.import_session(Session(SessionId("old"), created_at=old, updated_at=old))
    run(shell, "%claude_session new fresh")
    capsys.readouterr()
    run(shell, "%claude_session prune --older-than 30d")
    assert "Would delete 1 session(s): old" in capsys.readouterr().out
    assert manager.exists("old")
    run(shell, "%claude_session prune --older-than 30d --yes")
    assert not manager.exists("old") and manager.exists("fresh")
    with pytest.raises(MagicUsageError, match="cannot read the age"):
        run(shell, "%claude_session prune --older-than soon")


def test_storage_subcommand_switches_store(shell: TestingShell, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    run(shell, "%claude_session new here")
    run(shell, "%claude_session storage sqlite:///other.db")
    out = capsys.readouterr().out
    assert f"sqlite:///{tmp_path / 'other.db'}" in out and "(0 sessions)" in out
    assert current(shell) is None


def test_storage_reports_damaged_files(shell: TestingShell, store_dir: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    run(shell, "%claude_session new fine")
    (store_dir / "broken.json").write_text('{"format": "claude-magic/session", "vers')
    with pytest.warns(UserWarning, match="damaged"):
        run(shell, "%claude_session storage")
    out = capsys.readouterr().out
    assert "(1 session)" in out and "broken.json" in out


def test_unknown_subcommand_and_help(shell: TestingShell, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(MagicUsageError, match="did you mean 'switch'"):
        run(shell, "%claude_session swich x")
    with pytest.raises(MagicUsageError, match="unrecognized arguments"):
        run(shell, "%claude_session list --bogus")
    run(shell, "%claude_session help")
    out = capsys.readouterr().out
    assert all(name in out for name in ("new", "switch", "prune", "export", "panel"))
    run(shell, "%claude_session prune --help")
    assert "--older-than" in capsys.readouterr().out


def test_bare_command_without_and_with_current(shell: TestingShell,
                                               capsys: pytest.CaptureFixture) -> None:
    run(shell, "%claude_session")
    assert "No current session" in capsys.readouterr().out
    with pytest.raises(MagicUsageError, match="no current session"):
        run(shell, "%claude_session meta a=1")


def test_unbalanced_quotes_are_one_line(shell: TestingShell) -> None:
    with pytest.raises(MagicUsageError, match="check the quotes"):
        run(shell, "%claude_session new x --system 'oops")


def test_restart_keeps_sessions(shell: TestingShell, store_dir: Path) -> None:
    run(shell, "%claude_session new keep --meta note=kept")
    shell.run_cell("%unload_ext claude_magic")
    ip = TestingShell.fresh()  # a new kernel on the same folder
    ip.run_cell("%load_ext claude_magic")
    table = run(ip, "%claude_session list")
    assert [row[1] for row in table.rows] == ["keep"]
    run(ip, "%claude_session switch keep")
    assert current(ip) == "keep"
    assert json.loads((store_dir / "keep.json").read_text())["metadata"] == {"note": "kept"}


def test_vscode_notebook_path(store_dir: Path, tmp_path: Path) -> None:
    notebook_dir = tmp_path / "vs"
    notebook_dir.mkdir()
    ip = TestingShell.fresh()
    ip.user_ns["__vsc_ipynb_file__"] = str(notebook_dir / "n.ipynb")
    ip.run_cell("%load_ext claude_magic")
    assert get_magics(ip).notebook_dir == notebook_dir


def test_relative_session_name_means_working_directory(store_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "sub/analysis.ipynb")
    ip = TestingShell.fresh()
    ip.run_cell("%load_ext claude_magic")
    assert get_magics(ip).storage_spec == str(store_dir)


def test_dollar_variables_expand_in_options(shell: TestingShell, tmp_path: Path) -> None:
    shell.user_ns.update(sid="from-var", tag="v1", where=tmp_path / "exports")
    (tmp_path / "exports").mkdir()
    run(shell, "%claude_session new $sid --meta version=$tag cost=$unknown")
    session = manager_of(shell).resume("from-var")
    assert session.metadata == {"version": "v1", "cost": "$unknown"}
    run(shell, "%claude_session export --format md --out $where")
    assert (tmp_path / "exports" / "from-var.md").is_file()


def test_list_shows_metadata_as_typed(shell: TestingShell) -> None:
    run(shell, "%claude_session new typed --meta automated=false n=3 tags='[\"a\"]' name=x")
    run(shell, "%claude_session new other --meta team=y")
    table = run(shell, "%claude_session list --meta team=y")
    assert "(* = current)" in repr(table)
    table = run(shell, "%claude_session list --meta name=x")
    assert 'automated=false, n=3, tags=["a"], name=x' in repr(table)
    assert "current" not in repr(table)  # the current session is filtered out


def test_repeated_meta_options_add_up(shell: TestingShell) -> None:
    run(shell, "%claude_session new rep --meta project=web --meta owner=ana level=2")
    assert manager_of(shell).resume("rep").metadata == {"project": "web", "owner": "ana",
                                                          "level": 2}
    run(shell, "%claude_session meta --unset project --unset owner")
    assert manager_of(shell).resume("rep").metadata == {"level": 2}


def test_backend_is_checked_and_settings_can_be_changed(shell: TestingShell,
                                                        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(MagicUsageError, match="did you mean 'anthropic'"):
        run(shell, "%claude_session new t --backend antropic")
    assert not manager_of(shell).exists("t")
    run(shell, "%claude_session new t --backend echo --model m-1")
    run(shell, "%claude_session settings backend=anthropic max_tokens=100 --unset model")
    assert manager_of(shell).resume("t").settings == {"backend": "anthropic", "max_tokens": 100}
    with pytest.raises(MagicUsageError, match="unknown backend"):
        run(shell, "%claude_session settings backend=nope")
    capsys.readouterr()
    run(shell, "%claude_session settings")
    assert "backend = 'anthropic'" in capsys.readouterr().out


def test_failed_storage_switch_keeps_the_old_store(shell: TestingShell, tmp_path: Path) -> None:
    from claude_magic.errors import StorageError

    run(shell, "%claude_session new kept")
    (tmp_path / "notes.txt").write_text("not a database, just notes\n" * 100)
    with pytest.raises(StorageError):
        run(shell, f"%claude_session storage sqlite:///{tmp_path / 'notes.txt'}")
    assert current(shell) == "kept"
    assert manager_of(shell).list() == ["kept"]

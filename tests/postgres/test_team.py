"""Owners and visibility, enforced by PostgreSQL's row-level security on the connecting role."""

from __future__ import annotations

import itertools
import subprocess
import sys

import psycopg
import pytest

from claude_magic.errors import SessionExists, StorageError
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend

from .pgserver import OWNER, OWNER_PASSWORD, Server

_people = itertools.count()


def member(server: Server, name: str) -> str:
    """What an administrator does to add a person, and nothing else."""
    role = f"{name}_{next(_people)}"
    server.sql(f"CREATE ROLE {role} LOGIN IN ROLE claude_magic_team")
    return role


@pytest.fixture
def team(pg_server: Server, pg_url: str):
    """The owner sets the store up; alice and bob are members."""
    SessionManager.with_storage(pg_url).close()  # the owner's first connection
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    alice, bob = member(pg_server, "alice"), member(pg_server, "bob")
    managers = [SessionManager.with_storage(pg_server.url(role, database))
                for role in (alice, bob)]
    yield database, alice, bob, *managers
    for manager in managers:
        manager.close()


def test_raw_sql_from_another_role_sees_no_private_row(pg_server: Server, team) -> None:
    database, alice, bob, alice_store, _ = team
    alice_store.create_session("a-private").with_system_prompt("secret").build()
    alice_store.append("a-private", Message("user", "my salary question"))
    alice_store.create_session("a-team").build()
    alice_store.append("a-team", Message("user", "shared question"))
    alice_store.storage.set_visibility("a-team", "team")
    for role in (bob, OWNER):  # the database owner obeys the policies too (FORCED)
        with psycopg.connect(pg_server.url(role, database), autocommit=True) as raw:
            assert raw.execute("SELECT id FROM claude_magic.sessions").fetchall() == [("a-team",)]
            assert raw.execute("SELECT content FROM claude_magic.messages").fetchall() == [
                ("shared question",)]
            assert raw.execute("SELECT count(*) FROM claude_magic.sessions "
                               "WHERE id = 'a-private'").fetchone() == (0,)
            # nor can it change alice's rows, or write rows in her name
            assert raw.execute("UPDATE claude_magic.sessions SET system_prompt = 'x'").rowcount == 0
            assert raw.execute("DELETE FROM claude_magic.messages").rowcount == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                raw.execute("INSERT INTO claude_magic.sessions (id, owner_role, created_at, "
                            f"updated_at) VALUES ('forged', '{alice}', now(), now())")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                raw.execute("ALTER TABLE claude_magic.sessions NO FORCE ROW LEVEL SECURITY"
                            if role == bob else "SET ROLE postgres")
    assert [m.content for m in alice_store.resume("a-private").messages] == ["my salary question"]
    with psycopg.connect(pg_server.url("postgres", database)) as raw:
        owners = {row[0] for row in raw.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'claude_magic'")}
    assert owners == {OWNER}  # members never own the tables


def test_members_see_their_own_and_the_teams_sessions(team) -> None:
    _, alice, _bob, alice_store, bob_store = team
    alice_store.create_session("a-private").build()
    alice_store.create_session("a-team").with_metadata("project", "x").build()
    alice_store.storage.set_visibility("a-team", "team")
    bob_store.create_session("b-private").with_metadata("project", "x").build()
    assert bob_store.list() == ["b-private", "a-team"]
    assert bob_store.get("a-private") is None and not bob_store.exists("a-private")
    assert bob_store.find(project="x") == ["b-private", "a-team"]
    assert bob_store.storage.list_ids(scope="mine") == ["b-private"]
    assert bob_store.storage.list_ids(scope="team") == ["a-team"]
    assert [s.id for s in bob_store.storage.summaries(scope="team")] == ["a-team"]
    sharing = bob_store.storage.sharing()
    assert (sharing["a-team"].owner, sharing["a-team"].visibility,
            sharing["a-team"].mine) == (alice, "team", False)
    assert (sharing["b-private"].visibility, sharing["b-private"].mine) == ("private", True)
    # only the owner changes a session; a member forks it to continue
    for write in (lambda: bob_store.append("a-team", Message("user", "hi")),
                  lambda: bob_store.update("a-team", metadata={"x": 1}),
                  lambda: bob_store.delete("a-team"),
                  lambda: bob_store.storage.set_visibility("a-team", "private")):
        with pytest.raises(StorageError, match=f"belongs to {alice}") as caught:
            write()
        assert "\n" not in str(caught.value)
    assert bob_store.prune(keep_last=0, older_than="0s") == ["b-private"]  # not a-team
    fork = bob_store.fork("a-team", "b-fork")
    assert bob_store.storage.sharing()[fork.id].mine
    assert bob_store.clear() == 1 and alice_store.list() == ["a-team", "a-private"]
    # an id taken by a private session elsewhere: refused, without showing the session
    with pytest.raises(SessionExists):
        bob_store.create_session("a-private").build()
    with pytest.raises(StorageError, match="belongs to"):
        bob_store.create_session("a-team").overwrite().build()
    alice_store.storage.set_visibility("a-team", "private")
    assert bob_store.list() == []
    with pytest.raises(ValueError, match="visibility"):
        alice_store.storage.set_visibility("a-team", "public")  # type: ignore[arg-type]


def test_owner_name_from_jupyterhub(team, monkeypatch: pytest.MonkeyPatch, pg_server) -> None:
    database, alice, *_ = team
    monkeypatch.setenv("JUPYTERHUB_USER", "Alice Martin")
    with SessionManager.with_storage(pg_server.url(alice, database)) as hub:
        hub.create_session("hub").build()
        assert hub.storage.sharing()["hub"].owner == "Alice Martin"


def test_a_member_cannot_set_up_a_store(pg_server: Server, pg_url: str) -> None:
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    other = pg_server.create_database(f"other_{next(_people)}")
    SessionManager.with_storage(other).close()  # elsewhere: the team role exists now
    carol = member(pg_server, "carol")
    with pytest.raises(StorageError, match="database owner connects once") as caught:
        SessionManager.with_storage(pg_server.url(carol, database))
    assert "\n" not in str(caught.value)


def test_custom_team_role(pg_server: Server, pg_url: str) -> None:
    with SessionManager.with_storage(pg_url + "&team_role=data_science") as owner:
        owner.create_session("x").build()
        assert "team_role=data_science" in owner.location
    role = f"dave_{next(_people)}"
    pg_server.sql(f"CREATE ROLE {role} LOGIN IN ROLE data_science")
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    with SessionManager.with_storage(pg_server.url(role, database)) as dave:
        assert dave.list() == []
        dave.create_session("d").build()
    with pytest.raises(StorageError, match="team_role"):
        StorageBackend.parse(pg_url + "&team_role=x;drop")


def test_the_password_is_never_shown(pg_server: Server, pg_url: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    database = pg_url.split("?")[0].rsplit("/", 1)[1]
    url = pg_server.tcp_url(OWNER, OWNER_PASSWORD, database)
    backend = StorageBackend.parse(url)
    with SessionManager.with_storage(url) as manager:
        manager.create_session("x").build()
        shown = [repr(backend), str(backend), manager.location, repr(manager),
                 repr(manager.storage)]
    assert all(OWNER_PASSWORD not in text and f"{OWNER}:***@" in text for text in shown)
    with pytest.raises(StorageError) as caught:
        SessionManager.with_storage(pg_server.tcp_url(OWNER, "Wrong-pw-123", database))
    assert "Wrong-pw-123" not in str(caught.value) and "\n" not in str(caught.value)
    assert "password authentication failed" in str(caught.value)
    monkeypatch.setenv("PGPASSWORD", OWNER_PASSWORD)  # libpq's own ways work as usual
    with SessionManager.with_storage(url.replace(f":{OWNER_PASSWORD}@", "@")) as manager:
        assert manager.list() == ["x"]


def test_missing_driver_and_a_light_import() -> None:
    code = (
        "import sys; import claude_magic, claude_magic.manager, claude_magic.storage\n"
        "from claude_magic.storage import StorageBackend\n"
        "backend = StorageBackend.parse('postgresql://a:pw@127.0.0.1:1/db')\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported early'\n"
        "sys.modules['psycopg'] = None\n"
        "from claude_magic.errors import StorageError\n"
        "try:\n    backend.open()\nexcept StorageError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ('the PostgreSQL store needs psycopg 3: '
                             'pip install "claude-magic[postgres]"\n')


def test_rename_and_mark_name_the_session_as_create_does(team) -> None:
    _, alice, _, alice_store, bob_store = team
    alice_store.create_session("a-private").build()
    alice_store.create_session("a-team").build()
    alice_store.share("a-team")
    bob_store.create_session("b-own").build()
    bob_store.append("b-own", Message("user", "hi"))
    # the id another member holds, whether bob can see it or not, is never taken over
    with pytest.raises(SessionExists, match="'a-private' already exists"):
        bob_store.rename("b-own", "a-private")
    with pytest.raises(SessionExists, match="'a-team' already exists"):
        bob_store.rename("b-own", "a-team")
    with pytest.raises(StorageError) as caught:
        bob_store.rename("b-own", "a-team", overwrite=True)
    assert str(caught.value) == f"session 'a-team' belongs to {alice}; pick another id"
    with pytest.raises(IndexError) as missing:
        bob_store.mark("b-own", 7, "error", "x")
    assert str(missing.value) == "session 'b-own' has no message 7"
    bob_store.mark("b-own", 0, "error", "boom")
    assert [(m.status, m.error) for m in bob_store.get("b-own").messages] == [("error", "boom")]
    assert bob_store.verify("b-own").ok
    assert alice_store.list() == ["a-team", "a-private"]
    assert bob_store.list() == ["b-own", "a-team"]

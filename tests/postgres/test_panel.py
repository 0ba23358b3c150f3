"""The session panel on a team store: owners, the mine / team filter, and live changes made by
other processes arriving within a second with no refresh."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from claude_magic.manager import SessionManager
from claude_magic.panel import SessionPanel, panel

from .pgserver import Server
from .test_team import member

#: another kernel: open the store, create a session, print when it was committed
CREATE = """
import sys, time
from claude_magic.manager import SessionManager
url, session_id, share = sys.argv[1:]
with SessionManager.with_storage(url) as manager:
    manager.create_session(session_id).with_metadata("by", "elsewhere").build()
    if share == "yes":
        manager.share(session_id)
    print(f"{time.time():.6f}", flush=True)
"""


def listener_threads() -> int:
    return sum(t.name == "claude_magic-listen" for t in threading.enumerate())


def another_process(url: str, session_id: str, share: bool = False) -> float:
    """Run the other kernel; returns the time its write was committed."""
    done = subprocess.run([sys.executable, "-c", CREATE, url, session_id,
                           "yes" if share else "no"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


def shown_within(p: SessionPanel, session_id: str, since: float, limit: float = 1.0) -> float:
    """Seconds from ``since`` until the panel showed ``session_id`` (fails past ``limit``)."""
    while session_id not in [row["id"] for row in p.rows]:
        assert time.time() - since < limit + 5, f"{session_id} never appeared in the panel"
        time.sleep(0.01)
    return time.time() - since


def test_a_session_made_by_another_process_appears_within_a_second(
        pg_server: Server, pg_url: str) -> None:
    manager = SessionManager.with_storage(pg_url)
    manager.create_session("here").build()
    assert listener_threads() == 0  # a plain script opens no extra connection
    p = panel(manager=manager)
    assert listener_threads() == 1 and [row["id"] for row in p.rows] == ["here"]
    since = another_process(pg_url, "from-elsewhere")
    assert shown_within(p, "from-elsewhere", since) < 1.0
    assert p.rows[0]["metadata"] == {"by": "elsewhere"} and p.rows[0]["owner"].endswith("(you)")
    # a teammate's shared session too; their private ones never
    bob = member(pg_server, "bob")
    bob_url = pg_server.url(bob, pg_url.split("?")[0].rsplit("/", 1)[1])
    another_process(bob_url, "bobs-secret")
    since = another_process(bob_url, "bobs-shared", share=True)
    assert shown_within(p, "bobs-shared", since) < 1.0
    assert "bobs-secret" not in [row["id"] for row in p.rows]
    assert {row["id"]: (row["owner"], row["shared"]) for row in p.rows}["bobs-shared"] == \
        (bob, "team")
    p.close()
    assert listener_threads() == 0  # the last listener gone: the subscription stops
    manager.close()


def test_owner_columns_and_the_mine_team_filter(pg_server: Server, pg_url: str,
                                                open_pg: Callable[..., SessionManager]) -> None:
    manager = open_pg()
    manager.create_session("mine-private").build()
    manager.create_session("mine-shared").build()
    manager.share("mine-shared")
    bob = member(pg_server, "bob")
    bobs = open_pg(pg_server.url(bob, pg_url.split("?")[0].rsplit("/", 1)[1]))
    bobs.create_session("bobs-shared").build()
    bobs.share("bobs-shared")
    p = panel(manager=manager)
    try:
        assert p.scope.layout.display is None  # shown on a team store
        header = p._header.value
        assert header.index(">id<") < header.index(">owner<") < header.index(">shared<") \
            < header.index(">created<")
        assert sorted(row["id"] for row in p.rows) == ["bobs-shared", "mine-private",
                                                       "mine-shared"]
        p.scope.value = "mine"
        assert sorted(row["id"] for row in p.rows) == ["mine-private", "mine-shared"]
        p.scope.value = "team"
        assert sorted(row["id"] for row in p.rows) == ["bobs-shared", "mine-shared"]
        manager.share("mine-shared", "private")  # through the manager: the panel follows
        assert [row["id"] for row in p.rows] == ["bobs-shared"]
        assert "page 1 of 1 · 1 of 3 sessions" in p.page_label.value
        p.scope.value = "all"
        assert {row["id"]: row["shared"] for row in p.rows} == {
            "bobs-shared": "team", "mine-shared": "private", "mine-private": "private"}
    finally:
        p.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_no_owner_columns_or_filter_elsewhere(kind: str, tmp_path) -> None:
    spec = "memory" if kind == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    with SessionManager.with_storage(spec) as manager:
        manager.create_session("x").build()
        p = panel(manager=manager)
        assert p.scope.layout.display == "none" and ">owner<" not in p._header.value
        assert "owner" not in p.rows[0]
        p.close()

"""The directory store's search index (``.search.sqlite``), met as a user meets it: the hits
are the query language's (the memory store's scan of the same sessions), other processes
writing between two searches, planted and damaged sidecars, a read-only folder, two processes
searching at once, and stores from before the index."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_magic.errors import StorageError, StorageWarning
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.search import Matcher, parse_query, scan
from claude_magic.storage import _dir_search

from . import oslevel
from .oslevel import ROOT, run_as_nobody

nobody_dir = oslevel.nobody_dir
full_disk = oslevel.full_disk
SIDECAR = ".search.sqlite"

TEXTS = [
    "Deploy the auth service; deploy again after the token refresh.",
    "STRASSE und Straße, die Maße: ß is not ss for the regex",
    "The \u212aelvin sign, the long \u017fun, and plain kelvin sun",
    "Türkçe: İstanbul, ıslak, ISLAK, istanbul",
    "café, CAFÉ, cafe and the ﬁle ligature beside file",
    "Greek: ΣΊΣΥΦΟΣ σίσυφος, final ς",
    "topic 42 and topic  42 and topic-42 and topic_42 and topic 420",
    "a a a a b a a",
    "obsidian obsidians obsidianite OBSIDIAN",
    "snake_case words and under_score",
]
QUERIES = ["deploy", "deploy token", "ss", "straße", "strasse", "kelvin", "k*", "sun", "s*",
           "istanbul", "ıslak", "İstanbul", "café", "cafe", "file", "fi*", "σίσυφος", "ς",
           '"topic 42"', "topic 42", "topic*", '"a a"', "a", "obsid*", "OBSIDIAN",
           "snake", "snake_case", "under*", "nothing", "python", "web"]


def _store(path: Path, texts: list[str]) -> SessionManager:
    manager = SessionManager(str(path))
    for i, text in enumerate(texts):
        sid = f"s{i:02d}"
        manager.create_session(sid).with_system_prompt(f"You review Python {text[:12]}") \
            .with_metadata("project", "web-api").with_metadata("n", i).build()
        manager.append(sid, Message("user", text))
        manager.append(sid, Message("assistant", [{"type": "text", "text": text.upper()},
                                                  {"type": "text", "text": "done"}]))
    return manager


def _reference(manager: SessionManager, query: str, limit: int = 50,
               ids: list[str] | None = None) -> list:
    sessions = [manager.get(sid) for sid in (ids if ids is not None else manager.list())]
    return scan([s for s in sessions if s is not None], Matcher(parse_query(query)), limit)


def test_hits_are_the_query_languages(tmp_path: Path) -> None:
    with _store(tmp_path / "s", TEXTS) as manager:
        for query in QUERIES:
            for limit in (1, 3, 50):
                assert manager.search(query, limit=limit) == _reference(manager, query, limit), \
                    query
            ids = ["s01", "s06", "s07"]
            assert manager.search(query, session_ids=ids) == _reference(manager, query, 50, ids)
    assert (tmp_path / "s" / SIDECAR).is_file()
    assert stat.S_IMODE((tmp_path / "s" / SIDECAR).stat().st_mode) == 0o600


WORDS = st.sampled_from(["alpha", "Alpha", "beta", "alphabet", "ß", "ss", "K", "\u212a", "k",
                         "ı", "I", "İ", "42", "a_b", "ﬁ", "fi", "pad pad pad pad"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.lists(WORDS, min_size=1, max_size=8).map(" ".join), min_size=1,
                      max_size=8),
       query=st.lists(WORDS, min_size=1, max_size=2), phrase=st.booleans(),
       prefix=st.booleans(), limit=st.integers(1, 4), some=st.booleans())
def test_any_words_any_query(tmp_path_factory: pytest.TempPathFactory, texts: list[str],
                             query: list[str], phrase: bool, prefix: bool, limit: int,
                             some: bool) -> None:
    text = " ".join(query)
    text = f'"{text}"' if phrase else text + ("*" if prefix else "")
    ids = ["s00", "s02", "s03"] if some else None
    with _store(tmp_path_factory.mktemp("h") / "s", texts) as manager:
        assert manager.search(text, limit=limit, session_ids=ids) == _reference(
            manager, text, limit, None if ids is None else [i for i in ids if manager.exists(i)])


def _run(code: str, *args: str) -> str:
    """Run ``code`` in another Python process (this checkout), return its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_another_process_writing_between_two_searches(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with _store(store, TEXTS[:3]) as manager:
        assert [h.session_id for h in manager.search("deploy", limit=1)] == ["s00"]
        _run("""
            import sys
            from claude_magic.manager import SessionManager
            from claude_magic.message import Message
            with SessionManager(sys.argv[1]) as other:
                other.append("s01", Message("user", "quokka in another process"))
                other.rename("s02", "moved")
                other.create_session("fresh").with_system_prompt("marzipan").build()
                other.delete("s00")
            """, str(store))
        assert [(h.session_id, h.seq) for h in manager.search("quokka")] == [("s01", 2)]
        assert {h.session_id for h in manager.search("kelvin")} == {"moved"}
        assert [h.role for h in manager.search("marzipan")] == ["system"]
        assert manager.search("deploy") == []
        # a hand edit of one line, same size, file times put back: only ctime tells
        path = store / "s01.messages.jsonl"
        before = path.stat()
        path.write_bytes(path.read_bytes().replace(b"quokka", b"wombat"))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert manager.search("quokka") == []
        assert [h.seq for h in manager.search("wombat")] == [2]
        assert manager.search("wombat") == _reference(manager, "wombat")
        header = store / "s01.json"  # and of the header, in place
        header.write_bytes(header.read_bytes().replace(b"Python", b"Pithon"))
        assert [h.session_id for h in manager.search("pithon")] == ["s01"]


def test_unchanged_sessions_are_not_read_again(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dir_search, "TRUST_MARGIN_NS", 0)  # every file is old enough
    store = tmp_path / "s"
    with _store(store, TEXTS[:4]) as manager:
        manager.search("deploy")
    numbers = _numbers(store)
    with SessionManager(str(store)) as second:  # a new process's view: the sidecar only
        assert second.search("deploy") == _reference(second, "deploy")
        assert _numbers(store) == numbers
        second.append("s02", Message("user", "one more"))
        assert [h.session_id for h in second.search("more")] == ["s02"]
    after = _numbers(store)
    assert {sid for sid in after if after[sid] != numbers[sid]} == {"s02"}


def test_sessions_too_young_to_trust_are_read_again(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Files changed within the trust margin may change again within one timestamp tick,
    leaving their listing as it was: each search reads them again until they are old
    enough, and stops then."""
    monkeypatch.setattr(_dir_search, "TRUST_MARGIN_NS", 10**18)  # every file is too young
    read: list[str] = []
    real = _dir_search.read_session
    monkeypatch.setattr(_dir_search, "read_session",
                        lambda root, sid, digest: (read.append(sid), real(root, sid, digest))[1])
    with _store(tmp_path / "s", TEXTS[:3]) as manager:
        for _ in range(2):
            read.clear()
            assert manager.search("deploy") == _reference(manager, "deploy")
            assert sorted(read) == ["s00", "s01", "s02"]
        monkeypatch.setattr(_dir_search, "TRUST_MARGIN_NS", 0)  # old enough now
        manager.search("deploy")  # read once more, and trusted
        read.clear()
        assert manager.search("deploy") == _reference(manager, "deploy")
        assert read == []


def _numbers(store: Path) -> dict[str, int]:
    db = sqlite3.connect(store / SIDECAR)
    try:
        return dict(db.execute("SELECT sid, sno FROM sessions"))
    finally:
        db.close()


@pytest.mark.parametrize("name", [SIDECAR, SIDECAR + "-wal", SIDECAR + "-shm"])
def test_a_planted_link_is_never_followed(tmp_path: Path, name: str) -> None:
    target = tmp_path / "target.db"
    target.write_bytes(b"not yours")
    store = tmp_path / "s"
    with _store(store, TEXTS[:3]) as manager:
        (store / SIDECAR).unlink(missing_ok=True)
        for side in ("-wal", "-shm"):
            (store / (SIDECAR + side)).unlink(missing_ok=True)
        (store / name).symlink_to(target)
    with SessionManager(str(store)) as manager, pytest.warns(StorageWarning, match=name):
        assert manager.search("deploy") == _reference(manager, "deploy")
        assert [Path(e.location).name for e in manager.damaged()] == [name]  # reported
    assert target.read_bytes() == b"not yours"
    assert (store / name).is_symlink()


@pytest.mark.timeout(30)
def test_a_planted_fifo_does_not_block(tmp_path: Path) -> None:
    store = tmp_path / "s"
    _store(store, TEXTS[:2]).close()
    os.mkfifo(store / SIDECAR)
    with SessionManager(str(store)) as manager, pytest.warns(StorageWarning, match="FIFO"):
        assert manager.search("deploy") == _reference(manager, "deploy")
        assert [Path(e.location).name for e in manager.damaged()] == [SIDECAR]
    assert stat.S_ISFIFO(os.lstat(store / SIDECAR).st_mode)


@pytest.mark.parametrize("content", [b"garbage " * 500, b"SQLite format 3\0" + b"\xff" * 4000])
def test_a_damaged_sidecar_is_rebuilt(tmp_path: Path, content: bytes) -> None:
    store = tmp_path / "s"
    _store(store, TEXTS[:3]).close()
    for name in (SIDECAR + "-wal", SIDECAR + "-shm"):
        (store / name).unlink(missing_ok=True)
    (store / SIDECAR).write_bytes(content)
    with SessionManager(str(store)) as manager:
        assert manager.search("deploy") == _reference(manager, "deploy")
    assert len(_numbers(store)) == 3


def test_a_sidecar_of_another_format_or_planted_rows_is_emptied(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with _store(store, TEXTS[:3]) as manager:
        manager.search("deploy")
    db = sqlite3.connect(store / SIDECAR)
    with db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'version'")
        db.execute("UPDATE docs SET text = 'planted words'")
        db.execute("UPDATE postings SET word = 'planted' WHERE word = 'deploy'")
    db.close()
    with SessionManager(str(store)) as manager:
        assert manager.search("deploy") == _reference(manager, "deploy")
        assert manager.search("planted") == []


def test_a_store_from_before_the_index(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with _store(store, TEXTS) as manager:
        expected = _reference(manager, "deploy")
    assert not (store / SIDECAR).exists()  # no search yet: nothing built
    with SessionManager(str(store)) as manager:
        assert manager.search("deploy") == expected
    assert (store / SIDECAR).is_file()


READER = """
    import os, sys
    from claude_magic.manager import SessionManager
    with SessionManager(sys.argv[1]) as manager:
        for _ in range(2):
            print([(h.session_id, h.seq) for h in manager.search("deploy")])
    print(sorted(n for n in os.listdir(sys.argv[1]) if n.startswith(".search")))
"""


def test_a_read_only_folder_searches_in_memory(nobody_dir: Path) -> None:
    store = nobody_dir / "s"
    made = run_as_nobody(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from claude_magic.manager import SessionManager
        from claude_magic.message import Message
        with SessionManager({str(store)!r}) as manager:
            manager.create_session("a").build()
            manager.append("a", Message("user", "deploy it"))
        """, cwd=nobody_dir)
    assert made.returncode == 0, made.stderr
    store.chmod(0o555)
    code = READER.replace("sys.argv[1]", repr(str(store)))
    result = run_as_nobody(code, cwd=nobody_dir)
    assert result.stdout.splitlines() == ["[('a', 0)]", "[('a', 0)]", "[]"], result.stderr


def test_a_sidecar_another_user_owns_is_not_used(tmp_path: Path) -> None:
    oslevel.require_root("a sidecar owned by another user")
    store = tmp_path / "s"
    _store(store, TEXTS[:3]).close()
    planted = sqlite3.connect(store / SIDECAR)
    planted.execute("CREATE TABLE planted (x)")
    planted.close()
    os.chown(store / SIDECAR, 65534, 65534)
    before = (store / SIDECAR).read_bytes()
    with SessionManager(str(store)) as manager:
        assert manager.search("deploy") == _reference(manager, "deploy")
    assert (store / SIDECAR).read_bytes() == before


SEARCHER = """
    import sys
    from claude_magic.manager import SessionManager
    sys.stdin.readline()
    with SessionManager(sys.argv[1]) as manager:
        for _ in range(10):
            print(len(manager.search("word*", limit=500)), flush=True)
"""


def test_two_processes_searching_at_once(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with SessionManager(str(store)) as manager:
        for i in range(60):
            manager.create_session(f"s{i}").build()
            manager.append(f"s{i}", Message("user", f"word{i} " * 20))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(SEARCHER), str(store)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split() == ["60"] * 10, err


def test_ties_and_a_word_in_every_message(tmp_path: Path) -> None:
    with SessionManager(str(tmp_path / "s")) as manager:
        for i in range(40):
            manager.create_session(f"t{39 - i:02d}").with_metadata("lorem", "lorem").build()
            for text in ("lorem ipsum", "lorem ipsum", "lorem lorem", "x lorem ipsum dolor"):
                manager.append(f"t{39 - i:02d}", Message("user", text))
        for limit in (1, 7, 50, 500):
            assert manager.search("lorem", limit=limit) == _reference(manager, "lorem", limit)
            assert manager.search("lorem ipsum", limit=limit) == _reference(
                manager, "lorem ipsum", limit)
        ids = ["t05", "t17"]
        assert manager.search("lorem", session_ids=ids) == _reference(manager, "lorem", 50, ids)


def test_a_full_disk_searches_in_memory(full_disk: Path) -> None:
    store = full_disk / "s"
    _store(store, TEXTS[:4]).close()
    oslevel.fill(full_disk)  # no room for the sidecar: the index is kept in memory
    with SessionManager(str(store)) as manager:
        assert manager.search("deploy") == _reference(manager, "deploy")
        assert manager.search("kelvin") == _reference(manager, "kelvin")
        assert len(manager.list()) == 4


def test_a_folder_removed_under_the_manager_is_one_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "s"
    with _store(store, TEXTS[:1]) as manager:
        manager.search("deploy")
        shutil.rmtree(store)
        with pytest.raises(StorageError, match="cannot list session directory"):
            manager.search("deploy")


def test_a_loose_word_never_hides_a_hit(tmp_path: Path) -> None:
    """``ß`` is kept under ``ss`` (a loose key: the regex does not match it), so its session
    looks like the best one for ``ss`` until its text is checked."""
    with SessionManager(str(tmp_path / "s")) as manager:
        for sid, text in [("a0", "ß"), ("a1", "ss " + "padding words " * 20), ("a2", "ſ"),
                          ("a3", "s and more")]:
            manager.create_session(sid).build()
            manager.append(sid, Message("user", text))
        for query in ("ss", "s"):
            for limit in (1, 2):
                assert manager.search(query, limit=limit) == _reference(manager, query, limit)
        assert [h.session_id for h in manager.search("ss", limit=1)] == ["a1"]


def test_a_first_build_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dir_search, "_BATCH", 3)  # as a store of thousands of sessions
    with _store(tmp_path / "s", TEXTS) as manager:
        for query in ("deploy", '"topic 42"', "k*", "web"):
            assert manager.search(query) == _reference(manager, query)
    assert len(_numbers(tmp_path / "s")) == len(TEXTS)


def test_lines_the_store_does_not_read_are_not_found(tmp_path: Path) -> None:
    """A line holding a lone surrogate escape (only a planted line can) and a torn last line
    (no newline: a killed writer's) are not messages to the store, nor to its search."""
    store = tmp_path / "s"
    with _store(store, TEXTS[:2]) as manager:
        manager.search("deploy")
        path = store / "s00.messages.jsonl"
        line = path.read_bytes().split(b"\n")[0]
        planted = line.replace(b"Deploy the", b"Deploy \\ud800 quokka")
        torn = line.replace(b"Deploy the", b"Deploy wombat")
        with open(path, "ab") as file:
            file.write(planted + b"\n" + torn)
        with pytest.warns(StorageWarning):
            expected = _reference(manager, "deploy")
        assert manager.search("deploy") == expected
        assert manager.search("quokka") == [] and manager.search("wombat") == []

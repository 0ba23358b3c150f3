"""Real processes on one store: concurrent writers lose nothing; a killed writer damages nothing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from claude_magic.manager import SessionManager
from claude_magic.message import Message

WORKER = str(Path(__file__).with_name("worker.py"))
WRITERS, APPENDS, CREATES = 4, 100, 25
KILLS = 20


def spec_for(kind: str, tmp_path: Path) -> str:
    return str(tmp_path / "sessions") if kind == "directory" else f"sqlite:///{tmp_path}/s.db"


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_writers(spec: str, writers: int, appends: int, creates: int) -> None:
    """Start ``writers`` worker processes on ``spec``, let them write at once, wait for all."""
    started = [start("concurrent", spec, f"p{n}", str(appends), str(creates))
               for n in range(writers)]
    for writer in started:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
    for writer in started:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in started:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert out == "done\n"


def check_writers(manager: SessionManager, writers: int, appends: int, creates: int) -> set[str]:
    """Every write of :func:`run_writers` is in the store, each writer's messages in its
    order, nothing damaged; returns the ids the store must hold."""
    messages = manager.resume("shared").messages
    assert [m.seq for m in messages] == list(range(writers * appends))
    assert sorted(m.content for m in messages) == sorted(
        f"p{n}:{i}" for n in range(writers) for i in range(appends))
    for n in range(writers):  # each writer's messages keep its order
        mine = [int(m.content.split(":")[1]) for m in messages
                if m.content.startswith(f"p{n}:")]
        assert mine == list(range(appends))
    expected = {"shared"} | {f"p{n}-{j}" for n in range(writers) for j in range(creates)}
    assert set(manager.list()) == expected
    assert manager.damaged() == []
    return expected


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_concurrent_writers_lose_nothing(kind: str, tmp_path: Path) -> None:
    spec = spec_for(kind, tmp_path)  # the store does not exist yet: all four create it at once
    run_writers(spec, WRITERS, APPENDS, CREATES)
    with SessionManager.with_storage(spec) as manager:
        expected = check_writers(manager, WRITERS, APPENDS, CREATES)
        assert manager.count() == len(expected)
        assert {s.id: s.stats.message_count for s in manager.summaries()}["shared"] == 400
        assert manager.find(by="p3") and len(manager.find(by="p3")) == CREATES


def read_acks(output: str) -> list[list[str]]:
    """Complete lines only: a line cut by the kill was not acknowledged."""
    lines = output.split("\n")[:-1]
    return [line.split(" ", 2) for line in lines if line != "ready"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_writer_killed_at_random_moments(kind: str, tmp_path: Path) -> None:
    spec = spec_for(kind, tmp_path)
    rng = random.Random(1234)
    acked: dict[str, list] = {"A": [], "C": [], "U": [], "M": []}
    counter = 0
    for round_number in range(KILLS):
        writer = start("crash", spec, f"w{round_number}", str(counter))
        if round_number >= 3:  # the first rounds may die while opening or migrating the store
            assert writer.stdout is not None
            assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
        time.sleep(rng.uniform(0.02, 0.4))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == -signal.SIGKILL
        for ack in read_acks(out):
            acked[ack[0]].append(ack[1:])
        counter += 100_000

        with SessionManager.with_storage(spec) as manager:  # opens, after every kill
            assert manager.damaged() == []
            messages = manager.resume("shared").messages
            assert [m.seq for m in messages] == list(range(len(messages)))
            assert manager.summary("shared").stats.message_count == len(messages)
            by_seq = {m.seq: m for m in messages}
            for seq, text in acked["A"]:
                assert by_seq[int(seq)].content.startswith(text), (seq, text)
            for (seq,) in acked["M"]:
                assert by_seq[int(seq)].status == "error"
            for (session_id,) in acked["C"]:
                created = manager.resume(session_id)
                assert [m.content for m in created.messages] == [
                    f"{session_id}:{i}" for i in range(3)]
            if acked["U"]:
                counters = [int(c) for (c,) in acked["U"]]
                assert manager.resume("shared").metadata["counter"] >= max(counters)
            assert set(manager.list()) >= {"shared", *(c for (c,) in acked["C"])}

    assert len(acked["A"]) > 50 and acked["C"] and acked["U"] and acked["M"], {
        key: len(value) for key, value in acked.items()}
    with SessionManager.with_storage(spec) as manager:
        # the totals count every stored line, after any kill
        count = len(manager.resume("shared").messages)
        manager.append("shared", Message("user", "after the crashes"))
        assert manager.summaries()[0].stats.message_count == count + 1

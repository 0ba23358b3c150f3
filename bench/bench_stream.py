"""Streaming overhead of Client.stream() against the raw anthropic SDK, same fake server.

Both stream a 2,000-token answer (2,000 text deltas) from one FakeMessagesServer on 127.0.0.1,
run in its own process (as a real server would be, so it does not compete for this process's
GIL); runs are interleaved, and each side is measured as time to first chunk and total time
(median).
The Client side runs a real turn: a fresh session in a directory store (and, for comparison, in
memory), the user message stored before the call and the answer stored after it; both sides
keep their HTTP connection between runs.

Targets: Client overhead <= 5 ms to the first chunk and <= 5 % in total.

    python bench/bench_stream.py [--runs 21] [--tokens 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anthropic

from claude_magic.client import Client, Config
from claude_magic.manager import SessionManager
from claude_magic.message import Message
from claude_magic.storage import StorageBackend

KEY = "sk-ant-bench-not-a-real-key"
MODEL = "claude-sonnet-4-6"
PROMPT = "Write a long answer."
TARGET_FIRST_MS = 5.0
TARGET_TOTAL = 0.05
BASELINE = "raw anthropic SDK"

Timed = tuple[float, float]  # (time to first chunk, total), seconds


def timed(chunks: Iterator[str]) -> tuple[float, int]:
    """Consume ``chunks``; return the first chunk's time (perf_counter) and the chunk count."""
    first = 0.0
    count = 0
    for _ in chunks:
        if not count:
            first = time.perf_counter()
        count += 1
    return first, count


def raw_sdk(sdk: anthropic.Anthropic, expected: int) -> Timed:
    start = time.perf_counter()
    with sdk.messages.stream(model=MODEL, max_tokens=4096,
                             messages=[{"role": "user", "content": PROMPT}]) as stream:
        first, count = timed(stream.text_stream)
        stream.get_final_message()
    end = time.perf_counter()
    assert count == expected, count
    return first - start, end - start


def through_client(client: Client, expected: int) -> Timed:
    session_id = client.manager.create_session().build().id  # not timed
    start = time.perf_counter()
    stream = client.query(PROMPT).session(session_id).stream()
    first, count = timed(stream)
    end = time.perf_counter()
    assert count == expected and stream.response.turn == 1, count
    return first - start, end - start


@contextmanager
def fake_server(reply: str) -> Iterator[str]:
    """``python -m claude_magic.testing.fake_server`` answering ``reply``; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_magic.testing.fake_server", "--api-key", KEY,
         "--reply", reply], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def store_appends(manager: SessionManager, answer: str) -> float:
    """The two durable writes of a turn alone (user message, answer), for attribution."""
    session_id = manager.create_session().build().id
    start = time.perf_counter()
    manager.append(session_id, Message("user", PROMPT))
    manager.append(session_id, Message("assistant", answer))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    text = " ".join(f"word{i % 97}" for i in range(args.tokens))
    with fake_server(text) as url, tempfile.TemporaryDirectory() as tmp:
        os.environ["ANTHROPIC_API_KEY"] = KEY
        os.environ["ANTHROPIC_BASE_URL"] = url
        sdk = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
        config = Config(backend="anthropic", model=MODEL, retries=0)
        directory = Client(config, SessionManager(StorageBackend.file(tmp)))
        memory = Client(config, SessionManager())
        again = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
        sides: dict[str, Callable[[], Timed]] = {
            BASELINE: lambda: raw_sdk(sdk, args.tokens),
            "raw SDK again (A/A noise control)": lambda: raw_sdk(again, args.tokens),
            "Client.stream(), directory store": lambda: through_client(directory, args.tokens),
            "Client.stream(), memory store": lambda: through_client(memory, args.tokens),
        }
        rounds: list[dict[str, Timed]] = []
        appends: list[float] = []
        for run in range(args.warmup + args.runs):
            order = list(sides) if run % 2 == 0 else list(reversed(sides))
            figures = {name: sides[name]() for name in order}
            appends.append(store_appends(directory.manager, text))
            if run >= args.warmup:
                rounds.append({name: figures[name] for name in sides})
    code = report(rounds, args)
    print(f"(the directory store's two fsync'd appends alone take "
          f"{statistics.median(appends[args.warmup:]) * 1000:.2f} ms per turn here)")
    return code


def report(rounds: list[dict[str, Timed]], args: argparse.Namespace) -> int:
    """Medians of each side, and medians of its per-round difference from the baseline run
    next to it (paired, so slow drift of the machine cancels out)."""
    print(f"{args.tokens}-token streamed answer, {args.runs} interleaved rounds "
          f"(after {args.warmup} warm-up rounds); medians\n")
    print(f"{'':36} {'first chunk':>12} {'total':>10} {'+first':>9} {'+total':>8}")
    ok = True
    for name in rounds[0]:
        first = statistics.median(r[name][0] for r in rounds)
        total = statistics.median(r[name][1] for r in rounds)
        line = f"{name:36} {first * 1000:9.2f} ms {total * 1000:7.1f} ms"
        if name == BASELINE:
            print(line + f" {'(baseline)':>18}")
            continue
        extra_first = statistics.median(r[name][0] - r[BASELINE][0] for r in rounds) * 1000
        extra_total = statistics.median(r[name][1] / r[BASELINE][1] - 1 for r in rounds)
        passed = extra_first <= TARGET_FIRST_MS and extra_total <= TARGET_TOTAL
        verdict = "PASS" if passed else "FAIL"
        if name.startswith("Client"):
            ok &= passed
        else:
            verdict = "(noise)"
        print(line + f" {extra_first:+6.2f} ms {extra_total:+7.1%}  {verdict}")
    print(f"\ntargets: <= {TARGET_FIRST_MS:g} ms more to the first chunk, <= "
          f"{TARGET_TOTAL:.0%} more in total -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

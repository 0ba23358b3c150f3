"""Prompt caching: billed input with the cache on vs off, and the cost of the pre-send estimate.

Conversations of 30 and 300 turns of about 500 tokens each (a 250-token prompt, a 250-token
answer) run through Client and the real anthropic SDK against the fake Messages API server and
its prompt cache, once with ``Config(cache="5m")`` (the default) and once with
``cache=None``, in the same run. Billed input is the base-rate equivalent the API bills:
uncached input + 1.25 x cache writes + 0.1 x cache reads, summed over every turn.
Targets: on/off <= 0.25 at 30 turns and <= 0.15 at 300 turns.

Then the pre-send check a turn now makes (history as the model sees it, compaction applied,
plus the context-window estimate) on a session of 1,000 messages, median of ``--runs``, both
with the last answer's usage and estimated from every message's text. Target: <= 1 ms.

    python bench/bench_cache.py [--turns 30 300] [--runs 51]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from claude_magic.client import Client, Config
from claude_magic.manager import SessionManager
from claude_magic.message import Message, Usage
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.turn import model_turns
from claude_magic.window import estimate

TARGETS = {30: 0.25, 300: 0.15}
TARGET_ESTIMATE_MS = 1.0
WRITE, READ = 1.25, 0.1


def billed(manager: SessionManager, session_id: str) -> tuple[float, int, int, int]:
    """(base-rate equivalent input, uncached, writes, reads) over a session's answers."""
    total = [0, 0, 0]
    for message in manager.resume(session_id).messages:
        usage = message.usage
        total[0] += usage.input_tokens
        total[1] += usage.cache_creation_input_tokens
        total[2] += usage.cache_read_input_tokens
    return total[0] + WRITE * total[1] + READ * total[2], *total


def conversation(server: FakeMessagesServer, turns: int, cache: str | None) -> tuple:
    server.reset()
    manager = SessionManager()
    client = Client(Config(backend="anthropic", base_url=server.url, cache=cache, retries=0),
                    manager=manager)
    sid = manager.create_session().with_system_prompt("You are a patient tutor.").build().id
    for number in range(turns):
        client.query(" ".join(f"q{number}w{i}" for i in range(250))).session(sid).send()
    return billed(manager, sid)


def presend_ms(runs: int) -> tuple[float, float]:
    """Median ms of the pre-send work at 1,000 messages: (using usage, from text)."""
    messages = []
    for seq in range(1000):
        role = "user" if seq % 2 == 0 else "assistant"
        usage = Usage(input_tokens=10, cache_read_input_tokens=250 * seq) if role == \
            "assistant" else Usage()
        messages.append(Message(role, "word " * 250, usage=usage, backend="anthropic",
                                seq=seq))
    timings: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(runs):
        for trust in (True, False):
            start = time.perf_counter()
            history = [m for turn in model_turns(messages) for m in turn]
            estimate("You are a patient tutor.", history, "next prompt", trust_usage=trust)
            timings[trust].append((time.perf_counter() - start) * 1000)
    return statistics.median(timings[True]), statistics.median(timings[False])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[30, 300])
    parser.add_argument("--runs", type=int, default=51)
    args = parser.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = "sk-ant-bench-not-a-real-key"
    ok = True
    print(f"{'turns':>5}  {'billed on':>12}  {'billed off':>12}  {'on/off':>7}  "
          f"{'target':>6}  {'writes':>9}  {'reads':>11}  result")
    with FakeMessagesServer(default_reply=" ".join(f"a{i}" for i in range(250))) as server:
        for turns in args.turns:
            on = conversation(server, turns, "5m")
            off = conversation(server, turns, None)
            ratio = on[0] / off[0]
            target = TARGETS.get(turns)
            passed = target is None or ratio <= target
            ok &= passed
            print(f"{turns:>5}  {on[0]:>12,.0f}  {off[0]:>12,.0f}  {ratio:>7.3f}  "
                  f"{target if target else '-':>6}  {on[2]:>9,}  {on[3]:>11,}  "
                  f"{'PASS' if passed else 'FAIL'}")
    with_usage, from_text = presend_ms(args.runs)
    passed = max(with_usage, from_text) <= TARGET_ESTIMATE_MS
    ok &= passed
    print(f"pre-send history + estimate at 1,000 messages: {with_usage:.3f} ms (last usage), "
          f"{from_text:.3f} ms (from text); target <= {TARGET_ESTIMATE_MS} ms  "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Warm time to first token through Client.stream() beside the raw SDK, by history length.

A session of ``--sizes`` messages (default 10 and 10,000) is imported into a store; each round
runs one more turn in it through ``Client.stream()`` (warm: the client has served the session
before, as in a notebook) and, beside it, the raw ``anthropic`` SDK sending the same history
(a list of message dicts the caller keeps and appends to, as a hand-written app would) to the
same fake Messages API server, which runs in its own process. Both sides send the whole
history, so the SDK's own encoding of it is in the floor; the difference is what the client
does per turn: read what changed in the store, build the request, estimate the window, and
store the prompt durably before sending. Overhead: median of each round's paired difference;
*before the request* is the client's own time from the call until the SDK's
``messages.stream`` is entered (store read, request built, prompt stored), which the noise of
sending 10,000 messages through HTTP does not blur. Target: <= +1 ms to the first token, at
10 and at 10,000 messages (judged on the memory store: the others add one durable write).

    python bench/bench_ttft.py [--runs 31] [--sizes 10 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

import anthropic
from bench_stream import KEY, MODEL, PROMPT, fake_server, timed
from sample_sessions import sample_session

from claude_magic.client import Client, Config
from claude_magic.manager import SessionManager

TARGET_MS = 1.0
REPLY = "A short answer of a few words."
ENTERED = [0.0]  # when the last messages.stream() call was entered (perf_counter)


def note_entry() -> None:
    """Wrap the SDK's ``messages.stream`` to note when each request is handed to it, so the
    client's own work before the request is timed apart from the network and the server."""
    from anthropic.resources.messages import Messages

    original = Messages.stream

    def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        ENTERED[0] = time.perf_counter()
        return original(self, *args, **kwargs)

    Messages.stream = stream  # type: ignore[method-assign]


def raw_turn(sdk: anthropic.Anthropic, messages: list[dict[str, Any]]) -> float:
    """One turn of a hand-written app: send the kept history plus the prompt; keep both."""
    start = time.perf_counter()
    messages.append({"role": "user", "content": PROMPT})
    with sdk.messages.stream(model=MODEL, max_tokens=1024, messages=messages) as stream:
        first, _ = timed(stream.text_stream)
        answer = stream.get_final_message()
    messages.append({"role": "assistant", "content": answer.content[0].text})
    return first - start


def client_turn(client: Client, session_id: str, before: list[float]) -> float:
    start = time.perf_counter()
    stream = client.query(PROMPT).session(session_id).stream()
    first, _ = timed(stream)
    before.append(ENTERED[0] - start)
    return first - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000])
    args = parser.parse_args()
    ok = True
    rows = []
    note_entry()
    with fake_server(REPLY) as url, tempfile.TemporaryDirectory() as tmp:
        os.environ["ANTHROPIC_API_KEY"] = KEY
        os.environ["ANTHROPIC_BASE_URL"] = url
        config = Config(backend="anthropic", model=MODEL, retries=0, context_window=10_000_000)
        for size in args.sizes:
            session = sample_session(0, size, f"ttft-{size}")
            stores = {"memory": SessionManager(), "sqlite": SessionManager(
                f"sqlite:///{tmp}/s{size}.db"), "directory": SessionManager(f"{tmp}/d{size}")}
            sides: dict[str, Any] = {}
            before: dict[str, list[float]] = {}
            for kind, manager in stores.items():
                manager.import_session(session)
                client = Client(config, manager)
                name = f"Client.stream(), {kind} store"
                before[name] = []
                sides[name] = (lambda c=client, b=before[name], i=session.id: client_turn(c, i, b))
            history = [{"role": m.role, "content": m.content} for m in session.messages]
            sdk = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
            sides["raw anthropic SDK"] = lambda s=sdk, h=history: raw_turn(s, h)
            again = list(history)
            sdk2 = anthropic.Anthropic(api_key=KEY, base_url=url, max_retries=0)
            sides["raw SDK again (A/A control)"] = lambda s=sdk2, h=again: raw_turn(s, h)
            rounds: list[dict[str, float]] = []
            for run in range(args.warmup + args.runs):
                order = list(sides) if run % 2 else list(reversed(sides))
                figures = {name: sides[name]() for name in order}
                if run >= args.warmup:
                    rounds.append(figures)
            base = statistics.median(r["raw anthropic SDK"] for r in rounds) * 1000
            for name in sides:
                if name == "raw anthropic SDK":
                    continue
                extra = statistics.median(r[name] - r["raw anthropic SDK"] for r in rounds) * 1000
                mine = statistics.median(r[name] for r in rounds) * 1000
                work = (f"{statistics.median(before[name][args.warmup:]) * 1000:.2f}"
                        if name in before else "")
                verdict = "(noise)" if name.startswith("raw") else (
                    "PASS" if extra <= TARGET_MS else "FAIL")
                if name.startswith("Client") and "memory" in name:
                    ok &= extra <= TARGET_MS
                rows.append(f"| {size:,} | {name} | {mine:.2f} | {base:.2f} | {extra:+.2f} | "
                            f"{work} | {verdict} |")
            for manager in stores.values():
                manager.close()
    print(f"warm time to first token, medians of {args.runs} interleaved rounds, ms\n")
    print("| messages | side | first token | raw SDK | + first token | before the request "
          "| <= +1 ms |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

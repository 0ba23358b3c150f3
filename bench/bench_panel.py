"""The session panel and ``to_dataframe()`` with many sessions, on SQLite and the directory store.

Fills each store with N sessions of 10 messages, then times, as medians of several runs:

- building the panel and its first page (a fresh manager each run, as in a new kernel);
- applying a text filter (the search text is built with the panel), a metadata filter, a sort;
- ``to_dataframe()`` beside a baseline of plain ``sqlite3`` rows into ``pandas.DataFrame``
  (and, for context, a hand-written equivalent: the same rows with timestamps and metadata
  parsed); on the directory store beside ``json.loads`` of every header file;
- ``summaries()``, and where it spends its time (cProfile): the store's part of every figure.

    python bench/bench_panel.py [--sessions 10000] [--runs 5] [--stores sqlite,directory]

Targets: panel build + first page <= 300 ms on SQLite; a filter <= 50 ms;
``to_dataframe()`` <= 2x the plain-rows baseline. Widgets are built without a kernel, so comm
messages to a browser are not counted.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sample_sessions import sample_session

from claude_magic.export import to_dataframe
from claude_magic.manager import SessionManager
from claude_magic.panel import SessionPanel
from claude_magic.storage import StorageBackend

PANEL_MS, FILTER_MS, FRAME_RATIO = 300.0, 50.0, 2.0


def fill(backend: StorageBackend, sessions: int, messages: int) -> float:
    start = time.perf_counter()
    with SessionManager(backend) as manager:
        for i in range(sessions):
            manager.import_session(sample_session(i, messages))
    return time.perf_counter() - start


def timed(func: Callable[[], Any], runs: int, setup: Callable[[], Any] | None = None
          ) -> tuple[float, float]:
    """(first, median) in ms; ``setup`` runs untimed before each run."""
    samples = []
    for _ in range(runs):
        if setup is not None:
            setup()
        gc.collect()  # the previous run's garbage is not this run's cost
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return samples[0], statistics.median(samples)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def name(backend: StorageBackend) -> str:
    return "directory" if backend.kind == "file" else backend.kind


def bench_panel(backend: StorageBackend, runs: int, report: list[str]) -> None:
    managers: list[SessionManager] = []
    panels: list[SessionPanel] = []

    def close_panels() -> None:  # untimed: closing is not part of opening
        while panels:
            panels.pop().close()

    def fresh() -> None:
        close_panels()
        managers.append(SessionManager(backend))

    def build() -> None:
        panels.append(SessionPanel(managers[-1]))
        assert len(panels[-1].rows) == 25, "the first page is not full"

    first, median = timed(build, runs, setup=fresh)
    label = f"{name(backend)}: panel build + first page (new manager)"
    target = f"<= {PANEL_MS:.0f} ms {verdict(median <= PANEL_MS)}" if backend.kind == "sqlite" \
        else "(no target)"
    report.append(f"{label:58} first {first:7.1f} ms  median {median:7.1f} ms  {target}")
    manager = managers[-1]
    _, warm = timed(lambda: panels.append(SessionPanel(manager)), runs, setup=close_panels)
    close_panels()
    report.append(f"{name(backend) + ': panel build + first page (same manager)':58} "
                  f"{'':19} median {warm:7.1f} ms")

    panel = SessionPanel(manager)
    words = iter(["topic 42", "web-api", "user3", "opus", "help with 7", "session-09"] * runs)
    first_filter, _ = timed(lambda: setattr(panel.filter_text, "value", next(words)), 1)
    _, filter_ms = timed(lambda: setattr(panel.filter_text, "value", next(words)), runs)
    panel.filter_text.value = ""
    metas = iter(["project=ml", "owner=user5", "project=data, owner=user2"] * runs)
    _, meta_ms = timed(lambda: setattr(panel.meta_filter, "value", next(metas)), runs)
    panel.meta_filter.value = ""
    sorts = iter(["tokens", "meta.n", "id", "cost", "updated"] * runs)
    _, sort_ms = timed(lambda: setattr(panel.sort_by, "value", next(sorts)), runs)
    _, page_ms = timed(panel.next_button.click, runs)
    panel.close()
    for label, ms, target in [("first text filter", first_filter, FILTER_MS),
                              ("text filter", filter_ms, FILTER_MS),
                              ("metadata filter", meta_ms, FILTER_MS),
                              ("sort by another column", sort_ms, None),
                              ("next page", page_ms, None)]:
        tail = f"<= {target:.0f} ms {verdict(ms <= target)}" if target else ""
        report.append(f"{name(backend) + ': ' + label:58} {'':19} median {ms:7.1f} ms  {tail}")
    for opened in managers:
        opened.close()


def sqlite_baselines(path: Path) -> tuple[Callable[[], Any], Callable[[], Any]]:
    columns = ["id", "system_prompt", "metadata", "settings", "created_at", "updated_at",
               "message_count", "turns", "input_tokens", "output_tokens", "cost_usd",
               "last_model"]
    sql = f"SELECT {', '.join(columns)} FROM sessions ORDER BY updated_at DESC, id DESC"

    def plain() -> pd.DataFrame:
        with sqlite3.connect(path) as db:
            return pd.DataFrame(db.execute(sql).fetchall(), columns=columns)

    def equivalent() -> pd.DataFrame:
        frame = plain()
        for name in ("created_at", "updated_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        meta = pd.DataFrame([json.loads(m) for m in frame.pop("metadata")]).add_prefix("meta.")
        return pd.concat([frame.drop(columns=["settings"]), meta], axis=1)

    return plain, equivalent


def bench_frames(backend: StorageBackend, runs: int, report: list[str]) -> None:
    with SessionManager(backend) as manager:
        _, ours = timed(lambda: to_dataframe(manager), runs)
        _, columns = timed(manager.summary_columns, runs)
        if backend.kind == "sqlite":
            plain, equivalent = sqlite_baselines(Path(backend.path or ""))
            _, base = timed(plain, runs)
            _, fair = timed(equivalent, runs)
            report.append(f"{'sqlite: baseline, plain sqlite3 rows -> DataFrame':58} "
                          f"{'':19} median {base:7.1f} ms")
            report.append(f"{'sqlite: baseline + timestamps and metadata parsed':58} "
                          f"{'':19} median {fair:7.1f} ms")
            report.append(f"{'sqlite: to_dataframe()':58} {'':19} median {ours:7.1f} ms  "
                          f"{ours / base:.1f}x plain, {ours / fair:.1f}x parsed  "
                          f"<= {FRAME_RATIO:.0f}x plain {verdict(ours <= FRAME_RATIO * base)}")
        else:
            root = Path(backend.path or "")

            def raw_json() -> pd.DataFrame:
                return pd.DataFrame([json.loads(p.read_bytes()) for p in root.glob("*.json")])
            _, base = timed(raw_json, runs)
            report.append(f"{'directory: baseline, json.loads of each header -> DataFrame':58} "
                          f"{'':19} median {base:7.1f} ms")
            report.append(f"{'directory: to_dataframe() (warm store cache)':58} {'':19} "
                          f"median {ours:7.1f} ms  {ours / base:.1f}x the baseline")
        report.append(f"{name(backend) + ': of which manager.summary_columns()':58} {'':19} "
                      f"median {columns:7.1f} ms  ({columns / ours:.0%} of to_dataframe)")


def summaries_profile(backend: StorageBackend, report: list[str], top: int = 6) -> None:
    """Where ``summaries()`` spends its time: the functions with the most own time."""
    with SessionManager(backend) as manager:
        manager.summaries()  # warm, like the timed runs
        profiler = cProfile.Profile()
        profiler.runcall(manager.summaries)
    stats = pstats.Stats(profiler)
    total, entries = stats.total_tt, stats.stats  # type: ignore[attr-defined]
    rows = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    report.append(f"{name(backend)}: summaries() under cProfile, {total * 1000:.0f} ms in all; "
                  "most own time:")
    for (path, line, func), (_, calls, own, _cum, _) in rows[:top]:
        where = f"{Path(path).name}:{line} {func}" if line else func
        report.append(f"    {where[:60]:60} {calls:>8,} calls {own * 1000:8.1f} ms "
                      f"({own / total:.0%})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stores", default="sqlite,directory")
    args = parser.parse_args()
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
        for kind in args.stores.split(","):
            backend = (StorageBackend.sqlite(os.path.join(tmp, "sessions.db")) if kind == "sqlite"
                       else StorageBackend.file(os.path.join(tmp, "sessions")))
            seconds = fill(backend, args.sessions, args.messages)
            report.append(f"{kind}: filled with {args.sessions:,} sessions x {args.messages} "
                          f"messages in {seconds:.1f} s")
            bench_panel(backend, args.runs, report)
            bench_frames(backend, args.runs, report)
            summaries_profile(backend, report)
            print("\n".join(report), flush=True)
            report.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())

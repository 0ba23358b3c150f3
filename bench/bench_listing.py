"""A fresh kernel's listing and metadata DataFrame at 10,000 sessions: directory vs SQLite.

Both stores are filled with ``--sessions`` sessions (``import_session``, 2 messages each);
every directory file is then made older than the header cache's trust margin, as in real use
where sessions were written earlier. Each figure is the median of ``--runs`` runs, each with
a new ``SessionManager`` (a fresh kernel; the OS page cache is warm): ``list()``, and
``to_dataframe()`` (the sessions' metadata and totals). The directory store's first-ever
DataFrame (no ``.summaries.json`` yet: every header read) is shown once.
Targets: directory cold ``list()`` <= 100 ms; directory cold DataFrame <= 3x SQLite's.

    python bench/bench_listing.py [--sessions 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sample_sessions import sample_session

from claude_magic import SessionManager
from claude_magic.export import to_dataframe

LIST_MS, FRAME_RATIO = 100.0, 3.0


def cold_ms(spec: str, action: Callable[[SessionManager], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        with SessionManager(spec) as manager:
            start = time.perf_counter()
            action(manager)
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        specs = {"sqlite": f"sqlite:///{tmp}/s.db", "directory": f"{tmp}/d"}
        for spec in specs.values():
            with SessionManager(spec) as manager:
                for number in range(args.sessions):
                    manager.import_session(sample_session(number, 2))
        old = time.time() - 3600
        for path in Path(specs["directory"]).iterdir():
            os.utime(path, (old, old), follow_symlinks=False)
        with SessionManager(specs["directory"]) as manager:
            manager.list()  # writes .index.json, as any first listing does
        first = cold_ms(specs["directory"], to_dataframe, 1)
        figures = {kind: (cold_ms(spec, SessionManager.list, args.runs),
                          cold_ms(spec, to_dataframe, args.runs))
                   for kind, spec in specs.items()}
    (sql_list, sql_frame), (dir_list, dir_frame) = figures["sqlite"], figures["directory"]
    ratio = dir_frame / sql_frame
    list_ok, frame_ok = dir_list <= LIST_MS, ratio <= FRAME_RATIO
    print(f"{args.sessions:,} sessions, a new manager each run, medians of {args.runs}, ms\n")
    print("| operation | directory | SQLite | ratio | target | result |")
    print("|---|---|---|---|---|---|")
    print(f"| list(), cold | {dir_list:.1f} | {sql_list:.1f} | {dir_list / sql_list:.1f}x | "
          f"<= {LIST_MS:g} ms | {'PASS' if list_ok else 'FAIL'} |")
    print(f"| to_dataframe(), cold | {dir_frame:.1f} | {sql_frame:.1f} | {ratio:.2f}x | "
          f"<= {FRAME_RATIO:g}x SQLite | {'PASS' if frame_ok else 'FAIL'} |")
    print(f"| to_dataframe(), first ever (no .summaries.json) | {first:.1f} | | | | |")
    return 0 if list_ok and frame_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

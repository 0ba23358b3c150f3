"""Benchmark: a turn's request built from a 1,000,000-row DataFrame and a figure, against the
bare work (``df.head(10).to_string()`` plus ``fig.savefig(BytesIO)``) in the same run
(target <= 1.5x); and a directory store's size after 10 turns re-sending one figure against
one copy of it (target <= 1.1x).

Run: ``.venv/bin/python bench/bench_context.py``
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from claude_magic import Client, Config, SessionManager
from claude_magic.backends.caching import build_request
from claude_magic.magics.interpolation import interpolate_rich
from claude_magic.magics.prompt import prompt_content


def median_time(work, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    df = pd.DataFrame({"a": np.arange(1_000_000), "b": np.random.rand(1_000_000),
                       "c": ["text"] * 1_000_000})
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.plot(np.random.rand(200))
    namespace = {"df": df, "fig": fig}

    def ours() -> None:
        text, images = interpolate_rich("Explain {df} and {fig}", namespace)
        content = prompt_content(text, images)
        build_request("m", 1024, None, [], text, "5m", content=content)

    def bare() -> None:
        df.head(10).to_string()
        fig.savefig(io.BytesIO(), format="png")

    ours(), bare()  # warm up
    t_ours, t_bare = median_time(ours), median_time(bare)
    print(f"request with a 1,000,000-row DataFrame and a figure: {t_ours * 1000:.1f} ms; "
          f"head(10).to_string() + savefig: {t_bare * 1000:.1f} ms; ratio {t_ours / t_bare:.2f}x "
          "(target <= 1.5x)")

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    one_copy = len(buffer.getvalue())
    with tempfile.TemporaryDirectory() as folder:
        manager = SessionManager(Path(folder) / "store")
        client = Client(Config(backend="echo"), manager=manager)
        session = manager.create_session("figs").build()
        for turn in range(10):
            text, images = interpolate_rich(f"Turn {turn}: {{fig}}", namespace)
            client.query(prompt_content(text, images)).session(session.id).send()
        assets = sum(p.stat().st_size for p in (Path(folder) / "store" / "assets").iterdir())
        total = sum(p.stat().st_size for p in (Path(folder) / "store").rglob("*") if p.is_file())
    print(f"store after 10 turns re-sending one figure: assets {assets:,} B, whole store "
          f"{total:,} B; one copy of the PNG {one_copy:,} B; assets ratio "
          f"{assets / one_copy:.2f}x, store ratio {total / one_copy:.2f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()

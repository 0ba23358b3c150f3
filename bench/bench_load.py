"""How long ``%load_ext`` takes in a fresh process: claude_magic beside jupyter-ai-magics.

Each run starts a new Python, makes an IPython shell, and times only the ``%load_ext``
line (the shell's own start-up is the same for both and is not counted). Runs of the two
extensions are interleaved so machine noise hits both alike; medians are compared.

    python bench/bench_load.py [--runs 15]

Targets: claude_magic <= 1/10 of jupyter-ai-magics' time, and <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

_CHILD = """
import sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
shell.run_line_magic("load_ext", sys.argv[1])
elapsed = time.perf_counter() - start
assert sys.argv[1] in shell.extension_manager.loaded, "extension did not load"
print(f"{elapsed * 1000:.3f}")
"""

EXTENSIONS = {"claude_magic": "claude_magic", "jupyter-ai-magics": "jupyter_ai_magics"}


def time_load(extension: str, workdir: str) -> float:
    """Milliseconds ``%load_ext extension`` took in a fresh interpreter."""
    env = {**os.environ, "HOME": workdir, "IPYTHONDIR": os.path.join(workdir, ".ipython")}
    done = subprocess.run([sys.executable, "-c", _CHILD, extension], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"%load_ext {extension} failed: {done.stderr.strip()[-500:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    samples: dict[str, list[float]] = {name: [] for name in EXTENSIONS}
    with tempfile.TemporaryDirectory() as workdir:
        for module in EXTENSIONS.values():  # warm the OS file cache once each
            time_load(module, workdir)
        for _ in range(args.runs):
            for name, module in EXTENSIONS.items():
                samples[name].append(time_load(module, workdir))

    ours = statistics.median(samples["claude_magic"])
    theirs = statistics.median(samples["jupyter-ai-magics"])
    ratio = ours / theirs
    print(f"%load_ext in a fresh process, median of {args.runs} interleaved runs")
    print(f"{'extension':<20} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for name, values in samples.items():
        print(f"{name:<20} {statistics.median(values):>10.1f} {min(values):>8.1f} "
              f"{max(values):>8.1f}")
    checks = [
        (f"claude_magic / jupyter-ai-magics = {ratio:.3f} (target <= 0.100)", ratio <= 0.1),
        (f"claude_magic median = {ours:.1f} ms (target <= 50 ms)", ours <= 50),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

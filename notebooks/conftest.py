"""The environment the tutorial notebooks run in under ``pytest`` (nbval), and nowhere else.

The notebooks never choose a backend or a store themselves: ``backend = "auto"`` talks to the
Messages API when ``ANTHROPIC_API_KEY`` is set (else it answers offline), and the magics keep
sessions in ``$CLAUDE_MAGIC_STORAGE`` (else ``.claude_sessions/`` beside the notebook). For a
test run this file decides the environment, before each notebook's kernel starts (nbval starts
it while setting up the notebook's first cell, from ``os.environ`` at that moment):

- every ``ANTHROPIC_*`` and ``CLAUDE_*`` variable of the developer is removed, so a real key
  (or a real base URL, profile, auth token...) can never reach the network;
- ``ANTHROPIC_BASE_URL`` points at a :class:`FakeMessagesServer` on 127.0.0.1 and
  ``ANTHROPIC_API_KEY`` is a dummy key, so the notebooks exercise the real ``anthropic`` SDK
  over real HTTP; the server's answers say that no model was called;
- ``CLAUDE_BINARY`` is a :class:`FakeClaude` (the Claude Code CLI notebook), one per notebook;
- ``CLAUDE_MAGIC_STORAGE`` is a fresh temporary directory per notebook, so reruns never collide
  and nothing is written into the repository;
- ``HOME`` and ``IPYTHONDIR`` are temporary too (no profile config of the developer applies;
  a startup file makes a magic's ``UsageError`` fail its cell), so is ``TMPDIR`` (what a
  notebook puts in a temporary directory is removed with the run) and ``NO_PROXY`` covers
  127.0.0.1.

After each notebook that talks to Claude, the run checks that its turns really went to the fake
server (or the fake CLI) with the dummy key, and that some request carried earlier turns, so a
notebook silently answering offline, or reaching elsewhere, fails. The environment is restored
when the run leaves this directory.

``python notebooks/conftest.py [NOTEBOOK ...]`` executes notebooks in place in the same
environment, to refresh the outputs saved in them. Saved outputs show nothing of the machine
that ran them: the store is shown as ``.claude_sessions``, a temporary directory as
``/tmp/<prefix>XXXXXXXX`` and the fake server's port as ``PORT``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
_DROPPED_PREFIXES = ("ANTHROPIC_", "CLAUDE_")
# What a notebook does when it talks to Claude (the magics or the Python client).
_TALKS = ("%%claude", "%claude ", ".send()", ".stream()")


# IPython prints a UsageError (a magic's bad line or missing session) on stderr and nbval does
# not see it as a failure; in the test kernels it is also published as an error, so it fails
# the cell unless the cell is tagged raises-exception.
_STARTUP = """\
from IPython.core.error import UsageError


def _usage_error_fails_the_cell(shell, etype, value, tb, tb_offset=None):
    shell._showtraceback(etype, value, [f"UsageError: {value}"])


get_ipython().set_custom_exc((UsageError,), _usage_error_fails_the_cell)
"""


class NotebookEnvironment:
    """One fake server for the whole run; per notebook a fresh store and a fresh fake CLI."""

    def __init__(self, root: Path | None = None) -> None:
        from claude_magic.testing.fake_server import FakeMessagesServer

        self.root = root or Path(tempfile.mkdtemp(prefix="claude-magic-notebooks-"))
        self.owns_root = root is None
        self.key = f"sk-ant-notebook-tests-{secrets.token_hex(8)}"  # dummy: the server is fake
        self.server = FakeMessagesServer().start()
        self.saved: dict[str, str] | None = None
        self.notebook: Path | None = None
        self.fake_claude: Any = None
        self.requests_before = 0

    def enter(self, notebook: Path) -> None:
        """Set the environment for ``notebook``'s kernel (called before it starts)."""
        from claude_magic.testing.fake_claude import FakeClaude

        if self.saved is None:
            self.saved = dict(os.environ)
        for name in list(os.environ):
            if name.startswith(_DROPPED_PREFIXES):
                del os.environ[name]
        os.environ.pop("JPY_SESSION_NAME", None)
        work = self.root / notebook.stem
        if work.exists():
            shutil.rmtree(work)
        home = work / "home"
        (work / "tmp").mkdir(parents=True)
        startup = home / ".ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-usage-errors-fail.py").write_text(_STARTUP)
        self.fake_claude = FakeClaude(work / "fake-claude")
        os.environ.update({
            "ANTHROPIC_BASE_URL": self.server.url,
            "ANTHROPIC_API_KEY": self.key,
            "CLAUDE_BINARY": str(self.fake_claude.path),
            "CLAUDE_MAGIC_STORAGE": str(work / ".claude_sessions"),
            "HOME": str(home),
            "IPYTHONDIR": str(home / ".ipython"),
            "TMPDIR": str(work / "tmp"),
            "NO_PROXY": _no_proxy(self.saved.get("NO_PROXY")),
            "no_proxy": _no_proxy(self.saved.get("no_proxy")),
        })
        self.notebook = notebook
        self.requests_before = len(self.server.message_requests)

    def check(self) -> None:
        """After a notebook: if it talks to Claude, its turns reached the fakes with our key."""
        notebook, self.notebook = self.notebook, None
        if notebook is None or not talks_to_claude(notebook):
            return
        requests = self.server.message_requests[self.requests_before:]
        calls = self.fake_claude.calls if self.fake_claude is not None else []
        assert requests or calls, (
            f"{notebook.name} talks to Claude, but neither the fake Messages API server nor the "
            "fake claude CLI saw a request: did its turns run offline, or go elsewhere?")
        assert all(r.api_key == self.key for r in requests), (
            f"{notebook.name} sent a key other than the test run's dummy key")
        assert not requests or any(len(r.body["messages"]) > 1 for r in requests), (
            f"{notebook.name} never sent an earlier turn with a prompt: the context did not carry")

    def restore(self) -> None:
        """Put the environment back as it was before the first notebook."""
        if self.saved is not None:
            os.environ.clear()
            os.environ.update(self.saved)
            self.saved = None

    def close(self) -> None:
        self.restore()
        self.server.stop()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _no_proxy(existing: str | None) -> str:
    hosts = [h for h in (existing or "").split(",") if h.strip()]
    return ",".join(dict.fromkeys([*hosts, "127.0.0.1", "localhost"]))


def talks_to_claude(notebook: Path) -> bool:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return any(marker in cell.source for cell in nb.cells if cell.cell_type == "code"
               for marker in _TALKS)


def _notebook_of(item: pytest.Item) -> Path | None:
    path = Path(str(item.fspath)).resolve()
    if path.suffix != ".ipynb" or HERE not in path.parents:
        return None
    return path


_ENV_KEY = pytest.StashKey[NotebookEnvironment]()


def _env(config: pytest.Config) -> NotebookEnvironment:
    env = config.stash.get(_ENV_KEY, None)
    if env is None:
        env = config.stash[_ENV_KEY] = NotebookEnvironment()
    return env


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before nbval starts a notebook's kernel (while setting up its first cell)."""
    notebook = _notebook_of(item)
    if notebook is None:
        return
    env = _env(item.config)
    if env.notebook != notebook:
        env.enter(notebook)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a notebook's last cell (and its kernel's shutdown): check it, and restore the
    environment when the run leaves the notebooks."""
    result = yield
    notebook = _notebook_of(item)
    env = item.config.stash.get(_ENV_KEY, None)
    following = _notebook_of(nextitem) if nextitem is not None else None
    if notebook is not None and env is not None and following != notebook:
        try:
            env.check()
        finally:
            if following is None:
                env.restore()
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    env = session.config.stash.get(_ENV_KEY, None)
    if env is not None:
        env.close()
        del session.config.stash[_ENV_KEY]


# --- refreshing the saved outputs ---------------------------------------------------------


def execute_in_place(paths: list[Path], timeout: int = 120) -> None:
    """Run each notebook top to bottom in the test environment and save it with its outputs."""
    import nbformat
    from nbclient import NotebookClient

    env = NotebookEnvironment()
    try:
        for path in paths:
            path = path.resolve()
            env.enter(path)
            nb = nbformat.read(path, as_version=4)
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            env.check()
            _strip_volatile_metadata(nb)
            _hide_machine(nb, env.root / path.stem)
            nbformat.write(nb, path)
            print(f"executed {path.relative_to(HERE.parent)}")
            env.restore()
    finally:
        env.close()


def _hide_machine(nb: Any, work: Path) -> None:
    """Replace, in every saved output, what is particular to this run: the notebook's store
    and temporary directories (with their random suffix) and the fake server's port."""
    rules = [
        (re.compile(re.escape(str(work / ".claude_sessions"))), ".claude_sessions"),
        (re.compile(re.escape(str(work / "tmp")) + r"/([\w.-]*?)[a-z0-9_]{8}(?![\w.-])"),
         r"/tmp/\1XXXXXXXX"),
        (re.compile(re.escape(str(work))), "~"),
        (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    ]

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for pattern, replacement in rules:
                value = pattern.sub(replacement, value)
            return value
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        return value

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for key in ("text", "data", "evalue", "traceback"):
                if key in output:
                    output[key] = clean(output[key])


def _strip_volatile_metadata(nb: Any) -> None:
    """Drop execution timestamps, and save widgets (the session panel) in their text form:
    a widget needs its live kernel, and its saved state is large and changes every run."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)


if __name__ == "__main__":
    chosen = [Path(arg) for arg in sys.argv[1:]] or sorted(HERE.glob("[0-9][0-9]-*.ipynb"))
    execute_in_place(chosen)

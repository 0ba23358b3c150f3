"""The session panel in a real JupyterLab, driven by headless Chromium (Debian's ``chromium``).

A notebook written by the test loads the extension, fills a directory store and opens the
panel with ``%claude_session panel``. The test sees the rows, clicks *switch* and reads the
kernel's current session back from a cell's output, deletes a session through the
confirmation and checks the store's folder, watches a session created by a later cell appear
without a refresh, searches the transcripts and opens a hit at its turn, renames and branches
from the detail view, checks the table fits at 1,400 px and the empty state, replaces the panel
by a newer one and reloads the page, checks text contrast in the light and the dark theme, and
saves screenshots (``CLAUDE_MAGIC_SCREENSHOTS=dir`` keeps them there).
It fails (never skips) when JupyterLab or the browser cannot start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOKEN = "T"
START_TIMEOUT = 120.0  # seconds for JupyterLab to answer; CI machines can be slow
UI_TIMEOUT = 90_000  # ms for the page, the kernel and each widget update
SESSIONS = ["s-delta", "s-gamma", "s-beta", "s-alpha"]  # newest first

SETUP = """\
%load_ext claude_magic
%claude_session storage {store}
from datetime import timedelta
from claude_magic import Message, Session, Usage
from claude_magic.magics.extension import get_magics
from claude_magic.times import utc_now

manager = get_magics().manager
now = utc_now()
for i, (sid, project) in enumerate([("s-alpha", "web"), ("s-beta", "data"),
                                    ("s-gamma", "web"), ("s-delta", "ml")]):
    at = now - timedelta(hours=4 - i)
    messages = [Message("user", f"Question for {{sid}}", created_at=at),
                Message("assistant", f"Answer for **{{sid}}**", created_at=at,
                        model="claude-sonnet-4-5", usage=Usage(120 + i, 30 + i),
                        cost_usd=0.01 * (i + 1))]
    manager.import_session(Session(id=sid, system_prompt=f"You help with {{project}}.",
                                   metadata={{"project": project, "n": i}}, created_at=at,
                                   updated_at=at, messages=messages))
print("SETUP-DONE", manager.count())
"""
CELLS = [
    SETUP,
    "%claude_session panel",
    'print("CURRENT=" + str(get_magics().workspace.current))',
    'manager.create_session("s-late").with_metadata("project", "late").build()\n'
    'print("LATE-DONE")',
    "%claude_session panel",  # a newer panel replaces the first one
]

# WCAG contrast of an element's text against the first opaque background behind it.
CONTRAST_JS = """(el) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255];
  for (let n = el; n; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0)) { bg = c; break; }
  }
  const fg = rgb(getComputedStyle(el).color);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  return {ratio: (hi + 0.05) / (lo + 0.05), background: lum(bg)};
}"""


@dataclass
class Lab:
    url: str
    root: Path
    store: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _write_notebook(path: Path, store: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": source.format(store=store) if source is SETUP else source}
             for source in CELLS]
    path.write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                    "language": "python"}},
    }, indent=1))


def _write_settings(config_dir: Path) -> None:
    """No news or update checks (no network, no toast over the page)."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on a free port, with HOME and every Jupyter dir inside ``tmp_path``."""
    home, root = tmp_path / "home", tmp_path / "notebooks"
    root.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JUPYTER", "CLAUDE_MAGIC", "ANTHROPIC", "JPY_"))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               IPYTHONDIR=str(home / "ipython"), PYTHONUNBUFFERED="1")
    _write_settings(home / "config")
    store = root / "store"
    _write_notebook(root / "panel.ipynb", store)
    port, log = _free_port(), tmp_path / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
               "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_server(server, f"http://127.0.0.1:{port}/api/status?token={TOKEN}", log)
        yield Lab(f"http://127.0.0.1:{port}", root, store, log)
    finally:
        _stop(server)


def _wait_for_server(server: subprocess.Popen[bytes], status_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode} before answering; "
                        f"log:\n{_tail(log)}", pytrace=False)
        try:
            with urllib.request.urlopen(status_url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT:.0f} s; log:\n{_tail(log)}",
                pytrace=False)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server we started and its kernels (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.fixture
def browser_page(lab: Lab) -> Iterator[Any]:
    """A Chromium page; a browser that cannot start fails the test with the reason."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.fail(f"Python playwright is not installed ({exc}); pip install playwright",
                    pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium (apt-get install -y "
                    "chromium)", pytrace=False)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                 headless=True, timeout=UI_TIMEOUT)
        except Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            pytest.fail(f"Chromium ({CHROMIUM}) could not start: {first}", pytrace=False)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(UI_TIMEOUT)
        try:
            yield page
        finally:
            browser.close()


def _step(what: str, action: Any) -> Any:
    """Run one UI step; a timeout fails with what the test was waiting for."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        return action()
    except PlaywrightTimeout as exc:
        pytest.fail(f"timed out waiting for {what}: {str(exc).splitlines()[0]}", pytrace=False)


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _run_cell(page: Any, index: int, expect: str) -> str:
    """Run cell ``index`` with Shift+Enter and wait until its output contains ``expect``."""
    cell = _cell(page, index)
    _step(f"cell {index}'s editor", lambda: cell.locator(".jp-InputArea-editor").click())
    page.keyboard.press("Shift+Enter")
    output = cell.locator(".jp-OutputArea")
    _step(f"cell {index} to print {expect!r}",
          lambda: output.filter(has_text=expect).wait_for(state="visible"))
    return output.inner_text()


def _ids_shown(page: Any) -> list[str]:
    return page.locator(".cm-panel .cm-row .cm-c-id").all_inner_texts()


def _contrast(page: Any) -> dict[str, float]:
    return page.locator(".cm-panel .cm-row .cm-c-id").first.evaluate(CONTRAST_JS)


def _use_theme(page: Any, name: str) -> None:
    page.keyboard.press("Control+Shift+C")  # the command palette
    search = page.locator(".lm-CommandPalette-input")
    _step("the command palette", lambda: search.fill(f"Use Theme: {name}"))
    page.keyboard.press("Enter")
    light = "false" if "Dark" in name else "true"
    _step(f"the {name} theme (and its splash screen gone)", lambda: page.wait_for_function(
        f"document.body.dataset.jpThemeLight === '{light}' && "
        "!document.querySelector('#jupyterlab-splash')"))
    page.wait_for_timeout(500)  # the theme's CSS variables settle


def test_panel_in_jupyterlab(lab: Lab, browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    _step("JupyterLab to open the notebook",
          lambda: page.goto(f"{lab.url}/lab/tree/panel.ipynb?token={TOKEN}"))
    _step("the status bar to say '(ipykernel) | Idle'", lambda: page.wait_for_function(
        "(document.querySelector('#jp-main-statusbar') || {innerText: ''})"
        ".innerText.includes('(ipykernel) | Idle')"))
    setup = _run_cell(page, 0, "SETUP-DONE")
    assert "SETUP-DONE 4" in setup, setup

    # the panel renders one row per session, newest first, with metadata columns
    _run_cell(page, 1, "Claude sessions")
    rows = page.locator(".cm-panel .cm-row")
    _step("4 rows in the panel", lambda: page.wait_for_function(
        "document.querySelectorAll('.cm-panel .cm-row').length === 4"))
    assert _ids_shown(page) == SESSIONS
    header = page.locator(".cm-panel .cm-header").inner_text()
    assert "project" in header and "tokens in / out" in header, header
    assert "123 / 33" in rows.nth(0).inner_text()  # s-delta: i = 3
    shots = Path(os.environ.get("CLAUDE_MAGIC_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "panel-light.png"), full_page=True)

    # switch: the kernel's current session changes, and the row is marked
    switch = page.locator('.cm-panel .cm-switch[title="switch to s-beta"]')
    _step("s-beta's switch button", lambda: switch.click())
    _step("s-beta to be marked current", lambda: page.wait_for_function(
        "document.querySelector('.cm-panel .cm-switch[title=\"switch to s-beta\"]')"
        ".innerText.trim() === 'current'"))
    assert page.locator(".cm-panel .cm-row.cm-current .cm-c-id").inner_text() == "s-beta"
    current = _run_cell(page, 2, "CURRENT=")
    assert "CURRENT=s-beta" in current, current

    # delete through the confirmation; the session's file leaves the store
    assert (lab.store / "s-gamma.json").exists()
    _step("s-gamma's open button",
          lambda: page.locator('.cm-panel .cm-open[title="open s-gamma"]').click())
    transcript = page.locator(".cm-panel .cm-transcript")
    _step("the transcript of s-gamma",
          lambda: transcript.filter(has_text="Question for s-gamma").wait_for())
    assert "You help with web." in transcript.inner_text()
    _step("the delete button", lambda: page.locator(".cm-panel .cm-detail-delete").click())
    confirm = page.locator(".cm-panel .cm-confirm-delete")
    _step("the confirmation", lambda: confirm.wait_for(state="visible"))
    assert "Delete session s-gamma and its 2 messages?" in page.locator(
        ".cm-panel .cm-confirm").inner_text()
    assert (lab.store / "s-gamma.json").exists(), "deleted before the confirmation"
    page.screenshot(path=str(shots / "panel-confirm.png"), full_page=True)
    confirm.click()
    _step("s-gamma's row to go (3 rows left)", lambda: page.wait_for_function(
        "document.querySelectorAll('.cm-panel .cm-row').length === 3 && "
        "!document.querySelector('.cm-panel .cm-switch[title=\"switch to s-gamma\"]')"))
    deadline = time.monotonic() + 30
    while (lab.store / "s-gamma.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (lab.store / "s-gamma.json").exists(), "s-gamma is still in the store"
    assert not (lab.store / "s-gamma.messages.jsonl").exists()
    assert {p.name for p in lab.store.glob("*.json")} == {"s-alpha.json", "s-beta.json",
                                                          "s-delta.json"}
    assert _ids_shown(page) == ["s-delta", "s-beta", "s-alpha"]

    # a session created by a later cell appears without a refresh (manager listener)
    _run_cell(page, 3, "LATE-DONE")
    _step("s-late's row", lambda: page.wait_for_function(
        "[...document.querySelectorAll('.cm-panel .cm-row .cm-c-id')]"
        ".some((e) => e.innerText === 's-late')"))
    assert _ids_shown(page)[0] == "s-late"

    _search_rename_branch(page, lab, shots)
    _fits_and_empty_state(page)

    # readable in both themes: text contrast of the table cells (WCAG AA: 4.5)
    light = _contrast(page)
    assert light["ratio"] >= 4.5, f"light theme contrast {light}"
    _use_theme(page, "JupyterLab Dark")
    dark = _contrast(page)
    assert dark["background"] < 0.2, f"the dark theme did not apply: {dark}"
    assert dark["ratio"] >= 4.5, f"dark theme contrast {dark}"
    page.screenshot(path=str(shots / "panel-dark.png"), full_page=True)
    assert re.search(r"page 1 of 1 · 5 of 5 sessions",
                     page.locator(".cm-panel .cm-page").first.inner_text())
    _replaced_panel_survives_a_reload(page, shots)
    print(f"screenshots: {shots}/panel-light.png, panel-confirm.png, panel-search.png, "
          "panel-branch.png, panel-dark.png, panel-reloaded.png")


def _search_rename_branch(page: Any, lab: Lab, shots: Path) -> None:
    """Search, open a hit at its turn, rename the session, branch at its first answer."""
    box = page.locator(".cm-panel .cm-search input")
    _step("the search box", lambda: box.fill("Answer"))
    box.press("Enter")
    hit = page.locator(".cm-panel .cm-hit-row").filter(has_text="s-alpha")
    _step("a hit in s-alpha", lambda: hit.first.wait_for())
    assert "<mark>" not in hit.first.inner_text()  # the mark is rendered, not shown as text
    assert page.locator(".cm-panel .cm-hit-row mark").first.inner_text() == "Answer"
    hit.first.locator(".cm-hit-open").click()
    marked = page.locator(".cm-panel .cm-turn.cm-hit")
    _step("s-alpha opened at the hit's turn", lambda: marked.filter(
        has_text="Answer for s-alpha").wait_for())
    assert page.locator(".cm-panel .cm-row.cm-opened .cm-c-id").inner_text() == "s-alpha"
    page.screenshot(path=str(shots / "panel-search.png"), full_page=True)

    _step("the new-name box",
          lambda: page.locator(".cm-panel .cm-new-name input").fill("alpha-notes"))
    page.locator(".cm-panel .cm-rename").click()
    _step("the renamed row", lambda: page.wait_for_function(
        "[...document.querySelectorAll('.cm-panel .cm-row .cm-c-id')]"
        ".some((e) => e.innerText === 'alpha-notes')"))
    assert (lab.store / "alpha-notes.json").exists()
    assert not (lab.store / "s-alpha.json").exists()

    status = page.locator(".cm-panel .cm-status")
    _step("the rename's status line", lambda: status.filter(has_text="alpha-notes").wait_for())
    assert "Renamed session s-alpha to alpha-notes." in status.inner_text()
    # the detail view is rebuilt for the new name: click a button of the shown one
    branch_here = page.locator(".cm-panel .cm-branch-here:visible").first
    _step("the detail view's branch-here button", lambda: branch_here.wait_for())
    branch_here.click()
    _step("the branch to become current", lambda: page.wait_for_function(
        "(document.querySelector('.cm-panel .cm-row.cm-current .cm-c-id') || {})"
        ".innerText === 'alpha-notes-branch'"))
    _step("the branch's status line", lambda: page.locator(".cm-panel .cm-status").filter(
        has_text="Branched session alpha-notes at turn 1 into alpha-notes-branch").wait_for())
    assert (lab.store / "alpha-notes-branch.json").exists()
    page.screenshot(path=str(shots / "panel-branch.png"), full_page=True)


def _fits_and_empty_state(page: Any) -> None:
    """At 1,400 px the table stays inside the output (it scrolls); no match keeps the header."""
    bounds = page.locator(".cm-panel .cm-table").evaluate(
        "(t) => { const o = t.closest('.jp-OutputArea-output').getBoundingClientRect();"
        " const r = t.getBoundingClientRect();"
        " return {right: r.right, outer: o.right, scroll: t.scrollWidth, client: t.clientWidth,"
        " overflow: getComputedStyle(t).overflowX}; }")
    assert bounds["right"] <= bounds["outer"] + 1, f"the table is cut off: {bounds}"
    # wider than the output (metadata columns): it scrolls sideways (headless hides the bar)
    assert bounds["scroll"] > bounds["client"] and bounds["overflow"] == "auto", bounds
    header = page.locator(".cm-panel .cm-header")
    before = header.bounding_box()
    page.locator(".cm-panel .cm-filter input").fill("no-such-session")
    page.locator(".cm-panel .cm-filter input").press("Enter")
    empty = page.locator(".cm-panel .cm-empty").filter(has_text="No sessions match")
    _step("the empty state", lambda: empty.wait_for(state="visible"))
    after = header.bounding_box()
    assert abs(after["x"] - before["x"]) < 1, (before, after)  # the header did not shift
    assert page.locator(".cm-panel .cm-status").inner_text().strip() == ""  # old line gone
    page.locator(".cm-panel .cm-filter input").fill("")
    page.locator(".cm-panel .cm-filter input").press("Enter")
    _step("the rows back", lambda: empty.wait_for(state="hidden"))
    page.evaluate("document.activeElement && document.activeElement.blur()")  # keys to the app


def _replaced_panel_survives_a_reload(page: Any, shots: Path) -> None:
    """A newer panel replaces the first; after saving and reloading, the old output shows a
    line, not "Error displaying widget: model not found"."""
    _run_cell(page, 4, "Claude sessions")
    _step("the old panel's note", lambda: page.locator(".cm-closed").wait_for())
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    page.reload()
    _step("the status bar after the reload", lambda: page.wait_for_function(
        "(document.querySelector('#jp-main-statusbar') || {innerText: ''})"
        ".innerText.includes('(ipykernel) | Idle')"))
    _step("both outputs rendered again", lambda: page.locator(".cm-closed").wait_for())
    _step("the new panel rendered again", lambda: page.locator(".cm-panel .cm-row").first
          .wait_for())
    page.wait_for_timeout(1000)
    text = page.locator(".jp-Notebook").inner_text()
    assert "model not found" not in text, text[-2000:]
    page.screenshot(path=str(shots / "panel-reloaded.png"), full_page=True)

"""A real IPython shell for testing notebooks' magics without a kernel.

``TestingShell.fresh()`` gives an ``InteractiveShell`` whose ``run_cell`` raises the cell's
error (instead of printing it), with history disabled and every ``display()`` recorded in
``shell.displayed``: what a notebook user would see, checkable in a test.
``TestingShell.discard()`` closes it (as a kernel does when it exits), so a test run leaves no
shell behind for the interpreter's exit to clean up.
"""

from __future__ import annotations

import atexit
import shutil
from typing import Any

# Imported before any shell exists: this module binds ``__main__`` when first imported, and
# would otherwise keep the first shell's namespace module (and so that shell) alive forever.
import IPython.core.completer  # noqa: F401
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


class TestingShell(InteractiveShell):
    """An InteractiveShell whose ``run_cell`` raises the cell's error."""

    __test__ = False  # not a pytest test class

    def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(raw_cell, *args, **kwargs)
        error = result.error_before_exec or result.error_in_exec
        if error is not None:
            raise error
        return result

    @property
    def displayed(self) -> list[dict[str, Any]]:
        """Everything published with ``display()``: data, metadata, transient, update."""
        return self.display_pub.outputs

    def close(self) -> None:
        """Forget IPython's exit hook for this shell, and clean up what it would have.

        IPython registers every shell's ``atexit_operations`` with :mod:`atexit`, which keeps
        each shell (and everything its namespace holds) alive until the interpreter exits, and
        then resets them one by one, each with a full garbage collection: tens of seconds after
        a test run's summary. The shell stays usable (a fixture may still unload an extension).
        """
        atexit.unregister(self.atexit_operations)
        for magics in self.magics_manager.registry.values():
            stop = getattr(magics, "kill_bg_processes", None)  # %%script --bg registers it too
            if stop is not None:
                atexit.unregister(stop)
                stop()
        for path in self.tempfiles:
            path.unlink(missing_ok=True)
        for folder in self.tempdirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.tempfiles.clear()
        self.tempdirs.clear()
        self.restore_sys_module_state()

    @classmethod
    def fresh(cls, config: Config | None = None) -> TestingShell:
        """A new shell (the previous one is closed), as after a kernel restart."""
        cls.discard()
        cfg = config or Config()
        cfg.HistoryManager.enabled = False
        shell = cls.instance(config=cfg)
        shell.display_pub = CapturingDisplayPublisher()
        return shell

    @classmethod
    def discard(cls) -> None:
        """Close the current shell, if any, so the next test starts clean."""
        current = InteractiveShell._instance
        if isinstance(current, TestingShell):
            current.close()
        cls.clear_instance()
        InteractiveShell.clear_instance()

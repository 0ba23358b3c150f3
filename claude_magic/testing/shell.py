"""A real IPython shell for testing notebooks' magics without a kernel.

``TestingShell.fresh()`` gives an ``InteractiveShell`` whose ``run_cell`` raises the cell's
error (instead of printing it), with history disabled and every ``display()`` recorded in
``shell.displayed``: what a notebook user would see, checkable in a test.
"""

from __future__ import annotations

from typing import Any

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

    @classmethod
    def fresh(cls, config: Config | None = None) -> TestingShell:
        """A new shell (the previous singleton is dropped), as after a kernel restart."""
        cls.clear_instance()
        InteractiveShell.clear_instance()
        cfg = config or Config()
        cfg.HistoryManager.enabled = False
        shell = cls.instance(config=cfg)
        shell.display_pub = CapturingDisplayPublisher()
        return shell

    @classmethod
    def discard(cls) -> None:
        """Drop the singleton so the next test starts clean."""
        cls.clear_instance()
        InteractiveShell.clear_instance()

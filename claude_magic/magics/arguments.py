"""Argument parsing for the magics: argparse that raises ``UsageError``, KEY=VALUE pairs,
and did-you-mean suggestions."""

from __future__ import annotations

import argparse
import difflib
import json
import shlex
from collections.abc import Iterable
from typing import Any, NoReturn

from IPython.core.error import UsageError


class HelpShown(Exception):
    """``--help`` was printed; the command should stop quietly."""


class MagicArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one-line ``UsageError``s, never ``SystemExit``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", True)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, exit_on_error=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(f"{self.prog}: {message or 'invalid arguments'}")
        raise HelpShown

    def parse(self, line: str | list[str]) -> argparse.Namespace:
        """Parse a magic's line (shell-like quoting) or a ready list of words."""
        words = split_line(line) if isinstance(line, str) else line
        try:
            return self.parse_args(words)
        except argparse.ArgumentError as exc:
            self.error(str(exc))


def split_line(line: str) -> list[str]:
    """Split a magic's line like a shell would, with a clear error on unbalanced quotes."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments ({exc}); check the quotes") from None


def parse_value(text: str) -> Any:
    """A metadata value: JSON when it reads as JSON (``3``, ``true``, ``["a"]``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: Iterable[str], what: str = "--meta") -> dict[str, Any]:
    """``["project=web-api", "level=3"]`` to ``{"project": "web-api", "level": 3}``."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} expects KEY=VALUE, got {pair!r}")
        result[key.strip()] = parse_value(value)
    return result


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else ``""``."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {str(matches[0])!r}?)" if matches else ""

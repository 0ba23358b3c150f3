"""Argument parsing for the magics: argparse that raises ``MagicUsageError``, KEY=VALUE pairs,
and did-you-mean suggestions."""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from ..errors import MagicUsageError


class HelpShown(Exception):
    """``--help`` was printed; the command should stop quietly."""


class MagicArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` raising one-line ``MagicUsageError``s, never ``SystemExit``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", True)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, exit_on_error=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise MagicUsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise MagicUsageError(f"{self.prog}: {message or 'invalid arguments'}")
        raise HelpShown

    def parse(self, line: str | list[str]) -> argparse.Namespace:
        """Parse a magic's line (shell-like quoting) or a ready list of words."""
        words = split_line(line) if isinstance(line, str) else line
        try:
            return self.parse_args(words)
        except argparse.ArgumentError as exc:
            self.error(str(exc))


_VARIABLE = re.compile(r"\$([A-Za-z_]\w*)")


def split_line(line: str, namespace: Mapping[str, Any] | None = None) -> list[str]:
    """Split a magic's line like a shell would, with a clear error on unbalanced quotes.

    With a ``namespace``, ``$name`` inside a word is replaced by ``str(value)`` when ``name``
    exists there (after splitting, so a value with spaces stays one word).
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise MagicUsageError(f"cannot read the arguments ({exc}); check the quotes") from None
    if namespace is None:
        return words

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(namespace[name]) if name in namespace else match.group(0)

    return [_VARIABLE.sub(expand, word) for word in words]


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
            raise MagicUsageError(f"{what} expects KEY=VALUE, got {pair!r}")
        result[key.strip()] = parse_value(value)
    return result


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else ``""``."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {str(matches[0])!r}?)" if matches else ""

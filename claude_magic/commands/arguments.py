"""Argument parsing for both front ends: argparse that raises one-line errors instead of
exiting, KEY=VALUE pairs, and did-you-mean suggestions."""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from ..checks import is_utf8
from ..errors import MagicUsageError


class HelpShown(Exception):
    """``--help`` was printed; the command should stop quietly."""


class ArgumentsError(MagicUsageError):
    """The words of a command do not parse (argparse's usage error; the terminal exits 2)."""


class MagicArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` raising one-line :class:`ArgumentsError`s, never ``SystemExit``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_help", True)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, exit_on_error=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ArgumentsError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise ArgumentsError(f"{self.prog}: {message or 'invalid arguments'}")
        raise HelpShown

    def parse(self, line: str | list[str]) -> argparse.Namespace:
        """Parse a magic's line (shell-like quoting) or a ready list of words; every value
        must be text UTF-8 can store."""
        words = split_line(line) if isinstance(line, str) else line
        try:
            args = self.parse_args(words)
        except argparse.ArgumentError as exc:
            self.error(str(exc))
        for dest, value in vars(args).items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    require_utf8(item, self._option_name(dest))
        return args

    def _option_name(self, dest: str) -> str:
        """``--system`` for the ``system`` value (``ID`` for a positional ``id``)."""
        for action in self._actions:
            if action.dest == dest:
                return action.option_strings[-1] if action.option_strings else dest.upper()
        return dest


def require_utf8(text: str, what: str) -> str:
    """``text`` unchanged when UTF-8 can store it, else a one-line error naming ``what``."""
    if is_utf8(text):
        return text
    position, char = next((i, c) for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF)
    raise MagicUsageError(
        f"{what} holds text UTF-8 cannot store (a lone surrogate {char!r} at position "
        f"{position}); nothing was created or sent: decode the text properly first, e.g. "
        "with errors='replace'")


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
        if name not in namespace:
            return match.group(0)
        return require_utf8(text_of(namespace[name], f"${name}"), f"${name}")

    return [_VARIABLE.sub(expand, word) for word in words]


def text_of(value: Any, what: str) -> str:
    """``str(value)``; a ``__str__`` that fails is a one-line error naming ``what``."""
    try:
        return str(value)
    except Exception as exc:
        raise MagicUsageError(f"cannot turn {what} into text: {type(exc).__name__}: "
                              f"{exc}") from None


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


#: the largest answer a turn may ask for; no model answers more than this
MAX_TOKENS_LIMIT = 1_000_000


def shown_value(value: object) -> str:
    """A short ``repr`` for an error line (a huge int by its number of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_max_tokens(value: object, what: str = "max_tokens") -> int:
    """A positive ``int`` (not ``bool``) up to :data:`MAX_TOKENS_LIMIT`, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MagicUsageError(f"{what} must be a whole number of tokens, "
                              f"got {shown_value(value)}")
    if not 0 < value <= MAX_TOKENS_LIMIT:
        raise MagicUsageError(f"{what} must be from 1 to {MAX_TOKENS_LIMIT:,}, "
                              f"got {shown_value(value)}")
    return value


def check_model(value: object, what: str = "model") -> str:
    """A non-empty model name, else a one-line error."""
    if not isinstance(value, str) or not value.strip():
        raise MagicUsageError(f"{what} must be a non-empty model name, "
                              f"got {shown_value(value)}")
    return value.strip()

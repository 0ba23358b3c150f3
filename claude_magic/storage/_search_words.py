"""Words as the directory store's search index keeps them, and a query's plan over them.

The index must find exactly what :class:`claude_magic.search.Matcher` finds: its patterns are
``\\w+`` words matched case-insensitively (``re.IGNORECASE``) on word boundaries. A text's
words are ``\\w+`` runs, each kept under a key: its ``casefold()`` after the two Turkish
``i`` letters become ``i``. For every word whose key has as many characters as the word (all
of them but a few such as ``ß`` or ``ﬁ``), the regex matches the word exactly when the keys
are equal, and a prefix pattern when the key starts with the prefix's key (checked over every
Unicode word character). The others are *loose*: their key may claim a match the regex would
not make, so a message holding one is checked with the Matcher itself.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ..search import Matcher

_WORD = re.compile(r"\w+")
_TURKISH_I = {0x130: "i", 0x131: "i"}


def key_of(word: str) -> str:
    """The index key of a ``\\w+`` word (or of a query's casefolded word)."""
    return word.lower() if word.isascii() else word.translate(_TURKISH_I).casefold()


def word_counts(text: str) -> dict[str, tuple[int, bool]]:
    """Each key's (number of words with that key, whether any of them is loose)."""
    if text.isascii():
        return {key: (count, False) for key, count in Counter(_WORD.findall(text.lower())).items()}
    counts: dict[str, tuple[int, bool]] = {}
    for word in _WORD.findall(text):
        key = key_of(word)
        count, loose = counts.get(key, (0, False))
        counts[key] = (count + 1, loose or len(key) != len(word))
    return counts


@dataclass(frozen=True, slots=True)
class Part:
    """One word a hit must hold: ``key`` itself, or any key starting with it (``prefix``).
    ``counted``: the term is this one word, so its number of matches is the key count."""

    key: str
    prefix: bool
    counted: bool

    def bounds(self) -> tuple[str, str]:
        """The range of keys a prefix covers: ``key <= k < upper``."""
        return self.key, self.key[:-1] + chr(ord(self.key[-1]) + 1)


def plan(matcher: Matcher) -> list[Part] | None:
    """The words a hit must hold, or None when the index cannot tell (a query word whose
    casefold is not one word: every text is then checked with the Matcher)."""
    parts = []
    for term in matcher.terms:
        last = len(term.words) - 1
        for i, word in enumerate(term.words):
            key = key_of(word)
            if not key or _WORD.fullmatch(key) is None or len(key) != len(word):
                return None
            parts.append(Part(key, term.prefix and i == last, last == 0))
    return parts

"""Full-text search over sessions: the query language, hits, and the scan the memory and
directory stores use (SQLite and PostgreSQL search with their own indexes).

A query is words (all must appear), ``"quoted phrases"`` and prefixes (``auth*``), matched
case-insensitively on word boundaries, over prompts, answers (the text of their text
blocks), system prompts and metadata values. A hit's snippet marks each match as
``«match»`` with about 60 characters of context on each side.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ClaudeMagicError

OPEN, CLOSE = "«", "»"
_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")
CONTEXT = 60


class BadQuery(ClaudeMagicError, ValueError):
    """A search text with nothing to search for."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One place a search matched: a message (``seq``), or a session's system prompt
    (``role`` ``system``) or metadata value (``role`` ``metadata``), where ``seq`` is None.
    ``snippet`` marks the matches as ``«match»``; a higher ``score`` is a better hit."""

    session_id: str
    seq: int | None
    role: str
    snippet: str
    score: float


@dataclass(frozen=True, slots=True)
class Term:
    """One part of a query: ``words`` in a row (one word, or a phrase); ``prefix`` when the
    last word may continue (``auth*``)."""

    words: tuple[str, ...]
    prefix: bool = False


def parse_query(text: str) -> list[Term]:
    """The terms of a search text; :class:`BadQuery` when it holds no word."""
    if not isinstance(text, str):
        raise TypeError(f"search text must be a str, got {type(text).__name__}")
    terms = []
    for phrase, bare in _TOKEN.findall(text):
        raw = phrase if phrase else bare
        prefix = not phrase and raw.endswith("*")
        words = tuple(w.casefold() for w in _WORD.findall(raw))
        if words:
            terms.append(Term(words, prefix))
    if not terms:
        raise BadQuery(f"search text {text[:60]!r} holds no word to search for; "
                       'give words, "a phrase" or a prefix such as auth*')
    return terms


def _pattern(term: Term) -> str:
    body = r"\W+".join(re.escape(w) for w in term.words)
    return rf"(?<!\w){body}" + (r"\w*" if term.prefix else r"(?!\w)")


@dataclass
class Matcher:
    """Compiled terms: which texts match all of them, how well, and their snippets."""

    terms: list[Term]

    def __post_init__(self) -> None:
        self._each = [re.compile(_pattern(t), re.IGNORECASE) for t in self.terms]
        self._any = re.compile("|".join(_pattern(t) for t in self.terms), re.IGNORECASE)

    def score(self, text: str) -> float:
        """0 when some term is missing; else more matches in a shorter text score higher."""
        total = 0
        for pattern in self._each:
            found = len(pattern.findall(text))
            if not found:
                return 0.0
            total += found
        return total / norm_of(text)

    def snippet(self, text: str) -> str:
        """The text around the first match, every match in it marked ``«…»``."""
        first = self._any.search(text)
        start = max(0, first.start() - CONTEXT) if first else 0
        end = min(len(text), (first.end() if first else 0) + CONTEXT)
        cut = " ".join(text[start:end].split())
        marked = self._any.sub(lambda m: f"{OPEN}{m.group(0)}{CLOSE}", cut)
        return ("…" if start else "") + marked + ("…" if end < len(text) else "")

    def candidates(self, session_id: str, rows: Iterable[tuple[int, str, str]]
                   ) -> list[Candidate]:
        """Scored messages ``(seq, role, text)`` that match, snippets not made yet."""
        found = []
        for seq, role, text in rows:
            score = self.score(text) if text else 0.0
            if score:
                found.append((score, session_id, seq, role, text))
        return found

    def hit(self, session_id: str, seq: int | None, role: str, text: str) -> SearchHit | None:
        score = self.score(text) if text else 0.0
        return SearchHit(session_id, seq, role, self.snippet(text), score) if score else None


def norm_of(text: str) -> float:
    """What :meth:`Matcher.score` divides a text's match count by (the directory store's
    index stores it, so that its scores are the very floats the Matcher computes)."""
    return math.sqrt(1 + len(text) / 80)


def metadata_texts(metadata: Any) -> Iterable[str]:
    """Every string and number in a metadata value, with its key (``key: value``)."""
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if isinstance(value, (dict, list)):
                yield from metadata_texts(value)
            elif value is not None and not isinstance(value, bool):
                yield f"{key}: {value}"
    elif isinstance(metadata, list):
        for value in metadata:
            yield from metadata_texts(value)


def header_hits(matcher: Matcher, session_id: str, system_prompt: str | None,
                metadata: dict[str, Any]) -> list[SearchHit]:
    """Hits in a session's system prompt and metadata values."""
    hits = [matcher.hit(session_id, None, "system", system_prompt or "")]
    hits += [matcher.hit(session_id, None, "metadata", t) for t in metadata_texts(metadata)]
    return [h for h in hits if h is not None]


#: A message that matched, before its snippet is made: (score, session id, seq, role, text).
Candidate = tuple[float, str, "int | None", str, str]


def ranked(matcher: Matcher, candidates: list[Candidate], hits: Iterable[SearchHit],
           limit: int) -> list[SearchHit]:
    """The ``limit`` best of scored messages and ready hits, snippets made for those only."""
    top = sorted(candidates, key=lambda c: (-c[0], c[1], -1 if c[2] is None else c[2]))[:limit]
    made = [SearchHit(sid, seq, role, matcher.snippet(text), score)
            for score, sid, seq, role, text in top]
    return best([*made, *hits], limit)


def best(hits: Iterable[SearchHit], limit: int) -> list[SearchHit]:
    """The ``limit`` best hits, best first (ties: session id, then seq)."""
    return sorted(hits, key=lambda h: (-h.score, h.session_id, -1 if h.seq is None else h.seq)
                  )[:limit]


def check_limit(limit: Any) -> int:
    if type(limit) is not int or limit < 1:
        raise ValueError(f"search limit must be an int, 1 or more, got {limit!r}")
    return limit


def scan(sessions: Iterable[Any], matcher: Matcher, limit: int) -> list[SearchHit]:
    """Search loaded sessions one by one (the memory store)."""
    hits: list[SearchHit] = []
    candidates: list[Candidate] = []
    for session in sessions:
        sid = str(session.id)
        hits += header_hits(matcher, sid, session.system_prompt, session.metadata)
        candidates += matcher.candidates(sid, ((m.seq, m.role, m.text)
                                               for m in session.messages))
    return ranked(matcher, candidates, hits, limit)

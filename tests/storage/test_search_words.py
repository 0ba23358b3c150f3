"""The word keys of the directory store's search index against the regex the query language
uses, over every Unicode word character: equal keys mean a match unless the word is loose, and
a match means equal keys (so the index never misses what the Matcher finds)."""

from __future__ import annotations

import re
import sys

from claude_magic.storage._search_words import key_of, word_counts

WORD_CHARS = [chr(i) for i in range(sys.maxunicode + 1) if re.fullmatch(r"\w", chr(i))]


def _matches(query_char: str, text_char: str) -> bool:
    return re.fullmatch(re.escape(query_char), text_char, re.IGNORECASE) is not None


def test_equal_keys_mean_a_match_unless_loose() -> None:
    wrong = []
    for char in WORD_CHARS:
        key = key_of(char)
        loose = word_counts(char)[key][1]
        assert loose == (len(key) != 1)
        # the query chars whose key this is: the key itself, and the dotless i for i
        queries = [key, "ı"] if key == "i" else [key]
        if not loose:
            wrong += [(char, q) for q in queries if not _matches(q, char)]
    assert wrong == []


def test_a_match_means_equal_keys() -> None:
    wrong = []
    for char in WORD_CHARS:
        # query chars are casefold() output; try every case mapping of this char
        for query in {char.lower(), char.upper(), char.casefold(), char.title(), "i", "ı"}:
            if (len(query) == 1 and query.casefold() == query and _matches(query, char)
                    and key_of(char) != key_of(query)):
                wrong.append((char, query))
    assert wrong == []

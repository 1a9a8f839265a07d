"""Character grams for substring search: Chinese words of one or two characters have no
trigram, so titles are indexed by every character and every pair of characters.

The database keeps the index (a trigger on `tickets`, see migration c3a1f0e5d2b7); this module
is the SQLite half of it and the query side. PostgreSQL computes the same grams in SQL
(`slamon_grams`). A gram only narrows the candidates; the exact `LIKE` decides.
"""

from __future__ import annotations

import functools
import string

# SQLite's lower() and LIKE fold ASCII letters only; the grams fold exactly the same letters,
# so every ticket the LIKE matches carries every gram of the words.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# FTS5 tokens must be plain letters: a code point is written as six hex digits spelt a…p.
_HEX_AS_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def fold(text: str) -> str:
    """Lower-case ASCII letters only, as SQLite's lower() and LIKE do."""
    return text.translate(_ASCII_LOWER)


def text_grams(*parts: str | None) -> set[str]:
    """Every character and every pair of adjacent characters of each part, folded."""
    out: set[str] = set()
    for part in parts:
        if not part:
            continue
        folded = fold(part)
        out.update(folded)
        out.update(folded[i : i + 2] for i in range(len(folded) - 1))
    return out


def query_grams(words: str) -> set[str]:
    """The grams every text containing `words` has: its pairs, or its one character."""
    folded = fold(words)
    if len(folded) == 1:
        return {folded}
    return {folded[i : i + 2] for i in range(len(folded) - 1)}


def token(gram: str) -> str:
    """A gram as an FTS5 token of letters a–p."""
    return "".join(f"{ord(c):06x}" for c in gram).translate(_HEX_AS_LETTERS)


# Bounded: a ticket may carry any of a million code points.
_char_token = functools.lru_cache(maxsize=1 << 16)(token)


def fts_document(*parts: str | None) -> str:
    """What SQLite's trigger stores in the FTS5 index for a ticket. (Sorting the grams sorts
    their tokens: a token spells each character in six letters, in code point order.)"""
    tok = _char_token  # a gram is one character or two
    grams = text_grams(*parts)
    return " ".join(sorted([tok(g) if len(g) == 1 else tok(g[0]) + tok(g[1]) for g in grams]))


def fts_query(words: str) -> str:
    """An FTS5 query that finds every ticket holding all grams of `words`."""
    return " ".join(f'"{token(g)}"' for g in sorted(query_grams(words)))

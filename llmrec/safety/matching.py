"""Whole-word, case-insensitive matching of terms and regexes (with inflections and leetspeak)."""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "INFLECTIONS",
    "compile_pattern",
    "compile_term",
    "normalize",
    "variants",
]

# Suffixes a policy term also matches when inflections are on ("kill" -> "kills", "killing").
INFLECTIONS = r"(?:s|es|ed|d|ing)?"
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'"})


def normalize(text: str) -> str:
    """NFKC, lower case, straight quotes, collapsed whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return " ".join(text.split())


def variants(text: str) -> tuple[str, ...]:
    """The normalized text, plus its leetspeak-decoded form when that differs ("1d10t")."""
    base = normalize(text)
    # Decode only inside words that mix letters with digits/symbols, so "1488" or "18+" stay.
    decoded = re.sub(r"[\w@$]*[a-z][\w@$]*", lambda m: m.group(0).translate(_LEET), base)
    return (base,) if decoded == base else (base, decoded)


def _wrap(body: str) -> str:
    # Lookarounds instead of \b so terms that start or end with punctuation ("18+") still work.
    return rf"(?<![\w]){body}(?![\w])"


def compile_term(term: str, *, inflections: bool = True) -> re.Pattern[str]:
    """A literal term as a whole-word, case-insensitive regex.

    Spaces in the term match any run of spaces, hyphens or underscores; with ``inflections``
    the last word may take -s, -es, -ed, -d or -ing ("ass" matches "asses", never "class").
    """
    words = normalize(term).split()
    if not words:
        raise ValueError(f"empty term {term!r}")
    body = r"[\s\-_]+".join(re.escape(w) for w in words)
    if inflections and words[-1][-1:].isalpha():
        body += INFLECTIONS
    return re.compile(_wrap(body), re.IGNORECASE)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A user regex, case-insensitive, that must match whole words (no partial-word hits).

    Raises ``re.error`` for an invalid pattern.
    """
    return re.compile(_wrap(f"(?:{pattern})"), re.IGNORECASE)

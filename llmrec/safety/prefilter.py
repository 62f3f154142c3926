"""An exact pre-screen for many regexes over one text: skip the ones that cannot match.

Most lexicon patterns can only match where one of a few literal strings occurs ("idiot",
"you", "kill ..."). :func:`required_literals` reads that set off a compiled pattern (a match
must contain at least one of them; None when nothing is required), and :class:`LiteralScreen`
finds which of all the patterns' literals occur in a text (substring tests), so that
``Lexicon.analyze`` runs only the patterns that can match. The screen is a necessary
condition, never a guess: a pattern it skips has no match in that text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

__all__ = ["LiteralScreen", "required_literals"]

_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)}
# Characters that a case-insensitive ASCII letter matches although they are not its lower
# case (found by trying every code point): "ı" matches "i"; the others vanish under NFKC.
_FOLD_SPECIALS = frozenset("\u0131\u0130\u017f\u212a")


def _strength(options: frozenset[str]) -> int:
    return min(len(s) for s in options)


def _sequence(items: Sequence[tuple[object, object]]) -> frozenset[str] | None:
    """Literals one of which every match of the sequence ``items`` contains (or None)."""
    options: list[frozenset[str]] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 2:
            options.append(frozenset(["".join(run)]))
        run.clear()

    for op, av in items:
        if op is sre_c.LITERAL and chr(av).isascii():  # type: ignore[arg-type]
            # non-ASCII letters have case-insensitive equivalents beyond lower() ("ς" ~ "σ",
            # "µ" ~ "μ"): they break the run, so the screen stays exact
            run.append(chr(av).lower())  # type: ignore[arg-type]
            continue
        flush()
        found: frozenset[str] | None = None
        if op is sre_c.SUBPATTERN:
            found = _sequence(list(av[-1]))  # type: ignore[index]
        elif op is sre_c.BRANCH:
            branches = [_sequence(list(b)) for b in av[1]]  # type: ignore[index]
            if all(b is not None for b in branches):
                found = frozenset().union(*branches)  # type: ignore[arg-type]
        elif op in _REPEATS:
            low, _, sub = av  # type: ignore[misc]
            found = _sequence(list(sub)) if low >= 1 else None
        if found:
            options.append(found)
    flush()
    # every match contains a match of each item: any one item's literals will do; the most
    # selective are those whose shortest member is longest
    return max(options, key=_strength) if options else None


def required_literals(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Lower-case literals one of which every match of ``pattern`` contains (it must be
    case-insensitive or lower-case only, like the lexicon's), or None if none is required."""
    return _sequence(list(sre_parse.parse(pattern.pattern, pattern.flags)))


class LiteralScreen:
    """Which patterns may match a (lower-case, normalised) text, from one scan of it."""

    def __init__(self, patterns: Iterable[re.Pattern[str]]) -> None:
        self.required: dict[re.Pattern[str], frozenset[str] | None] = {
            p: required_literals(p) for p in patterns
        }
        self._strings = tuple(sorted({s for r in self.required.values() if r for s in r}))
        # id(list) -> (the list, union): the list is kept, so its id cannot be reused
        self._unions: dict[int, tuple[Sequence[re.Pattern[str]], frozenset[str] | None]] = {}

    def union(self, patterns: Sequence[re.Pattern[str]]) -> frozenset[str] | None:
        """The literals of all ``patterns`` (memoised per list): when none occurs, none of
        them can match; None when one of them requires nothing."""
        hit = self._unions.get(id(patterns))
        if hit is None or hit[0] is not patterns:
            sets = [self.required[p] for p in patterns]
            union = (None if any(r is None for r in sets)
                     else frozenset().union(*sets))  # type: ignore[arg-type]
            hit = self._unions[id(patterns)] = (patterns, union)
        return hit[1]

    def present(self, text: str) -> frozenset[str] | None:
        """The literals occurring in ``text``; None when the screen cannot tell (then every
        pattern must run)."""
        if not _FOLD_SPECIALS.isdisjoint(text):
            return None
        return frozenset([s for s in self._strings if s in text])

    def may_match(self, pattern: re.Pattern[str], present: frozenset[str] | None) -> bool:
        """False only when ``pattern`` certainly has no match in the screened text."""
        required = self.required.get(pattern)
        return required is None or present is None or not required.isdisjoint(present)

"""Grounding checks: an explanation may name only the cited history items (and the recommended
item) and only attribute values those items really have."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from llmrec.explain.attributes import ItemFacts

_TOKEN = re.compile(r"\w+|[^\w\s]")
_QUOTED = re.compile(r"[\"“”„«»]([^\"“”„«»\n]{1,150})[\"“”„«»]")
_YEAR = re.compile(r"(?<!\w)((?:1[5-9]|20)\d\d)(s|'s)?(?!\w)")
MAX_TITLE_TOKENS = 24
_STARTS = set(".!?:;|\"“”„«»()–—-")  # a capital after these starts a sentence or a title


def tokens(text: str) -> list[str]:
    """Words and single punctuation marks (titles and texts are matched on these)."""
    return _TOKEN.findall(text)


class PhraseIndex:
    """Finds known phrases in a text: leftmost-longest, non-overlapping, on token boundaries.

    ``lower``: match ignoring case. Otherwise one-word phrases match only in their own case
    ("Heat", not "heat") and longer ones in any case ("The Good, the Bad and the Ugly").
    """

    def __init__(self, phrases: Mapping[str, Iterable[int]], *, lower: bool = False,
                 min_chars: int = 3) -> None:
        self.lower = lower
        self._map: dict[tuple[str, ...], set[int]] = {}
        self._folded: dict[tuple[str, ...], set[int]] = {}  # multi-word phrases, lower case
        for phrase, owners in phrases.items():
            key = tuple(tokens(phrase.lower() if lower else phrase))
            words = sum(1 for t in key if t[0].isalnum() or t[0] == "_")
            if not key or len(key) > MAX_TITLE_TOKENS or (words <= 1 and len(phrase) < min_chars):
                continue
            self._map.setdefault(key, set()).update(owners)
            if not lower and words > 1:
                self._folded.setdefault(tuple(t.lower() for t in key), set()).update(owners)
        # first token -> the phrase lengths starting with it (only those are tried at a
        # position, longest first: a text is scanned in time linear in its tokens)
        lengths: dict[str, set[int]] = {}
        for k in (*self._map, *self._folded):
            lengths.setdefault(k[0], set()).add(len(k))
        self._lengths = lengths
        self._tried: dict[str, list[int]] = {}  # token -> lengths to try (memoised)

    def _owners(self, key: tuple[str, ...]) -> set[int] | None:
        if key in self._map:
            return self._map[key]
        return self._folded.get(tuple(t.lower() for t in key)) if self._folded else None

    def find(self, text: str) -> list[tuple[str, set[int], int, int]]:
        """(phrase as found, its owners, start, end character) of each match, in order."""
        spans = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        toks = [t.lower() if self.lower else t for t, _, _ in spans]
        out, i = [], 0
        while i < len(toks):
            tried = self._tried.get(toks[i])
            if tried is None:  # its own case, or lower-cased for multi-word phrases
                both = self._lengths.get(toks[i], set()) | self._lengths.get(toks[i].lower(),
                                                                             set())
                tried = self._tried[toks[i]] = sorted(both, reverse=True)
            for n in tried:
                if n > len(toks) - i:
                    continue
                owners = self._owners(tuple(toks[i:i + n]))
                if owners is not None:
                    start, end = spans[i][1], spans[i + n - 1][2]
                    out.append((text[start:end], owners, start, end))
                    i += n
                    break
            else:
                i += 1
        return out


def _norm(text: str) -> str:
    return " ".join(tokens(text.lower().strip(" .,;:!?'")))


def _bare(title: str) -> str:
    """Normalised, without a leading article ("The Naked Gun" == "Naked Gun")."""
    return re.sub(r"^(the|a|an) ", "", _norm(title))


@dataclass
class Grounding:
    """The verdict of :meth:`GroundingChecker.check`."""

    ok: bool
    reason: str = ""
    mentioned: list[str] = field(default_factory=list)  # external ids of named items


class GroundingChecker:
    """Checks texts against the catalog's titles and attribute values (built once)."""

    def __init__(self, facts: ItemFacts) -> None:
        self.facts = facts
        titles: dict[str, set[int]] = {}
        values: dict[str, set[int]] = {}
        for i in range(len(facts)):
            for t in {facts.raw_title(i), facts.title(i)}:
                titles.setdefault(t, set()).add(i)
            for v in facts.attributes(i).values():
                for x in (v if isinstance(v, list) else [v]):
                    if not x.isdigit() and not _YEAR.fullmatch(x):
                        values.setdefault(x, set()).add(i)
        self.titles = PhraseIndex(titles)
        self.values = PhraseIndex(values, lower=True)
        # per item, computed when first needed: its normalised values and bare titles
        self._values: dict[int, frozenset[str]] = {}
        self._bare: dict[int, frozenset[str]] = {}

    def allowed_values(self, items: Iterable[int]) -> set[str]:
        """Lower-cased attribute values (and years, decades) of ``items``."""
        out: set[str] = set()
        for i in items:
            if i not in self._values:
                self._values[i] = frozenset(
                    _norm(x) for v in self.facts.attributes(i).values()
                    for x in (v if isinstance(v, list) else [v]))
            out |= self._values[i]
        return out

    def bare_titles(self, items: Iterable[int]) -> set[str]:
        """The titles of ``items``, normalised and without a leading article."""
        out: set[str] = set()
        for i in items:
            if i not in self._bare:
                self._bare[i] = frozenset(
                    _bare(t) for t in (self.facts.title(i), self.facts.raw_title(i)))
            out |= self._bare[i]
        return out

    def check(self, text: str, allowed: Iterable[int], required: Iterable[int] = (), *,
              values: Iterable[str] | None = None, names: bool = False) -> Grounding:
        """Is ``text`` grounded? It may name only ``allowed`` items (catalog indices), must
        name one of ``required`` if any, may quote only their titles, may mention only the
        attribute values and years in ``values`` (default: those of the ``allowed`` items),
        and with ``names`` no other capitalised word inside a sentence (a person, a place, an
        invented title)."""
        allowed, required = set(allowed), set(required)
        if not text or not text.strip():
            return Grounding(False, "empty text")
        found = self.titles.find(text)
        mentioned = sorted({i for _, owners, _, _ in found for i in owners & allowed})
        ids = [self.facts.catalog.ids[i] for i in mentioned]
        for phrase, owners, _, _ in found:
            if not owners & allowed:
                return Grounding(False, f"names {phrase!r}, which is not in the evidence", ids)
        rest = _blank(text, found)  # titles blanked: their words are no values, years, names
        quotes = _QUOTED.findall(text)
        titles = self.bare_titles(allowed) if quotes else set()
        for quoted in quotes:
            if _bare(quoted) not in titles:
                return Grounding(False, f"quotes {quoted.strip()!r}, not an evidence title", ids)
        ok = self.allowed_values(allowed) if values is None else {_norm(v) for v in values}
        hits = self.values.find(rest)
        for phrase, _, _, _ in hits:
            if _norm(phrase) not in ok:
                return Grounding(False, f"mentions {phrase!r}, not an attribute of the evidence",
                                 ids)
        rest = _blank(rest, hits)
        for m in _YEAR.finditer(rest):
            if (f"{m[1][:3]}0s" if m[2] else m[1]) not in ok:
                return Grounding(False, f"mentions {m[0]!r}, a year not in the evidence", ids)
        if names:
            toks = tokens(rest)
            for i, t in enumerate(toks):
                if t[:1].isupper() and len(t) > 1 and i > 0 and toks[i - 1] not in _STARTS:
                    return Grounding(False, f"names {t!r}, which is not in the evidence", ids)
        if required and not required & set(mentioned):
            return Grounding(False, "names none of the cited history items", ids)
        return Grounding(True, "", ids)


def _blank(text: str, found: list[tuple[str, set[int], int, int]]) -> str:
    for _, _, start, end in reversed(found):
        text = text[:start] + " | " + text[end:]
    return text

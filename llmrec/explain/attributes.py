"""Per-item facts for explanations: display titles and comparable attributes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from llmrec.data.catalog import ItemCatalog
from llmrec.data.template import is_empty
from llmrec.explain.types import SharedAttribute

TITLE_FIELDS = ("title", "name")
PROSE = re.compile(r"title|name|desc|text|review|summary|abstract|plot|url|image", re.I)
_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<art>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El|Los|Las"
                      r"|Det|Den|O)$")
_TRAILING_PARENS = re.compile(r"\s*\([^()]*\)\s*$")
_YEAR = re.compile(r"^(1[5-9]|2[0-9])\d\d$")
MAX_SCALAR_CHARS = 60


def clean_title(title: str) -> str:
    """Readable title: drop a trailing alternate title in parentheses and move a trailing
    article to the front ("Usual Suspects, The" -> "The Usual Suspects")."""
    title = " ".join(str(title).split())
    stripped = _TRAILING_PARENS.sub("", title)
    if stripped:
        title = stripped
    m = _ARTICLE.match(title)
    if m:
        art = m["art"]
        title = f"{art}{m['rest']}" if art.endswith("'") else f"{art} {m['rest']}"
    return title


def _values(value: Any) -> list[str] | str | None:
    """A field value as a list of strings (list fields), one string, or None (empty)."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple | set):
        out = [str(v).strip() for v in value if not is_empty(v)]
        return out or None
    if is_empty(value):
        return None
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return text if len(text) <= MAX_SCALAR_CHARS else None


class ItemFacts:
    """Display titles and attribute values of every catalog item (columns read once)."""

    def __init__(self, catalog: ItemCatalog, fields: Sequence[str] | None = None) -> None:
        self.catalog = catalog
        columns = catalog.fields
        self.title_field = next((f for f in TITLE_FIELDS if f in columns), None)
        if fields is None:
            fields = [f for f in columns if f != self.title_field and not PROSE.search(f)]
        else:
            missing = sorted(set(fields) - set(columns))
            if missing:
                raise ValueError(f"attribute_fields: unknown field(s) {missing}; the catalog "
                                 f"has {columns}")
        self.fields = list(fields)
        self._columns = {f: catalog.table[f].tolist() for f in self.fields}
        self._titles = (catalog.table[self.title_field].tolist()
                        if self.title_field is not None else None)
        self._display: dict[int, str] = {}
        self._attrs: dict[int, dict[str, list[str] | str]] = {}

    def __len__(self) -> int:
        return len(self.catalog)

    def raw_title(self, index: int) -> str:
        """The catalog's title (or name); without one, the first sentence of the first text
        field (at most 60 characters), else the item id."""
        index = int(index)
        if self._titles is not None and not is_empty(self._titles[index]):
            return " ".join(str(self._titles[index]).split())
        for value in self.catalog.table.iloc[index]:
            if isinstance(value, str) and value.strip():
                first = re.split(r"(?<=[.!?])\s", " ".join(value.split()), maxsplit=1)[0]
                first = first.rstrip(".!?") or first
                return first if len(first) <= 60 else first[:60].rsplit(" ", 1)[0] + "..."
        return self.catalog.ids[index]

    def title(self, index: int) -> str:
        """The display title (see :func:`clean_title`), cached."""
        index = int(index)
        if index not in self._display:
            self._display[index] = clean_title(self.raw_title(index))
        return self._display[index]

    def attributes(self, index: int) -> dict[str, list[str] | str]:
        """Non-empty comparable fields of one item, plus ``decade`` from a year field (cached;
        do not modify)."""
        index = int(index)
        if index in self._attrs:
            return self._attrs[index]
        out: dict[str, list[str] | str] = {}
        for f in self.fields:
            v = _values(self._columns[f][index])
            if v is not None:
                out[f] = v
                if "year" in f.lower() and isinstance(v, str) and _YEAR.match(v):
                    out.setdefault("decade", f"{v[:3]}0s")
        self._attrs[index] = out
        return out

    def shared(self, index: int, cited: Sequence[int]) -> list[SharedAttribute]:
        """Attributes of item ``index`` that the ``cited`` items share (list fields: overlap,
        scalar fields: equality); fields in catalog order, values most shared first."""
        if not cited:
            return []
        mine = self.attributes(index)
        theirs = [self.attributes(c) for c in cited]
        out = []
        for f, v in mine.items():
            if isinstance(v, list):
                counts = Counter(x for t in theirs if isinstance(t.get(f), list) for x in
                                 set(t[f]))
                union = set(counts)
                common = [x for x in dict.fromkeys(v) if x in union]
                if common:
                    common.sort(key=lambda x: -counts[x])  # stable: item order breaks ties
                    sim = len(common) / len(set(v) | union)
                    out.append(SharedAttribute(f, common, round(sim, 4)))
            else:
                if f == "decade" and any("year" in a.field.lower() for a in out):
                    continue  # the same year already says it
                same = sum(1 for t in theirs if t.get(f) == v)
                if same:
                    out.append(SharedAttribute(f, [v], round(same / len(theirs), 4)))
        return out

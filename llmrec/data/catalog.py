"""The item catalog: external item id -> text fields, rendered to one text per item."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data.template import ItemTemplate


@dataclass
class ItemCatalog:
    """Items in a fixed order; the position of an item is its internal index.

    ``table`` has one row per item (index 0..n-1) and one column per text field (title,
    description, genres, year, any extra column). List-valued fields hold Python lists.
    """

    ids: list[str] = field(metadata={"help": "External item ids, position = internal index."})
    table: pd.DataFrame = field(metadata={"help": "One row per item, one column per field."})
    template: ItemTemplate = field(
        default_factory=ItemTemplate.builtin,
        metadata={"help": "Renders a row to the item's text (see prompts/)."},
    )

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.table):
            raise ValueError(
                f"ItemCatalog: {len(self.ids)} ids but {len(self.table)} table rows"
            )
        self.table = self.table.reset_index(drop=True)
        self._index = {item_id: i for i, item_id in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError("ItemCatalog: item ids must be unique")
        self._texts: list[str] | None = None
        self._some: dict[int, str] = {}  # single texts rendered before (or without) all

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    @property
    def fields(self) -> list[str]:
        """The text field names, in catalog order."""
        return list(self.table.columns)

    def index(self, item_id: str) -> int:
        """Internal index of an external id (KeyError naming the id if unknown)."""
        try:
            return self._index[str(item_id)]
        except KeyError:
            raise KeyError(f"unknown item id {item_id!r} (catalog has {len(self)} items)") from None

    def indices(self, item_ids: Iterable[str]) -> np.ndarray:
        """Internal indices of several external ids."""
        return np.fromiter((self.index(i) for i in item_ids), dtype=np.int64)

    def row(self, index: int) -> dict[str, Any]:
        """All fields of one item."""
        return self.table.iloc[int(index)].to_dict()

    def texts(self) -> list[str]:
        """Every item's rendered text (computed once, then cached)."""
        if self._texts is None:
            self._texts = self.template.render_all(self.table.to_dict("records"))
        return self._texts

    def text(self, index: int) -> str:
        """One item's rendered text (only that row is rendered if the others never were:
        showing 10 recommendations from a million-item catalog renders 10 texts)."""
        return self.texts_for([index])[0]

    def texts_for(self, indices: Iterable[int]) -> list[str]:
        """The rendered texts of ``indices``, in order; rows never rendered before are rendered
        together (one table lookup for all of them rather than one per row)."""
        idx = [int(i) for i in indices]
        if self._texts is not None:
            return [self._texts[i] for i in idx]
        n = len(self)
        bad = [i for i in idx if not -n <= i < n]
        if bad:
            raise IndexError(f"item index {bad[0]} out of range for {n} items")
        idx = [i % n for i in idx]
        missing = sorted({i for i in idx if i not in self._some})
        if missing:  # records keep each column's dtype (iloc[i].to_dict() makes ints floats)
            rows = self.table.iloc[missing].to_dict("records")
            self._some.update(zip(missing, self.template.render_all(rows), strict=True))
        return [self._some[i] for i in idx]

    def with_template(self, template: str | ItemTemplate | None) -> ItemCatalog:
        """The same items rendered through another template."""
        return ItemCatalog(list(self.ids), self.table.copy(), ItemTemplate.resolve(template))

    def subset(self, keep: Sequence[int] | np.ndarray) -> ItemCatalog:
        """The items at internal indices ``keep``, re-indexed in that order."""
        keep = np.asarray(keep, dtype=np.int64)
        return ItemCatalog(
            [self.ids[i] for i in keep], self.table.iloc[keep].copy(), self.template
        )

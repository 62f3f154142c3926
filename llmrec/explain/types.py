"""Typed explanation results."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CitedItem:
    """A history item an explanation cites."""

    item_id: str = field(metadata={"help": "External id of the history item."})
    title: str = field(metadata={"help": "Its display title (as the explanation names it)."})
    weight: float = field(
        metadata={"help": "Scoring-head attention weight on it for this recommendation "
                  "(0.0 when it is not among the strongest few)."}
    )
    drop: float | None = field(
        default=None,
        metadata={"help": "Score drop when it is removed from the history (occlusion "
                  "evidence only)."},
    )


@dataclass
class SharedAttribute:
    """An attribute the recommended item shares with the cited history items."""

    field: str = dataclasses.field(
        metadata={"help": "Catalog field (or 'decade', derived from a year)."})
    values: list[str] = dataclasses.field(
        metadata={"help": "The shared values, most shared first."})
    similarity: float = dataclasses.field(
        metadata={"help": "List fields: Jaccard of the item's values and the cited items' "
                  "values; scalar fields: fraction of cited items with the same value."}
    )


@dataclass
class Explanation:
    """Why one item was recommended, in words and in evidence."""

    text: str = field(metadata={"help": "The explanation shown to the user."})
    item_id: str = field(metadata={"help": "The recommended item."})
    evidence: list[CitedItem] = field(
        default_factory=list, metadata={"help": "Cited history items, strongest first."}
    )
    attributes: list[SharedAttribute] = field(
        default_factory=list, metadata={"help": "Attributes shared with the cited items."}
    )
    method: str = field(
        default="template",
        metadata={"help": "'template', 'llm', 'template (llm fallback: <reason>)' or "
                  "'neutral (safety: <reason>)'."},
    )
    safe: bool | None = field(
        default=None,
        metadata={"help": "True when the safety filter passed the text; None = no filter."},
    )
    evidence_source: str = field(
        default="attention",
        metadata={"help": "'attention', 'occlusion' or 'popularity' (empty history)."},
    )
    language: str = field(default="en", metadata={"help": "Language of the text."})

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Typed results of :class:`~llmrec.recommender.Recommender`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmrec.explain import Explanation


@dataclass
class Evidence:
    """A history item the scoring head attended to for a recommendation."""

    item_id: str = field(metadata={"help": "External id of the history item."})
    weight: float = field(metadata={"help": "Head attention weight (sums to 1 over history)."})
    text: str = field(default="", metadata={"help": "The history item's text."})


@dataclass
class Recommendation:
    """One recommended item."""

    item_id: str = field(metadata={"help": "External item id."})
    score: float = field(metadata={"help": "Model score (higher = better)."})
    text: str = field(metadata={"help": "The item's rendered text."})
    rank: int = field(metadata={"help": "1-based position in the list."})
    evidence: list[Evidence] = field(
        default_factory=list,
        metadata={"help": "History items with the most head attention, strongest first."},
    )
    explanation: Explanation | None = field(
        default=None, metadata={"help": "Grounded, safety-checked explanation (explain=True)."}
    )


@dataclass
class RemovedItem:
    """An item kept out of a list, and why."""

    item_id: str
    reason: str


@dataclass
class RecommendationList:
    """Recommendations for one user, with notes on how the request was handled."""

    items: list[Recommendation] = field(default_factory=list)
    notes: list[str] = field(
        default_factory=list,
        metadata={"help": "Fallbacks and adjustments (unknown ids, truncation, cold start)."},
    )
    removed: list[RemovedItem] = field(
        default_factory=list,
        metadata={"help": "Items that would have ranked in the list but were blocked."},
    )

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Recommendation:
        return self.items[i]

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.items]

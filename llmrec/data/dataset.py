"""The dataset object: an item catalog plus interactions, with per-user sequences."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from llmrec.data.catalog import ItemCatalog
from llmrec.data.errors import LoadReport

if TYPE_CHECKING:
    from llmrec.data.preprocess import PreprocessConfig
    from llmrec.data.split import Split, SplitConfig

INTERACTION_COLUMNS = ("user", "item", "timestamp", "rating", "event", "source_row")


@dataclass
class Interactions:
    """User-item events. ``frame`` columns: user, item (internal int64 indices), timestamp
    (float64 seconds since the epoch), rating (float64, NaN if absent), event (str or None),
    source_row (int64 position in the original file: the tie-break for equal timestamps)."""

    frame: pd.DataFrame = field(metadata={"help": "One row per event, in original file order."})
    user_ids: list[str] = field(metadata={"help": "External user ids, position = internal index."})

    def __post_init__(self) -> None:
        missing = [c for c in INTERACTION_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"Interactions.frame lacks columns {missing}")
        self._user_index = {u: i for i, u in enumerate(self.user_ids)}

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def user_index(self, user_id: str) -> int:
        """Internal index of an external user id."""
        try:
            return self._user_index[str(user_id)]
        except KeyError:
            raise KeyError(f"unknown user id {user_id!r} ({self.n_users} users)") from None

    def order(self) -> np.ndarray:
        """Row order by (user, timestamp, source_row): time-ordered sequences whose ties keep
        the original file order (never the item id), as RecBole's stable sort does."""
        f = self.frame
        return np.lexsort(
            (f["source_row"].to_numpy(), f["timestamp"].to_numpy(), f["user"].to_numpy())
        )

    def sequences(self) -> list[np.ndarray]:
        """Per internal user index, the item indices oldest first (empty if none)."""
        return self.timed_sequences()[0]

    def timed_sequences(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """:meth:`sequences` and, per user, the float64 timestamps of those events."""
        f = self.frame
        order = self.order()
        users = f["user"].to_numpy()[order]
        items = f["item"].to_numpy(dtype=np.int64)[order]
        times = f["timestamp"].to_numpy(dtype=np.float64)[order]
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        spans = [slice(bounds[u], bounds[u + 1]) for u in range(self.n_users)]
        return [items[s] for s in spans], [times[s] for s in spans]


@dataclass
class DatasetStats:
    """Headline statistics of a dataset."""

    n_users: int
    n_items: int
    n_interactions: int
    density: float
    items_with_interactions: int
    seq_len_mean: float
    seq_len_median: float
    seq_len_min: int
    seq_len_max: int
    tied_timestamp_fraction: float = field(
        metadata={"help": "Share of events with the same timestamp as another of that user's."}
    )
    first_event: str
    last_event: str
    rating_mean: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        rows = [f"| {k} | {_fmt(v)} |" for k, v in self.to_dict().items()]
        return "\n".join(["| statistic | value |", "|---|---|", *rows])


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class RecDataset:
    """An item catalog and the interactions on it, plus what loading dropped and why."""

    name: str = field(metadata={"help": "Dataset name or source path."})
    catalog: ItemCatalog = field(metadata={"help": "Items and their texts."})
    interactions: Interactions = field(metadata={"help": "User-item events."})
    report: LoadReport = field(
        default_factory=LoadReport, metadata={"help": "Drops and notes from loading."}
    )
    license: str | None = field(default=None, metadata={"help": "Terms of use of the data."})

    @property
    def n_users(self) -> int:
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        return len(self.catalog)

    def sequences(self) -> list[np.ndarray]:
        """Per user, item indices oldest first (see :meth:`Interactions.order`)."""
        return self.interactions.sequences()

    def timed_sequences(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """:meth:`sequences` plus each event's timestamp (float64 seconds)."""
        return self.interactions.timed_sequences()

    def stats(self) -> DatasetStats:
        f = self.interactions.frame
        lengths = np.bincount(f["user"].to_numpy(), minlength=self.n_users)
        n = len(f)
        tied = f.duplicated(["user", "timestamp"], keep=False).sum() if n else 0
        ratings = f["rating"].to_numpy(dtype=np.float64)
        has_rating = n > 0 and not np.isnan(ratings).all()
        return DatasetStats(
            n_users=self.n_users,
            n_items=self.n_items,
            n_interactions=n,
            density=n / max(1, self.n_users * self.n_items),
            items_with_interactions=int(f["item"].nunique()),
            seq_len_mean=float(lengths.mean()) if self.n_users else 0.0,
            seq_len_median=float(np.median(lengths)) if self.n_users else 0.0,
            seq_len_min=int(lengths.min()) if self.n_users else 0,
            seq_len_max=int(lengths.max()) if self.n_users else 0,
            tied_timestamp_fraction=float(tied) / max(1, n),
            first_event=_iso(f["timestamp"].min()) if n else "-",
            last_event=_iso(f["timestamp"].max()) if n else "-",
            rating_mean=float(np.nanmean(ratings)) if has_rating else None,
        )

    def preprocess(self, config: PreprocessConfig | None = None, **kwargs: object) -> RecDataset:
        """A new dataset after de-duplication, rating threshold, k-core and length limits."""
        from llmrec.data.preprocess import PreprocessConfig, preprocess

        return preprocess(self, config or PreprocessConfig(**kwargs))  # type: ignore[arg-type]

    def split(self, config: SplitConfig | None = None, **kwargs: object) -> Split:
        """Train / valid / test cases (leave-one-out by default)."""
        from llmrec.data.split import SplitConfig, split

        return split(self, config or SplitConfig(**kwargs))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"RecDataset({self.name!r}: {self.n_users:,} users, {self.n_items:,} items, "
            f"{len(self.interactions):,} interactions)"
        )

"""Preprocessing: duplicates, rating threshold, k-core filtering, sequence length.

Every removal is counted in the dataset's :class:`~llmrec.data.errors.LoadReport`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmrec.data.dataset import Interactions, RecDataset

REPEATS = ("keep", "first", "last")


@dataclass
class PreprocessConfig:
    """What :func:`preprocess` does, in this order."""

    drop_exact_duplicates: bool = field(
        default=True,
        metadata={"help": "Remove repeated (user, item, timestamp) rows, keeping the first."},
    )
    repeat_items: str = field(
        default="keep",
        metadata={"help": f"Same user, same item at other times: one of {REPEATS}."},
    )
    min_rating: float | None = field(
        default=None, metadata={"help": "Keep interactions with rating >= this (None: all)."}
    )
    user_k_core: int = field(
        default=0, metadata={"help": "Keep users with at least this many interactions."}
    )
    item_k_core: int = field(
        default=0,
        metadata={"help": "Keep items with at least this many interactions (iterated with "
                  "user_k_core until both hold); removed items leave the catalog."},
    )
    max_seq_len: int | None = field(
        default=None, metadata={"help": "Keep each user's most recent N interactions."}
    )

    def __post_init__(self) -> None:
        if self.repeat_items not in REPEATS:
            raise ValueError(f"repeat_items must be one of {REPEATS}, got {self.repeat_items!r}")
        for name in ("user_k_core", "item_k_core"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise ValueError(f"max_seq_len must be >= 1 or None, got {self.max_seq_len}")


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user", "timestamp", "source_row"], kind="stable")


def preprocess(dataset: RecDataset, config: PreprocessConfig) -> RecDataset:
    """A new dataset; ``dataset`` is left unchanged."""
    report = copy.deepcopy(dataset.report)
    f = _ordered(dataset.interactions.frame)
    drop = report.drop

    if config.drop_exact_duplicates:
        dup = f.duplicated(["user", "item", "timestamp"], keep="first")
        drop("preprocess", "exact duplicate (user, item, timestamp)", int(dup.sum()))
        f = f[~dup]
    if config.repeat_items != "keep":
        dup = f.duplicated(["user", "item"], keep=config.repeat_items)
        drop("preprocess", f"repeated (user, item), kept the {config.repeat_items}",
             int(dup.sum()))
        f = f[~dup]
    if config.min_rating is not None:
        low = ~(f["rating"] >= config.min_rating)  # NaN ratings fail the threshold too
        drop("preprocess", f"rating below {config.min_rating} (or missing)", int(low.sum()))
        f = f[~low]

    n_items = len(dataset.catalog)
    keep_items = np.ones(n_items, dtype=bool)
    while config.user_k_core or config.item_k_core:
        users = f["user"].value_counts()
        items = f["item"].value_counts()
        bad_users = users.index[users < config.user_k_core]
        bad_items = items.index[items < config.item_k_core]
        if len(bad_users) == 0 and len(bad_items) == 0:
            break
        mask = f["user"].isin(bad_users) | f["item"].isin(bad_items)
        drop("preprocess", f"k-core (users >= {config.user_k_core}, items >= "
             f"{config.item_k_core} interactions)", int(mask.sum()))
        f = f[~mask]
    if config.item_k_core:
        counts = np.bincount(f["item"].to_numpy(), minlength=n_items)
        keep_items = counts >= config.item_k_core
        drop("preprocess", f"fewer than {config.item_k_core} interactions (item k-core)",
             int((~keep_items).sum()), unit="items",
             examples=[dataset.catalog.ids[i] for i in np.flatnonzero(~keep_items)[:5]])

    if config.max_seq_len is not None:
        recent = f.groupby("user", sort=False).cumcount(ascending=False) < config.max_seq_len
        drop("preprocess", f"older than the user's {config.max_seq_len} most recent",
             int((~recent).sum()))
        f = f[recent]

    f = f.sort_values("source_row", kind="stable")
    catalog = dataset.catalog
    if not keep_items.all():
        remap = np.cumsum(keep_items) - 1
        catalog = catalog.subset(np.flatnonzero(keep_items))
        f = f.assign(item=remap[f["item"].to_numpy()])
    users_left = np.unique(f["user"].to_numpy())
    lost_users = dataset.n_users - len(users_left)
    drop("preprocess", "users with no interactions left", lost_users, unit="users")
    user_map = np.full(dataset.n_users, -1, dtype=np.int64)
    user_map[users_left] = np.arange(len(users_left))
    f = f.assign(user=user_map[f["user"].to_numpy()]).reset_index(drop=True)
    user_ids = [dataset.interactions.user_ids[u] for u in users_left]
    return RecDataset(dataset.name, catalog, Interactions(f, user_ids), report, dataset.license)

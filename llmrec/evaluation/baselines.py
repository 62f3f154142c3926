"""Reference scorers: exact-count popularity and seeded random."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PopularityScorer", "RandomScorer"]


class PopularityScorer:
    """Exact-count Pop: every item is scored by its number of interactions in training data.

    All occurrences count (repeat consumptions included); every user gets the same scores.
    """

    def __init__(self, train_sequences: list[np.ndarray], n_items: int) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        seqs = [np.asarray(s, dtype=np.int64).ravel() for s in train_sequences]
        flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= n_items):
            raise ValueError(f"training item indices must lie in [0, n_items={n_items})")
        self.n_items = n_items
        self._counts = np.bincount(flat, minlength=n_items).astype(np.float64)  # (n_items,)
        self._scores = torch.from_numpy(self._counts.copy())  # (n_items,)

    @property
    def popularity(self) -> np.ndarray:
        """(n_items,) float64 training interaction count of each item (a copy)."""
        return self._counts.copy()

    def __call__(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        """(B, n_items) counts, identical rows (a broadcast view: do not modify in place)."""
        return self._scores.expand(len(users), self.n_items)


class RandomScorer:
    """Uniform random scores, fixed per (seed, user): reproducible and batch-size invariant.

    Expected HR@K of a random ranking is ``K / n_items``: a sanity floor for any model.
    """

    def __init__(self, n_items: int, seed: int = 0) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        self.n_items, self.seed = n_items, seed

    def __call__(self, users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
        """(B, n_items) float64 scores in [0, 1)."""
        rows = [
            np.random.default_rng([self.seed, int(u)]).random(self.n_items)
            for u in np.asarray(users)
        ]
        out = np.stack(rows) if rows else np.zeros((0, self.n_items))
        return torch.from_numpy(out)

"""Evaluation cases: (history -> next item) pairs that every scorer is judged on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EvalCases:
    """A batch-able set of next-item prediction cases.

    Case ``i`` asks: given user ``users[i]`` with time-ordered ``histories[i]`` (internal item
    indices, oldest first), rank ``targets[i]`` among all ``n_items`` catalog items.
    """

    users: np.ndarray = field(metadata={"help": "(N,) int64 internal user index of each case."})
    histories: list[np.ndarray] = field(
        metadata={"help": "N int64 arrays of internal item indices, oldest first."}
    )
    targets: np.ndarray = field(metadata={"help": "(N,) int64 internal item index to predict."})
    n_items: int = field(metadata={"help": "Catalog size; items are 0..n_items-1."})
    is_cold: np.ndarray | None = field(
        default=None,
        metadata={"help": "(N,) bool, True where the target never occurs in training data."},
    )
    history_times: list[np.ndarray] | None = field(
        default=None,
        metadata={"help": "N float64 arrays: the timestamp (seconds) of each history event "
                          "(models that read time gaps need them)."},
    )

    def __post_init__(self) -> None:
        n = len(self.targets)
        if len(self.users) != n or len(self.histories) != n:
            raise ValueError(
                f"EvalCases: users ({len(self.users)}), histories ({len(self.histories)}) and "
                f"targets ({n}) must have the same length"
            )
        if self.is_cold is not None and len(self.is_cold) != n:
            raise ValueError(f"EvalCases: is_cold has {len(self.is_cold)} entries, expected {n}")
        if self.history_times is not None:
            if len(self.history_times) != n:
                raise ValueError(f"EvalCases: history_times has {len(self.history_times)} "
                                 f"entries, expected {n}")
            for i, (h, t) in enumerate(zip(self.histories, self.history_times, strict=True)):
                if len(h) != len(t):
                    raise ValueError(f"EvalCases: case {i} has {len(h)} history items but "
                                     f"{len(t)} history_times")
        if n and (self.targets.min() < 0 or self.targets.max() >= self.n_items):
            raise ValueError(f"EvalCases: targets must lie in [0, n_items={self.n_items})")

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, mask: np.ndarray) -> EvalCases:
        """The cases where boolean ``mask`` is True."""
        idx = np.flatnonzero(mask)
        return EvalCases(
            users=self.users[idx],
            histories=[self.histories[i] for i in idx],
            targets=self.targets[idx],
            n_items=self.n_items,
            is_cold=None if self.is_cold is None else self.is_cold[idx],
            history_times=None if self.history_times is None
            else [self.history_times[i] for i in idx],
        )

    def batches(self, batch_size: int) -> Iterator[EvalCases]:
        """Consecutive slices of at most ``batch_size`` cases."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            sl = slice(start, start + batch_size)
            yield EvalCases(
                users=self.users[sl],
                histories=self.histories[sl],
                targets=self.targets[sl],
                n_items=self.n_items,
                is_cold=None if self.is_cold is None else self.is_cold[sl],
                history_times=None if self.history_times is None else self.history_times[sl],
            )

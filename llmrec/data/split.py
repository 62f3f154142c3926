"""Train / valid / test splits for next-item prediction.

- ``leave_one_out``: per user, the last item is the test target, the second-to-last the
  valid target; training sees everything before the valid target.
- ``temporal``: one global time cut (by the global (timestamp, file row) order) into train,
  valid and test periods; a case's history is everything the user did before its target.
- ``cold_start``: leave-one-out, but a random fraction of items is never seen in training
  (removed from training sequences); cases whose target is such an item are flagged cold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmrec.data.cases import EvalCases
from llmrec.data.dataset import RecDataset

STRATEGIES = ("leave_one_out", "temporal", "cold_start")
TEMPORAL_TARGETS = ("first", "all")


@dataclass
class SplitConfig:
    """How to split a dataset."""

    strategy: str = field(default="leave_one_out", metadata={"help": f"One of {STRATEGIES}."})
    valid_fraction: float = field(
        default=0.1, metadata={"help": "temporal: share of events in the valid period."}
    )
    test_fraction: float = field(
        default=0.1, metadata={"help": "temporal: share of events in the test period."}
    )
    temporal_targets: str = field(
        default="first",
        metadata={"help": f"temporal: which events of a period are cases, {TEMPORAL_TARGETS}."},
    )
    cold_item_fraction: float = field(
        default=0.1,
        metadata={"help": "cold_start: share of the items with interactions held out of training."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for the cold item draw."})

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.temporal_targets not in TEMPORAL_TARGETS:
            raise ValueError(
                f"temporal_targets must be one of {TEMPORAL_TARGETS}, got {self.temporal_targets!r}"
            )
        for name in ("valid_fraction", "test_fraction", "cold_item_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("valid_fraction + test_fraction must be < 1")


@dataclass
class Split:
    """Training sequences plus valid and test cases."""

    train: list[np.ndarray] = field(
        metadata={"help": "Per user, the item indices training may use, oldest first."}
    )
    valid: EvalCases = field(metadata={"help": "Validation cases."})
    test: EvalCases = field(metadata={"help": "Test cases."})
    n_items: int = field(metadata={"help": "Catalog size."})
    config: SplitConfig = field(metadata={"help": "How the split was made."})
    cold_items: np.ndarray | None = field(
        default=None, metadata={"help": "cold_start: (n_items,) bool, held out of training."}
    )
    notes: list[str] = field(default_factory=list, metadata={"help": "What the split did."})
    train_times: list[np.ndarray] | None = field(
        default=None,
        metadata={"help": "Per user, the float64 timestamps of the ``train`` events (models "
                          "that read time gaps need them)."},
    )

    def __post_init__(self) -> None:
        if self.train_times is None:
            return
        if len(self.train_times) != len(self.train):
            raise ValueError(f"Split: train_times has {len(self.train_times)} sequences, "
                             f"train {len(self.train)}")
        for u, (s, t) in enumerate(zip(self.train, self.train_times, strict=True)):
            if len(s) != len(t):
                raise ValueError(f"Split: user {u} has {len(s)} training items but {len(t)} "
                                 "train_times")

    def item_counts(self) -> np.ndarray:
        """(n_items,) float64 number of training interactions of each item."""
        flat = np.concatenate(self.train) if self.train else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.n_items).astype(np.float64)


def _cases(users: list[int], hists: list[np.ndarray], targets: list[int],
           times: list[np.ndarray] | None, n_items: int,
           cold: np.ndarray | None = None) -> EvalCases:
    t = np.asarray(targets, dtype=np.int64)
    return EvalCases(
        users=np.asarray(users, dtype=np.int64),
        histories=hists,
        targets=t,
        n_items=n_items,
        is_cold=None if cold is None else cold[t],
        history_times=times,
    )


def leave_one_out(seqs: list[np.ndarray], n_items: int, config: SplitConfig,
                  cold: np.ndarray | None = None,
                  times: list[np.ndarray] | None = None) -> Split:
    """``times``: per user, the timestamp of each event of ``seqs`` (carried to the split's
    ``train_times`` and the cases' ``history_times``)."""
    train, train_times, short = [], [], 0
    v: tuple[list, list, list, list] = ([], [], [], [])
    t: tuple[list, list, list, list] = ([], [], [], [])
    for u, s in enumerate(seqs):
        ts = times[u] if times is not None else np.zeros(len(s))
        head, head_t = (s, ts) if len(s) < 3 else (s[:-2], ts[:-2])
        keep = slice(None) if cold is None else ~cold[head]
        train.append(head[keep])
        train_times.append(head_t[keep])
        if len(s) < 3:
            short += len(s) > 0
            continue
        for (us, hs, tg, ht), cut in ((v, -2), (t, -1)):
            us.append(u)
            hs.append(s[:cut])
            tg.append(int(s[cut]))
            ht.append(ts[:cut])
    timed = times is not None
    valid, test = (_cases(*c[:3], c[3] if timed else None, n_items, cold) for c in (v, t))
    split = Split(train, valid, test, n_items, config, cold,
                  train_times=train_times if timed else None)
    if short:
        split.notes.append(f"{short} users with fewer than 3 interactions: training only")
    return split


def temporal(dataset: RecDataset, config: SplitConfig) -> Split:
    f = dataset.interactions.frame
    order = np.lexsort((f["source_row"].to_numpy(), f["timestamp"].to_numpy()))
    rank = np.empty(len(f), dtype=np.int64)
    rank[order] = np.arange(len(f))
    n = len(f)
    valid_start = round(n * (1 - config.valid_fraction - config.test_fraction))
    test_start = round(n * (1 - config.test_fraction))
    period = np.where(rank >= test_start, 2, np.where(rank >= valid_start, 1, 0))
    user_order = dataset.interactions.order()
    users = f["user"].to_numpy()[user_order]
    items = f["item"].to_numpy(dtype=np.int64)[user_order]
    stamps = f["timestamp"].to_numpy(dtype=np.float64)[user_order]
    period = period[user_order]
    bounds = np.searchsorted(users, np.arange(dataset.n_users + 1))
    train, train_times = [], []
    buckets: dict[int, tuple[list, ...]] = {1: ([], [], [], []), 2: ([], [], [], [])}
    no_history = 0
    for u in range(dataset.n_users):
        span = slice(bounds[u], bounds[u + 1])
        s, p, ts = items[span], period[span], stamps[span]
        train.append(s[p == 0])
        train_times.append(ts[p == 0])
        for which in (1, 2):
            pos = np.flatnonzero(p == which)
            if config.temporal_targets == "first":
                pos = pos[:1]
            for i in pos:
                if i == 0:
                    no_history += 1
                    continue
                us, hs, tg, ht = buckets[which]
                us.append(u)
                hs.append(s[:i])
                tg.append(int(s[i]))
                ht.append(ts[:i])
    split = Split(train, _cases(*buckets[1], dataset.n_items), _cases(*buckets[2], dataset.n_items),
                  dataset.n_items, config, train_times=train_times)
    split.notes.append(f"time cut: valid from event rank {valid_start}, test from {test_start}")
    if no_history:
        split.notes.append(f"{no_history} targets without any earlier event (new users) skipped")
    return split


def split(dataset: RecDataset, config: SplitConfig) -> Split:
    """Split ``dataset`` as ``config`` says."""
    if config.strategy == "temporal":
        return temporal(dataset, config)
    seqs, times = dataset.timed_sequences()
    if config.strategy == "leave_one_out":
        return leave_one_out(seqs, dataset.n_items, config, times=times)
    seen = np.flatnonzero(np.bincount(dataset.interactions.frame["item"].to_numpy(),
                                      minlength=dataset.n_items))
    rng = np.random.default_rng(config.seed)
    n_cold = round(config.cold_item_fraction * len(seen))
    cold = np.zeros(dataset.n_items, dtype=bool)
    cold[rng.choice(seen, size=n_cold, replace=False)] = True
    result = leave_one_out(seqs, dataset.n_items, config, cold, times)
    result.notes.append(
        f"{n_cold} cold items held out of training; {int(result.test.is_cold.sum())} of "
        f"{len(result.test)} test targets are cold"
    )
    return result

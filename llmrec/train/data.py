"""Training windows: every position of every training sequence predicts its next item."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def training_windows(
    train: list[np.ndarray], max_len: int, stride: int | None = None,
    gaps: list[np.ndarray] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Cut each sequence into windows of at most ``max_len + 1`` items, from the end.

    Window ``w`` gives inputs ``w[:-1]`` and targets ``w[1:]``; every item after a user's
    first is a target exactly once per epoch. Consecutive windows start ``stride`` items
    apart (default ``max_len``: no overlap); with a smaller stride a window's targets are
    only its newest ``stride`` ones (all of them in a user's oldest window), so each target
    is predicted from at least ``max_len - stride`` earlier items when the user has them,
    closer to inference, where the model reads the full ``max_len``.
    ``gaps``: per sequence, each item's time-gap bucket (computed on the whole sequence,
    so a window's oldest item keeps its gap to the event before it), windowed like the
    inputs. Returns inputs and targets, both (W, max_len), left-padded with -1 / -100, and
    the inputs' gap buckets (W, max_len), left-padded with 0 (None without ``gaps``).
    """
    stride = max_len if stride is None else stride
    if not 1 <= stride <= max_len:
        raise ValueError(f"stride must be in [1, max_len={max_len}], got {stride}")
    if gaps is not None:
        if len(gaps) != len(train):
            raise ValueError(f"gaps has {len(gaps)} sequences, train {len(train)}: one bucket "
                             "per item of every training sequence")
        for u, (g, seq) in enumerate(zip(gaps, train, strict=True)):
            if len(g) != len(seq):
                raise ValueError(f"gaps[{u}] has {len(g)} buckets for {len(seq)} items: one "
                                 "bucket per item of every training sequence")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    gs: list[np.ndarray] = []
    for u, seq in enumerate(train):
        end = len(seq)
        while end > 1:
            start = max(0, end - max_len - 1)
            w = np.asarray(seq[start:end], dtype=np.int64)
            x = np.full(max_len, -1, dtype=np.int64)
            y = np.full(max_len, -100, dtype=np.int64)
            x[max_len - len(w) + 1 :] = w[:-1]
            y[max_len - len(w) + 1 :] = w[1:]
            if start > 0:  # older targets belong to the next (older) window
                y[: max_len - stride] = -100
            xs.append(x)
            ys.append(y)
            if gaps is not None:
                g = np.zeros(max_len, dtype=np.int64)
                g[max_len - len(w) + 1 :] = gaps[u][start : end - 1]
                gs.append(g)
            end = start + 1 if start == 0 else end - stride
    if not xs:
        raise ValueError("no training sequence has 2 or more items: nothing to learn from")
    gap_windows = torch.from_numpy(np.stack(gs)) if gaps is not None else None
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), gap_windows


class EpochShuffled(Dataset):
    """Windows in an order fixed by (seed, epoch): resumable without sampler state.

    ``tensors`` (inputs, targets and optionally the inputs' gap buckets) share their first
    dimension; an item is one row of each. (Not named ``set_epoch``: accelerate's loaders
    call that with their own iteration count, which restarts at 0 on resume.)"""

    def __init__(self, *tensors: torch.Tensor, seed: int) -> None:
        if len({len(t) for t in tensors}) != 1:
            raise ValueError("EpochShuffled: tensors must have the same number of rows")
        self.tensors, self.seed = tensors, seed
        self.order = torch.arange(len(tensors[0]))

    def shuffle_for(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        self.order = torch.randperm(len(self.tensors[0]), generator=g)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        j = self.order[i]
        return tuple(t[j] for t in self.tensors)


def trim_padding(seq: torch.Tensor, targets: torch.Tensor,
                 *aligned: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Drop leading columns that are padding in every row: (B, L) -> (B, L'), for ``seq``,
    ``targets`` and any ``aligned`` (B, L) tensors (e.g. gap buckets)."""
    used = (seq >= 0).any(0) | (targets >= 0).any(0)
    first = int(used.float().argmax()) if bool(used.any()) else seq.shape[1] - 1
    return tuple(t[:, first:] for t in (seq, targets, *aligned))

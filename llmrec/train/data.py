"""Training windows: every position of every training sequence predicts its next item."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def training_windows(train: list[np.ndarray], max_len: int,
                     stride: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sequence into windows of at most ``max_len + 1`` items, from the end.

    Window ``w`` gives inputs ``w[:-1]`` and targets ``w[1:]``; every item after a user's
    first is a target exactly once per epoch. Consecutive windows start ``stride`` items
    apart (default ``max_len``: no overlap); with a smaller stride a window's targets are
    only its newest ``stride`` ones (all of them in a user's oldest window), so each target
    is predicted from at least ``max_len - stride`` earlier items when the user has them,
    closer to inference, where the model reads the full ``max_len``.
    Returns inputs and targets, both (W, max_len), left-padded with -1 / -100.
    """
    stride = max_len if stride is None else stride
    if not 1 <= stride <= max_len:
        raise ValueError(f"stride must be in [1, max_len={max_len}], got {stride}")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for seq in train:
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
            end = start + 1 if start == 0 else end - stride
    if not xs:
        raise ValueError("no training sequence has 2 or more items: nothing to learn from")
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


class EpochShuffled(Dataset):
    """Windows in an order fixed by (seed, epoch): resumable without sampler state.

    (Not named ``set_epoch``: accelerate's loaders call that with their own iteration count,
    which restarts at 0 on resume.)"""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, seed: int) -> None:
        self.inputs, self.targets, self.seed = inputs, targets, seed
        self.order = torch.arange(len(inputs))

    def shuffle_for(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        self.order = torch.randperm(len(self.inputs), generator=g)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.order[i]
        return self.inputs[j], self.targets[j]


def trim_padding(seq: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop leading columns that are padding in every row: (B, L) -> (B, L')."""
    used = (seq >= 0).any(0) | (targets >= 0).any(0)
    first = int(used.float().argmax()) if bool(used.any()) else seq.shape[1] - 1
    return seq[:, first:], targets[:, first:]

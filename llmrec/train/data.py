"""Training windows: every position of every training sequence predicts its next item."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def training_windows(train: list[np.ndarray], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sequence into windows of at most ``max_len + 1`` items, from the end.

    Window ``w`` gives inputs ``w[:-1]`` and targets ``w[1:]``; consecutive windows overlap
    by one item so that every item after a user's first is a target exactly once per epoch.
    Returns inputs and targets, both (W, max_len), left-padded with -1 / -100.
    """
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
            xs.append(x)
            ys.append(y)
            end = start + 1
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

"""The user side: a causal transformer over the history's item vectors."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from llmrec.models.attention import TransformerBlock, causal_allowed

# time-gap buckets: 0 = padding, 1 = a history's first item (no earlier event), 2 = under a
# second after the previous event, then 3 + floor(log2(gap in seconds)), capped at the last
FIRST_GAP, SUB_SECOND_GAP = 1, 2


def time_gap_buckets(times: np.ndarray | list[float], n_buckets: int) -> np.ndarray:
    """(n,) int64 bucket of the gap between each event and the one before it.

    ``times`` (n,) are the events' timestamps in seconds, oldest first (non-decreasing).
    Log-spaced buckets: one per doubling of the gap, so seconds, minutes, days and months
    each get their own few; gaps past the last bucket share it.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"timestamps must be one value per history item, got shape {t.shape}")
    if len(t) and not np.isfinite(t).all():
        bad = int(np.flatnonzero(~np.isfinite(t))[0])
        raise ValueError(f"timestamps[{bad}] is {t[bad]}: every timestamp must be finite")
    gaps = np.diff(t)
    if (gaps < 0).any():
        bad = int(np.flatnonzero(gaps < 0)[0]) + 1
        raise ValueError(f"timestamps must be oldest first (non-decreasing): timestamps[{bad}] "
                         f"= {t[bad]} is earlier than timestamps[{bad - 1}] = {t[bad - 1]}")
    out = np.empty(len(t), dtype=np.int64)
    if not len(t):
        return out
    out[0] = FIRST_GAP
    with np.errstate(divide="ignore"):
        log = np.floor(np.log2(np.maximum(gaps, 1e-9)))
    out[1:] = np.where(gaps < 1.0, SUB_SECOND_GAP, np.minimum(3 + log, n_buckets - 1))
    return out


class SequenceEncoder(nn.Module):
    """Item vectors + learned positions -> causal transformer -> one state per position.

    Histories are left-padded, so the most recent item always sits in the last slot and its
    state is the user's representation. Positions count from the first real item (0, 1, ...),
    so a prefix of length ``n`` inside a training window and a history of length ``n`` at
    inference get the same position embeddings.
    """

    def __init__(
        self, dim: int, n_layers: int, n_heads: int, inner: int, dropout: float, max_len: int,
        gap_buckets: int = 0,
    ) -> None:
        """``gap_buckets`` > 0: a learned embedding of each item's time-gap bucket
        (:func:`time_gap_buckets`) is added to its position embedding."""
        super().__init__()
        self.max_len = max_len
        self.pos = nn.Embedding(max_len, dim)
        self.gap = nn.Embedding(gap_buckets, dim) if gap_buckets else None
        self.ln_in = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, n_heads, inner, dropout) for _ in range(n_layers)
        )
        self.ln_out = nn.LayerNorm(dim)

    def forward(
        self, items: torch.Tensor, valid: torch.Tensor, last_only: bool = False,
        gaps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``items`` (B, L, D) item vectors (zeros at padding), ``valid`` (B, L) bool,
        ``gaps`` (B, L) int64 time-gap buckets (0 at padding), required exactly when the
        encoder reads time gaps.

        Returns states (B, L, D); padding positions hold values that nothing should read.
        ``last_only``: only the last position's state (B, 1, D), which is all a user vector
        needs; the final block then computes one query per row.
        """
        length = items.shape[1]
        if length > self.max_len:
            raise ValueError(f"history of {length} positions exceeds max_len={self.max_len}")
        if (gaps is None) != (self.gap is None):
            raise ValueError("this model reads time gaps (ModelConfig.time_gaps=True): pass "
                             "the histories' timestamps" if gaps is None else
                             "time gaps given, but this model was built without them "
                             "(ModelConfig.time_gaps=False)")
        pos = (valid.long().cumsum(1) - 1).clamp(min=0)  # (B, L) index from the first item
        x = items + self.pos(pos)  # (B, L, D)
        if self.gap is not None:
            assert gaps is not None
            if gaps.shape != valid.shape:
                raise ValueError(f"gaps of shape {tuple(gaps.shape)}, expected "
                                 f"{tuple(valid.shape)}")
            x = x + self.gap(gaps)  # (B, L, D)
        x = self.drop(self.ln_in(x))  # (B, L, D)
        allowed = causal_allowed(valid)  # (B, L, L)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, last_only=last_only and i == last)
        if last_only and not self.blocks:
            x = x[:, -1:]
        return self.ln_out(x)  # (B, L, D), or (B, 1, D) with last_only

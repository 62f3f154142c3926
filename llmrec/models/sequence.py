"""The user side: a causal transformer over the history's item vectors."""

from __future__ import annotations

import torch
from torch import nn

from llmrec.models.attention import TransformerBlock, causal_allowed


class SequenceEncoder(nn.Module):
    """Item vectors + learned positions -> causal transformer -> one state per position.

    Histories are left-padded, so the most recent item always sits in the last slot and its
    state is the user's representation. Positions count from the first real item (0, 1, ...),
    so a prefix of length ``n`` inside a training window and a history of length ``n`` at
    inference get the same position embeddings.
    """

    def __init__(
        self, dim: int, n_layers: int, n_heads: int, inner: int, dropout: float, max_len: int
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.pos = nn.Embedding(max_len, dim)
        self.ln_in = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, n_heads, inner, dropout) for _ in range(n_layers)
        )
        self.ln_out = nn.LayerNorm(dim)

    def forward(
        self, items: torch.Tensor, valid: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """``items`` (B, L, D) item vectors (zeros at padding), ``valid`` (B, L) bool.

        Returns states (B, L, D); padding positions hold values that nothing should read.
        ``last_only``: only the last position's state (B, 1, D), which is all a user vector
        needs; the final block then computes one query per row.
        """
        length = items.shape[1]
        if length > self.max_len:
            raise ValueError(f"history of {length} positions exceeds max_len={self.max_len}")
        pos = (valid.long().cumsum(1) - 1).clamp(min=0)  # (B, L) index from the first item
        x = self.drop(self.ln_in(items + self.pos(pos)))  # (B, L, D)
        allowed = causal_allowed(valid)  # (B, L, L)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, allowed, last_only=last_only and i == last)
        if last_only and not self.blocks:
            x = x[:, -1:]
        return self.ln_out(x)  # (B, L, D), or (B, 1, D) with last_only

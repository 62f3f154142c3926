"""The scoring head: each candidate attends over the user's history and gets a score.

Its attention weights say which history items a candidate's score rests on; they ground the
explanations, so they are returned, never discarded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from llmrec.models.attention import MultiHeadAttention


@dataclass
class HeadOutput:
    """Scores of the candidates and the attention behind them."""

    scores: torch.Tensor  # (B, C) head scores (added to the retrieval score)
    attention: torch.Tensor  # (B, C, L) weights over history positions, mean over heads


class AttentionScoringHead(nn.Module):
    """Candidate-to-history attention: ``score(c) = <MLP(attend(c, H)), c> / sqrt(D)``."""

    def __init__(self, dim: int, n_heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(dim)
        self.ln_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads, dropout)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, inner), nn.GELU(), nn.Linear(inner, dim)
        )
        self.scale = 1.0 / math.sqrt(dim)

    def reset_output(self) -> None:
        """Zero the last layer: a fresh head adds nothing to the retrieval score."""
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(
        self, candidates: torch.Tensor, states: torch.Tensor, valid: torch.Tensor
    ) -> HeadOutput:
        """``candidates`` (B, C, D) item vectors, ``states`` (B, L, D), ``valid`` (B, L)."""
        b, c, _ = candidates.shape
        has_history = valid.any(1, keepdim=True)  # (B, 1)
        keys_ok = valid | ~has_history  # an empty history attends uniformly, harmlessly
        allowed = keys_ok[:, None, :].expand(b, c, valid.shape[1])  # (B, C, L)
        z, weights = self.attn(self.ln_q(candidates), self.ln_kv(states), allowed)  # (B, C, D)
        z = z + self.mlp(z)  # (B, C, D)
        scores = (z * candidates).sum(-1) * self.scale  # (B, C)
        scores = scores * has_history  # no history, no evidence: the head abstains
        return HeadOutput(scores, weights.mean(1))  # (B, C), (B, C, L)

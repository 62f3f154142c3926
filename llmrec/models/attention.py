"""Multi-head attention and a pre-norm transformer block, short enough to read like the paper.

Masks are boolean with True = may attend. Every query row keeps at least one allowed key
(padding queries attend to themselves), so no softmax row is empty and nothing turns NaN.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over ``n_heads`` heads; returns output and weights."""

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"hidden_size ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # (B, N, D)
        return x.view(b, n, self.n_heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, allowed: torch.Tensor,
        need_weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``query`` (B, Q, D), ``key`` (B, K, D), ``allowed`` (B, Q, K) bool.

        Returns the attended values (B, Q, D) and the weights (B, h, Q, K); without
        ``need_weights`` the weights are None and one fused kernel does the attention.
        """
        q, k, v = self._split(self.q(query)), self._split(self.k(key)), self._split(self.v(key))
        if not need_weights:  # the same arithmetic, fused (every row allows >= 1 key)
            y = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed[:, None],
                dropout_p=self.drop.p if self.training else 0.0)  # (B, h, Q, d)
            weights = None
        else:
            logits = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, h, Q, K)
            logits = logits.masked_fill(~allowed[:, None], torch.finfo(logits.dtype).min)
            weights = logits.softmax(-1)  # (B, h, Q, K)
            y = self.drop(weights) @ v  # (B, h, Q, d)
        b, _, n_q, _ = y.shape
        y = y.transpose(1, 2).reshape(b, n_q, self.n_heads * self.head_dim)  # (B, Q, D)
        return self.out(y), weights


class TransformerBlock(nn.Module):
    """Pre-norm self-attention block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, n_heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, inner), nn.GELU(), nn.Linear(inner, dim))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """``x`` (B, L, D), ``allowed`` (B, L, L) -> (B, L, D); with ``last_only`` only the
        last position's output (B, 1, D): its query attends to every key, the rest is skipped."""
        h = self.ln1(x)
        if last_only:
            x, query, allowed = x[:, -1:], h[:, -1:], allowed[:, -1:]  # (B, 1, D), (B, 1, L)
        else:
            query = h
        x = x + self.drop(self.attn(query, h, allowed, need_weights=False)[0])
        return x + self.drop(self.mlp(self.ln2(x)))


def causal_allowed(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) bool of real (non-pad) positions -> (B, L, L) causal mask over real keys.

    Position i may attend to real positions j <= i, and always to itself.
    """
    n = valid.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()  # (L, L)
    allowed = causal[None] & valid[:, None, :]  # (B, L, L)
    return allowed | torch.eye(n, dtype=torch.bool, device=valid.device)[None]


def gelu_init_(module: nn.Module, std: float = 0.02) -> None:
    """BERT-style init: normal(0, std) weights, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


__all__ = ["MultiHeadAttention", "TransformerBlock", "causal_allowed", "gelu_init_"]

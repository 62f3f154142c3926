"""Full-ranking metrics as pure, vectorised functions on torch tensors.

Tie policy: every rank-based metric is the *expected value under a uniform random tie-break*.
For a case let ``g`` = number of unmasked candidates scored strictly above the target and
``e`` = number of *other* unmasked candidates scored equal to it. The target's rank ``r`` is
then uniform on ``{g+1, ..., g+e+1}`` and e.g. ``HR@K = P(r <= K)``.

Masking: ``mask`` is an optional ``(B, n_items)`` bool tensor, True = exclude the item from
ranking. If the *target itself* is masked (e.g. history masking is on and the user re-consumes
an item) the case counts as a miss at every K (rank = infinity) and its AUC is 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "ExposureAccumulator",
    "RankStats",
    "auc",
    "gini",
    "history_mask",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "rank_stats",
    "recall_at_k",
    "top_k_lists",
]


class RankStats(NamedTuple):
    """Per-case tie-aware rank statistics, all of shape ``(B,)``."""

    greater: torch.Tensor  # (B,) int64: unmasked candidates scored strictly above the target
    equal: torch.Tensor  # (B,) int64: other unmasked candidates tied with the target
    n_candidates: torch.Tensor  # (B,) int64: unmasked items, target included (if unmasked)
    target_masked: torch.Tensor  # (B,) bool: target excluded by the mask -> miss everywhere


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def rank_stats(
    scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
) -> RankStats:
    """Tie-aware rank statistics of ``targets`` (B,) within ``scores`` (B, n_items).

    Higher score = better. ``mask`` (B, n_items) bool excludes items (True = excluded).
    """
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(
            f"expected scores (B, n_items) and targets (B,), got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    targets = targets.to(device=scores.device, dtype=torch.long)
    target_score = scores.gather(1, targets[:, None])  # (B, 1)
    above = scores > target_score  # (B, n_items)
    tied = scores == target_score  # (B, n_items), includes the target itself
    if mask is None:
        greater = above.sum(1)
        equal = tied.sum(1) - 1
        n_cand = torch.full_like(greater, scores.shape[1])
        target_masked = torch.zeros_like(greater, dtype=torch.bool)
    else:
        valid = ~mask.to(scores.device)  # (B, n_items)
        target_masked = mask.to(scores.device).gather(1, targets[:, None]).squeeze(1)  # (B,)
        greater = (above & valid).sum(1)
        equal = (tied & valid).sum(1) - (~target_masked).long()
        n_cand = valid.sum(1)
    return RankStats(greater, equal, n_cand, target_masked)


def _expected_weight_sum(stats: RankStats, k: int, weights: torch.Tensor) -> torch.Tensor:
    """``E[w(r) * 1(r <= k)]`` with ``weights[r-1] = w(r)`` for r = 1..k; returns (B,) float64.

    The sum of ``w`` over ranks ``g+1 .. min(g+e+1, k)`` is a difference of a cumulative table.
    """
    cum = torch.cat([weights.new_zeros(1), weights.cumsum(0)])  # (k+1,) cum[m] = sum_{r<=m} w(r)
    g, e = stats.greater, stats.equal
    hi = torch.clamp(g + e + 1, max=k)  # (B,)
    lo = torch.clamp(g, max=k)  # (B,)
    value = (cum[hi] - cum[lo]) / (e + 1).double()  # (B,)
    return value.masked_fill(stats.target_masked, 0.0)


def hit_rate_at_k(stats: RankStats, k: int) -> torch.Tensor:
    """HR@K per case, ``P(r <= K)``; (B,) float64."""
    _check_k(k)
    ones = torch.ones(k, dtype=torch.float64, device=stats.greater.device)
    return _expected_weight_sum(stats, k, ones)


def recall_at_k(stats: RankStats, k: int) -> torch.Tensor:
    """Recall@K per case. With exactly one target per case it equals HR@K, and is computed so."""
    return hit_rate_at_k(stats, k)


def ndcg_at_k(stats: RankStats, k: int) -> torch.Tensor:
    """NDCG@K per case, ``E[1/log2(r+1) * 1(r <= K)]`` (ideal DCG is 1); (B,) float64."""
    _check_k(k)
    r = torch.arange(1, k + 1, dtype=torch.float64, device=stats.greater.device)
    return _expected_weight_sum(stats, k, 1.0 / torch.log2(r + 1.0))


def mrr_at_k(stats: RankStats, k: int) -> torch.Tensor:
    """MRR@K per case, ``E[1/r * 1(r <= K)]``; (B,) float64."""
    _check_k(k)
    r = torch.arange(1, k + 1, dtype=torch.float64, device=stats.greater.device)
    return _expected_weight_sum(stats, k, 1.0 / r)


def auc(stats: RankStats) -> torch.Tensor:
    """Per-case AUC: share of unmasked non-target candidates ranked below the target.

    Ties count 1/2: ``(n_cand - 1 - g - e/2) / (n_cand - 1)``. A masked target gives 0; a case
    whose target is the only candidate gives 0.5 (no negatives: uninformative). (B,) float64.
    """
    neg = (stats.n_candidates - 1).double()  # (B,)
    below = neg - stats.greater.double() - stats.equal.double() / 2.0
    value = torch.where(neg > 0, below / neg.clamp(min=1.0), torch.full_like(neg, 0.5))
    return value.masked_fill(stats.target_masked, 0.0)


def history_mask(
    histories: list[np.ndarray], n_items: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B, n_items) bool mask, True for every item in the case's history."""
    b = len(histories)
    mask = torch.zeros((b, n_items), dtype=torch.bool, device=device)
    lengths = [len(h) for h in histories]
    if sum(lengths) == 0:
        return mask
    cols_np = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
    if cols_np.min() < 0 or cols_np.max() >= n_items:
        raise ValueError(f"history item indices must lie in [0, n_items={n_items})")
    rows = torch.repeat_interleave(torch.arange(b), torch.tensor(lengths)).to(device)
    mask[rows, torch.from_numpy(cols_np).to(device)] = True
    return mask


def top_k_lists(
    scores: torch.Tensor, k: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items per row, best first: ``(items (B, k'), valid (B, k'))``, ``k' = min(k, n)``.

    Masked items are never recommended: ``valid`` is False on slots that only a masked item
    could fill (rows with fewer than k unmasked items). Ties inside a list follow
    ``torch.topk`` (deterministic for a given input and device, not an expectation).
    """
    _check_k(k)
    k = min(k, scores.shape[1])
    if mask is not None:
        mask = mask.to(scores.device)
        scores = scores.masked_fill(mask, float("-inf"))
    items = torch.topk(scores, k, dim=1, sorted=True).indices  # (B, k)
    if mask is None:
        return items, torch.ones_like(items, dtype=torch.bool)
    return items, ~mask.gather(1, items)  # (B, k), (B, k)


def gini(exposure: torch.Tensor) -> float:
    """Gini coefficient of non-negative per-item exposure (n_items,), zero-exposure items included.

    0 = perfectly even; ``(n-1)/n`` = all exposure on one item. No exposure at all gives 0.
    """
    x = torch.sort(exposure.double().flatten()).values  # (n,) ascending
    n, total = x.numel(), x.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


class ExposureAccumulator:
    """Collects exposure counts of top-K lists across batches for coverage, popularity, Gini.

    ``update`` takes the output of :func:`top_k_lists` computed with ``k >= max(ks)``;
    ``finalize`` returns ``coverage@K``, ``gini@K`` and (if ``item_popularity`` was given)
    ``popularity@K`` = mean popularity over all recommended slots.
    """

    def __init__(
        self,
        n_items: int,
        ks: tuple[int, ...],
        item_popularity: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        for k in ks:
            _check_k(k)
        self.n_items, self.ks = n_items, tuple(ks)
        self.exposure = {k: torch.zeros(n_items, dtype=torch.float64, device=device) for k in ks}
        self.pop_sum = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ks}
        self.slots = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ks}
        self.popularity: torch.Tensor | None = None
        if item_popularity is not None:
            self.popularity = item_popularity.to(device=device, dtype=torch.float64)  # (n_items,)
            if self.popularity.shape != (n_items,):
                raise ValueError(
                    f"item_popularity must have shape ({n_items},), got "
                    f"{tuple(self.popularity.shape)}"
                )

    def update(self, items: torch.Tensor, valid: torch.Tensor) -> None:
        """Add top-k lists ``items`` (B, k) with slot validity ``valid`` (B, k)."""
        for k in self.ks:
            it, ok = items[:, :k], valid[:, :k]  # (B, min(k, n_items))
            chosen = it[ok]  # (n_slots,)
            self.exposure[k] += torch.bincount(chosen, minlength=self.n_items).double()
            self.slots[k] += chosen.numel()
            if self.popularity is not None:
                self.pop_sum[k] += self.popularity[chosen].sum()

    def finalize(self) -> dict[str, float]:
        """``{"coverage@K", "gini@K", "popularity@K"}`` for every K (popularity if available)."""
        out: dict[str, float] = {}
        for k in self.ks:
            out[f"coverage@{k}"] = float((self.exposure[k] > 0).double().mean())
            out[f"gini@{k}"] = gini(self.exposure[k])
            if self.popularity is not None:
                slots = float(self.slots[k])
                out[f"popularity@{k}"] = float(self.pop_sum[k]) / slots if slots else 0.0
        return out

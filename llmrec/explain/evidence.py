"""Which history items an explanation cites: attention weights or occlusion (score drops)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

# (histories, item_ids[, times]) -> (len(histories), len(item_ids)): every item scored under
# every history; ``times`` (per history, one timestamp per item) only where given
Scorer = Callable[..., np.ndarray]


def attention_ranking(recommendation: Any, history: Sequence[str]) -> list[tuple[str, float]]:
    """(history id, attention weight) from ``recommendation.evidence``, strongest first; only
    items of ``history`` (evidence never names anything else)."""
    seen = set(history)
    out: dict[str, float] = {}
    for e in getattr(recommendation, "evidence", None) or []:
        if e.item_id in seen and e.item_id not in out:
            out[e.item_id] = float(e.weight)
    return sorted(out.items(), key=lambda x: -x[1])


def pairwise_scorer(score_items: Callable[..., np.ndarray]) -> Scorer:
    """A :data:`Scorer` from a per-pair one such as ``Recommender.score_items`` (given
    ``timestamps=`` when the histories come with times)."""

    def scorer(histories: Sequence[Sequence[str]], item_ids: Sequence[str],
               times: Sequence[Sequence[float]] | None = None) -> np.ndarray:
        hs = [h for h in histories for _ in item_ids]
        if times is None:
            scores = score_items(hs, list(item_ids) * len(histories))
        else:
            ts = [t for t in times for _ in item_ids]
            scores = score_items(hs, list(item_ids) * len(histories), timestamps=ts)
        return np.asarray(scores, dtype=np.float64).reshape(len(histories), len(item_ids))

    return scorer


def recommender_scorer(rec: Any) -> Scorer:
    """A :data:`Scorer` over a trained Recommender that encodes each history once and scores
    all items against it (the computation of ``Recommender.score_items``, K times cheaper)."""
    from llmrec.models.model import history_inputs

    @torch.no_grad()
    def scorer(histories: Sequence[Sequence[str]], item_ids: Sequence[str],
               times: Sequence[Sequence[float]] | None = None) -> np.ndarray:
        model, catalog = rec.model, rec.catalog
        if model.training:
            model.eval()
        seq, gaps = history_inputs(model, [catalog.indices(h) for h in histories], times)
        target = torch.as_tensor(catalog.indices(item_ids))[None, :].expand(len(histories), -1)
        return model.score_candidates(seq, target, gaps).double().numpy()

    return scorer


def occlusion_drops(scorer: Scorer, history: Sequence[str], item_ids: Sequence[str],
                    window: int | None = None,
                    positions: Iterable[int] | None = None,
                    times: Sequence[float] | None = None) -> np.ndarray:
    """(len(item_ids), len(history)) score drops: ``score(item | history) - score(item |
    history without position j)``, in one batched ``scorer`` call. Positions before the
    model's ``window`` (the most recent items it reads) cannot matter, and positions left out
    of ``positions`` (None = all) are not tried: their drop is -inf. ``times``: the history's
    timestamps, removed with their items (the scorer then gets ``times=``)."""
    history = list(history)
    n, k = len(history), len(item_ids)
    drops = np.full((k, n), -np.inf)
    if n == 0 or k == 0:
        return drops
    # one more than the window: it slides into view; with times one more again, whose only
    # role is the time gap of the item that slides in
    lo = 0 if window is None else max(0, n - window - (1 if times is None else 2))
    kept = history[lo:]
    first = max(0, n - window) if window is not None else 0
    tried = range(first, n) if positions is None else sorted(
        {int(j) for j in positions if first <= int(j) < n})
    if not tried:
        return drops
    variants = [kept] + [kept[:j - lo] + kept[j - lo + 1:] for j in tried]
    if times is None:
        scores = np.asarray(scorer(variants, list(item_ids)), dtype=np.float64)  # (1 + P, K)
    else:
        if len(times) != n:
            raise ValueError(f"{len(times)} timestamps for a history of {n} items")
        t = list(times)[lo:]
        timed = [t] + [t[:j - lo] + t[j - lo + 1:] for j in tried]
        scores = np.asarray(scorer(variants, list(item_ids), times=timed), dtype=np.float64)
    drops[:, list(tried)] = (scores[:1] - scores[1:]).T
    return drops


def attended_positions(history: Sequence[str], recommendations: Sequence[Any],
                       recent: int) -> list[int]:
    """History positions worth occluding: every occurrence of an item the scoring head
    attends to most for any of ``recommendations`` (their ``evidence``), plus the ``recent``
    most recent positions."""
    attended = {e.item_id for r in recommendations for e in getattr(r, "evidence", None) or []}
    n = len(history)
    return [j for j, h in enumerate(history) if h in attended or j >= n - recent]

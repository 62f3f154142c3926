"""Which history items an explanation cites: attention weights or occlusion (score drops)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Scorer = Callable[[Sequence[Sequence[str]], Sequence[str]], np.ndarray]


def attention_ranking(recommendation: Any, history: Sequence[str]) -> list[tuple[str, float]]:
    """(history id, attention weight) from ``recommendation.evidence``, strongest first; only
    items of ``history`` (evidence never names anything else)."""
    seen = set(history)
    out: list[tuple[str, float]] = []
    for e in getattr(recommendation, "evidence", None) or []:
        if e.item_id in seen and e.item_id not in {i for i, _ in out}:
            out.append((e.item_id, float(e.weight)))
    return sorted(out, key=lambda x: -x[1])


def occlusion_drops(scorer: Scorer, history: Sequence[str], item_ids: Sequence[str],
                    window: int | None = None) -> np.ndarray:
    """(len(item_ids), len(history)) score drops: ``score(item | history) - score(item |
    history without position j)``, all in one batched ``scorer`` call. Positions before the
    model's ``window`` (the most recent items it reads) cannot matter: their drop is -inf."""
    history = list(history)
    n, k = len(history), len(item_ids)
    if n == 0 or k == 0:
        return np.zeros((k, n))
    positions = list(range(n)) if window is None else list(range(max(0, n - window), n))
    hists: list[list[str]] = []
    targets: list[str] = []
    for item in item_ids:
        hists.append(history)
        targets.append(item)
        for j in positions:
            hists.append(history[:j] + history[j + 1:])
            targets.append(item)
    scores = np.asarray(scorer(hists, targets), dtype=np.float64).reshape(k, len(positions) + 1)
    drops = np.full((k, n), -np.inf)
    drops[:, positions] = scores[:, :1] - scores[:, 1:]
    return drops

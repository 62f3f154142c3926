"""Safety checks of explanation texts, deduplicated and cached (template texts repeat a lot)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmrec.safety import SafetyFilter, Verdict


def blocked_because(verdict: Verdict) -> str:
    """One short line naming what blocked a text."""
    parts = [f"{r.rule}:{r.label}" for r in verdict.reasons if r.action == "block"]
    return "; ".join(parts) or "blocked"


class CachedSafety:
    """``check(texts)`` through a :class:`SafetyFilter`: each distinct text is classified once
    (one batched call for the new ones), verdicts kept in an LRU of ``size`` texts."""

    def __init__(self, safety: SafetyFilter, size: int = 65536) -> None:
        self.safety, self.size = safety, size
        self._cache: OrderedDict[str, Verdict] = OrderedDict()

    def check(self, texts: Sequence[str]) -> list[Verdict]:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        fresh = dict(zip(new, self.safety.check(new), strict=True)) if new else {}
        out = []
        for t in texts:
            v = fresh[t] if t in fresh else self._cache[t]
            self._cache[t] = v
            self._cache.move_to_end(t)
            out.append(v)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return out

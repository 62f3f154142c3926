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
    (one batched call for the new ones), verdicts kept in an LRU of ``size`` texts.

    ``free[i]`` True: text i is free text (an LLM's) and gets every layer of the filter;
    False: it was assembled by a template from catalog titles and attributes, which each
    passed the filter's learned layer with their item, so that layer's label is skipped for it
    (the rules, lexicon and profanity model still read the whole sentence, and the layer's
    vetoes of the latter two still apply)."""

    def __init__(self, safety: SafetyFilter, size: int = 65536) -> None:
        self.safety, self.size = safety, size
        self._cache: OrderedDict[tuple[str, bool], Verdict] = OrderedDict()

    def check(self, texts: Sequence[str], free: Sequence[bool] | None = None) -> list[Verdict]:
        flags = [True] * len(texts) if free is None else [bool(f) for f in free]
        keys = list(zip(texts, flags, strict=True))
        fresh: dict[tuple[str, bool], Verdict] = {}
        for flag in (True, False):
            new = [k for k in dict.fromkeys(keys) if k[1] is flag and k not in self._cache]
            if new:
                verdicts = self.safety.check([t for t, _ in new], semantic=flag)
                fresh.update(zip(new, verdicts, strict=True))
        out = []
        for k in keys:
            v = fresh[k] if k in fresh else self._cache[k]
            self._cache[k] = v
            self._cache.move_to_end(k)
            out.append(v)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return out

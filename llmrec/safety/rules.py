"""Policy rules as a classifier: blocked terms and regexes, and blocked item attribute values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from llmrec.safety.matching import compile_pattern, compile_term, variants
from llmrec.safety.policy import Policy

__all__ = ["POLICY_LABEL", "RuleClassifier", "match_attributes"]

POLICY_LABEL = "policy"


class RuleClassifier:
    """Scores 1.0 on label ``"policy"`` when a blocked term or regex matches, else 0.0.

    Terms and regexes match whole words, case-insensitively, also in leetspeak-decoded text.
    """

    name = "rules"

    def __init__(
        self,
        terms: list[str] | None = None,
        patterns: list[str] | None = None,
        *,
        inflections: bool = True,
    ) -> None:
        self.terms = list(terms or [])
        self.patterns = list(patterns or [])
        self.inflections = inflections
        self._terms = [(t, compile_term(t, inflections=inflections)) for t in self.terms]
        self._patterns = [(p, compile_pattern(p)) for p in self.patterns]

    @classmethod
    def from_policy(cls, policy: Policy) -> RuleClassifier:
        return cls(
            policy.blocked_terms, policy.blocked_patterns, inflections=policy.match_inflections
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return (POLICY_LABEL,)

    def matches(self, text: str) -> list[tuple[str, str]]:
        """``(rule, entry)`` for every term / regex found in ``text``."""
        forms = variants(text)
        found: list[tuple[str, str]] = []
        for rule, compiled in (
            ("policy.blocked_terms", self._terms),
            ("policy.blocked_patterns", self._patterns),
        ):
            for entry, regex in compiled:
                if any(regex.search(form) for form in forms):
                    found.append((rule, entry))
        return found

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        hits = [bool(self.matches(t)) for t in texts]
        return {POLICY_LABEL: np.asarray(hits, dtype=np.float64).reshape(len(texts))}

    def explain(self, texts: list[str]) -> list[dict[str, str]]:
        out = []
        for text in texts:
            found = self.matches(text)
            out.append({POLICY_LABEL: "; ".join(e for _, e in found)} if found else {})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "rules",
            "terms": list(self.terms),
            "patterns": list(self.patterns),
            "inflections": self.inflections,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RuleClassifier:
        values = dict(values)
        values.pop("type", None)
        return cls(values.pop("terms", None), values.pop("patterns", None), **values)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def match_attributes(item: Mapping[str, Any] | None, blocked: Mapping[str, list[Any]]) -> list[str]:
    """``'field=value'`` for each blocked value the item has (list fields: any element)."""
    if not item:
        return []
    found = []
    for name, values in blocked.items():
        if name not in item:
            continue
        got = item[name]
        got_values = list(got) if isinstance(got, (list, tuple, set, frozenset)) else [got]
        for value in values:
            if any(_same(g, value) for g in got_values):
                found.append(f"{name}={value}")
    return found

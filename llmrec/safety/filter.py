"""SafetyFilter: a classifier plus the operator's policy -> one Verdict per item text."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.safety.policy import Policy
from llmrec.safety.rules import POLICY_LABEL, RuleClassifier, match_attributes
from llmrec.safety.types import Reason, SafetyClassifier, Verdict

__all__ = ["CLASSIFIER_TYPES", "SafetyFilter", "classifier_from_dict"]


def _registry() -> dict[str, Any]:
    from llmrec.safety.detoxify_backend import DetoxifyClassifier
    from llmrec.safety.offline import OfflineToxicityClassifier, ProfanityCheckClassifier

    return {
        "offline": OfflineToxicityClassifier,
        "profanity_check": ProfanityCheckClassifier,
        "detoxify": DetoxifyClassifier,
        "rules": RuleClassifier,
    }


CLASSIFIER_TYPES = ("detoxify", "offline", "profanity_check", "rules")


def classifier_from_dict(values: Mapping[str, Any]) -> SafetyClassifier:
    """Rebuild a classifier from its ``to_dict()`` (the ``"type"`` key picks the class)."""
    if not isinstance(values, Mapping) or values.get("type") not in CLASSIFIER_TYPES:
        got = values.get("type") if isinstance(values, Mapping) else values
        raise ValueError(f"classifier type must be one of {CLASSIFIER_TYPES}, got {got!r}")
    return _registry()[values["type"]].from_dict(dict(values))


@functools.cache
def _takes_semantic_of(func: Any) -> bool:
    return "semantic" in inspect.signature(func).parameters


def _takes_semantic(method: Any) -> bool:
    """Whether a classifier's ``analyze`` accepts ``semantic=`` (memoised per function)."""
    return _takes_semantic_of(getattr(method, "__func__", method))


class SafetyFilter:
    """Decides, per item text, whether it may be shown.

    Order of precedence: ``policy.deny_items`` always blocks; else ``policy.allow_items``
    never blocks; else the text is blocked when any classifier label's score >= the policy
    threshold for it, or a policy term / regex / attribute rule matches.
    """

    def __init__(
        self, classifier: SafetyClassifier | None = None, policy: Policy | None = None
    ) -> None:
        if classifier is None:
            from llmrec.safety.offline import OfflineToxicityClassifier

            classifier = OfflineToxicityClassifier()
        if not callable(getattr(classifier, "score", None)) or not hasattr(classifier, "labels"):
            raise ValueError(
                "classifier must have .labels and .score(texts) -> {label: array} "
                f"(a SafetyClassifier), got {type(classifier).__name__}"
            )
        if policy is not None and not isinstance(policy, Policy):
            raise ValueError(f"policy must be a Policy or None, got {type(policy).__name__}")
        self.classifier = classifier
        self.policy = policy if policy is not None else Policy.default()
        self._rules = RuleClassifier.from_policy(self.policy)

    def __repr__(self) -> str:
        return f"SafetyFilter(classifier={getattr(self.classifier, 'name', self.classifier)!r})"

    # -- checking --------------------------------------------------------------------------
    def _classify(
        self, texts: list[str], semantic: bool
    ) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
        clf = self.classifier
        if hasattr(clf, "analyze"):
            skip = not semantic and _takes_semantic(clf.analyze)
            scores, evidence = clf.analyze(texts, semantic=False) if skip else clf.analyze(texts)
        else:
            scores = clf.score(texts)
            evidence = clf.explain(texts) if hasattr(clf, "explain") else [{} for _ in texts]
        out = {}
        for label, values in scores.items():
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
            if arr.shape != (len(texts),) or not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"classifier {getattr(clf, 'name', clf)!r} returned label {label!r} with "
                    f"shape {arr.shape} or non-finite values; expected ({len(texts)},) in [0, 1]"
                )
            out[label] = np.clip(arr, 0.0, 1.0)
        return out, list(evidence)

    def check(
        self,
        texts: Sequence[str],
        *,
        items: Sequence[Mapping[str, Any] | None] | None = None,
        item_ids: Sequence[str] | None = None,
        semantic: bool = True,
    ) -> list[Verdict]:
        """One :class:`Verdict` per text, in order (one batched classifier call).

        ``items``: each text's item fields, for ``policy.blocked_attributes``; ``item_ids``:
        each text's item id, for ``policy.allow_items`` / ``policy.deny_items``;
        ``semantic=False`` skips the classifier's learned layer where it has one (the offline
        default's sentence-embedding model), for texts whose free parts each passed it.
        """
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, not one string")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise ValueError(
                f"texts must be strings; got {type(texts[bad[0]]).__name__} at {bad[0]}"
            )
        for name, values in (("items", items), ("item_ids", item_ids)):
            if values is not None and len(values) != len(texts):
                raise ValueError(f"{name} has {len(values)} entries for {len(texts)} texts")
        if not texts:
            return []
        scores, evidence = self._classify(texts, semantic)
        allow, deny = set(self.policy.allow_items), set(self.policy.deny_items)
        rule = f"classifier:{getattr(self.classifier, 'name', type(self.classifier).__name__)}"
        verdicts = []
        for i, text in enumerate(texts):
            row = {label: float(values[i]) for label, values in scores.items()}
            reasons = []
            for label, value in row.items():
                threshold = self.policy.threshold(label)
                if value >= threshold:
                    reasons.append(
                        Reason(
                            rule,
                            label,
                            score=value,
                            threshold=threshold,
                            match=evidence[i].get(label) or None,
                        )
                    )
            for source, entry in self._rules.matches(text):
                reasons.append(Reason(source, POLICY_LABEL, match=entry))
            item = items[i] if items is not None else None
            for match in match_attributes(item, self.policy.blocked_attributes):
                reasons.append(Reason("policy.blocked_attributes", POLICY_LABEL, match=match))
            row[POLICY_LABEL] = 1.0 if any(r.label == POLICY_LABEL for r in reasons) else 0.0
            item_id = None if item_ids is None else item_ids[i]
            item_id = None if item_id is None else str(item_id)
            if item_id is not None and item_id in deny:
                reasons.insert(0, Reason("policy.deny_items", POLICY_LABEL, match=item_id))
            elif item_id is not None and item_id in allow:
                reasons = [
                    Reason("policy.allow_items", POLICY_LABEL, action="allow", match=item_id)
                ]
            blocked = any(r.action == "block" for r in reasons)
            verdicts.append(Verdict(text=text, blocked=blocked, scores=row, reasons=reasons))
        return verdicts

    def is_safe(self, texts: Sequence[str], **kwargs: Any) -> list[bool]:
        """``[not v.blocked for v in check(texts, ...)]``."""
        return [not v.blocked for v in self.check(texts, **kwargs)]

    # -- saving ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The filter's configuration as plain JSON-able data (no pickle, no weights)."""
        to_dict = getattr(self.classifier, "to_dict", None)
        if not callable(to_dict):
            raise ValueError(
                f"classifier {type(self.classifier).__name__} has no to_dict(); only "
                f"{CLASSIFIER_TYPES} classifiers (or ones with to_dict/from_dict) can be saved"
            )
        return {"classifier": to_dict(), "policy": self.policy.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SafetyFilter:
        unknown = sorted(set(values) - {"classifier", "policy"})
        if unknown:
            raise ValueError(f"SafetyFilter: unknown key(s) {unknown}; allowed: classifier, policy")
        classifier = classifier_from_dict(values["classifier"]) if "classifier" in values else None
        policy = Policy.from_dict(values["policy"]) if "policy" in values else None
        return cls(classifier, policy)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON."""
        Path(path).write_text(
            json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8"
        )

    @classmethod
    def load(cls, path: str | Path) -> SafetyFilter:
        """Inverse of :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

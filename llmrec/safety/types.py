"""Verdicts, reasons and the classifier protocol shared by every safety backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["ACTIONS", "Reason", "SafetyClassifier", "Verdict"]

ACTIONS = ("block", "allow")


@dataclass(frozen=True)
class Reason:
    """One rule or classifier decision about one text.

    ``rule`` names what fired: a classifier (``"classifier:offline"``), or a policy rule
    (``"policy.blocked_terms"``, ``"policy.blocked_patterns"``, ``"policy.blocked_attributes"``,
    ``"policy.deny_items"``, ``"policy.allow_items"``).
    """

    rule: str = field(metadata={"help": "The classifier or policy rule that fired."})
    label: str = field(metadata={"help": "The label (e.g. 'threat'), or 'policy' for rules."})
    action: str = field(default="block", metadata={"help": f"One of {ACTIONS}."})
    score: float | None = field(default=None, metadata={"help": "The label's score in [0, 1]."})
    threshold: float | None = field(
        default=None, metadata={"help": "The policy threshold the score reached (score >= it)."}
    )
    match: str | None = field(
        default=None,
        metadata={
            "help": "What matched: a term, a regex, 'field=value', an item id, or the "
            "classifier's evidence (lexicon entries) when it gives any."
        },
    )

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")
        for name in ("rule", "label"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")

    def __str__(self) -> str:
        parts = [f"{self.action} by {self.rule} [{self.label}]"]
        if self.score is not None and self.threshold is not None:
            parts.append(f"score {self.score:.3f} >= {self.threshold:.3f}")
        if self.match:
            parts.append(f"match {self.match!r}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    """The filter's decision for one text.

    ``reasons`` lists every rule that would block the text; for an allow-listed item it is the
    single ``policy.allow_items`` reason (action ``"allow"``) that overrode them.
    """

    text: str = field(metadata={"help": "The text checked."})
    blocked: bool = field(metadata={"help": "True: never show this item."})
    scores: dict[str, float] = field(
        default_factory=dict, metadata={"help": "Score per label in [0, 1]."}
    )
    reasons: list[Reason] = field(default_factory=list, metadata={"help": "Why (see class doc)."})

    def __bool__(self) -> bool:
        # `if verdict:` would always be true for a dataclass: refuse it, like numpy arrays do.
        raise TypeError("use verdict.blocked, not the truth value of a Verdict")

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "blocked": self.blocked,
            "scores": dict(self.scores),
            "reasons": [r.to_dict() for r in self.reasons],
        }


@runtime_checkable
class SafetyClassifier(Protocol):
    """A batch scorer: ``score(texts)`` -> label -> (N,) float array of scores in [0, 1].

    Optional extras the filter uses when present: ``explain(texts)`` -> one dict per text of
    label -> evidence string, and ``to_dict()`` (with a ``"type"`` key) for saving.
    """

    name: str

    @property
    def labels(self) -> tuple[str, ...]: ...

    def score(self, texts: list[str]) -> dict[str, np.ndarray]: ...

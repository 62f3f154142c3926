"""The operator's safety policy: thresholds, blocked attributes/terms/regexes, allow/deny lists."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import yaml

from llmrec.safety.matching import compile_pattern

__all__ = ["DEFAULT_POLICY_FILE", "Policy", "PolicyError"]

DEFAULT_POLICY_FILE = "safety_policy.yaml"
_SCALARS = (str, int, float, bool)


class PolicyError(ValueError):
    """An invalid policy; the message names the file (when there is one) and the key."""


def _where(source: str | None) -> str:
    return f"policy {source}" if source else "policy"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Policy:
    """What must never reach a user, besides what the classifier flags.

    A text is blocked when any label's score >= its threshold, or when a term, regex or
    attribute rule matches, or when its item id is in ``deny_items``. An id in
    ``allow_items`` is never blocked, except by ``deny_items`` (an explicit deny always wins).
    """

    thresholds: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "Per-label threshold in [0, 1]; a score >= it blocks the text."},
    )
    default_threshold: float = field(
        default=0.5, metadata={"help": "Threshold in [0, 1] for labels not in thresholds."}
    )
    blocked_attributes: dict[str, list[Any]] = field(
        default_factory=dict,
        metadata={
            "help": "Item field -> blocked values, e.g. {'age_rating': ['NC-17']}; a list-valued "
            "field (genres) is blocked when any element is; strings compare case-insensitively."
        },
    )
    blocked_terms: list[str] = field(
        default_factory=list,
        metadata={"help": "Literal terms, whole words, case-insensitive (see match_inflections)."},
    )
    blocked_patterns: list[str] = field(
        default_factory=list,
        metadata={"help": "Python regexes, case-insensitive, matched as whole words only."},
    )
    match_inflections: bool = field(
        default=True,
        metadata={"help": "Terms also match their -s/-es/-ed/-d/-ing forms ('kill' -> 'kills')."},
    )
    allow_items: list[str] = field(
        default_factory=list, metadata={"help": "Item ids never blocked (unless denied)."}
    )
    deny_items: list[str] = field(
        default_factory=list, metadata={"help": "Item ids always blocked."}
    )
    description: str = field(default="", metadata={"help": "Free text: what this policy is for."})

    def __post_init__(self) -> None:
        _validate(self, None)

    # -- lookups -------------------------------------------------------------------------
    def threshold(self, label: str) -> float:
        """The threshold that applies to ``label``."""
        return float(self.thresholds.get(label, self.default_threshold))

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str | None = None) -> Policy:
        """Build from a mapping; PolicyError names the unknown/invalid key (and ``source``)."""
        where = _where(source)
        if not isinstance(values, dict):
            raise PolicyError(f"{where}: must be a mapping of keys, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in values if k not in known)
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
        policy = cls.__new__(cls)
        for f in fields(cls):
            default = f.default_factory() if callable(f.default_factory) else f.default
            setattr(policy, f.name, values.get(f.name, default))
        _validate(policy, source)
        return policy

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a ``.yaml``/``.yml`` or ``.json`` policy file (an empty file = all defaults)."""
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"policy {path}: no such file")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                values = json.loads(text) if text.strip() else {}
            else:
                values = yaml.safe_load(text) or {}
        except (yaml.YAMLError, json.JSONDecodeError) as err:
            raise PolicyError(f"policy {path}: cannot be parsed: {err}") from err
        return cls.from_dict(values, source=str(path))

    @classmethod
    def default(cls) -> Policy:
        """The shipped default policy, ``prompts/safety_policy.yaml``."""
        from llmrec.data.template import prompts_dir

        return cls.from_file(prompts_dir() / DEFAULT_POLICY_FILE)


def _validate(p: Policy, source: str | None) -> None:
    """Type- and range-check every field in place (lists copied, numbers made float)."""
    where = _where(source)

    def fail(key: str, message: str) -> NoReturn:
        raise PolicyError(f"{where}: {key} {message}")

    def check_threshold(key: str, value: object) -> float:
        if not _is_number(value) or math.isnan(value) or not 0.0 <= value <= 1.0:
            fail(key, f"must be a number in [0, 1], got {value!r}")
        return float(value)  # type: ignore[arg-type]

    p.default_threshold = check_threshold("default_threshold", p.default_threshold)
    if not isinstance(p.thresholds, dict):
        fail("thresholds", f"must be a mapping of label -> number, got {p.thresholds!r}")
    checked: dict[str, float] = {}
    for label, value in p.thresholds.items():
        if not isinstance(label, str) or not label:
            fail("thresholds", f"has a label that is not a non-empty string: {label!r}")
        checked[label] = check_threshold(f"thresholds[{label!r}]", value)
    p.thresholds = checked

    for key in ("blocked_terms", "blocked_patterns", "allow_items", "deny_items"):
        value = getattr(p, key)
        if not isinstance(value, (list, tuple)):
            fail(key, f"must be a list of strings, got {type(value).__name__} {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                fail(f"{key}[{i}]", f"must be a non-empty string, got {item!r}")
        setattr(p, key, list(value))
    for i, pattern in enumerate(p.blocked_patterns):
        try:
            compile_pattern(pattern)
        except re.error as err:
            fail(f"blocked_patterns[{i}]", f"is not a valid regex {pattern!r}: {err}")

    if not isinstance(p.blocked_attributes, dict):
        fail(
            "blocked_attributes",
            f"must be a mapping of field -> values, got {p.blocked_attributes!r}",
        )
    attrs: dict[str, list[Any]] = {}
    for name, values in p.blocked_attributes.items():
        key = f"blocked_attributes[{name!r}]"
        if not isinstance(name, str) or not name:
            fail("blocked_attributes", f"has a field name that is not a string: {name!r}")
        if isinstance(values, _SCALARS):
            values = [values]
        if not isinstance(values, (list, tuple)) or not values:
            fail(key, f"must be a non-empty list of values, got {values!r}")
        for value in values:
            if not isinstance(value, _SCALARS):
                fail(key, f"values must be strings, numbers or booleans, got {value!r}")
        attrs[name] = list(values)
    p.blocked_attributes = attrs

    if not isinstance(p.match_inflections, bool):
        fail("match_inflections", f"must be true or false, got {p.match_inflections!r}")
    if not isinstance(p.description, str):
        fail("description", f"must be a string, got {p.description!r}")

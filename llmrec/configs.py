"""One strict way to build config dataclasses from plain dicts (JSON, YAML, CLI)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def strict_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """``cls(**values)``, but an unknown key is a ``ValueError`` naming it and the allowed
    keys (never silently ignored, never a bare ``TypeError``)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    return cls(**values)

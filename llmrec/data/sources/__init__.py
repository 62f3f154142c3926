"""Named datasets. Each source is a function ``(config, cache, source) -> RecDataset``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from llmrec.data.config import LoadConfig
from llmrec.data.dataset import RecDataset

SourceFn = Callable[[LoadConfig | None, "str | Path | None", "str | None"], RecDataset]
_REGISTRY: dict[str, SourceFn] = {}
_PATTERNS: list[tuple[str, SourceFn]] = []  # (prefix, fn) e.g. "amazon-"


def register(name: str, *, prefix: bool = False) -> Callable[[SourceFn], SourceFn]:
    """Register a named dataset (``prefix=True``: every name starting with ``name``)."""

    def deco(fn: SourceFn) -> SourceFn:
        if prefix:
            _PATTERNS.append((name, fn))
        else:
            _REGISTRY[name] = fn
        return fn

    return deco


def lookup(name: str) -> SourceFn | None:
    """The source for ``name``; prefix sources get the full name as ``name=``."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for pre, fn in _PATTERNS:
        if name.startswith(pre):
            return functools.partial(fn, name=name)
    return None


def available() -> list[str]:
    """Registered names (prefix sources shown as ``prefix<...>``)."""
    return sorted(_REGISTRY) + [f"{p}<...>" for p, _ in _PATTERNS]


from llmrec.data.sources import amazon, grouplens, movielens  # noqa: E402,F401  (register)

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


def groups_from_dict(groups: tuple[type, ...], values: dict[str, Any]) -> tuple:
    """One instance of each dataclass in ``groups`` from one flat dict (each key goes to the
    group that has that field); an unknown key is a ``ValueError`` naming it."""
    owner = {f.name: cls for cls in groups for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(owner))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; allowed: {sorted(owner)}")
    return tuple(strict_from_dict(cls, {k: v for k, v in values.items() if owner[k] is cls})
                 for cls in groups)


def parse_dataclass_args(parser: Any, groups: tuple[type, ...], argv: list[str]) -> tuple:
    """Dataclass groups from flags (an ``HfArgumentParser`` over ``groups``), or from one
    JSON/YAML file given first, whose values later flags override. Every key of the file must
    belong to one group; an unknown key is an error naming the file and the key."""
    from pathlib import Path

    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        path = Path(argv[0])
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            import json

            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of argument names to values")
        try:
            built = groups_from_dict(groups, values)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from err
        if len(argv) == 1:
            return built
        parser.set_defaults(**{k: v for g in built for k, v in vars(g).items()})
        argv = argv[1:]
    return tuple(parser.parse_args_into_dataclasses(args=argv))

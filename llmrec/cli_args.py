"""Command-line options generated from config dataclasses (one source of truth for help)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def _scalar(tp: Any) -> tuple[type | None, bool]:
    """The scalar type behind ``tp`` (unwrapping ``X | None``) and whether None is allowed."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 and inner[0] in (int, float, str, bool) else None,
                type(None) in args)
    return (tp if tp in (int, float, str, bool) else None), False


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "",
                       skip: tuple[str, ...] = ()) -> None:
    """One ``--prefix-name`` option per scalar field of ``cls``, help from its metadata."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind, nullable = _scalar(hints[f.name])
        if kind is None:
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = (f.metadata.get("help", "") + f" (default: {default})").replace("%", "%%")
        dest = prefix + f.name
        if kind is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(flag, dest=dest, type=kind, default=None,
                               metavar=kind.__name__.upper() + ("|None" if nullable else ""),
                               help=help_text)


def dataclass_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "",
                        base: dict[str, Any] | None = None) -> Any:
    """Build ``cls`` from the options the user gave (others keep their defaults)."""
    values = dict(base or {})
    for f in dataclasses.fields(cls):
        value = getattr(args, prefix + f.name, None)
        if value is not None:
            values[f.name] = value
    return cls(**values)

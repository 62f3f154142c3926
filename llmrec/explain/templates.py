"""Explanation templates: Jinja2 files in ``prompts/`` (replaceable, one per language)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from llmrec.data.template import ItemTemplate, prompts_dir

KINDS = ("history", "general", "popular", "neutral")
NEUTRAL = "Recommended for you."


def andjoin(values: Sequence[Any], word: str = "and", sep: str = ", ") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"`` (the last separator is ``word``)."""
    values = [str(v) for v in values]
    if len(values) <= 1:
        return "".join(values)
    return f"{sep.join(values[:-1])} {word} {values[-1]}"


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["andjoin"] = andjoin
    return env


class ExplanationTemplate:
    """One Jinja2 template rendering an explanation context to a sentence.

    Context: ``kind`` (one of :data:`KINDS`), ``item`` (recommended title), ``titles`` (cited
    history titles, strongest first), ``attributes`` (``{field, values, similarity}``),
    ``values`` (shared list-field values, capped), ``evidence`` (``{item_id, title,
    weight}``), ``fields`` (the recommended item's attributes), ``language``.
    """

    def __init__(self, source: str, name: str = "<string>") -> None:
        self.source, self.name = source, name
        try:
            self._template = _environment().from_string(source)
        except jinja2.TemplateSyntaxError as err:
            raise ValueError(f"explanation template {name}:{err.lineno}: syntax error: "
                             f"{err.message}") from err

    @classmethod
    def resolve(cls, spec: str | Path | None, default: str) -> ExplanationTemplate:
        """From a builtin name (``explain_de``), a ``.jinja`` path, a template string, or
        None (the builtin ``default``)."""
        if spec is None:
            path = prompts_dir() / f"{default}.jinja"
            if not path.is_file():
                known = sorted(p.stem for p in prompts_dir().glob("explain*.jinja"))
                raise ValueError(f"explanation template: no builtin {default!r}; shipped: "
                                 f"{known}")
            spec = path
        item = ItemTemplate.resolve(spec)
        return cls(item.source, item.name)

    def render(self, context: Mapping[str, Any]) -> str:
        """The sentence, whitespace collapsed (an unknown variable is a ValueError)."""
        try:
            text = self._template.render(**context)
        except jinja2.UndefinedError as err:
            raise ValueError(f"explanation template {self.name}: {err.message}; variables: "
                             f"{sorted(context)}") from err
        return " ".join(text.split())

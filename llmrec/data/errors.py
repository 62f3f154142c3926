"""Errors and drop bookkeeping for the data layer.

Two ways bad input is handled: a :class:`DataError` that names file, line and column, or an
explicit, counted and logged drop recorded in a :class:`LoadReport` the user can print.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger("llmrec.data")


class DataError(ValueError):
    """Bad input data. ``str(err)`` reads ``file:line: column 'col': message``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file, self.line, self.column, self.reason = file, line, column, message
        where = file or "<data>"
        if line is not None:
            where += f":{line}"
        if column is not None:
            where += f": column '{column}'"
        super().__init__(f"{where}: {message}")


@dataclass
class Drop:
    """Rows removed for one reason: how many, and where the first few were."""

    stage: str = field(metadata={"help": "Where it happened: 'load', 'preprocess', 'split'."})
    reason: str = field(metadata={"help": "Why the rows were removed, in words."})
    count: int = field(metadata={"help": "How many rows (or users / items) were removed."})
    unit: str = field(default="rows", metadata={"help": "What was counted."})
    examples: list[str] = field(
        default_factory=list, metadata={"help": "Up to 5 locations, e.g. 'u.inter:17'."}
    )


@dataclass
class LoadReport:
    """Everything the loader and preprocessing removed or changed, in order."""

    drops: list[Drop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def drop(
        self,
        stage: str,
        reason: str,
        count: int,
        *,
        unit: str = "rows",
        examples: list[str] | None = None,
    ) -> None:
        """Record (and log at WARNING) a drop; a zero count records nothing."""
        if count <= 0:
            return
        ex = list(examples or [])[:5]
        self.drops.append(Drop(stage, reason, int(count), unit, ex))
        logger.warning(
            "%s: dropped %d %s: %s%s",
            stage,
            count,
            unit,
            reason,
            f" (e.g. {', '.join(ex)})" if ex else "",
        )

    def note(self, text: str) -> None:
        """Record an informational line (a rule applied, a source used)."""
        self.notes.append(text)
        logger.info(text)

    def total(self, unit: str = "rows") -> int:
        """How many ``unit`` were dropped in all."""
        return sum(d.count for d in self.drops if d.unit == unit)

    def summary(self) -> str:
        """A human-readable multi-line summary."""
        if not self.drops and not self.notes:
            return "nothing dropped"
        lines = [f"- {n}" for n in self.notes]
        for d in self.drops:
            ex = f" (e.g. {', '.join(d.examples)})" if d.examples else ""
            lines.append(f"- [{d.stage}] dropped {d.count} {d.unit}: {d.reason}{ex}")
        return "\n".join(lines)

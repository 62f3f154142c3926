"""Evaluation results: :class:`EvalReport` and side-by-side markdown comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvalReport", "compare_markdown", "protocol_line"]


def protocol_line(protocol: dict[str, Any], *, with_ks: bool = True) -> str:
    """One human-readable sentence describing an evaluation protocol."""
    masking = "on" if protocol.get("mask_history") else "off"
    ks = ", ".join(str(k) for k in protocol.get("ks", []))
    return (
        f"Protocol: {protocol.get('ranking', 'full')} ranking over "
        f"{protocol.get('n_items', '?')} items; history masking {masking}; "
        f"ties: {protocol.get('tie_policy', '?')}" + (f"; K in {{{ks}}}." if with_ks else ".")
    )


def _comparable(protocol: dict[str, Any]) -> dict[str, Any]:
    """The protocol minus the list of cut-offs, which does not change any shared metric."""
    return {k: v for k, v in protocol.items() if k != "ks"}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@dataclass
class EvalReport:
    """Metrics of one scorer on one set of cases, with the protocol they were computed under."""

    name: str = field(metadata={"help": "Scorer/model name shown in tables."})
    metrics: dict[str, float] = field(
        metadata={"help": 'Mean over cases (or catalog-level), keys like "ndcg@10", "auc".'}
    )
    n_cases: int = field(metadata={"help": "Number of evaluation cases."})
    protocol: dict[str, Any] = field(
        metadata={"help": "ranking, n_items, mask_history, tie_policy, ks, ..."}
    )
    groups: dict[str, EvalReport] = field(
        default_factory=dict,
        metadata={"help": 'Per-subset reports, e.g. {"warm": ..., "cold": ...}; empty if none.'},
    )
    skipped: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Requested metrics that were not computed -> reason."},
    )
    per_case: dict[str, Any] | None = field(
        default=None, repr=False, compare=False,
        metadata={"help": "Per-case values (numpy arrays in case order) when "
                  "EvalConfig(keep_cases=True); not serialised."},
    )

    def __getitem__(self, key: str) -> float:
        """Metric value by key, e.g. ``report["ndcg@10"]``."""
        if key in self.metrics:
            return self.metrics[key]
        base = key.split("@", 1)[0]
        reason = f" ({base} was skipped: {self.skipped[base]})" if base in self.skipped else ""
        raise KeyError(
            f"unknown metric {key!r}{reason}; available: {', '.join(self.metrics) or 'none'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (groups nested the same way)."""
        return {
            "name": self.name,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "n_cases": int(self.n_cases),
            "protocol": dict(self.protocol),
            "groups": {g: r.to_dict() for g, r in self.groups.items()},
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            metrics=dict(data["metrics"]),
            n_cases=int(data["n_cases"]),
            protocol=dict(data["protocol"]),
            groups={g: cls.from_dict(r) for g, r in data.get("groups", {}).items()},
            skipped=dict(data.get("skipped", {})),
        )

    def to_markdown(self) -> str:
        """Markdown table, one row per metric, one column per group (all, warm, cold)."""
        columns = [("all", self), *self.groups.items()]
        header = "| metric | " + " | ".join(f"{g} (n={r.n_cases})" for g, r in columns) + " |"
        lines = [
            f"**{self.name}**: {self.n_cases} cases. {protocol_line(self.protocol)}",
            "",
            header,
            "|---" * (len(columns) + 1) + "|",
        ]
        for key in self.metrics:
            cells = " | ".join(_fmt(r.metrics.get(key)) for _, r in columns)
            lines.append(f"| {key} | {cells} |")
        if self.skipped:
            lines += [
                "",
                "Not computed: " + "; ".join(f"{m} ({why})" for m, why in self.skipped.items()),
            ]
        return "\n".join(lines)


def compare_markdown(
    reports: Sequence[EvalReport],
    keys: Sequence[str] = ("ndcg@10", "hr@10", "mrr@10", "auc", "coverage@10"),
) -> str:
    """One markdown table, one row per report; the protocol line underneath.

    Missing metrics show as ``n/a``. If the reports were computed under different protocols
    (other than the set of K), a warning lists each report's protocol: such numbers are not
    comparable.
    """
    if not reports:
        raise ValueError("compare_markdown needs at least one report")
    lines = [
        "| model | n | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for r in reports:
        cells = " | ".join(_fmt(r.metrics.get(k)) for k in keys)
        lines.append(f"| {r.name} | {r.n_cases} | {cells} |")
    lines += ["", protocol_line(reports[0].protocol, with_ks=False)]
    if any(_comparable(r.protocol) != _comparable(reports[0].protocol) for r in reports[1:]):
        lines.append("")
        lines.append("**Warning: protocols differ, numbers are not comparable.**")
        lines += [f"- {r.name}: {protocol_line(r.protocol, with_ks=False)}" for r in reports]
    return "\n".join(lines)

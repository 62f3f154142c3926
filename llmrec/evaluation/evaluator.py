"""Full-ranking evaluation harness shared by baselines and models.

Any callable ``scorer(users, histories) -> (B, n_items) scores`` (higher = better) plugs in;
one with a true ``needs_times`` attribute is called ``scorer(users, histories, times)`` with
the cases' history timestamps (models that read time gaps).
Every case ranks its target against the whole catalog; rank metrics use the expected value
under a uniform random tie-break (see :mod:`llmrec.evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from llmrec.data.cases import EvalCases
from llmrec.evaluation import metrics as M
from llmrec.evaluation.report import EvalReport, compare_markdown

__all__ = ["EvalConfig", "EvalReport", "Scorer", "compare_markdown", "evaluate"]

TIE_POLICY = "expected value under uniform random tie-break"
RANK_METRICS: dict[str, Callable[[M.RankStats, int], torch.Tensor]] = {
    "hr": M.hit_rate_at_k,
    "ndcg": M.ndcg_at_k,
    "mrr": M.mrr_at_k,
    "recall": M.recall_at_k,
}
CASE_METRICS = (*RANK_METRICS, "auc")  # averaged over cases
LIST_METRICS = ("coverage", "popularity", "gini")  # from the top-K lists
ALL_METRICS = (*CASE_METRICS, *LIST_METRICS)


def _is_pos_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 1


class Scorer(Protocol):
    """Scores every catalog item for a batch of cases: (B, n_items), higher = better."""

    def __call__(
        self, users: np.ndarray, histories: list[np.ndarray]
    ) -> torch.Tensor | np.ndarray: ...


@dataclass
class EvalConfig:
    """How :func:`evaluate` ranks and what it reports."""

    ks: tuple[int, ...] = field(
        default=(5, 10, 20), metadata={"help": "Cut-offs K for @K metrics (sorted, deduplicated)."}
    )
    mask_history: bool = field(
        default=False,
        metadata={
            "help": "Exclude each case's history items from ranking. RecBole's sequential "
            "protocol masks nothing at ranking time; use False to compare with RecBole."
        },
    )
    batch_size: int = field(default=256, metadata={"help": "Cases scored per scorer call."})
    metrics: tuple[str, ...] = field(
        default=ALL_METRICS,
        metadata={"help": f"Metrics to report, any of: {', '.join(ALL_METRICS)}."},
    )
    device: str = field(default="cpu", metadata={"help": "Torch device for metric computation."})
    keep_cases: bool = field(
        default=False,
        metadata={"help": "Also return every case's value of the per-case metrics "
                  "(EvalReport.per_case), e.g. for paired comparisons of two models."},
    )

    def __post_init__(self) -> None:
        ks = tuple(self.ks) if isinstance(self.ks, (list, tuple)) else (self.ks,)
        if not ks or not all(_is_pos_int(k) for k in ks):
            raise ValueError(
                f"EvalConfig.ks must be a non-empty tuple of ints >= 1, got {self.ks!r}"
            )
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not isinstance(self.mask_history, bool):
            raise ValueError(
                f"EvalConfig.mask_history must be True or False, got {self.mask_history!r}"
            )
        if not _is_pos_int(self.batch_size):
            raise ValueError(f"EvalConfig.batch_size must be an int >= 1, got {self.batch_size!r}")
        self.batch_size = int(self.batch_size)
        names = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
        unknown = [m for m in names if m not in ALL_METRICS]
        if not names or unknown:
            what = f"unknown metric(s) {unknown!r}" if unknown else "must not be empty"
            raise ValueError(f"EvalConfig.metrics: {what}; allowed: {', '.join(ALL_METRICS)}")
        self.metrics = tuple(dict.fromkeys(names))
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"EvalConfig.device must be a torch device string like 'cpu' or 'cuda:0', "
                f"got {self.device!r}"
            ) from err


def _as_scores(raw: Any, n_rows: int, n_items: int, device: torch.device) -> torch.Tensor:
    """Validate a scorer's output and return it as a float tensor (n_rows, n_items) on device."""
    if not isinstance(raw, (torch.Tensor, np.ndarray)):
        kind = type(raw).__name__
        raise TypeError(f"scorer must return a torch.Tensor or np.ndarray, got {kind}")
    if isinstance(raw, np.ndarray) and not raw.flags.writeable:
        raw = raw.copy()  # torch warns on read-only arrays, e.g. np.broadcast_to views
    scores = torch.as_tensor(raw).to(device)
    if tuple(scores.shape) != (n_rows, n_items):
        raise ValueError(
            f"scorer returned scores of shape {tuple(scores.shape)}, expected "
            f"(batch, n_items) = ({n_rows}, {n_items})"
        )
    if not scores.is_floating_point():
        scores = scores.to(torch.float64)
    if torch.isnan(scores).any():
        raise ValueError(
            f"scorer returned NaN scores in {int(torch.isnan(scores).any(1).sum())} "
            f"of {n_rows} rows"
        )
    return scores


def evaluate(
    scorer: Scorer,
    cases: EvalCases,
    config: EvalConfig | None = None,
    *,
    item_popularity: np.ndarray | None = None,
    name: str = "model",
) -> EvalReport:
    """Full-ranking evaluation of ``scorer`` on ``cases``.

    ``popularity@K`` needs ``item_popularity`` ((n_items,), e.g. training interaction counts,
    see :attr:`PopularityScorer.popularity`); without it the metric is left out and recorded in
    ``report.skipped``, so the default config works with or without it. If ``cases.is_cold`` is
    set, ``report.groups`` holds "warm" and "cold" reports from the same pass (no re-scoring;
    an empty group is omitted).
    """
    config = config or EvalConfig()
    if not callable(scorer):
        raise TypeError(f"scorer must be callable, got {type(scorer).__name__}")
    if len(cases) == 0:
        raise ValueError("evaluate: cases is empty")
    device, n_items = torch.device(config.device), cases.n_items
    skipped: dict[str, str] = {}
    pop = None
    if "popularity" in config.metrics:
        if item_popularity is None:
            skipped["popularity"] = "item_popularity was not given to evaluate()"
        else:
            pop = torch.as_tensor(np.asarray(item_popularity, dtype=np.float64))
            if pop.shape != (n_items,) or torch.isnan(pop).any():
                raise ValueError(
                    f"item_popularity must be a NaN-free array of shape ({n_items},), "
                    f"got shape {tuple(pop.shape)}"
                )
    case_keys = [
        f"{m}@{k}" if m != "auc" else m
        for m in config.metrics
        if m in CASE_METRICS
        for k in (config.ks if m != "auc" else (0,))
    ]
    want_lists = any(m in LIST_METRICS for m in config.metrics)
    group_names = ["all"] if cases.is_cold is None else ["all", "warm", "cold"]
    sums = {
        g: {key: torch.zeros((), dtype=torch.float64, device=device) for key in case_keys}
        for g in group_names
    }
    counts = dict.fromkeys(group_names, 0)
    kept: dict[str, list[np.ndarray]] = {key: [] for key in case_keys}
    accs = {g: M.ExposureAccumulator(n_items, config.ks, pop, device) for g in group_names}

    needs_times = bool(getattr(scorer, "needs_times", False))
    if needs_times and cases.history_times is None:
        raise ValueError("this scorer reads time gaps: the cases need history_times (splits "
                         "made by RecDataset.split carry them)")
    for batch in cases.batches(config.batch_size):
        b = len(batch)
        args = (batch.users, batch.histories) + ((batch.history_times,) if needs_times else ())
        scores = _as_scores(scorer(*args), b, n_items, device)  # (B, n)
        mask = M.history_mask(batch.histories, n_items, device) if config.mask_history else None
        targets = torch.as_tensor(np.asarray(batch.targets, dtype=np.int64), device=device)
        stats = M.rank_stats(scores, targets, mask)
        rows = {"all": torch.ones(b, dtype=torch.bool, device=device)}
        if batch.is_cold is not None:
            cold = torch.as_tensor(np.asarray(batch.is_cold, dtype=bool), device=device)
            rows |= {"warm": ~cold, "cold": cold}
        for g in group_names:
            counts[g] += int(rows[g].sum())
        for key in case_keys:
            m, _, k = key.partition("@")
            values = M.auc(stats) if m == "auc" else RANK_METRICS[m](stats, int(k))  # (B,)
            for g in group_names:
                sums[g][key] += values[rows[g]].sum()
            if config.keep_cases:
                kept[key].append(values.double().cpu().numpy())
        if want_lists:
            items, valid = M.top_k_lists(scores, max(config.ks), mask)  # (B, K), (B, K)
            for g in group_names:
                accs[g].update(items[rows[g]], valid[rows[g]])

    protocol = {
        "ranking": "full",
        "n_items": n_items,
        "mask_history": config.mask_history,
        "tie_policy": TIE_POLICY,
        "ks": list(config.ks),
    }
    reports: dict[str, EvalReport] = {}
    for g in group_names:
        if counts[g] == 0:
            continue
        means = {key: float(sums[g][key]) / counts[g] for key in case_keys}
        if want_lists:
            lists = accs[g].finalize()
            means |= {
                f"{m}@{k}": lists[f"{m}@{k}"]
                for m in config.metrics
                if m in LIST_METRICS and m not in skipped
                for k in config.ks
            }
        label = name if g == "all" else f"{name}/{g}"
        reports[g] = EvalReport(label, means, counts[g], dict(protocol), skipped=dict(skipped))
    report = reports.pop("all")
    report.groups = reports
    if config.keep_cases:
        report.per_case = {key: np.concatenate(v) for key, v in kept.items()}
    return report

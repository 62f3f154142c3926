"""Full-ranking evaluation: metrics, the shared harness and reference baselines."""

from llmrec.evaluation.baselines import PopularityScorer, RandomScorer
from llmrec.evaluation.evaluator import EvalConfig, Scorer, evaluate
from llmrec.evaluation.metrics import (
    ExposureAccumulator,
    RankStats,
    auc,
    gini,
    history_mask,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    rank_stats,
    recall_at_k,
    top_k_lists,
)
from llmrec.evaluation.report import EvalReport, compare_markdown

__all__ = [
    "EvalConfig",
    "EvalReport",
    "ExposureAccumulator",
    "PopularityScorer",
    "RandomScorer",
    "RankStats",
    "Scorer",
    "auc",
    "compare_markdown",
    "evaluate",
    "gini",
    "history_mask",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "rank_stats",
    "recall_at_k",
    "top_k_lists",
]

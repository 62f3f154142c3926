"""llmrec: LLM-powered, text-aware sequential recommendation with a content-safety filter."""

from llmrec import data, evaluation
from llmrec.data import (
    DataError,
    ItemCatalog,
    LoadConfig,
    PreprocessConfig,
    RecDataset,
    SplitConfig,
    load_dataset,
)
from llmrec.evaluation import EvalConfig, EvalReport, PopularityScorer, evaluate
from llmrec.version import __version__

__all__ = [
    "DataError",
    "EvalConfig",
    "EvalReport",
    "ItemCatalog",
    "LoadConfig",
    "PopularityScorer",
    "PreprocessConfig",
    "RecDataset",
    "SplitConfig",
    "__version__",
    "data",
    "evaluate",
    "evaluation",
    "load_dataset",
]

"""llmrec: LLM-powered, text-aware sequential recommendation with a content-safety filter."""

from llmrec import data, evaluation, models, recommender, train
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
from llmrec.models import EncoderConfig, LoraSettings, ModelConfig, RetrievalConfig
from llmrec.recommender import Recommendation, RecommendationList, Recommender
from llmrec.train import FitResult, TrainConfig
from llmrec.version import __version__

__all__ = [
    "DataError",
    "EncoderConfig",
    "EvalConfig",
    "EvalReport",
    "FitResult",
    "ItemCatalog",
    "LoadConfig",
    "LoraSettings",
    "ModelConfig",
    "PopularityScorer",
    "PreprocessConfig",
    "RecDataset",
    "Recommendation",
    "RecommendationList",
    "Recommender",
    "RetrievalConfig",
    "SplitConfig",
    "TrainConfig",
    "__version__",
    "data",
    "evaluate",
    "evaluation",
    "load_dataset",
    "models",
    "recommender",
    "train",
]

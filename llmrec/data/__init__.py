"""Data layer: item catalogs, interactions, loaders, preprocessing and splits."""

from llmrec.data.cases import EvalCases
from llmrec.data.catalog import ItemCatalog
from llmrec.data.config import InteractionColumns, ItemColumns, LoadConfig
from llmrec.data.dataset import DatasetStats, Interactions, RecDataset
from llmrec.data.errors import DataError, Drop, LoadReport
from llmrec.data.load import load_dataset
from llmrec.data.preprocess import PreprocessConfig, preprocess
from llmrec.data.sources import available as available_datasets
from llmrec.data.split import Split, SplitConfig, split
from llmrec.data.template import ItemTemplate

__all__ = [
    "DataError",
    "DatasetStats",
    "Drop",
    "EvalCases",
    "InteractionColumns",
    "Interactions",
    "ItemCatalog",
    "ItemColumns",
    "ItemTemplate",
    "LoadConfig",
    "LoadReport",
    "PreprocessConfig",
    "RecDataset",
    "Split",
    "SplitConfig",
    "available_datasets",
    "load_dataset",
    "preprocess",
    "split",
]

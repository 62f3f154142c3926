"""Training on accelerate: configuration, windows, the trainer."""

from llmrec.train.config import TrainConfig
from llmrec.train.trainer import EpochLog, FitResult, Trainer

__all__ = ["EpochLog", "FitResult", "TrainConfig", "Trainer"]

"""Models: the item-text encoder and its cache, the sequence model and the scoring head."""

from llmrec.models.ann import FaissRetriever, RetrievalConfig
from llmrec.models.config import ModelConfig
from llmrec.models.embedding_cache import EmbeddingCache
from llmrec.models.encoder import ItemTextEncoder
from llmrec.models.encoder_config import EncoderConfig, LoraSettings
from llmrec.models.head import AttentionScoringHead, HeadOutput
from llmrec.models.model import ModelScorer, RankOutput, SeqRecModel, pad_left

__all__ = [
    "AttentionScoringHead",
    "EmbeddingCache",
    "EncoderConfig",
    "FaissRetriever",
    "HeadOutput",
    "ItemTextEncoder",
    "LoraSettings",
    "ModelConfig",
    "ModelScorer",
    "RankOutput",
    "RetrievalConfig",
    "SeqRecModel",
    "pad_left",
]

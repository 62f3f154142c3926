"""Models: the item-text encoder, its configuration and its on-disk embedding cache."""

from llmrec.models.embedding_cache import EmbeddingCache
from llmrec.models.encoder import ItemTextEncoder
from llmrec.models.encoder_config import EncoderConfig, LoraSettings

__all__ = [
    "EmbeddingCache",
    "EncoderConfig",
    "ItemTextEncoder",
    "LoraSettings",
]

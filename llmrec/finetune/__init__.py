"""Domain-adaptive LoRA fine-tuning of the item encoder (contrastive, masked-LM, causal-LM)."""

from llmrec.finetune.config import (
    OBJECTIVES,
    AdaptModelArguments,
    AdaptTrainingArguments,
    CorpusArguments,
)
from llmrec.finetune.corpus import Corpus, cointeraction_pairs, load_corpus
from llmrec.finetune.objectives import AdaptModule, info_nce
from llmrec.finetune.trainer import AdaptResult, DomainAdapter, adapt, resolve_objective

__all__ = [
    "OBJECTIVES",
    "AdaptModelArguments",
    "AdaptModule",
    "AdaptResult",
    "AdaptTrainingArguments",
    "Corpus",
    "CorpusArguments",
    "DomainAdapter",
    "adapt",
    "cointeraction_pairs",
    "info_nce",
    "load_corpus",
    "resolve_objective",
]

"""Configuration of the recommender model: item tower, sequence encoder, scoring head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmrec.configs import strict_from_dict

MODES = ("inductive", "transductive", "id")
PROJECTIONS = ("linear", "mlp")
DEFAULT_HIDDEN = 64  # hidden_size=None in 'transductive' and 'id' mode
INDUCTIVE_HIDDEN = 128  # hidden_size=None in 'inductive' mode


@dataclass
class ModelConfig:
    """Sizes and switches of :class:`~llmrec.models.model.SeqRecModel`."""

    mode: str = field(
        default="transductive",
        metadata={
            "help": f"One of {MODES}: 'inductive' = item text only (works for items never "
            "seen in training); 'transductive' = text + a learned item-id embedding; 'id' = "
            "item-id embeddings only (SASRec-style baseline; text is not used)."
        },
    )
    hidden_size: int | None = field(
        default=None,
        metadata={"help": "Width of the sequence model and the item vectors; None = "
                  f"{INDUCTIVE_HIDDEN} in 'inductive' mode, where the text projection is the "
                  f"whole item representation, {DEFAULT_HIDDEN} otherwise (README: text-only "
                  "quality by width)."},
    )
    n_layers: int = field(default=2, metadata={"help": "Transformer blocks over the history."})
    n_heads: int = field(default=2, metadata={"help": "Attention heads (sequence and head)."})
    inner_size: int = field(default=256, metadata={"help": "Feed-forward width."})
    dropout: float = field(default=0.3, metadata={"help": "Dropout on embeddings and blocks."})
    max_len: int = field(
        default=50, metadata={"help": "History positions the model reads (most recent kept)."}
    )
    projection: str = field(
        default="mlp", metadata={"help": f"Text-embedding -> hidden map, one of {PROJECTIONS}."}
    )
    head_top_n: int = field(
        default=100,
        metadata={
            "help": "Candidates the attention head re-ranks after dot-product retrieval "
            "(0 turns the head off)."
        },
    )
    time_gaps: bool = field(
        default=False,
        metadata={
            "help": "Also read the time between consecutive history events: a learned "
            "embedding per log2-spaced gap bucket is added to each position's. The model then "
            "needs each history's timestamps (recommend(..., timestamps=...))."
        },
    )
    time_gap_buckets: int = field(
        default=32,
        metadata={"help": "Gap buckets with time_gaps: padding, first item, under a second, "
                          "then one per doubling from 1 s (32 reach ~8 years)."},
    )
    text_dim: int = field(default=384, metadata={"help": "Width of the item text embeddings."})
    n_items: int = field(default=0, metadata={"help": "Catalog size (id embeddings)."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {self.projection!r}")
        if self.hidden_size is None:
            self.hidden_size = INDUCTIVE_HIDDEN if self.mode == "inductive" else DEFAULT_HIDDEN
        for name in ("hidden_size", "n_layers", "n_heads", "inner_size", "max_len", "text_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by n_heads ({self.n_heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.time_gap_buckets < 4:
            raise ValueError(f"time_gap_buckets must be >= 4, got {self.time_gap_buckets}")
        for name in ("head_top_n", "n_items"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return strict_from_dict(cls, data)

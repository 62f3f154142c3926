"""Training configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmrec.configs import strict_from_dict

LOSSES = ("full", "sampled")
SCHEDULES = ("constant", "cosine", "wsd")
PRECISIONS = ("no", "fp16", "bf16")
REPORT_TO = ("tensorboard", "none")
SELECT = ("tolerant", "best")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class TrainConfig:
    """How :class:`~llmrec.train.trainer.Trainer` trains (on ``accelerate``)."""

    epochs: int = field(default=60, metadata={"help": "Maximum number of epochs."})
    batch_size: int = field(default=128, metadata={"help": "Training windows per step."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    lr_schedule: str = field(
        default="constant",
        metadata={"help": f"One of {SCHEDULES}, after warmup_steps of linear warm-up: constant; "
                  "cosine decay to 0 at the last epoch (which ties the result to the epoch "
                  "budget); or 'wsd' (warm-up, stable, decay): constant, then a linear decay to "
                  "0 over the last decay_fraction of the steps."},
    )
    decay_fraction: float = field(
        default=0.3,
        metadata={"help": "Share of the training steps, at the end, over which 'wsd' decays "
                  "the learning rate linearly to 0 (unused by the other schedules)."},
    )
    warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    ema_decay: float = field(
        default=0.0,
        metadata={"help": "Exponential moving average of the recommender's weights, updated "
                  "every optimizer step (e.g. 0.99); validation, selection and the final "
                  "model use the average. 0 = off."},
    )
    average_epochs: int = field(
        default=0,
        metadata={"help": "Uniform average of the recommender's weights at the ends of the "
                  "last N epochs (stochastic weight averaging over the tail of the schedule); "
                  "from the first of them on, validation, selection and the final model use "
                  "the average. 0 = off; not together with ema_decay."},
    )
    loss: str = field(
        default="full",
        metadata={"help": f"One of {LOSSES}: 'full' softmax over the catalog (fits up to ~1e5 "
                  "items), 'sampled' = in-batch + random negatives with log-Q correction."},
    )
    n_negatives: int = field(default=1024, metadata={"help": "Random negatives ('sampled')."})
    window_stride: int = field(
        default=0,
        metadata={"help": "Items between the starts of a user's training windows; 0 = the "
                  "model's max_len (no overlap). Smaller strides give every target at least "
                  "max_len - stride items of context (each target still counts once per "
                  "epoch) at the cost of more windows."},
    )
    head_weight: float = field(
        default=1.0, metadata={"help": "Weight of the attention head's re-ranking loss."}
    )
    head_positions: int = field(
        default=4, metadata={"help": "Positions per window that train the head (last included)."}
    )
    head_epochs: int = field(
        default=0,
        metadata={"help": "0 = the attention head trains alongside retrieval in every epoch. "
                  "N > 0 = retrieval trains alone (each step about half the cost), and after "
                  "the kept retrieval weights are restored the head trains N epochs on them, "
                  "frozen (its learning rate decays linearly to 0); its weight in the final "
                  "score is then chosen on validation once."},
    )
    encoder_epochs: int = field(
        default=0,
        metadata={"help": "Final epochs in which the item encoder's LoRA adapter trains too "
                  "(needs EncoderConfig(lora=...)); 0 = frozen encoder, cached embeddings."},
    )
    encoder_lr: float = field(default=2e-4, metadata={"help": "Learning rate of the adapter."})
    encoder_items: int = field(
        default=128,
        metadata={"help": "Items encoded live per step while the adapter trains (in-batch "
                  "targets + random negatives, log-Q corrected)."},
    )
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0: off)."})
    mixed_precision: str = field(default="no", metadata={"help": f"One of {PRECISIONS}."})
    select: str = field(
        default="tolerant",
        metadata={"help": f"Which validated weights to keep, one of {SELECT}: 'best' = the "
                  "highest validation score; 'tolerant' = the latest evaluation that is not "
                  "significantly below the best (paired per-case test, one-sided, 95 percent), so "
                  "noise on a flat validation curve neither stops training nor rolls it back."},
    )
    patience: int = field(
        default=8,
        metadata={"help": "Stop after this many evaluations without improvement ('best') or "
                  "significantly below the best ('tolerant')."},
    )
    eval_every: int = field(default=1, metadata={"help": "Validate every N epochs."})
    metric: str = field(default="ndcg@10", metadata={"help": "Validation metric to maximise."})
    seed: int = field(default=0, metadata={"help": "Seed for init, shuffling and dropout."})
    output_dir: str | None = field(
        default=None,
        metadata={"help": "Checkpoints (every epoch), metrics.jsonl; None = keep nothing."},
    )
    report_to: str = field(
        default="tensorboard",
        metadata={"help": f"One of {REPORT_TO}: with an output_dir, per-epoch metrics also go "
                  "to <output_dir>/tensorboard and a learning_curve.png is drawn at the end."},
    )
    resume: bool = field(
        default=True, metadata={"help": "Continue from the latest checkpoint in output_dir."}
    )
    cpu: bool = field(default=False, metadata={"help": "Force CPU even if a GPU is present."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    eval_batch_size: int = field(default=256, metadata={"help": "Cases per validation batch."})
    unseen_min_ratio: float = field(
        default=0.5,
        metadata={"help": "Items absent from training get a retrieval offset chosen on "
                  "validation after training: the best NDCG among offsets whose NDCG on "
                  "unseen-item targets is at least this share of that on the others, so new "
                  "items stay discoverable (0 = best overall NDCG, which can bury them; "
                  "id-only models always use 0: their unseen vectors are untrained). "
                  "Applied when validation has at least 20 unseen targets and some offset "
                  "reaches the ratio; otherwise the offset is 0 unless another one is "
                  "significantly better."},
    )

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.select not in SELECT:
            raise ValueError(f"select must be one of {SELECT}, got {self.select!r}")
        if self.report_to not in REPORT_TO:
            raise ValueError(f"report_to must be one of {REPORT_TO}, got {self.report_to!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not _is_count(self.average_epochs) or self.average_epochs > self.epochs:
            raise ValueError(f"average_epochs must be an int in [0, epochs={self.epochs}], "
                             f"got {self.average_epochs!r}")
        if self.average_epochs and self.ema_decay:
            raise ValueError("average_epochs and ema_decay are two ways of averaging the "
                             "weights: set one of them, the other to 0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(
                f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}"
            )
        for name in ("epochs", "batch_size", "grad_accum", "eval_every", "eval_batch_size",
                     "n_negatives", "head_positions", "encoder_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.encoder_epochs <= self.epochs:
            raise ValueError(
                f"encoder_epochs must be in [0, epochs={self.epochs}], got {self.encoder_epochs}"
            )
        if self.window_stride < 0:
            raise ValueError(f"window_stride must be >= 0, got {self.window_stride}")
        if self.head_epochs < 0:
            raise ValueError(f"head_epochs must be >= 0, got {self.head_epochs}")
        if self.head_epochs and self.head_weight == 0:
            raise ValueError("head_epochs > 0 trains the head on its loss alone: it needs "
                             "head_weight > 0")
        if self.patience < 0 or self.head_weight < 0 or self.max_grad_norm < 0:
            raise ValueError("patience, head_weight and max_grad_norm must be >= 0")
        if isinstance(self.unseen_min_ratio, bool) or not isinstance(
            self.unseen_min_ratio, (int, float)
        ) or self.unseen_min_ratio < 0:
            raise ValueError(f"unseen_min_ratio must be a number >= 0, got "
                             f"{self.unseen_min_ratio!r}")
        if "@" not in self.metric:
            raise ValueError(f"metric must look like 'ndcg@10', got {self.metric!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return strict_from_dict(cls, data)

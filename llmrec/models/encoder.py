"""Item-text encoder: a HF transformer + pooling (+ optional LoRA) -> one vector per text."""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from llmrec.models.embedding_cache import EmbeddingCache, tensors_digest, text_key
from llmrec.models.encoder_config import (
    EncoderConfig,
    LoraSettings,
    choose_lora_targets,
    resolve_model_path,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["ItemTextEncoder", "pool"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CHUNK = 4096  # unique texts per cache lookup / cache append


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, L, D) token states + (B, L) attention mask -> (B, D); any padding side.

    mean: average of real tokens; cls: first real token; last: last real token.
    """
    real = mask.bool()  # (B, L)
    if mode == "mean":
        summed = torch.where(real.unsqueeze(-1), hidden, 0.0).sum(1)  # (B, D)
        return summed / real.sum(1, keepdim=True).clamp(min=1).to(hidden.dtype)
    pos = torch.arange(mask.shape[1], device=mask.device).expand_as(real)  # (B, L)
    if mode == "cls":
        idx = torch.where(real, pos, mask.shape[1]).min(1).values  # (B,)
    elif mode == "last":
        idx = torch.where(real, pos, -1).max(1).values  # (B,)
    else:
        raise ValueError(f"pooling must be one of ('mean', 'cls', 'last'), got {mode!r}")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]  # (B, D)


class ItemTextEncoder(nn.Module):
    """Embeds item texts with a (frozen, optionally LoRA-adapted) transformer.

    The base weights are always frozen; with ``config.lora`` only the LoRA weights train.
    The module starts in eval mode (call ``.train()`` to fine-tune the adapter).
    """

    def __init__(
        self,
        config: EncoderConfig | None = None,
        *,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        super().__init__()
        self.config = config = copy.deepcopy(config) if config is not None else EncoderConfig()
        path, dtype = resolve_model_path(config.model_name_or_path), _DTYPES[config.dtype]
        extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path, **extra)
        if model is None:
            from transformers import AutoModel

            model = AutoModel.from_pretrained(path, dtype=dtype, **extra)
        elif next(model.parameters()).dtype != dtype:
            model = model.to(dtype)
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has neither a pad nor an eos token: set one")
            tokenizer.pad_token = tokenizer.eos_token  # decoder-only models often lack a pad
        self.tokenizer = tokenizer
        self.causal = bool(getattr(model.config, "is_decoder", False)) or any(
            getattr(m, "is_causal", False) is True for m in model.modules()
        )
        auto = "last" if self.causal else "mean"
        self.pooling = auto if config.pooling == "auto" else config.pooling
        model.requires_grad_(False)
        if config.gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise ValueError(f"{type(model).__name__} does not support gradient checkpointing")
            kw = {"use_reentrant": False}  # works with a frozen base (no input grads needed)
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        self.model = model
        self._base_hash: str | None = None
        self._lora_targets: list[str] | None = None
        if config.lora is not None:
            self._apply_lora(config.lora)
        if config.adapter_path is not None:
            self.load_adapter(config.adapter_path)
        self.eval()

    # ----------------------------------------------------------------- model plumbing
    @property
    def base_model(self) -> nn.Module:
        """The underlying transformer (without the peft wrapper)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def dim(self) -> int:
        """Embedding size (the model's hidden size)."""
        cfg = self.base_model.config
        cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        return int(cfg.hidden_size)

    def _apply_lora(self, lora: LoraSettings) -> None:
        from peft import LoraConfig, get_peft_model
        from transformers.pytorch_utils import Conv1D

        linear = {n: m for n, m in self.model.named_modules() if isinstance(m, (nn.Linear, Conv1D))}
        names = [n for n, _ in self.model.named_modules()]
        targets = choose_lora_targets(names, list(linear), lora.target_modules)
        hits = [n for n in names if any(n == t or n.endswith("." + t) for t in targets)]
        conv1d = any(isinstance(linear.get(n), Conv1D) for n in hits)
        cfg = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(targets),
            bias="none",
            fan_in_fan_out=conv1d,
        )
        with warnings.catch_warnings():  # peft probes a property transformers 5 deprecates
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
            self.model = get_peft_model(self.model, cfg)
        self._lora_targets = sorted(targets)

    # ----------------------------------------------------------------------- encoding
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, dim) float32 embeddings, with autograd (for LoRA training)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        batch = self.tokenizer(
            list(texts),
            padding=True,  # dynamic: to the longest text of the batch
            # absolute positions of encoder-only models assume right padding; decoder-only
            # models keep the tokenizer's side (position ids below come from the mask)
            padding_side=None if self.causal else "right",
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        )
        device = next(self.model.parameters()).device
        ids = batch["input_ids"].to(device)  # (B, L)
        mask = batch["attention_mask"].to(device)  # (B, L)
        empty = (mask.sum(1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"texts tokenise to zero tokens: {[texts[i] for i in empty][:5]}")
        kwargs: dict[str, Any] = {}
        if self.causal:  # real tokens keep positions 0..n-1 even with left padding
            kwargs = {"position_ids": (mask.cumsum(1) - 1).clamp(min=0), "use_cache": False}
        hidden = self.model(input_ids=ids, attention_mask=mask, **kwargs).last_hidden_state
        emb = pool(hidden.float(), mask, self.pooling)  # (B, D)
        return F.normalize(emb, dim=-1) if self.config.normalize else emb

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool = True,
        cache: EmbeddingCache | None = None,
        out_path: str | Path | None = None,
    ) -> np.ndarray:
        """(N, dim) float32 embeddings of ``texts``, in their order.

        Identical texts are encoded once; texts found in ``cache`` are not encoded at all
        (new ones are added to it). Texts are batched longest first so batches pad little.
        With ``out_path`` the rows are written into a ``.npy`` memmap (returned) instead of
        an in-memory array.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        bs = batch_size or self.config.batch_size
        n, dim = len(texts), self.dim
        inverse = np.empty(n, dtype=np.int64)  # position -> unique text index
        first: dict[str, int] = {}
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
            inverse[i] = first.setdefault(t, len(first))
        uniq = list(first)
        first_pos = np.unique(inverse, return_index=True)[1]  # (U,) first position of each
        order = np.array(sorted(range(len(uniq)), key=lambda u: -len(uniq[u])), dtype=np.int64)
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=(n, dim))
        else:
            out = np.empty((n, dim), dtype=np.float32)
        fp = self.fingerprint() if cache is not None else ""
        was_training = self.training
        self.eval()
        try:
            with tqdm(total=len(uniq), disable=not show_progress, desc="encode") as bar:
                for c0 in range(0, len(order), _CHUNK):
                    todo = chunk = order[c0 : c0 + _CHUNK]
                    if cache is not None:
                        keys = [text_key(uniq[u]) for u in chunk]
                        found, rows = cache.get(fp, keys, dim=dim)
                        out[first_pos[chunk[found]]] = rows
                        todo = chunk[~found]
                        bar.update(int(found.sum()))
                    for b0 in range(0, len(todo), bs):
                        ub = todo[b0 : b0 + bs]
                        out[first_pos[ub]] = self([uniq[u] for u in ub]).cpu().numpy()
                        bar.update(len(ub))
                    if cache is not None and len(todo):
                        cache.put(fp, [text_key(uniq[u]) for u in todo], out[first_pos[todo]])
        finally:
            self.train(was_training)
        dup = np.flatnonzero(first_pos[inverse] != np.arange(n))  # repeated texts
        for d0 in range(0, len(dup), _CHUNK):
            d = dup[d0 : d0 + _CHUNK]
            out[d] = out[first_pos[inverse[d]]]
        if isinstance(out, np.memmap):
            out.flush()
        return out

    # ---------------------------------------------------------- identity and adapters
    def fingerprint(self) -> str:
        """Stable id of (weights, tokenizer, settings): the embedding cache key prefix.

        Frozen base weights are hashed once (first call); LoRA and any trainable weights
        are hashed on every call, since they change during training.
        """
        base = self.base_model
        if self._base_hash is None:
            self._base_hash = tensors_digest(
                (n.replace(".base_layer", ""), t)
                for n, t in base.state_dict().items()
                if "lora_" not in n
            )
        live = tensors_digest(
            (n, p) for n, p in self.model.named_parameters() if "lora_" in n or p.requires_grad
        )
        model_cfg = base.config.to_dict()
        for k in ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "_commit_hash"):
            model_cfg.pop(k, None)
        lora = self.config.lora
        meta = {
            "format": 1,
            "model_class": type(base).__name__,
            "model_config": model_cfg,
            "vocab_size": len(self.tokenizer),
            "pooling": self.pooling,
            "max_length": self.config.max_length,
            "normalize": self.config.normalize,
            "dtype": self.config.dtype,
            "lora": None if lora is None else [lora.r, lora.alpha, self._lora_targets],
            "base_weights": self._base_hash,
            "live_weights": live,
        }
        blob = json.dumps(meta, sort_keys=True, default=str).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:32]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that require grad (the LoRA weights), e.g. for an optimizer."""
        return [p for p in self.parameters() if p.requires_grad]

    def save_adapter(self, directory: str | Path) -> Path:
        """Write the LoRA adapter (config + safetensors weights) to ``directory``."""
        if self.config.lora is None:
            raise ValueError("this encoder has no LoRA adapter to save (config.lora is None)")
        self.model.save_pretrained(str(directory), safe_serialization=True)
        return Path(directory)

    def load_adapter(self, directory: str | Path) -> None:
        """Load a LoRA adapter saved by :meth:`save_adapter` (strict: all keys must match).

        An encoder without LoRA gets one with the saved settings first.
        """
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
        from safetensors.torch import load_file

        d = Path(directory)
        files = [d / "adapter_config.json", d / "adapter_model.safetensors"]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"no LoRA adapter in {d}: missing {missing}")
        saved = json.loads(files[0].read_text(encoding="utf-8"))
        targets = saved.get("target_modules")
        if not isinstance(targets, list):
            raise ValueError(f"adapter in {d}: target_modules must be a list, got {targets!r}")
        settings = LoraSettings(
            r=saved["r"],
            alpha=saved["lora_alpha"],
            dropout=saved.get("lora_dropout", 0.0),
            target_modules=sorted(targets),
        )
        if self.config.lora is None:
            self._apply_lora(settings)
            self.config.lora = settings
        else:
            have = (self.config.lora.r, self.config.lora.alpha, self._lora_targets)
            if have != (settings.r, settings.alpha, settings.target_modules):
                raise ValueError(
                    f"adapter in {d} has (r, alpha, targets) = "
                    f"{(settings.r, settings.alpha, settings.target_modules)}, this encoder {have}"
                )
        weights = load_file(str(files[1]), device=str(next(self.model.parameters()).device))
        expected = set(get_peft_model_state_dict(self.model))
        if set(weights) != expected:
            lost, extra = sorted(expected - set(weights))[:5], sorted(set(weights) - expected)[:5]
            raise ValueError(f"adapter weights in {d} do not match: missing {lost}, extra {extra}")
        set_peft_model_state_dict(self.model, weights)

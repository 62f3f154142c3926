"""Adaptation objectives around one :class:`ItemTextEncoder` whose LoRA adapter trains.

Contrastive objectives (``simcse``, ``pairs``) train the encoder exactly as the recommender
uses it (same pooling, same normalisation). Language-model objectives (``mlm``, ``clm``)
load the model with its LM head and share the backbone with the encoder, so the adapter
they train has the encoder's own module names and plugs into it unchanged.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from llmrec.models.encoder import ItemTextEncoder
from llmrec.models.encoder_config import EncoderConfig, resolve_model_path

logger = logging.getLogger(__name__)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE: row i of ``a`` (B, D) matches row i of ``b`` (B, D)."""
    logits = a @ b.T / temperature  # (B, B)
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class AdaptModule(nn.Module):
    """Encoder (+ LM head for mlm/clm); ``forward(batch)`` returns the objective's loss."""

    def __init__(self, config: EncoderConfig, objective: str, *, temperature: float = 0.05,
                 mlm_probability: float = 0.15) -> None:
        super().__init__()
        self.objective, self.temperature = objective, temperature
        self.lm: nn.Module | None = None
        if objective in ("mlm", "clm"):
            self.lm, backbone, tokenizer = _load_lm(config, objective)
            self.encoder = ItemTextEncoder(config, model=backbone, tokenizer=tokenizer)
            if objective == "mlm" and self.encoder.causal:
                raise ValueError("objective 'mlm' needs a BERT-style (bidirectional) encoder; "
                                 "use 'clm' for decoder-only models")
            if objective == "clm" and not self.encoder.causal:
                raise ValueError("objective 'clm' needs a decoder-only (GPT/Llama-style) model; "
                                 "use 'mlm' or 'simcse' for BERT-style encoders")
        else:
            self.encoder = ItemTextEncoder(config)
        # checkpoints hold what trains (adapter + any fresh LM head), not the frozen base
        self._trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        hook = getattr(self, "register_state_dict_post_hook", None) or \
            self._register_state_dict_hook
        hook(_keep_trainable)
        self.register_load_state_dict_post_hook(_frozen_not_missing)
        self.collator = None
        if objective == "mlm":
            from transformers import DataCollatorForLanguageModeling

            self.collator = DataCollatorForLanguageModeling(
                self.encoder.tokenizer, mlm=True, mlm_probability=mlm_probability,
                return_tensors="pt")

    def trainable_parameters(self) -> list[nn.Parameter]:
        seen: set[int] = set()
        out = []
        for p in self.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def forward(self, batch: list) -> torch.Tensor:
        if self.objective == "simcse":  # the same texts under two dropout masks
            return info_nce(self.encoder(batch), self.encoder(batch), self.temperature)
        if self.objective == "pairs":
            anchors, positives = [a for a, _ in batch], [b for _, b in batch]
            return info_nce(self.encoder(anchors), self.encoder(positives), self.temperature)
        return self._lm_loss(batch)

    def _lm_loss(self, texts: list[str]) -> torch.Tensor:
        assert self.lm is not None
        tok = self.encoder.tokenizer
        enc = tok(list(texts), padding=True, truncation=True, padding_side="right",
                  max_length=self.encoder.config.max_length, return_tensors="pt")
        device = next(self.lm.parameters()).device
        if self.collator is not None:  # mlm: mask 15% of tokens, labels -100 elsewhere
            enc = self.collator([{"input_ids": ids, "attention_mask": m}
                                 for ids, m in zip(enc["input_ids"], enc["attention_mask"],
                                                   strict=True)])
            labels = enc["labels"]
        else:  # clm: predict every next real token
            labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        out = self.lm(input_ids=enc["input_ids"].to(device),
                      attention_mask=enc["attention_mask"].to(device), labels=labels.to(device))
        return out.loss


def _keep_trainable(module: AdaptModule, state: dict, prefix: str, _meta: object) -> None:
    for key in [k for k in state if k.startswith(prefix)]:
        if key[len(prefix):] not in module._trainable:
            del state[key]


def _frozen_not_missing(module: AdaptModule, incompatible: object) -> None:
    """Frozen weights are not in checkpoints; a missing trainable weight still fails."""
    missing = incompatible.missing_keys  # type: ignore[attr-defined]
    keep = [k for k in missing if k.split("module.", 1)[-1] in module._trainable]
    missing[:] = keep


def _load_lm(config: EncoderConfig, objective: str) -> tuple[nn.Module, nn.Module, object]:
    """(LM with head, its backbone, tokenizer); head weights missing from the checkpoint
    (e.g. an MLM head of a sentence-embedding model) are trained, the rest stays frozen."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    path = resolve_model_path(config.model_name_or_path)
    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    cls = AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM
    try:
        lm, info = cls.from_pretrained(path, output_loading_info=True, **extra)
    except ValueError as err:  # e.g. an architecture without such a head
        raise ValueError(f"objective {objective!r}: {path} cannot be loaded with a "
                         f"{'masked' if objective == 'mlm' else 'causal'}-LM head ({err})") from err
    tokenizer = AutoTokenizer.from_pretrained(path, **extra)
    prefix = lm.base_model_prefix
    backbone = getattr(lm, prefix, None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"objective {objective!r}: cannot find the backbone "
                         f"({type(lm).__name__}.{prefix})")
    lm.requires_grad_(False)
    fresh = [n for n in info.get("missing_keys", []) if not n.startswith(prefix + ".")]
    if fresh:
        logger.warning("%s: LM head weights %s are not in the checkpoint; they are initialised "
                       "and trained with the adapter (and not kept)", path, fresh[:4])
        wanted = set(fresh)
        for name, p in lm.named_parameters():
            if name in wanted:
                p.requires_grad_(True)
    return lm, backbone, tokenizer

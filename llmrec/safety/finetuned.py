"""The learned safety layer's fine-tuned form: the sentence encoder with a LoRA adapter and a
linear head over benign + the harm categories, trained on the labelled examples.

A regression on frozen mean-pooled embeddings reads topic more than intent; adapting the
encoder lets it learn which words carry the harm. Trained once per (encoder, examples,
settings), in one to a few minutes on a CPU, then kept in the llmrec cache folder
(``$LLMREC_CACHE``, default ``~/.cache/llmrec``) as safetensors (adapter + head only, never
the frozen base) and reloaded from there, strictly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llmrec.data.errors import logger

__all__ = ["FINETUNE_VERSION", "LoraHarmClassifier", "load_or_train", "load_weights",
           "read_tensors", "save_entry"]

FINETUNE_VERSION = 2  # bump when training changes: cached classifiers are then retrained
LOGIT_SCALE = 10.0  # cosine-like logits (unit-norm features) need a temperature


class LoraHarmClassifier(nn.Module):
    """Encoder + LoRA (r, alpha = 2r, dropout 0.1 on every attention and dense projection) ->
    mean pooling -> unit norm -> linear head (K classes) x :data:`LOGIT_SCALE`."""

    def __init__(self, model_path: str, n_classes: int, r: int, seed: int = 0) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        base = AutoModel.from_pretrained(model_path)
        targets = sorted({name.rsplit(".", 1)[-1] for name, m in base.named_modules()
                          if isinstance(m, nn.Linear)} & {"query", "key", "value", "dense"})
        if not targets:
            raise ValueError(f"semantic model {model_path}: no query/key/value/dense linear "
                             "layers for LoRA; use semantic_method='regression'")
        with torch.random.fork_rng(devices=[]):  # seeded init; the caller's RNG untouched
            torch.manual_seed(seed)
            self.encoder = get_peft_model(base, LoraConfig(
                r=r, lora_alpha=2 * r, lora_dropout=0.1, target_modules=targets))
            self.head = nn.Linear(base.config.hidden_size, n_classes)

    def forward(self, texts: Sequence[str], max_length: int = 256) -> torch.Tensor:
        """(n,) texts -> (n, K) logits, reading up to ``max_length`` tokens of each (as the
        sentence-transformers encoder does)."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                               return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state  # (n, T, H)
        mask = batch["attention_mask"][..., None].to(hidden.dtype)  # (n, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (n, H)
        return self.head(nn.functional.normalize(pooled, dim=-1)) * LOGIT_SCALE

    def base_digest(self) -> str:
        """What the cache key identifies the encoder by: its frozen weights and its tokenizer,
        not its path (hashing ~90 MB: only when the cache is consulted)."""
        from llmrec.models.embedding_cache import tensors_digest

        weights = tensors_digest((n.replace(".base_layer", ""), t)
                                 for n, t in self.encoder.get_base_model().state_dict().items()
                                 if "lora_" not in n)
        vocab = json.dumps(sorted(self.tokenizer.get_vocab().items()))
        return weights + hashlib.sha256(vocab.encode()).hexdigest()[:16]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only what training changed: the adapter and the head."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                if k in names}

    @torch.no_grad()
    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, K) logits in eval mode, ``batch_size`` texts at a time."""
        self.eval()
        out = [self(texts[i : i + batch_size]).double().numpy()
               for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.head.out_features))


def train(model: LoraHarmClassifier, texts: Sequence[str], y: np.ndarray, *, epochs: int,
          seed: int = 0, batch_size: int = 32) -> None:
    """Cross-entropy, class-balanced, AdamW (adapter 1e-3, head 1e-2), fixed order and
    dropout per seed (the caller's RNG state is left as it was).

    Runs on one CPU thread: with several, the order of floating-point sums depends on the
    thread count, and over five epochs two runs of the same recipe became measurably
    different classifiers (eval/safety/README.md); one thread gives the same weights on
    every run on a machine."""
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        _train(model, texts, y, epochs, seed, batch_size)


@contextlib.contextmanager
def _one_thread():
    """torch's intra-op threads set to 1 for the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(model: LoraHarmClassifier, texts: Sequence[str], y: np.ndarray, epochs: int,
           seed: int, batch_size: int) -> None:
    labels = torch.as_tensor(np.asarray(y), dtype=torch.long)
    counts = torch.bincount(labels, minlength=model.head.out_features).clamp(min=1).double()
    weight = (len(labels) / (len(counts) * counts)).float()
    adapter = [p for n, p in model.named_parameters() if p.requires_grad
               and not n.startswith("head.")]
    optim = torch.optim.AdamW([{"params": adapter, "lr": 1e-3},
                               {"params": model.head.parameters(), "lr": 1e-2}],
                              weight_decay=0.01)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(texts), generator=order)
        for start in range(0, len(texts), batch_size):
            idx = perm[start : start + batch_size]
            loss = nn.functional.cross_entropy(model([texts[i] for i in idx]), labels[idx],
                                               weight=weight)
            optim.zero_grad()
            loss.backward()
            optim.step()
    model.eval()


def cache_key(base_digest: str, examples_sha256: str, n_classes: int, r: int,
              epochs: int) -> str:
    spec = {"encoder": base_digest, "examples": examples_sha256, "classes": n_classes,
            "r": r, "epochs": epochs, "version": FINETUNE_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def load_or_train(model_path: str, texts: Sequence[str], y: np.ndarray, n_classes: int, *,
                  examples_sha256: str, r: int, epochs: int,
                  cache: str | os.PathLike | None = None) -> LoraHarmClassifier:
    """The classifier for these examples: from the cache folder if trained before, else
    trained now and saved there atomically (a crash never leaves a half-written entry)."""
    from llmrec.data.sources.cache import cache_dir

    model = LoraHarmClassifier(model_path, n_classes, r)
    digest = model.base_digest()
    name = "semantic-lora-" + cache_key(digest, examples_sha256, n_classes, r, epochs)
    try:
        folder: Path | None = cache_dir(cache) / "safety" / name
    except OSError as err:  # a read-only home: train, keep it in memory only
        logger.warning("safety classifier: no writable cache folder (%s); it is trained in "
                       "memory and not kept (set LLMREC_CACHE to a writable folder)", err)
        folder = None
    weights = folder / "classifier.safetensors" if folder is not None else None
    if weights is not None and weights.is_file():
        return load_weights(model, weights, "; delete the folder to retrain")
    train(model, texts, y, epochs=epochs)
    if folder is not None:
        _save(model, folder, {"model": str(model_path), "encoder": digest,
                              "examples_sha256": examples_sha256, "r": r, "epochs": epochs,
                              "version": FINETUNE_VERSION})
    return model


def load_weights(model: LoraHarmClassifier, weights: str | os.PathLike | dict[str, torch.Tensor],
                 hint: str = "") -> LoraHarmClassifier:
    """Load a saved adapter + head (a safetensors file, or its tensors) into ``model``,
    strictly (missing or unexpected keys and unreadable files are errors naming the file)."""
    state = read_tensors(weights, hint) if not isinstance(weights, dict) else weights
    expected = set(model.trainable_state())
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"{weights if not isinstance(weights, dict) else 'weights'}: missing "
                         f"keys {missing[:5]}, unexpected keys {unexpected[:5]}{hint}")
    model.load_state_dict(state, strict=False)
    model.eval()
    return model


def read_tensors(path: str | os.PathLike, hint: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; an unreadable one is an error naming it."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # missing, truncated or foreign
        raise ValueError(f"{path}: not a readable safetensors file ({err}){hint}") from None


def _save(model: LoraHarmClassifier, folder: Path, meta: dict) -> None:
    save_entry(folder, "classifier.safetensors", model.trainable_state(), meta)


def save_entry(folder: Path, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a cache entry (``name`` + meta.json) atomically; a folder left without its
    weights (a crash of an older version) is replaced; failures to write only cost the next
    process a retraining."""
    from safetensors.torch import save_file

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.is_dir() and not (folder / name).is_file():
            shutil.rmtree(folder, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    except OSError as err:
        logger.warning("safety layer: cannot write %s (%s); not cached", folder, err)
        return
    try:
        save_file(tensors, str(tmp / name))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        with contextlib.suppress(OSError):  # another process saved it first: as good
            tmp.rename(folder)
    except OSError as err:
        logger.warning("safety layer: cannot write %s (%s); not cached", folder, err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

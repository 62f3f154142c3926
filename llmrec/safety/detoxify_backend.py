"""Detoxify (unitary.ai) transformer toxicity classifiers, online or from local files.

Online, ``DetoxifyClassifier("original")`` downloads the checkpoint (torch hub cache) and the
base model's config and tokenizer (Hugging Face cache). Offline, give both:

- ``checkpoint``: the ``.ckpt`` file from :data:`detoxify.detoxify.MODEL_URLS` (a torch pickle
  with ``{"config": {"arch": {"args": ...}, "dataset": {"args": {"classes": [...]}}},
  "state_dict": ...}``);
- ``huggingface_config_path``: a folder with the base model's ``config.json`` and tokenizer
  files (see :data:`BASE_MODELS`), e.g. from ``huggingface-cli download bert-base-uncased``.

The scores are only meaningful with the real weights; a checkpoint of a random model (as the
tests build) exercises the same loading and scoring code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BASE_MODELS", "DetoxifyClassifier", "DetoxifyWeightsError"]

# detoxify model_type -> the Hugging Face model its checkpoint was fine-tuned from.
BASE_MODELS = {
    "original": "bert-base-uncased",
    "unbiased": "roberta-base",
    "multilingual": "xlm-roberta-base",
    "original-small": "albert-base-v2",
    "unbiased-small": "albert-base-v2",
}
# As detoxify.detoxify.load_checkpoint renames them.
_RENAME = {
    "toxic": "toxicity",
    "identity_hate": "identity_attack",
    "severe_toxic": "severe_toxicity",
}


class DetoxifyWeightsError(RuntimeError):
    """The Detoxify weights or config could not be loaded; the message says how to provide them."""


@dataclass
class DetoxifyClassifier:
    """A Detoxify model; labels as Detoxify names them (toxicity, threat, insult, ...)."""

    model_type: str = field(
        default="original", metadata={"help": f"Release to download, one of {tuple(BASE_MODELS)}."}
    )
    checkpoint: str | None = field(
        default=None,
        metadata={"help": "Local .ckpt file; None = download the model_type's release file."},
    )
    huggingface_config_path: str | None = field(
        default=None,
        metadata={
            "help": "Folder with the base model's config.json + tokenizer files, for offline "
            "use; None = fetch them from the Hugging Face hub (or its cache)."
        },
    )
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. 'cpu', 'cuda'."})
    batch_size: int = field(default=32, metadata={"help": "Texts per forward pass (>= 1)."})
    max_length: int = field(default=256, metadata={"help": "Tokens per text (>= 8)."})

    name = "detoxify"

    def __post_init__(self) -> None:
        if self.model_type not in BASE_MODELS:
            raise ValueError(
                f"model_type must be one of {tuple(BASE_MODELS)}, got {self.model_type!r}"
            )
        for key in ("checkpoint", "huggingface_config_path"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, (str, Path)) or not str(value)):
                raise ValueError(f"{key} must be None or a path, got {value!r}")
            if value is not None:
                setattr(self, key, str(value))
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a torch device string, got {self.device!r}")
        for key, low in (("batch_size", 1), ("max_length", 8)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an int >= {low}, got {value!r}")
        self._model, self._tokenizer, self._labels = self._load()

    # -- loading ---------------------------------------------------------------------------
    def _how_to(self) -> str:
        from detoxify.detoxify import MODEL_URLS

        base = BASE_MODELS[self.model_type]
        return (
            "To run offline, download the checkpoint "
            f"{MODEL_URLS[self.model_type]} and the config + tokenizer files of the Hugging Face "
            f"model '{base}' (config.json, vocab/tokenizer files) into a folder, then pass "
            "DetoxifyClassifier(checkpoint='/path/to/file.ckpt', "
            "huggingface_config_path='/path/to/folder') (CLI/eval: --detoxify-checkpoint, "
            "--detoxify-config). Or use the offline default OfflineToxicityClassifier."
        )

    def _load_checkpoint(self) -> dict[str, Any]:
        import torch
        from detoxify.detoxify import MODEL_URLS

        if self.checkpoint is None:
            url = MODEL_URLS[self.model_type]
            try:  # the release files hold a plain config dict next to the state dict
                loaded = torch.hub.load_state_dict_from_url(
                    url, map_location=self.device, weights_only=False
                )
            except Exception as err:
                raise DetoxifyWeightsError(
                    f"could not download the Detoxify '{self.model_type}' weights from {url} "
                    f"({type(err).__name__}: {err}). {self._how_to()}"
                ) from err
        else:
            path = Path(self.checkpoint)
            if not path.is_file():
                raise DetoxifyWeightsError(
                    f"Detoxify checkpoint {path} does not exist. {self._how_to()}"
                )
            try:  # a pickle: load only checkpoints from a source you trust (as detoxify does)
                loaded = torch.load(path, map_location=self.device, weights_only=False)
            except Exception as err:
                raise DetoxifyWeightsError(
                    f"Detoxify checkpoint {path} cannot be read ({type(err).__name__}: {err}). "
                    f"{self._how_to()}"
                ) from err
        try:
            loaded["config"]["arch"]["args"]
            loaded["config"]["dataset"]["args"]["classes"]
            loaded["state_dict"]
        except (KeyError, TypeError) as err:
            raise DetoxifyWeightsError(
                f"Detoxify checkpoint {self.checkpoint or self.model_type} lacks {err}: it needs "
                "config.arch.args, config.dataset.args.classes and state_dict, as detoxify's "
                f"release files have. {self._how_to()}"
            ) from err
        return loaded

    def _load(self) -> tuple[Any, Any, tuple[str, ...]]:
        from detoxify.detoxify import get_model_and_tokenizer

        loaded = self._load_checkpoint()
        args = dict(loaded["config"]["arch"]["args"])
        if self.huggingface_config_path is not None:
            folder = Path(self.huggingface_config_path)
            if not (folder / "config.json").is_file():
                raise DetoxifyWeightsError(
                    f"huggingface_config_path {folder} has no config.json. {self._how_to()}"
                )
            # detoxify builds the config from args['model_type'] (a hub id such as
            # 'bert-base-uncased') even when given a local folder, which fails offline: point
            # it at the folder instead (same files, num_labels still set from the checkpoint).
            args["model_type"] = str(folder)
        try:
            model, tokenizer = get_model_and_tokenizer(**args, state_dict=loaded["state_dict"])
        except (OSError, ValueError) as err:
            raise DetoxifyWeightsError(
                f"could not build the Detoxify model '{args.get('model_type')}' "
                f"({type(err).__name__}: {err}). {self._how_to()}"
            ) from err
        classes = loaded["config"]["dataset"]["args"]["classes"]
        labels = tuple(_RENAME.get(c, c) for c in classes)
        model.to(self.device)
        model.eval()
        return model, tokenizer, labels

    # -- scoring ---------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Sigmoid scores per label, in batches of ``batch_size`` (deterministic: eval mode)."""
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), len(self._labels)), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]
                inputs = self._tokenizer(
                    batch,
                    return_tensors="pt",
                    truncation=True,
                    padding=True,
                    max_length=self.max_length,
                ).to(self.device)
                logits = self._model(**inputs)[0][:, : len(self._labels)]
                out[start : start + len(batch)] = torch.sigmoid(logits).float().cpu().numpy()
        return {label: out[:, i].copy() for i, label in enumerate(self._labels)}

    def to_dict(self) -> dict[str, Any]:
        return {"type": "detoxify", **asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetoxifyClassifier:
        values = {k: v for k, v in values.items() if k != "type"}
        known = {
            "model_type",
            "checkpoint",
            "huggingface_config_path",
            "device",
            "batch_size",
            "max_length",
        }
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"DetoxifyClassifier: unknown key(s) {unknown}; allowed: {sorted(known)}"
            )
        return cls(**values)

"""The learned safety layer's surface-form member: a softmax regression on TF-IDF character
n-grams (2-5, within word boundaries) of the text.

Where the sentence encoders read meaning, this reads spelling: coined insults, euphemisms and
misspelt or spaced-out words that an encoder maps near harmless text. Out of fold it is the
weakest member alone but adds to the other two (``eval/safety/learned_layer_cv.py``). Fitted
in ~10 s on a CPU, cached on disk and saved with a model as tensors: the n-gram vocabulary
(UTF-8, one n-gram a line), its idf weights and the regression's weight and bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["NGRAM_VERSION", "NgramRegression"]

NGRAM_VERSION = 1  # bump when the features or the fit change: cached fits are then redone
PREFIX = "ngram."
KEYS = tuple(PREFIX + k for k in ("vocab", "idf", "weight", "bias"))
FEATURES = {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True,
             "lowercase": True}


class NgramRegression:
    """``logits(texts)`` -> (n, K) over benign + the harm classes, from character n-grams."""

    def __init__(self, vocab: list[str], idf: np.ndarray, weight: np.ndarray,
                 bias: np.ndarray) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not (len(vocab) == len(idf) == weight.shape[1]) or bias.shape != weight.shape[:1]:
            raise ValueError(f"n-gram regression: {len(vocab)} n-grams, {len(idf)} idf weights, "
                             f"weight {weight.shape} and bias {bias.shape} do not match")
        self.vocab, self.idf, self.weight, self.bias = vocab, idf, weight, bias
        self._vectorizer = TfidfVectorizer(vocabulary=vocab, **FEATURES)
        self._vectorizer.idf_ = idf

    @classmethod
    def fit(cls, texts: Sequence[str], y: np.ndarray, c: float) -> NgramRegression:
        """Class-balanced softmax regression (lbfgs: deterministic) on n-grams seen in at least
        two training texts."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        from llmrec.safety.semantic import fit_regression

        vectorizer = TfidfVectorizer(min_df=2, **FEATURES)
        x = vectorizer.fit_transform(list(texts))  # (n, V) sparse
        weight, bias = fit_regression(x, np.asarray(y), c)
        vocab = [""] * len(vectorizer.vocabulary_)
        for gram, column in vectorizer.vocabulary_.items():
            vocab[column] = gram
        return cls(vocab, np.asarray(vectorizer.idf_, dtype=np.float64), weight, bias)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        x = self._vectorizer.transform(list(texts))  # (n, V) sparse, rows unit-norm
        return np.asarray(x @ self.weight.T) + self.bias  # (n, K)

    def state(self) -> dict[str, Any]:
        """Tensors for safetensors: ``ngram.vocab`` (uint8, the n-grams joined by newlines:
        char_wb n-grams never hold one), ``ngram.idf``, ``ngram.weight``, ``ngram.bias``."""
        import torch

        raw = np.frombuffer("\n".join(self.vocab).encode("utf-8"), dtype=np.uint8).copy()
        return {PREFIX + "vocab": torch.from_numpy(raw),
                PREFIX + "idf": torch.from_numpy(np.ascontiguousarray(self.idf)),
                PREFIX + "weight": torch.from_numpy(np.ascontiguousarray(self.weight)),
                PREFIX + "bias": torch.from_numpy(np.ascontiguousarray(self.bias))}

    @classmethod
    def from_state(cls, state: dict[str, Any], where: str) -> NgramRegression:
        """Rebuild from :meth:`state`'s tensors, strictly (``where`` names the file)."""
        missing = sorted(set(KEYS) - set(state))
        extra = sorted(k for k in state if k.startswith(PREFIX) and k not in KEYS)
        if missing or extra:
            raise ValueError(f"{where}: missing keys {missing}, unexpected keys {extra[:5]} "
                             f"for the n-gram member")
        vocab = bytes(state[PREFIX + "vocab"].numpy().tobytes()).decode("utf-8").split("\n")
        try:
            return cls(vocab, state[PREFIX + "idf"].double().numpy(),
                       state[PREFIX + "weight"].double().numpy(),
                       state[PREFIX + "bias"].double().numpy())
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

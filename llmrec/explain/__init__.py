"""Explanations of recommendations: grounded in the model's evidence, checked for safety.

>>> from llmrec.explain import ExplainConfig, Explainer
>>> explainer = Explainer.for_recommender(rec, ExplainConfig(language="en"))  # doctest: +SKIP
>>> explainer.explain(history, rec.recommend(history)[0]).text              # doctest: +SKIP
'Because you watched Alien and Aliens (Sci-Fi, Horror).'
"""

from llmrec.explain.attributes import ItemFacts, clean_title
from llmrec.explain.config import EVIDENCE, METHODS, ExplainConfig, builtin_languages
from llmrec.explain.evidence import pairwise_scorer, recommender_scorer
from llmrec.explain.explainer import Explainer
from llmrec.explain.grounding import Grounding, GroundingChecker
from llmrec.explain.llm import LLMGenerator, smollm2_gguf
from llmrec.explain.templates import ExplanationTemplate, andjoin
from llmrec.explain.types import CitedItem, Explanation, SharedAttribute

__all__ = [
    "EVIDENCE",
    "METHODS",
    "CitedItem",
    "ExplainConfig",
    "Explainer",
    "Explanation",
    "ExplanationTemplate",
    "Grounding",
    "GroundingChecker",
    "ItemFacts",
    "LLMGenerator",
    "SharedAttribute",
    "andjoin",
    "builtin_languages",
    "clean_title",
    "pairwise_scorer",
    "recommender_scorer",
    "smollm2_gguf",
]

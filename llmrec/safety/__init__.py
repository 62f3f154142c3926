"""Content safety: keep toxic, hateful, threatening, sexual or off-policy items from users.

>>> from llmrec.safety import SafetyFilter
>>> verdicts = SafetyFilter().check(["Kill Bill: Vol. 1 (2003)", "I will find you and kill you"])
>>> [v.blocked for v in verdicts]
[False, True]

The default classifier (:class:`OfflineToxicityClassifier`) needs no download;
:class:`DetoxifyClassifier` runs the Detoxify transformers (downloaded, or local files).
The policy (:class:`Policy`, default ``prompts/safety_policy.yaml``) sets thresholds, blocked
attributes / terms / regexes and per-item allow and deny lists.
"""

from llmrec.safety.detoxify_backend import BASE_MODELS, DetoxifyClassifier, DetoxifyWeightsError
from llmrec.safety.filter import CLASSIFIER_TYPES, SafetyFilter, classifier_from_dict
from llmrec.safety.lexicon import DEFAULT_LEXICON, LEXICON_LABELS, Lexicon, LexiconResult
from llmrec.safety.matching import compile_pattern, compile_term
from llmrec.safety.offline import (
    OfflineToxicityClassifier,
    ProfanityCheckClassifier,
    profanity_probabilities,
)
from llmrec.safety.policy import DEFAULT_POLICY_FILE, Policy, PolicyError
from llmrec.safety.rules import POLICY_LABEL, RuleClassifier, match_attributes
from llmrec.safety.types import ACTIONS, Reason, SafetyClassifier, Verdict

__all__ = [
    "ACTIONS",
    "BASE_MODELS",
    "CLASSIFIER_TYPES",
    "DEFAULT_LEXICON",
    "DEFAULT_POLICY_FILE",
    "LEXICON_LABELS",
    "POLICY_LABEL",
    "DetoxifyClassifier",
    "DetoxifyWeightsError",
    "Lexicon",
    "LexiconResult",
    "OfflineToxicityClassifier",
    "Policy",
    "PolicyError",
    "ProfanityCheckClassifier",
    "Reason",
    "RuleClassifier",
    "SafetyClassifier",
    "SafetyFilter",
    "Verdict",
    "classifier_from_dict",
    "compile_pattern",
    "compile_term",
    "match_attributes",
    "profanity_probabilities",
]

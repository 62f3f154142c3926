"""SafetyFilter with the offline default classifier: verdicts, reasons, categories, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.safety import (
    LEXICON_LABELS,
    OfflineToxicityClassifier,
    Policy,
    ProfanityCheckClassifier,
    Reason,
    RuleClassifier,
    SafetyClassifier,
    SafetyFilter,
    Verdict,
    classifier_from_dict,
)
from llmrec.safety.lexicon import Lexicon

pytest.importorskip("profanity_check")

VIOLENT_TITLES = [
    "Kill Bill: Vol. 1 (2003)",
    "Die Hard (1988) - Action, Thriller",
    "The Texas Chainsaw Massacre (1974) - Horror",
    "Natural Born Killers (1994)",
    "Shoot 'Em Up (2007)",
    "Suicide Squad (2016)",
    "Kill Your Darlings (2013)",
    "Kick-Ass (2010) - Action, Comedy",
    "Live and Let Die (1973)",
    "I Will Find You (novel)",
]
SENSITIVE_PRODUCTS = [
    "988 Suicide & Crisis Lifeline wallet card",
    "Self-harm: a guide for parents and carers",
    "Sex education guide for parents: talking to kids about puberty",
    "Night by Elie Wiesel: a Holocaust memoir",
    "Helter Skelter: the true story of the Manson murders",
    "Naloxone nasal spray for emergency treatment of opioid overdose",
    "Porn addiction recovery workbook",
    "Scunthorpe United home shirt",
    "Cocktail shaker set",
]
# Clear examples per category (written for these tests, not taken from eval/safety).
HARMFUL = {
    "insult": ("You absolute moron, nobody wants your garbage.", "insult"),
    "threat": ("Cancel my order again and I will kill you.", "threat"),
    "identity_hate": ("Immigrants are rats and should be deported.", "identity_attack"),
    "sexual": ("XXX hardcore porn DVD box", "sexual_explicit"),
    "self_harm": ("Thinspiration: starve yourself until you are bones", "self_harm"),
}


@pytest.fixture(scope="module")
def flt() -> SafetyFilter:
    return SafetyFilter()


def test_verdict_structure_and_reasons(flt):
    verdicts = flt.check(["Cancel my order again and I will kill you.", "Alien (1979)"])
    assert [type(v) for v in verdicts] == [Verdict, Verdict]
    bad, good = verdicts
    assert bad.blocked and not good.blocked and good.reasons == []
    assert bad.text.startswith("Cancel")
    labels = {"toxicity", *LEXICON_LABELS, "semantic", "policy"}
    assert set(bad.scores) == labels == set(good.scores)
    assert all(0.0 <= s <= 1.0 for s in bad.scores.values())
    threat = next(r for r in bad.reasons if r.label == "threat")
    assert threat.rule == "classifier:offline" and threat.action == "block"
    assert threat.score == bad.scores["threat"] >= threat.threshold == 0.5
    assert "kill you" in threat.match
    assert "threat" in str(threat) and ">=" in str(threat)
    assert json.loads(json.dumps(bad.to_dict()))["reasons"][0]["rule"] == bad.reasons[0].rule
    with pytest.raises(TypeError, match=r"verdict\.blocked"):
        bool(bad)


@pytest.mark.parametrize("text", VIOLENT_TITLES + SENSITIVE_PRODUCTS)
def test_harmless_items_are_not_blocked(flt, text):
    (verdict,) = flt.check([text])
    assert not verdict.blocked, [str(r) for r in verdict.reasons]


@pytest.mark.parametrize("category", sorted(HARMFUL))
def test_each_harmful_category_is_blocked(flt, category):
    text, label = HARMFUL[category]
    (verdict,) = flt.check([text])
    assert verdict.blocked
    assert label in {r.label for r in verdict.reasons}


def test_leetspeak_and_inflections_are_caught(flt):
    verdicts = flt.check(["Y0u are such an 1d10t", "m0rons like you buy this", "KYS"])
    assert [v.blocked for v in verdicts] == [True, True, True]


def test_profanity_score_needs_a_target():
    clf = OfflineToxicityClassifier()
    scores = clf.score(["Kick-Ass (2010)", "you kick-ass loser"])
    assert scores["toxicity"][0] < 0.5 <= scores["toxicity"][1]
    rules_only = OfflineToxicityClassifier(use_profanity_model=False, semantic=False)
    assert rules_only.labels == LEXICON_LABELS
    assert set(rules_only.score(["x"])) == set(LEXICON_LABELS)


def test_batched_and_deterministic(flt):
    texts = [*VIOLENT_TITLES, *(t for t, _ in HARMFUL.values())] * 3
    first = flt.check(texts)
    again = flt.check(texts)
    one_by_one = [flt.check([t])[0] for t in texts[:15]]
    assert [v.to_dict() for v in first] == [v.to_dict() for v in again]
    assert [v.to_dict() for v in first[:15]] == [v.to_dict() for v in one_by_one]
    assert flt.check([]) == []
    assert flt.is_safe(["Heat (1995)", texts[-1]]) == [True, False]


def test_check_validates_its_inputs(flt):
    with pytest.raises(ValueError, match="not one string"):
        flt.check("Heat")
    with pytest.raises(ValueError, match="item_ids has 1 entries for 2 texts"):
        flt.check(["a", "b"], item_ids=["1"])
    with pytest.raises(ValueError, match="items has 3 entries"):
        flt.check(["a", "b"], items=[{}, {}, {}])
    with pytest.raises(ValueError, match="texts must be strings"):
        flt.check(["a", None])


class _Constant:
    """A minimal custom classifier (the protocol only)."""

    name = "constant"
    labels = ("toxicity",)

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, texts):
        return {"toxicity": np.full(len(texts), self.value)}


def test_custom_classifier_and_threshold():
    assert isinstance(_Constant(0.1), SafetyClassifier)
    policy = Policy(thresholds={"toxicity": 0.7})
    assert not SafetyFilter(_Constant(0.69), policy).check(["x"])[0].blocked
    verdict = SafetyFilter(_Constant(0.7), policy).check(["x"])[0]
    assert verdict.blocked and verdict.reasons[0].threshold == 0.7
    assert verdict.reasons[0].rule == "classifier:constant" and verdict.reasons[0].match is None
    with pytest.raises(ValueError, match="has no to_dict"):
        SafetyFilter(_Constant(0.1), policy).to_dict()
    with pytest.raises(ValueError, match="SafetyClassifier"):
        SafetyFilter(object())  # type: ignore[arg-type]


def test_to_dict_from_dict_round_trip(tmp_path):
    policy = Policy(
        thresholds={"threat": 0.4},
        blocked_attributes={"age_rating": ["NC-17"]},
        blocked_terms=["replica"],
        blocked_patterns=[r"counterfeit \w+"],
        allow_items=["i1"],
        deny_items=["i2"],
    )
    flt = SafetyFilter(OfflineToxicityClassifier(untargeted_factor=0.3), policy)
    data = flt.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = SafetyFilter.from_dict(data)
    assert again.to_dict() == data
    assert isinstance(again.classifier, OfflineToxicityClassifier)
    assert again.classifier.untargeted_factor == 0.3
    flt.save(tmp_path / "filter.json")
    loaded = SafetyFilter.load(tmp_path / "filter.json")
    texts = ["Replica watch", "Heat", "I will kill you"]
    kwargs = {"items": [{}, {"age_rating": "nc-17"}, {}], "item_ids": ["i3", "i4", "i1"]}
    assert [v.to_dict() for v in loaded.check(texts, **kwargs)] == [
        v.to_dict() for v in flt.check(texts, **kwargs)
    ]
    for clf in (ProfanityCheckClassifier(), RuleClassifier(["x"], ["y+"], inflections=False)):
        assert classifier_from_dict(clf.to_dict()).to_dict() == clf.to_dict()
    with pytest.raises(ValueError, match="classifier type must be one of"):
        classifier_from_dict({"type": "nope"})
    with pytest.raises(ValueError, match="unknown key"):
        SafetyFilter.from_dict({"classifier": {"type": "offline"}, "extra": 1})
    with pytest.raises(ValueError, match="unknown key"):
        classifier_from_dict({"type": "offline", "use_gpu": True})


def test_offline_config_checks():
    with pytest.raises(ValueError, match="untargeted_factor must be a number in \\[0, 1\\]"):
        OfflineToxicityClassifier(untargeted_factor=2)
    with pytest.raises(ValueError, match="use_profanity_model must be True or False"):
        OfflineToxicityClassifier(use_profanity_model="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be read"):
        OfflineToxicityClassifier(lexicon_path="/nonexistent/lexicon.yaml")
    with pytest.raises(ValueError, match="action must be one of"):
        Reason("r", "l", action="maybe")


def test_profanity_probabilities_equal_the_packages_own():
    """The array fast path computes exactly alt-profanity-check's predict_prob."""
    import profanity_check

    from llmrec.safety.offline import _linear_profanity, profanity_probabilities

    assert _linear_profanity() is not None  # the shipped model has the expected structure
    texts = ["you are a stupid idiot", "Kill Bill: Vol. 1", "a lovely family film",
             "what the f*** is this crap", "Because you watched Alien and Aliens", ""]
    np.testing.assert_allclose(profanity_probabilities(texts),
                               profanity_check.predict_prob(texts), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "text, label",
    [
        ("Jacket patch: the 14 words over a sonnenrad", "identity_attack"),
        ("RaHoWa tour shirt, gothic print", "identity_attack"),
        ("Strap-on harness kit with two attachments", "sexual_explicit"),
        ("Relaxing massage with a happy ending, incall only", "sexual_explicit"),
        ("Sugar daddy wanted: rent paid for weekend companionship", "sexual_explicit"),
    ],
)
def test_lexicon_knows_hate_codes_and_trade_terms(text, label):
    """Written for this test: coded hate and explicit listings without explicit words."""
    assert Lexicon().analyze(text).scores[label] >= 0.5


@pytest.mark.parametrize(
    "text",
    [
        "Strap-on crampons for winter hiking, fits most boots",
        "Write a story in 14 words: a writing-prompt card deck",
        "A love story with a happy ending (2004), romantic comedy",
        "Full-service car wash, interior included",
        "Clitoral stimulator for arousal disorder, clinically tested, pelvic therapy",
    ],
)
def test_lexicon_trade_terms_spare_lookalikes(text):
    assert max(Lexicon().analyze(text).scores.values()) < 0.5

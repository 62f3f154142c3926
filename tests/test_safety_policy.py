"""Policy: loading, every validation error, term/regex/attribute rules, allow/deny precedence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.safety import Policy, PolicyError, RuleClassifier, SafetyFilter, match_attributes
from llmrec.safety.matching import compile_pattern, compile_term


class _Zero:
    """A classifier that never flags anything, so only the policy decides."""

    name = "zero"
    labels = ("toxicity",)

    def score(self, texts):
        return {"toxicity": np.zeros(len(texts))}


def _filter(**policy) -> SafetyFilter:
    return SafetyFilter(_Zero(), Policy(**policy))


def test_shipped_default_policy_loads():
    policy = Policy.default()
    assert policy.default_threshold == 0.5 and policy.threshold("threat") == 0.5
    assert policy.threshold("unknown_label") == 0.5
    assert policy.allow_items == [] and policy.deny_items == []


def test_from_file_yaml_and_json(write):
    yml = write("p.yaml", "thresholds: {threat: 0.3}\nblocked_terms: [replica]\n")
    assert Policy.from_file(yml).threshold("threat") == 0.3
    js = write("p.json", json.dumps({"deny_items": ["7"], "default_threshold": 0.8}))
    policy = Policy.from_file(js)
    assert policy.deny_items == ["7"] and policy.threshold("insult") == 0.8
    assert Policy.from_file(write("empty.yaml", "")) == Policy()
    assert Policy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("colour: red\n", r"policy .*p\.yaml: unknown key\(s\) \['colour'\]"),
        ("thresholds: [0.5]\n", r"p\.yaml: thresholds must be a mapping"),
        ("thresholds: {threat: 1.5}\n", r"thresholds\['threat'\] must be a number in \[0, 1\]"),
        ("thresholds: {threat: -0.1}\n", r"thresholds\['threat'\] must be a number in \[0, 1\]"),
        ("thresholds: {threat: high}\n", r"thresholds\['threat'\] must be a number"),
        ("default_threshold: 2\n", r"default_threshold must be a number in \[0, 1\]"),
        ("default_threshold: true\n", r"default_threshold must be a number"),
        ("blocked_terms: replica\n", r"blocked_terms must be a list of strings"),
        ("blocked_terms: [ok, 3]\n", r"blocked_terms\[1\] must be a non-empty string"),
        (
            "blocked_patterns: ['fine', 'bad(']\n",
            r"blocked_patterns\[1\] is not a valid regex 'bad\('",
        ),
        ("allow_items: {a: 1}\n", r"allow_items must be a list of strings"),
        ("deny_items: ['']\n", r"deny_items\[0\] must be a non-empty string"),
        ("blocked_attributes: [genres]\n", r"blocked_attributes must be a mapping"),
        (
            "blocked_attributes: {genres: []}\n",
            r"blocked_attributes\['genres'\] must be a non-empty",
        ),
        ("blocked_attributes: {genres: [{a: 1}]}\n", r"blocked_attributes\['genres'\] values must"),
        ("match_inflections: maybe\n", r"match_inflections must be true or false"),
        ("description: [x]\n", r"description must be a string"),
        ("- just a list\n", r"p\.yaml: must be a mapping of keys"),
        ("thresholds: {threat: [\n", r"p\.yaml: cannot be parsed"),
    ],
)
def test_invalid_policy_files_name_file_and_key(write, content, match):
    with pytest.raises(PolicyError, match=match):
        Policy.from_file(write("p.yaml", content))


def test_invalid_policy_other_paths(write, tmp_path):
    with pytest.raises(PolicyError, match="no such file"):
        Policy.from_file(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match=r"p\.json: cannot be parsed"):
        Policy.from_file(write("p.json", "{not json"))
    with pytest.raises(
        PolicyError, match=r"^policy: thresholds\['x'\] must be a number in \[0, 1\]"
    ):
        Policy(thresholds={"x": 3})
    with pytest.raises(ValueError, match="unknown key"):  # PolicyError is a ValueError
        Policy.from_dict({"threshold": 0.5})


def test_terms_match_whole_words_case_insensitively():
    flt = _filter(blocked_terms=["ass", "knock off"])
    texts = ["First class seats", "Assassin's Creed", "Kiss my ASS", "two asses", "Knock-off bags"]
    assert [v.blocked for v in flt.check(texts)] == [False, False, True, True, True]
    reason = flt.check(["Kiss my ASS"])[0].reasons[0]
    assert (reason.rule, reason.label, reason.match) == ("policy.blocked_terms", "policy", "ass")
    strict = _filter(blocked_terms=["ass"], match_inflections=False)
    assert [v.blocked for v in strict.check(["ass", "asses"])] == [True, False]
    assert compile_term("kill").search("killing") and not compile_term("kill").search("skill")
    assert compile_term("18+").search("adults 18+ only")


def test_patterns_match_whole_words():
    flt = _filter(blocked_patterns=[r"counterfeit (?:watch|bag)e?s?", r"r[e3]plica"])
    texts = ["COUNTERFEIT WATCHES cheap", "counterfeitwatches", "Replica", "replicas", "r3plica"]
    assert [v.blocked for v in flt.check(texts)] == [True, False, True, False, True]
    assert flt.check(["Replica"])[0].reasons[0].match == "r[e3]plica"
    assert compile_pattern("ass").search("class") is None


def test_blocked_attributes():
    flt = _filter(blocked_attributes={"age_rating": ["NC-17"], "genres": ["Adult"], "year": [1999]})
    items = [
        {"age_rating": "nc-17"},
        {"genres": ["Drama", "adult"]},
        {"genres": ["Drama"], "age_rating": "PG"},
        {"year": 1999},
        {"year": "1999"},
        None,
    ]
    verdicts = flt.check(["t"] * len(items), items=items)
    assert [v.blocked for v in verdicts] == [True, True, False, True, False, False]
    assert verdicts[1].reasons[0].match == "genres=Adult"
    assert verdicts[1].reasons[0].rule == "policy.blocked_attributes"
    assert match_attributes({"g": ("a", "b")}, {"g": ["B"]}) == ["g=B"]
    assert match_attributes({"flag": 1}, {"flag": [True]}) == []


def test_allow_and_deny_precedence():
    flt = SafetyFilter(
        policy=Policy(
            blocked_terms=["replica"], allow_items=["ok", "both"], deny_items=["bad", "both"]
        )
    )
    texts = ["I will kill you", "Replica bag", "Heat (1995)", "I will kill you", "Heat (1995)"]
    ids = ["ok", "ok", "bad", "both", None]
    verdicts = flt.check(texts, item_ids=ids)
    assert [v.blocked for v in verdicts] == [False, False, True, True, False]
    allowed = verdicts[0]
    assert [(r.rule, r.action, r.match) for r in allowed.reasons] == [
        ("policy.allow_items", "allow", "ok")
    ]
    assert allowed.scores["threat"] == 1.0  # scores are kept for audit
    assert verdicts[2].reasons[0].rule == "policy.deny_items"
    assert verdicts[3].reasons[0].rule == "policy.deny_items"  # deny wins over allow
    assert len(verdicts[3].reasons) > 1  # plus the classifier's own reasons


def test_rule_classifier_scores():
    rules = RuleClassifier(["replica"], [r"fake \w+"])
    scores = rules.score(["a replica", "fake rolex", "real"])
    assert rules.labels == ("policy",)
    assert scores["policy"].tolist() == [1.0, 1.0, 0.0]
    assert rules.explain(["fake rolex", "real"]) == [{"policy": r"fake \w+"}, {}]

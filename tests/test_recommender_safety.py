"""The safety filter inside the recommender: verdicts once per item, a mask before ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrec import Recommender
from llmrec.models import EncoderConfig, ModelConfig, RetrievalConfig
from llmrec.safety import Policy, SafetyFilter
from tests.test_recommender import N_ITEMS, cyclic_dataset


@pytest.fixture(scope="module")
def rec(tiny_encoder_dir, tmp_path_factory):
    policy = Policy.from_dict({"deny_items": ["m3"], "blocked_terms": ["jaws"]})
    r = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir),
                    ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                dropout=0.0, max_len=7, head_top_n=5),
                    safety=SafetyFilter(policy=policy),
                    cache_dir=tmp_path_factory.mktemp("cache"))
    r.fit(cyclic_dataset(), epochs=20, batch_size=13, lr=3e-3, progress=False, patience=100)
    return r


def test_verdicts_are_computed_at_fit_and_reported(rec):
    blocked = {item for item, _, _ in rec.safety_report()}
    assert blocked == {"m3", "m6"}  # deny list, and the term 'jaws' (item m6 'Jaws')
    reasons = dict((i, r) for i, _, r in rec.safety_report())
    assert "policy.deny_items" in reasons["m3"] and "jaws" in reasons["m6"].lower()
    out = rec.recommend(["m0", "m1", "m2"], k=3)
    assert "m3" not in out.item_ids  # the cyclic rule's answer, but blocked
    everything = rec.recommend(["m0", "m1", "m2"], k=N_ITEMS)
    removed = {r.item_id: r.reason for r in everything.removed}
    assert set(removed) == {"m3", "m6"} and "deny_items" in removed["m3"]


histories = st.lists(st.sampled_from([f"m{i}" for i in range(N_ITEMS)]), max_size=12)


@pytest.mark.parametrize("retrieval", [
    RetrievalConfig(),  # exact
    RetrievalConfig(backend="faiss", index="hnsw", hnsw_m=4, ef_search=4),  # approximate
    RetrievalConfig(backend="faiss", index="ivf", nlist=4, nprobe=1, overfetch=1.0),
], ids=["exact", "faiss-hnsw", "faiss-ivf"])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories, k=st.integers(1, 20), exclude=st.booleans(),
       deny=st.sets(st.sampled_from([f"m{i}" for i in range(N_ITEMS)]), max_size=8))
def test_no_blocked_item_is_ever_recommended(rec, retrieval, history, k, exclude, deny):
    """Whatever the retrieval (exact or an approximate index searched with a small budget),
    a blocked item never appears and the list is as long as the unblocked catalog allows."""
    rec.set_retrieval(retrieval)
    try:
        rec.safety = SafetyFilter(policy=Policy.from_dict({"deny_items": sorted(deny)}))
        rec.blocked, rec.block_reasons = rec._scan(rec.catalog)
        out = rec.recommend(history, k=k, exclude_history=exclude)
        assert not set(out.item_ids) & deny
        assert len(out) == min(k, N_ITEMS - len(deny | (set(history) if exclude else set())))
    finally:
        rec.set_retrieval(RetrievalConfig())


@pytest.mark.parametrize("retrieval", ["exact", "faiss"])
def test_items_added_later_are_checked_at_once(rec, tmp_path, retrieval):
    rec.set_retrieval(RetrievalConfig(backend=retrieval, index="flat"))
    rec.safety = SafetyFilter()
    rec.blocked, rec.block_reasons = rec._scan(rec.catalog)
    rec.recommend(["m0"], k=3)  # a faiss index over the catalog as it was
    bad, ok = f"bad-{retrieval}", f"ok-{retrieval}"  # the fixture's catalog keeps growing
    rec.add_items({bad: {"title": "I will find you and kill you, you worthless idiot",
                         "genres": ["Drama"]},
                   ok: {"title": "Kill Bill: Vol. 1", "genres": ["Action"]}})
    n = len(rec.catalog)
    ids = rec.recommend(["m0"], k=n, exclude_history=False).item_ids
    assert ok in ids and bad not in ids
    again = Recommender.from_pretrained(rec.save_pretrained(tmp_path / "m"))
    assert again.blocked.tolist() == rec.blocked.tolist()
    assert bad not in again.recommend(["m0"], k=n).item_ids
    assert again.safety is not None and again.retrieval.backend == retrieval
    exact = Recommender.from_pretrained(tmp_path / "m", retrieval=RetrievalConfig())
    assert exact.retrieval.backend == "exact" and exact.model.retriever is None
    assert exact.recommend(["m0"], k=n).item_ids == again.recommend(["m0"], k=n).item_ids
    rec.set_retrieval(RetrievalConfig())


def test_safety_can_be_turned_off_explicitly(tiny_encoder_dir):
    assert Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir), safety=None).safety \
        is None
    with pytest.raises(ValueError, match="safety must be a SafetyFilter, 'default' or None"):
        Recommender(safety="strict")


def test_mask_lookup_cost_does_not_depend_on_the_classifier(rec, monkeypatch):
    """Per request the filter is a mask lookup: recommend never calls the classifier."""
    calls = []
    monkeypatch.setattr(rec.safety, "check", lambda *a, **k: calls.append(1) or [])
    rec.recommend_batch([["m0"], ["m1", "m2"], []], k=3)
    assert calls == []
    assert isinstance(rec.blocked, np.ndarray) and rec.blocked.dtype == bool


def test_fine_tuned_safety_layer_is_saved_with_the_model(rec, tmp_path, monkeypatch):
    """from_pretrained reads the learned layer from the model folder: no retraining on a new
    machine (an empty cache folder stays empty) and the same verdicts."""
    import json

    rec.safety = SafetyFilter()
    rec.blocked, rec.block_reasons = rec._scan(rec.catalog)
    rec.save_pretrained(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "safety.json").read_text())
    assert saved["classifier"]["semantic_weights"] == "safety_semantic.safetensors"
    assert (tmp_path / "model" / "safety_semantic.safetensors").is_file()
    # the operating point is pinned: a later version's default margin cannot move it
    settings = rec.safety.classifier.semantic_settings
    assert (saved["classifier"]["semantic_margin"], saved["classifier"]["semantic_c"]) == (
        settings.margin, settings.c)
    assert saved["classifier"]["semantic_members"] == ["lora", "regression", "ngram"]
    assert saved["classifier"]["semantic_ngram_c"] == settings.ngram_c
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path / "empty-cache"))
    again = Recommender.from_pretrained(tmp_path / "model", cache_dir=tmp_path / "cache")
    texts = ["I will find you and kill you, you worthless idiot", "Kill Bill: Vol. 1",
             "Popular with other viewers; your own history will shape later picks."]
    assert [v.to_dict() for v in again.safety.check(texts)] == [
        v.to_dict() for v in rec.safety.check(texts)]
    assert not list((tmp_path / "empty-cache").glob("safety/*"))
    again.save_pretrained(tmp_path / "moved")  # re-saved from a loaded model: still relative
    moved = json.loads((tmp_path / "moved" / "safety.json").read_text())
    assert moved["classifier"]["semantic_weights"] == "safety_semantic.safetensors"

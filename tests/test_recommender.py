"""The notebook API end to end with a tiny random encoder saved as a local HF folder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec import Recommender
from llmrec.data import Interactions, ItemCatalog, RecDataset
from llmrec.models import EncoderConfig, ModelConfig
from llmrec.recommender import Recommendation, RecommendationList

N_ITEMS = 12
TITLES = ["Alien", "Aliens", "Heat", "Clue", "Fargo", "Brazil", "Jaws", "Rocky", "Tron",
          "Big", "Up", "Cars"]


def cyclic_dataset(n_users: int = 13) -> RecDataset:
    rows = [(u, (u + i) % N_ITEMS, float(i)) for u in range(n_users) for i in range(10)]
    frame = pd.DataFrame({
        "user": np.array([r[0] for r in rows]), "item": np.array([r[1] for r in rows]),
        "timestamp": np.array([r[2] for r in rows]), "rating": np.nan, "event": None,
        "source_row": np.arange(len(rows)),
    })
    catalog = ItemCatalog([f"m{i}" for i in range(N_ITEMS)],
                          pd.DataFrame({"title": TITLES, "genres": [["Drama"]] * N_ITEMS}))
    return RecDataset("cyclic", catalog, Interactions(frame, [f"u{u}" for u in range(n_users)]))


@pytest.fixture(scope="module")
def trained(tiny_encoder_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    rec = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir),
                      ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                  dropout=0.0, max_len=7, head_top_n=5),
                      cache_dir=cache)
    ds = cyclic_dataset()
    result = rec.fit(ds, epochs=40, batch_size=13, lr=3e-3, progress=False, patience=100,
                     eval_every=10)
    return rec, ds, result


def test_fit_learns_and_recommend_returns_typed_results(trained):
    rec, _ds, result = trained
    assert result.best_metric > 0.5
    out = rec.recommend(["m0", "m1", "m2"], k=4)
    assert isinstance(out, RecommendationList) and len(out) == 4
    assert all(isinstance(r, Recommendation) for r in out)
    assert [r.rank for r in out] == [1, 2, 3, 4]
    assert out[0].item_id == "m3"  # the cyclic rule
    assert out[0].text == "Clue. Genres: Drama"
    assert [r.score for r in out] == sorted((r.score for r in out), reverse=True)
    assert not {"m0", "m1", "m2"} & set(out.item_ids)  # history excluded by default
    for r in out:  # evidence only ever names the user's own history
        assert r.evidence and {e.item_id for e in r.evidence} <= {"m0", "m1", "m2"}


def test_evaluate_uses_the_shared_harness(trained):
    rec, ds, _ = trained
    report = rec.evaluate(ds.split())
    assert report.n_cases == 13 and report["hr@10"] > 0.9
    assert report.protocol["mask_history"] is False


@pytest.mark.parametrize(
    ("history", "kwargs", "note"),
    [
        ([], {}, "empty history (cold-start user): most popular items"),
        (["m0", "nope"], {"on_unknown": "ignore"}, "ignored 1 unknown item id(s): ['nope']"),
        ([f"m{i % N_ITEMS}" for i in range(30)], {"exclude_history": False},
         "history of 30 items: the model reads the 7 most recent"),
        (["m0"], {"k": 50}, "only 11 recommendable items for k=50"),
    ],
    ids=["cold-start", "unknown-ignored", "huge-history", "k-too-large"],
)
def test_edge_cases_have_defined_behaviour(trained, history, kwargs, note):
    rec, _, _ = trained
    out = rec.recommend(history, **{"k": 5, **kwargs})
    assert any(n.startswith(note) for n in out.notes), out.notes
    assert len(out) >= 1


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        ((["m0", "nope"],), {}, KeyError, r"unknown item id\(s\) in history: \['nope'\]"),
        (("m0",), {}, TypeError, r"history must be a sequence of item ids"),
        ((["m0"],), {"k": 0}, ValueError, r"k must be a positive int"),
        ((["m0"],), {"on_unknown": "skip"}, ValueError, r"on_unknown must be one of"),
    ],
)
def test_recommend_errors(trained, args, kwargs, exc, match):
    rec, _, _ = trained
    with pytest.raises(exc, match=match):
        rec.recommend(*args, **kwargs)


def test_recommend_batch_matches_single(trained):
    rec, _, _ = trained
    hists = [["m0", "m1"], ["m5"], ["m9", "m10", "m11"]]
    batch = rec.recommend_batch(hists, k=3)
    for h, b in zip(hists, batch, strict=True):
        single = rec.recommend(h, k=3)
        assert single.item_ids == b.item_ids
        np.testing.assert_allclose([r.score for r in single], [r.score for r in b], rtol=1e-5)


def test_save_load_gives_identical_scores(trained, tmp_path):
    rec, _ds, _ = trained
    rec.save_pretrained(tmp_path / "model")
    again = Recommender.from_pretrained(tmp_path / "model")
    for h in (["m0", "m1"], ["m4"], []):
        a, b = rec.recommend(h, k=6), again.recommend(h, k=6)
        assert a.item_ids == b.item_ids
        assert [r.score for r in a] == [r.score for r in b]
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert list(cfg) == sorted(cfg) and "llmrec_version" in cfg


def test_from_pretrained_in_a_fresh_process(trained, tmp_path):
    rec, _, _ = trained
    rec.save_pretrained(tmp_path / "model")
    expected = rec.recommend(["m0", "m1"], k=3).item_ids
    code = ("import sys; from llmrec import Recommender; "
            "r = Recommender.from_pretrained(sys.argv[1]); "
            "print(','.join(r.recommend(['m0', 'm1'], k=3).item_ids))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model")],
                         capture_output=True, text=True, check=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip().split(",") == expected


def test_save_is_atomic(trained, tmp_path, monkeypatch):
    rec, _, _ = trained
    target = rec.save_pretrained(tmp_path / "model")
    (target / "NOTES.md").write_text("hand-written")
    before = (target / "model.safetensors").read_bytes()
    import llmrec.recommender.recommender as module

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        rec.save_pretrained(target)
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folder left
    monkeypatch.undo()
    rec.save_pretrained(target)
    assert (target / "NOTES.md").read_text() == "hand-written"  # user files survive a re-save


def test_load_is_strict(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    rec, _, _ = trained
    path = rec.save_pretrained(tmp_path / "model")
    state = load_file(str(path / "model.safetensors"))
    state["extra.weight"] = torch.zeros(1)
    del state["head.mlp.1.weight"]
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing \['head.mlp.1.weight'\], unexpected "
                                         r"\['extra.weight'\]"):
        Recommender.from_pretrained(path)
    with pytest.raises(FileNotFoundError, match="not an llmrec model folder"):
        Recommender.from_pretrained(tmp_path / "nowhere")


def test_models_saved_before_the_unseen_offset_load_unchanged(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    rec, _, _ = trained
    path = rec.save_pretrained(tmp_path / "model")
    state = load_file(str(path / "model.safetensors"))
    del state["unseen"], state["unseen_offset"]
    save_file(state, str(path / "model.safetensors"))
    old = Recommender.from_pretrained(path)
    assert float(old.model.unseen_offset) == 0.0 and not old.model.unseen.any()
    assert old.recommend(["m0", "m1"]).item_ids == rec.recommend(["m0", "m1"]).item_ids


def test_add_items_are_recommendable_at_once(trained, tmp_path):
    rec, _, _ = trained
    rec = Recommender.from_pretrained(rec.save_pretrained(tmp_path / "model"))
    rec.add_items({"new1": {"title": "Brand New", "genres": ["Drama"]}})
    assert rec.catalog.text(N_ITEMS) == "Brand New. Genres: Drama"
    out = rec.recommend(["m0"], k=N_ITEMS + 1, exclude_history=False)
    assert "new1" in out.item_ids
    assert rec.model.unseen.tolist() == [False] * N_ITEMS + [True]  # never trained on
    again = Recommender.from_pretrained(rec.save_pretrained(tmp_path / "grown"))
    assert again.model.unseen.tolist() == rec.model.unseen.tolist()
    with pytest.raises(ValueError, match=r"already in the catalog: \['m1'\]"):
        rec.add_items({"m1": {"title": "dup"}})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['plot'\]"):
        rec.add_items({"x": {"plot": "?"}})


def test_untrained_recommender_says_so():
    with pytest.raises(RuntimeError, match="not trained: call fit"):
        Recommender().recommend(["a"])


def test_lora_phase_trains_only_adapter_and_recommender(tiny_encoder_dir, tmp_path):
    from llmrec.models import LoraSettings

    rec = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir,
                                    lora=LoraSettings(r=4, alpha=8)),
                      ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                  dropout=0.0, max_len=7, head_top_n=5), cache_dir=tmp_path)
    before = {k: v.clone() for k, v in rec.encoder.model.state_dict().items()}
    text_before = rec.encode_texts(cyclic_dataset().catalog.texts(), show_progress=False)
    rec.fit(cyclic_dataset(), epochs=3, encoder_epochs=2, encoder_items=8, batch_size=13,
            lr=3e-3, encoder_lr=1e-2, progress=False, patience=100)
    after = rec.encoder.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed), sorted(changed)[:5]
    trainable = {n for n, p in rec.encoder.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # the recommender's cached item embeddings follow the adapted encoder
    assert not np.allclose(rec.model.items.text.numpy(), text_before)
    # and a save -> load round trip keeps the adapter and the scores
    again = Recommender.from_pretrained(rec.save_pretrained(tmp_path / "lora-model"))
    a, b = rec.recommend(["m0", "m1"], k=4), again.recommend(["m0", "m1"], k=4)
    assert a.item_ids == b.item_ids
    new = {"n1": {"title": "Fresh", "genres": ["Drama"]}}
    rec.add_items(new)
    again.add_items(new)
    np.testing.assert_allclose(rec.model.items.text[-1].numpy(),
                               again.model.items.text[-1].numpy(), atol=1e-5)


def test_encoder_epochs_need_a_lora_adapter(tiny_encoder_dir, tmp_path):
    rec = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir),
                      ModelConfig(hidden_size=32, n_heads=4, max_len=7), cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"encoder_epochs > 0 needs an item encoder with a "
                                         r"LoRA adapter"):
        rec.fit(cyclic_dataset(), epochs=2, encoder_epochs=1, progress=False)


def test_score_items_matches_recommend(trained):
    rec, _, _ = trained
    out = rec.recommend(["m0", "m1"], k=3)
    scores = rec.score_items([["m0", "m1"]] * 3, out.item_ids)
    np.testing.assert_allclose(scores, [r.score for r in out], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_recommend_equals_full_ranking_at_any_head_weight(trained, scale):
    """At head weight 0 only the top k are retrieved (the head reorders nothing): the list
    must still be the full-catalog ranking, with the head's evidence."""
    rec, _, _ = trained
    kept = float(rec.model.head_scale)
    rec.model.head_scale.fill_(scale)
    try:
        history = ["m0", "m1", "m2"]
        out = rec.recommend(history, k=4)
        scores = rec.score_items([history] * N_ITEMS, [f"m{i}" for i in range(N_ITEMS)])
    finally:
        rec.model.head_scale.fill_(kept)
    expected = [f"m{i}" for i in np.argsort(-scores, kind="stable") if i > 2][:4]
    if scale == 0.0:  # the head's top-5 re-ranking can differ from the full ranking otherwise
        assert out.item_ids == expected
    assert all(r.evidence for r in out)


def test_model_card_is_written_and_updated_not_overwritten(trained, tmp_path):
    import yaml

    rec, ds, _ = trained
    rec.evaluate(ds.split(), name="test")
    path = rec.save_pretrained(tmp_path / "model")
    card = (path / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "llmrec" and meta["datasets"] == ["cyclic"]
    assert meta["base_model"].endswith(str(rec.encoder_config.model_name_or_path)[-10:])
    assert {m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]} >= {"ndcg@10"}
    assert "history masking off" in card and "| hidden_size | 32 |" in card
    assert "Catalog scan: 0 of 12 items blocked" in card
    (path / "README.md").write_text(card + "\n## My notes\n\nTuned by hand.\n")
    again = Recommender.from_pretrained(path)
    again.save_pretrained(path)
    updated = (path / "README.md").read_text()
    assert "## My notes\n\nTuned by hand." in updated  # hand-written notes survive
    assert updated.count("llmrec:auto:begin") == 1 and "| ndcg@10 |" in updated


@pytest.mark.parametrize("language", ["en", "de"])
def test_recommend_with_explanations(trained, language):
    from llmrec.explain import ExplainConfig, Explanation

    rec, _, _ = trained
    history = ["m0", "m1", "m2"]
    out = rec.recommend(history, k=3, explain=ExplainConfig(language=language))
    for r in out:
        assert isinstance(r.explanation, Explanation) and r.explanation.safe
        assert r.explanation.text and r.explanation.method.split(" ")[0] in (
            "template", "neutral")
        assert {e.item_id for e in r.explanation.evidence} <= set(history)
    assert rec.recommend(history, k=2).items[0].explanation is None  # opt-in
    cold = rec.recommend([], k=2, explain=True)
    assert all(r.explanation is not None for r in cold)

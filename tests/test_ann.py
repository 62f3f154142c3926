"""Approximate candidate retrieval through faiss (RetrievalConfig(backend="faiss"))."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from llmrec.models import ModelConfig, RetrievalConfig, SeqRecModel, pad_left
from llmrec.models.ann import FaissRetriever, make_retriever

pytest.importorskip("faiss")


def model_with(n_items: int, seed: int = 0, clusters: int = 0) -> SeqRecModel:
    """A random model; ``clusters`` > 0: item texts around that many centres (real item
    embeddings are clustered, which is what approximate indexes rely on)."""
    torch.manual_seed(seed)
    model = SeqRecModel(ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                    dropout=0.0, max_len=7, n_items=n_items, text_dim=16,
                                    head_top_n=20))
    text = torch.randn(n_items, 16)
    if clusters:
        centres = torch.randn(clusters, 16) * 3
        text = centres[torch.randint(clusters, (n_items,))] + 0.5 * text
    model.items.set_text(text)
    return model.eval()


def histories(n_users: int, n_items: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(n_items, size=rng.integers(1, 8), replace=False) for _ in range(n_users)]


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "annoy"}, r"backend must be one of \('exact', 'faiss'\)"),
    ({"index": "pq"}, r"index must be one of \('hnsw', 'ivf', 'flat'\)"),
    ({"ef_search": 0}, r"ef_search must be >= 1"),
    ({"nlist": -1}, r"nlist must be >= 0"),
    ({"overfetch": 0.5}, r"overfetch must be >= 1"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetrievalConfig(**kwargs)


def test_config_round_trips_and_rejects_unknown_keys():
    cfg = RetrievalConfig(backend="faiss", index="ivf", nprobe=8)
    assert RetrievalConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['efsearch'\]"):
        RetrievalConfig.from_dict({"efsearch": 3})
    assert make_retriever(RetrievalConfig()) is None  # exact: no index at all


@pytest.mark.parametrize("offset", [0.0, 1.5])
def test_flat_index_gives_the_exact_ranking(offset):
    """With an exact (flat) index the two-stage ranking is the exact one: same items, same
    scores, same masked report, with the item bias (unseen-item offset) inside the index."""
    model = model_with(3000)
    model.unseen[::7] = True
    model.unseen_offset.fill_(offset)
    hist = histories(16, 3000)
    seq = pad_left(hist, 7)
    blocked = torch.zeros(3000, dtype=torch.bool)
    blocked[torch.randperm(3000, generator=torch.Generator().manual_seed(1))[:600]] = True
    exact = model.rank(seq, top_n=50, exclude=blocked, exclude_rows=hist)
    model.retriever = FaissRetriever(RetrievalConfig(backend="faiss", index="flat"))
    approx = model.rank(seq, top_n=50, exclude=blocked, exclude_rows=hist)
    assert torch.equal(approx.items, exact.items)
    torch.testing.assert_close(approx.scores, exact.scores)
    assert torch.equal(approx.unmasked, exact.unmasked)


@pytest.mark.parametrize("clusters, settings", [
    (0, {"index": "hnsw"}),
    (64, {"index": "hnsw", "hnsw_m": 64}),  # 0.94 with the default 32 neighbours
    (64, {"index": "ivf"}),
    (0, {"index": "ivf", "nprobe": 256}),  # 0.54 with the default 32 lists searched
])
def test_approximate_indexes_find_nearly_all_of_the_exact_top(clusters, settings):
    """recall@50 against exact retrieval, measured 0.98-1.0 on these settings: isotropic
    item vectors (clusters 0) and vectors around 64 centres need different settings."""
    model = model_with(20_000, clusters=clusters)
    seq = pad_left(histories(64, 20_000), 7)
    model.head_scale.fill_(0.0)  # compare retrieval alone
    exact = model.rank(seq, top_n=50)
    model.retriever = make_retriever(RetrievalConfig(backend="faiss", **settings))
    approx = model.rank(seq, top_n=50)
    recall = np.mean([len(set(a) & set(e)) / 50 for a, e in
                      zip(approx.items.tolist(), exact.items.tolist(), strict=True)])
    assert recall >= 0.95, recall
    # every score is the exact score of the item it names, best first
    assert (approx.scores[:, :-1] >= approx.scores[:, 1:]).all()


def test_index_is_rebuilt_when_the_catalog_or_weights_change():
    model = model_with(500)
    retriever = FaissRetriever(RetrievalConfig(backend="faiss", index="flat"))
    model.retriever = retriever
    seq = pad_left([np.array([1, 2, 3])], 7)
    model.rank(seq, top_n=5)
    model.rank(seq, top_n=5)
    assert retriever.builds == 1  # built once, reused
    model.grow_items(torch.randn(1, 16))  # add_items
    model.rank(seq, top_n=5)
    assert retriever.builds == 2
    model.unseen_offset.fill_(100.0)  # the new item is unseen: the offset puts it on top
    out = model.rank(seq, top_n=5)
    assert retriever.builds == 3 and out.items[0, 0] == 500
    model.unseen[7] = True  # which items are unseen, same shape
    out = model.rank(seq, top_n=5)
    assert retriever.builds == 4 and set(out.items[0, :2].tolist()) == {7, 500}
    with torch.no_grad():
        model.items.proj[0].weight.mul_(2.0)
    model.rank(seq, top_n=5)
    assert retriever.builds == 5


@pytest.mark.parametrize("settings", [
    {"index": "hnsw", "hnsw_m": 4, "ef_search": 2, "overfetch": 1.0},
    {"index": "ivf", "nlist": 64, "nprobe": 1, "overfetch": 1.0},
])
def test_masks_hold_on_a_large_catalog_with_tiny_search_budgets(settings):
    """Random safety masks (none, half, 97% of the catalog) and histories on 3,000 items,
    where the searches really are approximate: never a masked or history item, always the
    full list, each score the exact path's score of its item."""
    model = model_with(3000, clusters=32)
    model.retriever = make_retriever(RetrievalConfig(backend="faiss", **settings))
    rng = np.random.default_rng(0)
    for share in (0.0, 0.5, 0.97):
        blocked = torch.from_numpy(rng.random(3000) < share)
        hist = histories(32, 3000, seed=int(share * 100))
        seq = pad_left(hist, 7)
        out = model.rank(seq, top_n=40, exclude=blocked, exclude_rows=hist)
        for row, h in enumerate(hist):
            items = out.items[row].tolist()
            assert len(set(items)) == 40 and torch.isfinite(out.scores[row]).all()
            assert not blocked[items].any() and not set(items) & set(h.tolist())
        model.retriever, retriever = None, model.retriever
        exact = model.rank(seq, top_n=40, exclude=blocked, exclude_rows=hist)
        model.retriever = retriever
        # the same scores for the items both return (exact re-scoring of the candidates)
        for row in range(len(hist)):
            got = dict(zip(out.items[row].tolist(), out.scores[row].tolist(), strict=True))
            ref = dict(zip(exact.items[row].tolist(), exact.scores[row].tolist(),
                           strict=True))
            for item in set(got) & set(ref):
                assert got[item] == pytest.approx(ref[item], rel=1e-4, abs=1e-5)


def test_rows_with_too_few_candidates_fall_back_to_exact():
    """A budget of 1 candidate per slot with most of the catalog masked still returns the
    full list, and never a masked item."""
    model = model_with(400)
    model.retriever = make_retriever(RetrievalConfig(backend="faiss", index="hnsw", hnsw_m=4,
                                                     ef_search=1, overfetch=1.0))
    blocked = torch.ones(400, dtype=torch.bool)
    blocked[::40] = False  # 10 items left
    out = model.rank(pad_left([np.array([5])], 7), top_n=10, exclude=blocked)
    assert sorted(out.items[0].tolist()) == list(range(0, 400, 40))
    assert torch.isfinite(out.scores).all()


def test_missing_faiss_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"pip install 'llmrec\[faiss\]'"):
        make_retriever(RetrievalConfig(backend="faiss"))


def test_recommender_checks_its_retrieval_before_any_training(monkeypatch):
    from llmrec import Recommender

    with pytest.raises(TypeError, match=r"retrieval must be a RetrievalConfig, got dict"):
        Recommender(safety=None, retrieval={"backend": "faiss"})
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"retrieval=RetrievalConfig\(\)"):
        Recommender(safety=None, retrieval=RetrievalConfig(backend="faiss"))
    rec = Recommender(safety=None)
    with pytest.raises(ImportError, match=r"pip install 'llmrec\[faiss\]'"):
        rec.set_retrieval(RetrievalConfig(backend="faiss"))
    assert rec.retrieval.backend == "exact"  # unchanged by the failed switch

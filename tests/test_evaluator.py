"""The evaluation harness: hand values, batching, masking, groups, baselines and errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from llmrec.data.cases import EvalCases
from llmrec.evaluation import (
    EvalConfig,
    EvalReport,
    PopularityScorer,
    RandomScorer,
    compare_markdown,
    evaluate,
)

N_ITEMS = 10


def fixed_order(users: np.ndarray, histories: list[np.ndarray]) -> torch.Tensor:
    """Item i always has rank i + 1."""
    return torch.arange(N_ITEMS, 0, -1, dtype=torch.float32).expand(len(users), N_ITEMS)


def make_cases(targets, histories=None, is_cold=None, n_items: int = N_ITEMS) -> EvalCases:
    n = len(targets)
    return EvalCases(
        users=np.arange(n, dtype=np.int64),
        histories=histories or [np.array([], dtype=np.int64)] * n,
        targets=np.asarray(targets, dtype=np.int64),
        n_items=n_items,
        is_cold=None if is_cold is None else np.asarray(is_cold, dtype=bool),
    )


def test_known_ranks_give_hand_values() -> None:
    cases = make_cases([0, 2, 9])  # ranks 1, 3, 10
    report = evaluate(fixed_order, cases, item_popularity=np.arange(N_ITEMS), name="fixed")
    assert report.n_cases == 3 and report.name == "fixed"
    assert report["hr@5"] == pytest.approx(2 / 3)
    assert report["recall@5"] == report["hr@5"]
    assert report["ndcg@10"] == pytest.approx((1 + 0.5 + 1 / math.log2(11)) / 3)
    assert report["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 10) / 3)
    assert report["mrr@5"] == pytest.approx((1 + 1 / 3) / 3)
    assert report["auc"] == pytest.approx((1 + 7 / 9 + 0) / 3)
    assert report["coverage@5"] == pytest.approx(0.5)
    assert report["gini@5"] == pytest.approx(0.5)  # exposure [3]*5 + [0]*5
    assert report["popularity@5"] == pytest.approx(2.0)  # mean of items 0..4
    assert report["coverage@20"] == 1.0 and report["hr@20"] == 1.0
    assert report.groups == {} and report.skipped == {}
    assert list(report.metrics)[:3] == ["hr@5", "hr@10", "hr@20"]


def _tied_scorer(users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
    """Few distinct integer scores, fixed per user: lots of ties."""
    return np.stack([np.random.default_rng(int(u)).integers(0, 3, N_ITEMS) for u in users])


@pytest.mark.parametrize("scorer", [_tied_scorer, RandomScorer(N_ITEMS, seed=3)])
def test_batch_size_invariance(scorer) -> None:
    rng = np.random.default_rng(0)
    cases = EvalCases(
        users=np.arange(11, dtype=np.int64),
        histories=[rng.integers(0, N_ITEMS, rng.integers(0, 4)) for _ in range(11)],
        targets=rng.integers(0, N_ITEMS, 11),
        n_items=N_ITEMS,
        is_cold=rng.random(11) < 0.3,
    )
    pop = rng.integers(0, 50, N_ITEMS)
    dicts = [
        evaluate(
            scorer, cases, EvalConfig(batch_size=bs, mask_history=True), item_popularity=pop
        ).to_dict()
        for bs in (1, 3, 1000)
    ]
    for d in dicts[1:]:
        assert d["n_cases"] == dicts[0]["n_cases"]
        assert d["metrics"] == pytest.approx(dicts[0]["metrics"], abs=1e-12)
        for g in ("warm", "cold"):
            assert d["groups"][g]["metrics"] == pytest.approx(
                dicts[0]["groups"][g]["metrics"], abs=1e-12
            )


def test_mask_history_on_and_off() -> None:
    # case 0: history {0, 1}, target 2 -> rank 3 unmasked, rank 1 masked
    # case 1: history {4}, target 4 (re-consumption) -> rank 5 unmasked, a miss when masked
    cases = make_cases([2, 4], histories=[np.array([0, 1]), np.array([4])])
    off = evaluate(fixed_order, cases, EvalConfig(ks=(1, 5)))
    on = evaluate(fixed_order, cases, EvalConfig(ks=(1, 5), mask_history=True))
    assert off["hr@1"] == 0.0 and off["hr@5"] == 1.0
    assert off["ndcg@5"] == pytest.approx((0.5 + 1 / math.log2(6)) / 2)
    assert on["hr@1"] == 0.5 and on["hr@5"] == 0.5
    assert on["auc"] == pytest.approx((1.0 + 0.0) / 2)
    assert on["coverage@1"] == pytest.approx(2 / N_ITEMS)  # items 2 and 0 lead the lists
    assert off.protocol["mask_history"] is False and on.protocol["mask_history"] is True
    assert "history masking on" in on.to_markdown()
    assert "history masking off" in off.to_markdown()


def test_cold_and_warm_groups_match_subsets() -> None:
    flags = [False, True, False, True, True]
    cases = make_cases([0, 2, 9, 4, 1], is_cold=flags)
    config = EvalConfig(ks=(2, 5))
    pop = np.arange(N_ITEMS)
    report = evaluate(RandomScorer(N_ITEMS, 1), cases, config, item_popularity=pop, name="rnd")
    assert set(report.groups) == {"warm", "cold"}
    for g, sel in (("warm", ~np.array(flags)), ("cold", np.array(flags))):
        sub = evaluate(RandomScorer(N_ITEMS, 1), cases.subset(sel), config, item_popularity=pop)
        assert report.groups[g].n_cases == sub.n_cases == sel.sum()
        assert report.groups[g].metrics == pytest.approx(sub.metrics, abs=1e-12)
        assert report.groups[g].name == f"rnd/{g}"
    assert "warm (n=2)" in report.to_markdown() and "cold (n=3)" in report.to_markdown()
    only_warm = evaluate(fixed_order, make_cases([0, 1], is_cold=[False, False]))
    assert set(only_warm.groups) == {"warm"}  # an empty group is omitted


def test_popularity_scorer() -> None:
    pop = PopularityScorer([np.array([0, 1, 1]), np.array([1, 2]), np.array([], np.int64)], 4)
    assert pop.popularity.dtype == np.float64
    np.testing.assert_array_equal(pop.popularity, [1.0, 3.0, 1.0, 0.0])
    scores = pop(np.array([5, 7]), [np.array([0]), np.array([1])])
    assert scores.shape == (2, 4) and torch.equal(scores[0], scores[1])
    report = evaluate(pop, make_cases([1, 0, 3], n_items=4), EvalConfig(ks=(1, 2)))
    # target 1: rank 1; target 0: tied with item 2 at ranks {2, 3}; target 3: rank 4
    assert report["hr@1"] == pytest.approx(1 / 3)
    assert report["hr@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    with pytest.raises(ValueError, match=r"training item indices must lie in \[0, n_items=4\)"):
        PopularityScorer([np.array([4])], 4)


def test_random_scorer_is_reproducible_per_user() -> None:
    r = RandomScorer(N_ITEMS, seed=0)
    a = r(np.array([1, 2]), [np.array([])] * 2)
    b = r(np.array([2]), [np.array([])])
    assert a.shape == (2, N_ITEMS) and torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


def test_report_serialisation_and_comparison() -> None:
    cases = make_cases([0, 2, 9], is_cold=[False, True, False])
    a = evaluate(fixed_order, cases, name="fixed")
    b = evaluate(RandomScorer(N_ITEMS), cases, EvalConfig(mask_history=True), name="random")
    d = a.to_dict()
    assert EvalReport.from_dict(json.loads(json.dumps(d))) == a
    assert a.skipped == {"popularity": "item_popularity was not given to evaluate()"}
    assert "Not computed: popularity" in a.to_markdown()
    table = compare_markdown([a, b], keys=("ndcg@10", "popularity@10"))
    assert "| fixed | 3 | 0.5" in table and "n/a" in table
    assert "Warning: protocols differ" in table
    c = evaluate(fixed_order, cases, EvalConfig(ks=(10, 50)), name="other-ks")
    assert "Warning" not in compare_markdown([a, a, c])  # differing K alone is comparable
    assert "tie-break" in compare_markdown([a])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ks": ()}, r"EvalConfig.ks must be a non-empty tuple of ints >= 1"),
        ({"ks": (5, 0)}, r"EvalConfig.ks must be .* got \(5, 0\)"),
        ({"ks": (2.5,)}, r"EvalConfig.ks"),
        ({"batch_size": 0}, r"EvalConfig.batch_size must be an int >= 1, got 0"),
        ({"mask_history": "yes"}, r"EvalConfig.mask_history must be True or False"),
        ({"metrics": ("hr", "ndgc")}, r"unknown metric\(s\) \['ndgc'\]; allowed: hr, ndcg, mrr"),
        ({"metrics": ()}, r"EvalConfig.metrics: must not be empty; allowed: hr"),
        ({"device": "toaster"}, r"EvalConfig.device must be a torch device string"),
    ],
)
def test_config_errors(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kwargs)


def test_config_normalises() -> None:
    c = EvalConfig(ks=[20, 5, 5], metrics=("ndcg", "hr", "ndcg"))
    assert c.ks == (5, 20) and c.metrics == ("ndcg", "hr")


def test_evaluate_errors() -> None:
    cases = make_cases([0, 1])
    with pytest.raises(
        ValueError, match=r"shape \(2, 9\), expected \(batch, n_items\) = \(2, 10\)"
    ):
        evaluate(lambda u, h: torch.zeros(len(u), N_ITEMS - 1), cases)
    with pytest.raises(ValueError, match=r"NaN scores in 1 of 2 rows"):
        evaluate(lambda u, h: torch.tensor([[0.0] * N_ITEMS, [math.nan] * N_ITEMS]), cases)
    with pytest.raises(TypeError, match=r"must return a torch\.Tensor or np\.ndarray, got list"):
        evaluate(lambda u, h: [[0.0] * N_ITEMS] * len(u), cases)
    with pytest.raises(ValueError, match=r"item_popularity must be .* shape \(10,\)"):
        evaluate(fixed_order, cases, item_popularity=np.ones(3))
    with pytest.raises(ValueError, match="cases is empty"):
        evaluate(fixed_order, make_cases([]))
    with pytest.raises(ValueError, match=r"history item indices must lie in \[0, n_items=10\)"):
        evaluate(fixed_order, make_cases([0], [np.array([10])]), EvalConfig(mask_history=True))


def test_unknown_report_key() -> None:
    report = evaluate(fixed_order, make_cases([0]), EvalConfig(ks=(10,)))
    with pytest.raises(KeyError, match=r"unknown metric 'ndcg@5'; available: hr@10, ndcg@10"):
        report["ndcg@5"]
    with pytest.raises(KeyError, match=r"popularity was skipped: item_popularity was not given"):
        report["popularity@10"]

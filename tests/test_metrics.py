"""Hand-checked values and properties of llmrec.evaluation.metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrec.evaluation.metrics import (
    ExposureAccumulator,
    auc,
    gini,
    history_mask,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    rank_stats,
    recall_at_k,
    top_k_lists,
)

RANKED = [5.0, 4.0, 3.0, 2.0, 1.0]  # item i has rank i + 1
TIED_TOP = [1.0, 1.0, 1.0, 1.0, 0.0]  # items 0-3 tied at the top
TIED_MID = [3.0, 2.0, 2.0, 1.0]  # items 1, 2 tied at ranks {2, 3}
L2 = math.log2


def _metric(name: str, scores: list[float], target: int, k: int, masked: tuple[int, ...]) -> float:
    s = torch.tensor([scores], dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.zeros_like(s, dtype=torch.bool)
        mask[0, list(masked)] = True
    stats = rank_stats(s, torch.tensor([target]), mask)
    fns = {"hr": hit_rate_at_k, "ndcg": ndcg_at_k, "mrr": mrr_at_k, "recall": recall_at_k}
    return float(auc(stats)[0] if name == "auc" else fns[name](stats, k)[0])


@pytest.mark.parametrize(
    ("name", "scores", "target", "k", "masked", "expected"),
    [
        # rank 1
        ("hr", RANKED, 0, 1, (), 1.0),
        ("ndcg", RANKED, 0, 10, (), 1.0),
        ("mrr", RANKED, 0, 10, (), 1.0),
        ("auc", RANKED, 0, 0, (), 1.0),
        # rank 3, no ties
        ("hr", RANKED, 2, 2, (), 0.0),
        ("hr", RANKED, 2, 3, (), 1.0),
        ("recall", RANKED, 2, 3, (), 1.0),
        ("ndcg", RANKED, 2, 10, (), 0.5),
        ("mrr", RANKED, 2, 10, (), 1 / 3),
        ("auc", RANKED, 2, 0, (), 2 / 4),
        # rank 5, beyond K = 3, and K larger than the catalog
        ("hr", RANKED, 4, 3, (), 0.0),
        ("ndcg", RANKED, 4, 3, (), 0.0),
        ("mrr", RANKED, 4, 3, (), 0.0),
        ("ndcg", RANKED, 4, 5, (), 1 / L2(6)),
        ("hr", RANKED, 4, 50, (), 1.0),
        ("auc", RANKED, 4, 0, (), 0.0),
        # target tied with 3 others at the top: rank uniform on {1, 2, 3, 4}
        ("hr", TIED_TOP, 0, 1, (), 1 / 4),
        ("hr", TIED_TOP, 0, 2, (), 2 / 4),
        ("hr", TIED_TOP, 3, 4, (), 1.0),
        ("ndcg", TIED_TOP, 0, 2, (), (1 + 1 / L2(3)) / 4),
        ("ndcg", TIED_TOP, 1, 10, (), (1 + 1 / L2(3) + 1 / L2(4) + 1 / L2(5)) / 4),
        ("mrr", TIED_TOP, 2, 10, (), (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4),
        ("auc", TIED_TOP, 0, 0, (), (4 - 0 - 3 / 2) / 4),
        # tie in the middle: rank uniform on {2, 3}
        ("hr", TIED_MID, 2, 2, (), 0.5),
        ("ndcg", TIED_MID, 1, 3, (), (1 / L2(3) + 1 / L2(4)) / 2),
        ("mrr", TIED_MID, 1, 2, (), 0.25),
        ("auc", TIED_MID, 2, 0, (), (3 - 1 - 0.5) / 3),
        # masking a competitor lifts the target; a masked target is a miss everywhere
        ("ndcg", RANKED, 2, 10, (0,), 1 / L2(3)),
        ("auc", RANKED, 2, 0, (0,), (4 - 1 - 1) / 3),
        ("hr", RANKED, 0, 5, (0,), 0.0),
        ("ndcg", RANKED, 0, 5, (0, 3), 0.0),
        ("mrr", TIED_TOP, 1, 50, (1,), 0.0),
        ("auc", RANKED, 0, 0, (0,), 0.0),
        # only the target is left as a candidate: AUC is uninformative (0.5), HR@1 = 1
        ("auc", RANKED, 1, 0, (0, 2, 3, 4), 0.5),
        ("hr", RANKED, 1, 1, (0, 2, 3, 4), 1.0),
    ],
)
def test_hand_values(name, scores, target, k, masked, expected) -> None:
    assert _metric(name, scores, target, k, masked) == pytest.approx(expected, abs=1e-12)


def test_rank_stats_shape_error() -> None:
    with pytest.raises(ValueError, match=r"expected scores \(B, n_items\) and targets \(B,\)"):
        rank_stats(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be a positive int"):
        hit_rate_at_k(rank_stats(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long)), 0)


# ---------------------------------------------------------------- beyond-accuracy
def _accumulate(scores: torch.Tensor, ks, pop=None, mask=None, chunks: int = 1) -> dict:
    acc = ExposureAccumulator(scores.shape[1], ks, pop)
    for rows in torch.arange(scores.shape[0]).chunk(chunks):
        m = None if mask is None else mask[rows]
        acc.update(*top_k_lists(scores[rows], max(ks), m))
    return acc.finalize()


def test_same_list_for_everyone() -> None:
    scores = torch.tensor([[5.0, 4, 3, 2, 1, 0]]).repeat(3, 1)  # (3, 6)
    pop = torch.tensor([10.0, 20, 30, 40, 50, 60])
    out = _accumulate(scores, (2,), pop)
    assert out["coverage@2"] == pytest.approx(2 / 6)
    assert out["popularity@2"] == pytest.approx(15.0)
    # exposure [3, 3, 0, 0, 0, 0]: mean |x_i - x_j| / (2 * mean) = (16 * 3 / 36) / 2 = 2/3
    assert out["gini@2"] == pytest.approx(2 / 3)


def test_uniform_and_concentrated_exposure() -> None:
    out = _accumulate(torch.eye(4), (1,))  # user i gets item i
    assert out["coverage@1"] == 1.0 and out["gini@1"] == pytest.approx(0.0)
    assert "popularity@1" not in out
    assert gini(torch.tensor([0.0, 0, 0, 7])) == pytest.approx(3 / 4)
    assert gini(torch.zeros(5)) == 0.0


def test_masked_slots_are_not_recommended() -> None:
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    mask = torch.tensor([[True, False, True]])
    items, valid = top_k_lists(scores, 5, mask)  # k clipped to n_items
    assert items.shape == (1, 3) and items[0, 0] == 1 and valid.tolist() == [[True, False, False]]
    out = _accumulate(scores, (2,), torch.tensor([1.0, 5.0, 9.0]), mask)
    assert out["coverage@2"] == pytest.approx(1 / 3) and out["popularity@2"] == 5.0


def test_accumulator_batches_and_pop_shape() -> None:
    scores = torch.randn(7, 9, generator=torch.Generator().manual_seed(0))
    pop = torch.arange(9.0)
    assert _accumulate(scores, (1, 3), pop, chunks=1) == pytest.approx(
        _accumulate(scores, (1, 3), pop, chunks=4)
    )
    with pytest.raises(ValueError, match=r"item_popularity must have shape \(9,\)"):
        ExposureAccumulator(9, (1,), torch.ones(8))


def test_history_mask() -> None:
    m = history_mask([np.array([0, 2]), np.array([], dtype=np.int64)], 3)
    assert m.tolist() == [[True, False, True], [False, False, False]]
    with pytest.raises(ValueError, match=r"history item indices must lie in \[0, n_items=3\)"):
        history_mask([np.array([3])], 3)


# ---------------------------------------------------------------- properties
@st.composite
def ranking_cases(draw, max_items: int = 5):
    n = draw(st.integers(1, max_items))
    b = draw(st.integers(1, 3))
    scores = draw(
        st.lists(st.lists(st.integers(-2, 2), min_size=n, max_size=n), min_size=b, max_size=b)
    )
    targets = draw(st.lists(st.integers(0, n - 1), min_size=b, max_size=b))
    use_mask = draw(st.booleans())
    mask = draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=b, max_size=b))
    return (
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(targets),
        torch.tensor(mask) if use_mask else None,
    )


def _all_metrics(scores, targets, mask, ks) -> torch.Tensor:
    stats = rank_stats(scores, targets, mask)
    cols = [f(stats, k) for k in ks for f in (hit_rate_at_k, ndcg_at_k, mrr_at_k, recall_at_k)]
    return torch.stack([*cols, auc(stats)])  # (n_metrics, B)


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_bounds_and_orderings(case) -> None:
    scores, targets, mask = case
    stats = rank_stats(scores, targets, mask)
    ks = range(1, scores.shape[1] + 3)
    hr = [hit_rate_at_k(stats, k) for k in ks]
    for k, h in zip(ks, hr, strict=True):
        nd, mr = ndcg_at_k(stats, k), mrr_at_k(stats, k)
        for v in (h, nd, mr):
            assert ((v >= 0) & (v <= 1 + 1e-12)).all()
        assert (nd <= h + 1e-12).all() and (mr <= nd + 1e-12).all()  # 1/r <= 1/log2(r+1) <= 1
    for lo, hi in itertools.pairwise(hr):
        assert (lo <= hi + 1e-12).all()
    a = auc(stats)
    assert ((a >= 0) & (a <= 1)).all()


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_invariant_to_increasing_transform(case) -> None:
    scores, targets, mask = case
    transformed = 2.0**scores * 3 + scores - 7  # strictly increasing, exact on small ints
    ks = (1, 2, 4)
    assert torch.equal(
        _all_metrics(scores, targets, mask, ks), _all_metrics(transformed, targets, mask, ks)
    )
    distinct = torch.randperm(scores.shape[1]).double().expand_as(scores)
    assert torch.equal(top_k_lists(distinct, 2, mask)[0], top_k_lists(distinct**3, 2, mask)[0])


def _brute_force(scores: list[float], target: int, masked: list[bool], k: int) -> list[float]:
    """Average of (hr, ndcg, mrr, auc) over every tie-break order of the items."""
    n = len(scores)
    if masked[target]:
        return [0.0] * 4
    cands = [j for j in range(n) if not masked[j] and j != target]
    totals = [0.0] * 4
    perms = list(itertools.permutations(range(n)))
    st_ = scores[target]
    for prio in perms:  # lower prio wins a tie
        above = [
            j for j in cands if scores[j] > st_ or (scores[j] == st_ and prio[j] < prio[target])
        ]
        r = len(above) + 1
        hit = r <= k
        totals[0] += hit
        totals[1] += hit / math.log2(r + 1)
        totals[2] += hit / r
        totals[3] += (len(cands) - len(above)) / len(cands) if cands else 0.5
    return [t / len(perms) for t in totals]


@settings(max_examples=100, deadline=None)
@given(ranking_cases(max_items=5), st.integers(1, 6))
def test_equals_average_over_random_tie_breaks(case, k) -> None:
    scores, targets, mask = case
    stats = rank_stats(scores, targets, mask)
    got = torch.stack(
        [hit_rate_at_k(stats, k), ndcg_at_k(stats, k), mrr_at_k(stats, k), auc(stats)]
    ).T  # (B, 4)
    for i in range(scores.shape[0]):
        masked = [False] * scores.shape[1] if mask is None else mask[i].tolist()
        want = _brute_force(scores[i].tolist(), int(targets[i]), masked, k)
        assert got[i].tolist() == pytest.approx(want, abs=1e-12)


@given(st.lists(st.integers(0, 20), min_size=1, max_size=12))
def test_gini_matches_mean_absolute_difference(xs) -> None:
    x = np.array(xs, dtype=np.float64)
    want = (
        0.0
        if x.sum() == 0
        else np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    )
    assert gini(torch.from_numpy(x)) == pytest.approx(want, abs=1e-12)

"""The two-level catalog top-k returns what torch.topk returns."""

from __future__ import annotations

import pytest
import torch

from llmrec.models.topk import MIN_TWO_LEVEL, catalog_topk


def _same(scores: torch.Tensor, k: int, block: int | None = None) -> None:
    values, indices = catalog_topk(scores, k, block)
    expected = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    torch.testing.assert_close(values, expected.values, rtol=0, atol=0)
    # the indices point at those values (tied values may pick other indices)
    torch.testing.assert_close(scores.gather(1, indices), expected.values, rtol=0, atol=0)
    assert all(len(set(row)) == len(row) for row in indices.tolist())


@pytest.mark.parametrize(
    ("rows", "n", "k", "block"),
    [
        (1, 100_000, 10, None),
        (3, 100_000, 100, None),
        (2, 50_001, 7, None),  # a short last block
        (2, 40_000, 10, 100),  # a block size that does not divide n
        (4, 20_000, 1, None),
        (2, MIN_TWO_LEVEL - 1, 10, None),  # small catalog: torch.topk itself
        (2, 30_000, 5_000, None),  # k close to the number of blocks: torch.topk
    ],
)
def test_equals_torch_topk(rows, n, k, block):
    g = torch.Generator().manual_seed(n + k)
    _same(torch.randn(rows, n, generator=g), k, block)


def test_ties_masked_rows_and_k_beyond_the_finite_entries():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (3, 60_000), generator=g).float()  # many ties
    _same(scores, 50)
    scores = torch.randn(3, 60_000, generator=g)
    scores[0, 10:] = float("-inf")  # only 10 finite: the result ends in -inf entries
    scores[1, :59_990] = float("-inf")
    scores[2, ::2] = float("-inf")
    _same(scores, 20)
    values, indices = catalog_topk(scores, 20)
    assert torch.isinf(values[0, 10:]).all() and values[0, :10].isfinite().all()
    assert set(indices[0, :10].tolist()) == set(range(10))


def test_k_zero_and_an_empty_catalog():
    assert catalog_topk(torch.randn(2, 50_000), 0)[0].shape == (2, 0)
    assert catalog_topk(torch.zeros(3, 0), 10)[1].shape == (3, 0)


def test_float16_scores_use_torch_topk():
    scores = torch.randn(2, 30_000).half()
    _same(scores, 10)

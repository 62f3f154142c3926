"""The README's Python quick start runs as written, and every public export resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import llmrec
import llmrec.data
import llmrec.evaluation
import llmrec.models
import llmrec.recommender
import llmrec.train

MODULES = [llmrec, llmrec.data, llmrec.evaluation, llmrec.models, llmrec.recommender,
           llmrec.train]
README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, re.DOTALL)
    assert blocks, f"no python block under '## {section}'"
    return blocks


@pytest.mark.integration
@pytest.mark.slow
def test_readme_quick_start_runs(capsys, tmp_path, monkeypatch):
    """Real MiniLM + real ml-100k, as a new user would run it (about a minute on CPU)."""
    monkeypatch.chdir(tmp_path)
    train, harness = _python_blocks("Python quick start")
    namespace: dict = {}
    exec(compile(train, "README.md", "exec"), namespace)
    assert (tmp_path / "my-model" / "model.safetensors").is_file()
    assert len(namespace["rec"].recommend(["50"], k=5)) == 5
    exec(compile(harness, "README.md", "exec"), namespace)
    assert 0.0 < namespace["report"]["ndcg@10"] < 1.0
    out = capsys.readouterr().out
    assert "Toy Story (1995)" in out and "| ndcg@10 |" in out


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for m in MODULES for n in m.__all__],
)
def test_public_exports_resolve(module, name):
    assert getattr(module, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_all_is_sorted(module):
    assert list(module.__all__) == sorted(module.__all__)

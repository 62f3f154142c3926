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


def _python_block(section: str) -> str:
    text = README.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1]
    match = re.search(r"```python\n(.*?)```", body, re.DOTALL)
    assert match, f"no python block under '## {section}'"
    return match.group(1)


@pytest.mark.integration
def test_readme_quick_start_runs(capsys):
    namespace: dict = {}
    exec(compile(_python_block("Python quick start"), "README.md", "exec"), namespace)
    assert 0.0 < namespace["report"]["ndcg@10"] < 1.0
    assert "Toy Story (1995)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for m in MODULES for n in m.__all__],
)
def test_public_exports_resolve(module, name):
    assert getattr(module, name) is not None


@pytest.mark.parametrize("module", MODULES)
def test_all_is_sorted(module):
    assert list(module.__all__) == sorted(module.__all__)

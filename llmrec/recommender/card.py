"""Model cards: a Hugging Face style README.md generated from card data and a template.

Re-saving regenerates only the block between the ``llmrec:auto`` markers; anything a person
wrote outside it is kept.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from llmrec.version import __version__

BEGIN = "<!-- llmrec:auto:begin"
END = "<!-- llmrec:auto:end -->"
_PACKAGES = ("torch", "transformers", "peft", "accelerate", "sentence-transformers",
             "datasets")


def template_path() -> Path:
    """``model_cards/template.md`` of the repo (or of the installed wheel)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_model_cards" / "template.md",
                      here.parent / "model_cards" / "template.md"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("llmrec: model card template not found")


@dataclass
class CardData:
    """What a model card says; filled by :class:`~llmrec.recommender.Recommender`."""

    title: str = field(default="llmrec recommender", metadata={"help": "Card heading."})
    base_model: str = field(default="", metadata={"help": "The item encoder."})
    lora: dict[str, Any] | None = field(default=None, metadata={"help": "LoRA settings."})
    model: dict[str, Any] = field(default_factory=dict, metadata={"help": "ModelConfig."})
    dataset: dict[str, Any] | None = field(default=None, metadata={"help": "Training data."})
    evaluations: list[dict[str, Any]] = field(default_factory=list,
                                              metadata={"help": "Evaluation reports."})
    safety: dict[str, Any] | None = field(default=None, metadata={"help": "Filter summary."})
    training: dict[str, Any] | None = field(
        default=None, metadata={"help": "How it was trained (TrainConfig + outcome)."}
    )
    adapter_origin: str | None = field(
        default=None, metadata={"help": "Where the LoRA adapter started (domain adaptation)."}
    )

    def front_matter(self) -> str:
        meta: dict[str, Any] = {
            "library_name": "llmrec",
            "tags": ["recommendation", "sequential-recommendation", "text-aware", "llmrec"],
            "base_model": self.base_model,
            "pipeline_tag": "feature-extraction",
        }
        if self.dataset:
            meta["datasets"] = [self.dataset["name"]]
        if self.evaluations:
            e = self.evaluations[-1]
            meta["model-index"] = [{
                "name": self.title,
                "results": [{
                    "task": {"type": "sequential-recommendation"},
                    "dataset": {"name": self.dataset["name"] if self.dataset else "unknown",
                                "type": "interactions"},
                    "metrics": [{"type": k, "value": round(float(v), 6)}
                                for k, v in e["metrics"]],
                }],
            }]
        return yaml.safe_dump(meta, sort_keys=True).strip()

    def render(self) -> str:
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                 keep_trailing_newline=True)
        tmpl = env.from_string(template_path().read_text(encoding="utf-8"))
        versions = [("llmrec", __version__)]
        for pkg in _PACKAGES:
            try:
                versions.append((pkg, importlib.metadata.version(pkg)))
            except importlib.metadata.PackageNotFoundError:
                continue
        return tmpl.render(
            front_matter=self.front_matter(), title=self.title, llmrec_version=__version__,
            base_model=self.base_model, lora=self.lora, adapter_origin=self.adapter_origin,
            training_rows=sorted((self.training or {}).items()),
            model_rows=sorted(self.model.items()), dataset=self.dataset,
            evaluations=self.evaluations, safety=self.safety, versions=versions,
        )


def write_card(card: CardData, path: Path, previous: Path | None = None) -> None:
    """Write ``path`` (README.md); hand-written text of ``previous`` outside the auto block
    and outside the front matter is kept."""
    fresh = card.render()
    if previous is None or not previous.is_file():
        path.write_text(fresh, encoding="utf-8")
        return
    old = previous.read_text(encoding="utf-8")
    block = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    new_block = block.search(fresh)
    if new_block is None or not block.search(old):  # a card without our block: keep it, append
        path.write_text(fresh + "\n" + old, encoding="utf-8")
        return
    body = old.split("---", 2)[2] if old.startswith("---") else old
    body = block.sub(lambda _: new_block.group(0), body, count=1)
    path.write_text(fresh.split("---", 2)[0] + "---" + fresh.split("---", 2)[1] + "---"
                    + body, encoding="utf-8")

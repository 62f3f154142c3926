"""Domain-adaptive LoRA fine-tuning of the item encoder on a text corpus.

    # one JSON or YAML file holding every argument
    accelerate launch --config_file finetune/configs/accelerate/cpu.yaml \\
        finetune/domain_adapt.py finetune/configs/adapt_pairs_ml100k.yaml
    # or flags (see --help); flags given after a config file override it
    python finetune/domain_adapt.py --corpus my_items.jsonl --objective simcse \\
        --output_dir runs/adapt

The adapter lands in ``<output_dir>/adapter``; train a recommender on top of it with
``EncoderConfig(adapter_path="<output_dir>/adapter")`` (or ``llmrec train
--encoder-adapter-path ...``). Multi-GPU / FSDP / DeepSpeed: pick another file under
finetune/configs/accelerate/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from transformers import HfArgumentParser

from llmrec.finetune import (
    AdaptModelArguments,
    AdaptTrainingArguments,
    CorpusArguments,
    adapt,
)
from llmrec.finetune.config import from_dict


def parse(argv: list[str]) -> tuple[AdaptModelArguments, CorpusArguments,
                                     AdaptTrainingArguments]:
    """Arguments from flags, or from one .json/.yaml file (then flags override it)."""
    parser = HfArgumentParser((AdaptModelArguments, CorpusArguments, AdaptTrainingArguments),
                              description=__doc__.split("\n\n")[0])
    if argv and argv[0].endswith((".json", ".yaml", ".yml")):
        path = Path(argv[0])
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of argument names to values")
        try:
            groups = from_dict(values)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from err
        if len(argv) == 1:
            return groups
        # flags after the file override it: reparse with the file's values as defaults
        parser.set_defaults(**{k: v for g in groups for k, v in vars(g).items()})
        argv = argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    model_args, corpus_args, train_args = parse(sys.argv[1:] if argv is None else argv)
    result = adapt(model_args, corpus_args, train_args)
    summary = {k: v for k, v in result.to_dict().items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

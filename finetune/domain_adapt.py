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

from transformers import HfArgumentParser

from llmrec.configs import parse_dataclass_args
from llmrec.finetune import (
    AdaptModelArguments,
    AdaptTrainingArguments,
    CorpusArguments,
    adapt,
)


def parse(argv: list[str]) -> tuple[AdaptModelArguments, CorpusArguments,
                                     AdaptTrainingArguments]:
    """Arguments from flags, or from one .json/.yaml file (then flags override it)."""
    groups = (AdaptModelArguments, CorpusArguments, AdaptTrainingArguments)
    parser = HfArgumentParser(groups, description=__doc__.split("\n\n")[0])
    return parse_dataclass_args(parser, groups, argv)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    model_args, corpus_args, train_args = parse(sys.argv[1:] if argv is None else argv)
    result = adapt(model_args, corpus_args, train_args)
    summary = {k: v for k, v in result.to_dict().items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

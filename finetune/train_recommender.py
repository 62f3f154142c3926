"""Train the recommender (optionally on a domain-adapted encoder) under ``accelerate launch``.

    accelerate launch --config_file finetune/configs/accelerate/multi_gpu_ddp.yaml \\
        finetune/train_recommender.py finetune/configs/recommender_ml100k.yaml
    torchrun --nproc_per_node 2 finetune/train_recommender.py --dataset ml-100k --cpu \\
        --save_dir runs/rec               # several CPU processes (gloo)

Arguments: the job group below plus every field of ``ModelConfig`` and ``TrainConfig``
(see --help), from flags or one JSON/YAML file. The catalog is encoded once, on the main
process first (the others read the embedding cache), then every process trains its shard;
the main process saves the model (with its model card) and prints test metrics.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from llmrec.configs import parse_dataclass_args
from llmrec.data import load_dataset
from llmrec.evaluation import EvalConfig, PopularityScorer, compare_markdown, evaluate
from llmrec.models import EncoderConfig, LoraSettings, ModelConfig
from llmrec.recommender import Recommender
from llmrec.train import TrainConfig


@dataclass
class JobArguments:
    """What to train on, which encoder, where to save."""

    dataset: str = field(default="ml-100k", metadata={"help": "Dataset name or folder."})
    save_dir: str = field(default="runs/recommender",
                          metadata={"help": "Where the trained model is saved."})
    encoder: str = field(default="default", metadata={"help": "Item encoder (hub id/folder)."})
    adapter_path: str | None = field(
        default=None, metadata={"help": "Start from a domain-adapted LoRA adapter folder."})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank of a fresh adapter (0: none)."})
    cache_dir: str | None = field(default=None, metadata={"help": "llmrec cache folder."})


GROUPS = (JobArguments, ModelConfig, TrainConfig)


def parse(argv: list[str]) -> tuple[JobArguments, ModelConfig, TrainConfig]:
    """Arguments from flags, or from one .json/.yaml file (then flags override it)."""
    parser = HfArgumentParser(GROUPS, description=__doc__.split("\n\n")[0])
    return parse_dataclass_args(parser, GROUPS, argv)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    from accelerate import PartialState

    job, model_cfg, train_cfg = parse(sys.argv[1:] if argv is None else argv)
    state = PartialState(cpu=train_cfg.cpu)
    lora = (LoraSettings(r=job.lora_r, alpha=2 * job.lora_r)
            if job.lora_r and not job.adapter_path else None)
    rec = Recommender(EncoderConfig(model_name_or_path=job.encoder, lora=lora,
                                    adapter_path=job.adapter_path),
                      model_cfg, cache_dir=job.cache_dir)
    with state.main_process_first():  # one process downloads and encodes, the rest reuse
        ds = load_dataset(job.dataset, cache_dir=job.cache_dir)
        rec.encode_texts(ds.catalog.texts(), show_progress=state.is_main_process)
    split = ds.split()
    result = rec.fit(ds, split, train_cfg)
    if state.is_main_process:
        rec.save_pretrained(job.save_dir)
        cfg = EvalConfig(ks=(10, 20), mask_history=False)
        pop = PopularityScorer(split.train, ds.n_items)
        reports = [evaluate(pop, split.test, cfg, item_popularity=pop.popularity,
                            name="popularity"),
                   rec.evaluate(split.test, cfg, name="llmrec")]
        print(f"best epoch {result.best_epoch}: valid {result.metric} "
              f"{result.best_metric:.4f} ({result.seconds:.0f} s, {state.num_processes} "
              f"process(es))\n")
        print(compare_markdown(reports))
        print(json.dumps({"save_dir": job.save_dir, "best_epoch": result.best_epoch}))
    state.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

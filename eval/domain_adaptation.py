"""Domain adaptation benchmark: does adapting the item encoder to ml-100k first help?

    python eval/domain_adaptation.py [--steps 300] [--epochs 50] [--mode inductive]

One run, same seed and settings for both arms:
  1. untouched all-MiniLM-L6-v2 -> recommender training (encoder frozen, cached embeddings);
  2. LoRA adaptation of the same encoder on ml-100k's own data (finetune/configs/
     adapt_pairs_ml100k.yaml: contrastive pairs of items one user watched one after the
     other, training split only, never a valid/test target) -> the same recommender training
     on the adapted encoder (adapter frozen).
Prints test NDCG@10 / HR@10 (leave-one-out, full ranking, no history masking) for both, and
writes runs/domain_adaptation/results.json. The text-only (inductive) mode is the default:
there the item encoder is the whole item representation, so its adaptation shows directly.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmrec import EncoderConfig, ModelConfig, Recommender, TrainConfig
from llmrec.data import load_dataset
from llmrec.evaluation import EvalConfig, PopularityScorer, compare_markdown, evaluate
from llmrec.finetune import AdaptModelArguments, AdaptTrainingArguments, CorpusArguments, adapt


def train_and_test(name: str, encoder: EncoderConfig, args: argparse.Namespace, ds, split,
                   out: Path):
    rec = Recommender(encoder, ModelConfig(mode=args.mode), cache_dir=args.cache_dir)
    t0 = time.perf_counter()
    fit = rec.fit(ds, split, TrainConfig(epochs=args.epochs, patience=args.epochs,
                                         seed=args.seed, output_dir=str(out / name)))
    minutes = (time.perf_counter() - t0) / 60
    report = rec.evaluate(split.test, EvalConfig(ks=(10, 20), mask_history=False), name=name)
    print(f"{name}: best epoch {fit.best_epoch}, valid ndcg@10 {fit.best_metric:.4f}, "
          f"test ndcg@10 {report['ndcg@10']:.4f} ({minutes:.1f} min)", flush=True)
    return report, fit, minutes


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="Adaptation steps.")
    parser.add_argument("--batch-size", type=int, default=64, help="Pairs per step.")
    parser.add_argument("--epochs", type=int, default=50, help="Recommender epochs.")
    parser.add_argument("--mode", default="inductive", choices=("inductive", "transductive"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/domain_adaptation")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out)
    ds = load_dataset("ml-100k", cache_dir=args.cache_dir)
    split = ds.split()

    t0 = time.perf_counter()
    adapted = adapt(
        AdaptModelArguments(objective="pairs", lora_r=8, lora_alpha=16),
        CorpusArguments(interactions="ml-100k", cache_dir=args.cache_dir),
        AdaptTrainingArguments(output_dir=str(out / "adapt"), max_steps=args.steps,
                               batch_size=args.batch_size, lr=5e-4, warmup_steps=20,
                               seed=args.seed, save_steps=100, resume=False))
    adapt_minutes = (time.perf_counter() - t0) / 60
    print(f"adaptation: {adapted.steps} steps, {adapted.corpus}, final loss "
          f"{adapted.final_loss:.3f}, {adapted.examples_per_second:.0f} pairs/s "
          f"({adapt_minutes:.1f} min)", flush=True)

    base_report, base_fit, base_min = train_and_test(
        "untouched encoder", EncoderConfig(), args, ds, split, out)
    ad_report, ad_fit, ad_min = train_and_test(
        "domain-adapted encoder", EncoderConfig(adapter_path=adapted.adapter_dir), args, ds,
        split, out)
    pop = PopularityScorer(split.train, ds.n_items)
    cfg = EvalConfig(ks=(10, 20), mask_history=False)
    reports = [evaluate(pop, split.test, cfg, item_popularity=pop.popularity,
                        name="popularity"), base_report, ad_report]
    print(f"\n## ml-100k, {args.mode} mode: test, leave-one-out, full ranking, no history "
          "masking\n")
    print(compare_markdown(reports))
    gain = ad_report["ndcg@10"] / base_report["ndcg@10"]
    print(f"\nNDCG@10 ratio adapted / untouched: {gain:.3f}")
    results = {
        "args": vars(args), "adaptation": {k: v for k, v in adapted.to_dict().items()
                                           if k != "history"} | {"minutes": adapt_minutes},
        "untouched": {"test": base_report.to_dict(), "best_epoch": base_fit.best_epoch,
                      "minutes": base_min},
        "adapted": {"test": ad_report.to_dict(), "best_epoch": ad_fit.best_epoch,
                    "minutes": ad_min},
        "ndcg@10_ratio": gain,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()

"""Command line: ``llmrec data | train | evaluate | recommend`` over the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from llmrec.cli_args import add_dataclass_args, dataclass_from_args
from llmrec.data import DataError, SplitConfig, load_dataset
from llmrec.evaluation import EvalConfig, PopularityScorer, RandomScorer, compare_markdown, evaluate
from llmrec.models import EncoderConfig, LoraSettings, ModelConfig
from llmrec.train import TrainConfig

SPLITS = ("leave_one_out", "temporal", "cold_start")


def _add_dataset_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("dataset", nargs="?" if not required else None,
                   help="Registered name (ml-100k, ...) or a folder.")
    p.add_argument("--interactions", help="Interactions file (csv/tsv/jsonl/parquet).")
    p.add_argument("--items", help="Items file with the item texts.")
    p.add_argument("--cache-dir", help="Download cache (default $LLMREC_CACHE or ~/.cache/llmrec).")
    p.add_argument("--on-invalid", choices=("error", "drop"), default="error",
                   help="Bad rows: stop with file:line (error) or drop them, counted (drop).")
    p.add_argument("--split", choices=SPLITS, default="leave_one_out", help="How to split.")


def _dataset(args: argparse.Namespace):
    return load_dataset(args.dataset, interactions=args.interactions, items=args.items,
                        cache_dir=args.cache_dir, on_invalid=args.on_invalid)


def _load(args: argparse.Namespace):
    ds = _dataset(args)
    return ds, ds.split(SplitConfig(strategy=args.split))


def _cmd_data(args: argparse.Namespace) -> int:
    ds = _dataset(args)
    print(repr(ds))
    print(ds.stats().to_markdown())
    print("\nLoad report:\n" + ds.report.summary())
    for i in range(min(args.show_texts, ds.n_items)):
        print(f"{ds.catalog.ids[i]}\t{ds.catalog.text(i)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from llmrec.recommender import Recommender

    ds, split = _load(args)
    lora = (LoraSettings(r=args.lora_r, alpha=2 * args.lora_r)
            if args.lora_r and not args.encoder_adapter_path else None)
    encoder = EncoderConfig(model_name_or_path=args.encoder, lora=lora,
                            adapter_path=args.encoder_adapter_path)
    model = dataclass_from_args(ModelConfig, args, prefix="model_")
    train = dataclass_from_args(TrainConfig, args)
    rec = Recommender(encoder, model, cache_dir=args.cache_dir)
    result = rec.fit(ds, split, train)
    rec.save_pretrained(args.output)
    cfg = EvalConfig(ks=(10, 20), mask_history=False)
    pop = PopularityScorer(split.train, ds.n_items)
    reports = [evaluate(pop, split.test, cfg, item_popularity=pop.popularity, name="popularity"),
               rec.evaluate(split.test, cfg, name="llmrec")]
    print(f"best epoch {result.best_epoch}: valid {result.metric} = {result.best_metric:.4f} "
          f"({result.seconds:.0f} s)\n")
    print(compare_markdown(reports))
    print(f"\nsaved to {args.output}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    ds, split = _load(args)
    cfg = EvalConfig(ks=tuple(args.k), mask_history=args.mask_history)
    cases = split.test if args.on == "test" else split.valid
    if args.model:
        from llmrec.recommender import Recommender

        rec = Recommender.from_pretrained(args.model)
        report = rec.evaluate(cases, cfg, name=str(args.model))
    else:
        scorer = (PopularityScorer(split.train, ds.n_items) if args.baseline == "popularity"
                  else RandomScorer(ds.n_items))
        report = evaluate(scorer, cases, cfg, item_popularity=split.item_counts(),
                          name=args.baseline)
    print(report.to_markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from llmrec.recommender import Recommender

    rec = Recommender.from_pretrained(args.model)
    result = rec.recommend(args.history, k=args.k, exclude_history=not args.include_history,
                           on_unknown=args.on_unknown, explain=args.explain,
                           timestamps=args.timestamps)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
        return 0
    for note in result.notes:
        print(f"note: {note}")
    for r in result:
        print(f"{r.rank:>3}. {r.text}  [{r.item_id}, score {r.score:.3f}]")
        if r.explanation is not None:
            print(f"     {r.explanation.text}")
    return 0


def _cmd_safety_scan(args: argparse.Namespace) -> int:
    from collections import Counter

    from llmrec.recommender.recommender import describe
    from llmrec.safety import Policy, SafetyFilter

    policy = Policy.from_file(args.policy) if args.policy else None
    if args.model:
        from llmrec.recommender import Recommender

        catalog = Recommender.from_pretrained(args.model).catalog
    else:
        catalog = _dataset(args).catalog
    verdicts = SafetyFilter(policy=policy).check(
        catalog.texts(), items=catalog.table.to_dict("records"), item_ids=list(catalog.ids))
    flagged = [(catalog.ids[i], catalog.text(i), v) for i, v in enumerate(verdicts) if v.blocked]
    by_reason = Counter(f"{r.rule}:{r.label}" for _, _, v in flagged for r in v.reasons
                        if r.action == "block")
    lines = [f"# Safety scan: {len(flagged)} of {len(catalog)} items blocked", "",
             "| reason | items |", "|---|---|"]
    lines += [f"| {reason} | {n} |" for reason, n in by_reason.most_common()]
    lines += ["", "| item id | text | why |", "|---|---|---|"]
    lines += [f"| {i} | {t.replace('|', '/')} | {describe(v).replace('|', '/')} |"
              for i, t, v in flagged]
    report = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")
        print(f"{len(flagged)} of {len(catalog)} items blocked; report written to {args.out}")
    else:
        print(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmrec",
        description="Text-aware sequential recommendation with a content-safety filter.",
        epilog="Run 'llmrec COMMAND --help' for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("data", help="Load a dataset, validate it, print its statistics.")
    _add_dataset_args(p, required=False)
    p.add_argument("--show-texts", type=int, default=0, metavar="N",
                   help="Also print the rendered text of the first N items.")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("train", help="Fine-tune a recommender on a dataset and save it.")
    _add_dataset_args(p, required=False)
    p.add_argument("--output", required=True, help="Folder to save the trained model in.")
    p.add_argument("--encoder", default="default",
                   help="Item encoder: HF hub id or local folder (default: all-MiniLM-L6-v2).")
    p.add_argument("--lora-r", type=int, default=0,
                   help="LoRA rank of the item encoder's adapter (0: no adapter); train it "
                   "with --encoder-epochs.")
    p.add_argument("--encoder-adapter-path", default=None, metavar="DIR",
                   help="Start the encoder's LoRA adapter from this folder (e.g. the adapter/ "
                   "of finetune/domain_adapt.py); its rank wins over --lora-r.")
    add_dataclass_args(p, TrainConfig)
    add_dataclass_args(p, ModelConfig, prefix="model_", skip=("n_items", "text_dim"))
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="Full-ranking evaluation of a model or a baseline.")
    _add_dataset_args(p, required=False)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", help="A saved model folder.")
    who.add_argument("--baseline", choices=("popularity", "random"), default="popularity")
    p.add_argument("--on", choices=("valid", "test"), default="test")
    p.add_argument("--k", type=int, nargs="+", default=[5, 10, 20], help="Cut-offs.")
    p.add_argument("--mask-history", action="store_true",
                   help="Exclude history items from ranking (RecBole's sequential protocol "
                   "does not; leave off to compare with RecBole).")
    p.add_argument("--json", help="Also write the report as JSON here.")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("recommend", help="Recommend items for a history of item ids.")
    p.add_argument("--model", required=True, help="A saved model folder.")
    p.add_argument("--history", nargs="*", default=[], help="Item ids, oldest first.")
    p.add_argument("--timestamps", type=float, nargs="*", default=None, metavar="SECONDS",
                   help="Unix time of each history item, oldest first (models trained with "
                   "--model-time-gaps need them).")
    p.add_argument("-k", "--k", type=int, default=10, help="How many items.")
    p.add_argument("--include-history", action="store_true",
                   help="Allow items the user already has.")
    p.add_argument("--on-unknown", choices=("error", "ignore"), default="error",
                   help="Unknown ids in the history: stop, or skip them with a note.")
    p.add_argument("--explain", action="store_true",
                   help="Add a grounded, safety-checked explanation to each item.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(func=_cmd_recommend)

    p = sub.add_parser("safety", help="Content-safety tools.")
    safety = p.add_subparsers(dest="safety_command", required=True, metavar="ACTION")
    p = safety.add_parser("scan", help="Report the catalog items the safety filter blocks, "
                          "grouped by reason.")
    _add_dataset_args(p, required=False)
    p.add_argument("--model", help="Scan a saved model's catalog instead of a dataset.")
    p.add_argument("--policy", help="Policy file (YAML/JSON); default prompts/safety_policy.yaml.")
    p.add_argument("--out", help="Write the markdown report here (default: print it).")
    p.set_defaults(func=_cmd_safety_scan)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"llmrec: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

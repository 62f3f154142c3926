"""Command line: ``llmrec data stats|check`` and ``llmrec evaluate`` (baselines for now)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmrec.data import DataError, SplitConfig, load_dataset
from llmrec.evaluation import EvalConfig, PopularityScorer, RandomScorer, evaluate

BASELINES = {"popularity": PopularityScorer, "random": RandomScorer}


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", help="Registered name (ml-100k, ...) or a folder.")
    p.add_argument("--interactions", help="Interactions file (csv/tsv/jsonl/parquet).")
    p.add_argument("--items", help="Items file with the item texts.")
    p.add_argument("--cache-dir", help="Download cache (default $LLMREC_CACHE or ~/.cache/llmrec).")
    p.add_argument("--on-invalid", choices=("error", "drop"), default="error",
                   help="Bad rows: stop with file:line (error) or drop them, counted (drop).")


def _load(args: argparse.Namespace):
    return load_dataset(args.dataset, interactions=args.interactions, items=args.items,
                        cache_dir=args.cache_dir, on_invalid=args.on_invalid)


def _cmd_data(args: argparse.Namespace) -> int:
    ds = _load(args)
    print(repr(ds))
    print(ds.stats().to_markdown())
    print("\nLoad report:\n" + ds.report.summary())
    if args.show_texts:
        for i in range(min(args.show_texts, ds.n_items)):
            print(f"{ds.catalog.ids[i]}\t{ds.catalog.text(i)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    ds = _load(args)
    split = ds.split(SplitConfig(strategy=args.split))
    cls = BASELINES[args.baseline]
    scorer = cls(split.train, ds.n_items) if cls is PopularityScorer else cls(ds.n_items)
    cfg = EvalConfig(ks=tuple(args.k), mask_history=args.mask_history)
    cases = split.test if args.on == "test" else split.valid
    report = evaluate(scorer, cases, cfg, item_popularity=split.item_counts(), name=args.baseline)
    print(report.to_markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmrec", description="Text-aware sequential recommendation with a safety filter."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="Load a dataset, validate it and print its statistics.")
    _add_dataset_args(p)
    p.add_argument("--show-texts", type=int, default=0, metavar="N",
                   help="Also print the rendered text of the first N items.")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("evaluate", help="Full-ranking evaluation of a baseline on a split.")
    _add_dataset_args(p)
    p.add_argument("--baseline", choices=sorted(BASELINES), default="popularity")
    p.add_argument("--split", choices=("leave_one_out", "temporal", "cold_start"),
                   default="leave_one_out")
    p.add_argument("--on", choices=("valid", "test"), default="test")
    p.add_argument("--k", type=int, nargs="+", default=[5, 10, 20], help="Cut-offs.")
    p.add_argument("--mask-history", action="store_true",
                   help="Exclude history items from ranking (RecBole's sequential protocol "
                   "does not; leave off to compare with RecBole).")
    p.add_argument("--json", help="Also write the report as JSON here.")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, ValueError) as err:
        print(f"llmrec: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

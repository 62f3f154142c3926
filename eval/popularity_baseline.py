"""Main job (issue 2 stage): load MovieLens-100k offline, print its statistics, and evaluate the
exact-count popularity baseline with leave-one-out, full ranking over all items.

    python eval/popularity_baseline.py [--dataset ml-100k] [--out runs/popularity.json]

Both protocols are reported: no history masking (RecBole's sequential protocol, the one to
compare with RecBole's figures) and with history masking.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from llmrec.data import load_dataset
from llmrec.evaluation import EvalConfig, PopularityScorer, compare_markdown, evaluate


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k", help="Name or folder (default ml-100k).")
    parser.add_argument("--cache-dir", default=None, help="Data cache (default ~/.cache/llmrec).")
    parser.add_argument("--out", default="runs/popularity_baseline.json",
                        help="Where to write the JSON results.")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    ds = load_dataset(args.dataset, cache_dir=args.cache_dir)
    print(f"# {ds!r}  (loaded in {time.perf_counter() - t0:.1f} s)\n")
    print(ds.stats().to_markdown())
    print(f"\nLoad report:\n{ds.report.summary()}")
    if ds.license:
        print(f"\nData license: {ds.license}")

    split = ds.split()  # leave-one-out: valid = second-to-last, test = last
    pop = PopularityScorer(split.train, ds.n_items)
    reports = []
    for mask in (False, True):
        cfg = EvalConfig(ks=(5, 10, 20), mask_history=mask)
        name = f"Pop (mask_history={mask})"
        reports.append(evaluate(pop, split.test, cfg, item_popularity=pop.popularity, name=name))
    print("\n## Popularity baseline, leave-one-out test, full ranking\n")
    print(compare_markdown(reports, keys=("ndcg@10", "hr@10", "mrr@10", "ndcg@20", "hr@20",
                                          "auc", "coverage@10", "gini@10")))
    results = {"dataset": ds.name, "stats": ds.stats().to_dict(),
               "reports": [r.to_dict() for r in reports]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(f"\nwrote {out}")
    return results


if __name__ == "__main__":
    main()

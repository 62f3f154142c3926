"""Where a saved ml-100k model's validation / test gap comes from.

    python eval/ml100k_gap_probe.py runs/ml100k/model

Leave-one-out, full ranking, no history masking (the main job's protocol). Besides the
validation and test figures it scores the test targets after the *validation* history (the
valid item not appended) and the validation targets after one history item fewer: if the
test targets stay harder with the same history, the gap is in the targets, not in the
longer history. Also prints the unseen-item offset, the head's weight, and how often and how
popular (training count) the targets are unseen.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from llmrec import Recommender
from llmrec.data import EvalCases, load_dataset
from llmrec.evaluation import EvalConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="A saved model folder (e.g. runs/ml100k/model).")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)

    rec = Recommender.from_pretrained(args.model)
    kwargs = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    split = load_dataset("ml-100k", **kwargs).split()
    model = rec.model
    print(f"unseen offset {float(model.unseen_offset):g}, unseen items "
          f"{int(model.unseen.sum())}, head weight {float(model.head_scale):g}\n")

    def row(cases: EvalCases, name: str) -> None:
        report = rec.evaluate(cases, EvalConfig(mask_history=False), name=name)
        print(f"| {name} | {report.metrics['ndcg@10']:.4f} | {report.metrics['hr@10']:.4f} |")

    valid, test = split.valid, split.test
    if not (test.users == valid.users).all():
        raise SystemExit("validation and test cases are not one per user in the same order")
    print("| cases | ndcg@10 | hr@10 |\n|---|---|---|")
    row(valid, "validation")
    row(test, "test")
    row(dataclasses.replace(test, histories=valid.histories, history_times=None),
        "test targets, validation history")
    row(dataclasses.replace(valid, histories=[h[:-1] for h in valid.histories],
                            history_times=None), "validation targets, one history item fewer")
    unseen = model.unseen.cpu().numpy()
    counts = np.bincount(np.concatenate(split.train), minlength=test.n_items)
    print(f"\nunseen targets: validation {unseen[valid.targets].mean():.4f}, test "
          f"{unseen[test.targets].mean():.4f}; median training count of the targets: "
          f"validation {np.median(counts[valid.targets]):g}, test "
          f"{np.median(counts[test.targets]):g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

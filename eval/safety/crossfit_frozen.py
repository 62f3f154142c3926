"""Dev estimate for training the learned layer's frozen members on the spent holdouts too.

    .venv/bin/python eval/safety/crossfit_frozen.py [--folds 6] [--save xfit.npz]

The spent holdouts (``--holdouts``: text by new authors, each scored once) are the largest
source of labelled text by many authors that the project has. The frozen members (regression
on all-MiniLM-L6-v2 embeddings, character n-grams) refit in seconds, so they can train on it
(``OfflineToxicityClassifier(semantic_frozen_examples=[...])``) while the fine-tuned member
stays as shipped. How that does on text by an author it has not seen is estimated by
cross-fitting: the holdouts are split into ``--folds`` groups of whole holdouts (by author);
for each group the frozen members are refitted on the shipped examples + the other groups'
holdouts and the group is scored by the full default filter (lexicon, profanity-check,
vetoes, policy) at every margin of a grid. The baseline is the layer with the frozen
members on the shipped examples only (the default until holdouts 21 and 22 judged this
change, which shipped) on the same texts. MovieLens-100k (rendered texts and
bare titles) and the explanation sentences are scored with the members refitted on all the
holdouts, as they would ship.

The margin rule is the one of ``calibrate_margin.py``: the smallest margin whose pooled
false-block rate on the holdouts' benign texts is <= ``--max-fbr``, that blocks at most 5% of
the explanation sentences and no more MovieLens texts than the shipped default does at its
margin with the same fine-tuned member (which varies by machine) unless ``--max-ml-blocks``
is given. The refitted members are swapped into one layer (the same fit as
``semantic_frozen_examples``; ``tests/test_safety_semantic.py`` checks that), so the encoders
run once per text: ~15 min on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "eval" / "safety"))

from calibrate_margin import per_text  # noqa: E402
from evaluate_safety import holdout_path, read_set  # noqa: E402

from llmrec.safety import OfflineToxicityClassifier, SafetyFilter  # noqa: E402
from llmrec.safety.ngram import NgramRegression  # noqa: E402
from llmrec.safety.semantic import (  # noqa: E402
    DEFAULT_EXAMPLES,
    fit_regression,
    read_examples,
    training_set,
)

# the holdouts spent by 2026-12-06
SPENT = (3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holdouts", type=int, nargs="+", default=list(SPENT))
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--max-fbr", type=float, default=0.0175)
    parser.add_argument("--max-ml-blocks", type=int, default=None)
    parser.add_argument("--max-explanation-fbr", type=float, default=0.05)
    parser.add_argument("--grid", type=float, nargs=3, default=[1.0, 4.0, 0.125],
                        metavar=("LOW", "HIGH", "STEP"))
    parser.add_argument("--save", default=None, help="Save the per-margin verdicts (npz).")
    args = parser.parse_args(argv)

    from llmrec.data import load_dataset

    # the layer without the holdouts (the default until holdouts 21-22): its frozen members
    # are swapped for ones refitted per fold
    clf = OfflineToxicityClassifier(semantic_frozen_examples=[])
    layer = clf.semantic_model_()
    clf.semantic_model_ = lambda: layer  # one layer; its margin and frozen members swapped
    shipped = layer.settings
    shipped_members = (layer.weight, layer.bias, layer.ngram)
    layer.classifier.logits = per_text({}, layer.classifier.logits)
    embed = layer._embed
    layer._embed = per_text({}, lambda texts, encoder=None: embed(texts))

    examples = read_examples(DEFAULT_EXAMPLES)
    base_texts, base_y = training_set(examples, layer.classes)
    rows, sets = [], []
    # in the order DEFAULT_FROZEN_EXAMPLES lists the files (by name), as the library fits
    for n in sorted(args.holdouts, key=lambda n: holdout_path(n).name):
        found = read_set(holdout_path(n))
        rows += found
        sets += [n] * len(found)
    sets_a = np.array(sets)
    texts = [r["text"] for r in rows]
    harmful = np.array([r["label"] == "harmful" for r in rows])
    catalog = load_dataset("ml-100k").catalog
    ml = list(catalog.texts()) + [str(t) for t in catalog.table["title"]]
    explanations = [r["text"] for r in examples if r.get("category") == "explanation"]
    explanations += [f"Because you watched {t}." for t in list(catalog.table["title"])[:300]]
    low, high, step = args.grid
    grid = np.round(np.arange(low, high + step / 2, step), 4)

    def refit(train: list[dict[str, str]]) -> tuple[Any, ...]:
        more, more_y = training_set(train, layer.classes)
        t, y = base_texts + more, np.concatenate([base_y, more_y])
        weight, bias = fit_regression(layer._embed(t), y, shipped.c)
        return weight, bias, NgramRegression.fit(t, y, shipped.ngram_c)

    def blocked(batch: list[str]) -> np.ndarray:  # (M, n) verdicts per grid margin
        out = []
        for margin in grid:
            layer.settings = dataclasses.replace(shipped, margin=float(margin))
            out.append([v.blocked for v in SafetyFilter(clf).check(batch)])
        return np.array(out, dtype=bool)

    base = blocked(texts)
    layer.settings = shipped
    base_ml = int(sum(v.blocked for v in SafetyFilter(clf).check(ml)))
    cand = np.zeros_like(base)
    groups = [sorted(set(args.holdouts))[i::args.folds] for i in range(args.folds)]
    for k, group in enumerate(groups):
        out = np.isin(sets_a, group)
        layer.weight, layer.bias, layer.ngram = refit(
            [r for r, s in zip(rows, sets, strict=True) if s not in group])
        cand[:, out] = blocked([t for t, o in zip(texts, out, strict=True) if o])
        print(f"fold {k + 1}/{len(groups)} (holdouts {group}) scored", file=sys.stderr,
              flush=True)
    layer.weight, layer.bias, layer.ngram = refit(rows)
    cand_ml, cand_expl = blocked(ml).sum(1), blocked(explanations).mean(1)
    layer.weight, layer.bias, layer.ngram = shipped_members
    base_ml_grid, base_expl = blocked(ml).sum(1), blocked(explanations).mean(1)
    if args.save:
        np.savez(args.save, grid=grid, base=base, cand=cand, harmful=harmful, sets=sets_a,
                 base_ml=base_ml_grid, cand_ml=cand_ml, base_expl=base_expl,
                 cand_expl=cand_expl)

    max_ml = base_ml if args.max_ml_blocks is None else args.max_ml_blocks
    print(f"{len(args.holdouts)} holdouts ({int(harmful.sum())} harmful, "
          f"{int((~harmful).sum())} benign) in {len(groups)} folds; {len(ml)} MovieLens texts "
          f"(the shipped default at margin {shipped.margin:g} blocks {base_ml}); "
          f"{len(explanations)} explanation sentences\n")
    print("| margin | shipped: recall | FBR (blocked) | MovieLens | + holdouts: recall "
          "| FBR (blocked) | MovieLens | explanations |")
    print("|---|---|---|---|---|---|---|---|")
    for i, m in enumerate(grid):
        print(f"| {m:.3f} | {base[i, harmful].mean():.3f} | {base[i, ~harmful].mean():.4f} "
              f"({int(base[i, ~harmful].sum())}) | {base_ml_grid[i]} | "
              f"{cand[i, harmful].mean():.3f} | {cand[i, ~harmful].mean():.4f} "
              f"({int(cand[i, ~harmful].sum())}) | {cand_ml[i]} | {cand_expl[i]:.3f} |")
    ok = [i for i in range(len(grid)) if cand[i, ~harmful].mean() <= args.max_fbr
          and cand_ml[i] <= max_ml and cand_expl[i] <= args.max_explanation_fbr]
    if not ok:
        print("no margin of the grid meets the rule")
        return 1
    i = min(ok, key=lambda j: grid[j])
    print(json.dumps({"margin": float(grid[i]), "recall": float(cand[i, harmful].mean()),
                      "fbr": float(cand[i, ~harmful].mean()), "ml_blocks": int(cand_ml[i]),
                      "max_ml_blocks": max_ml, "explanation_fbr": float(cand_expl[i])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How the default learned layer's margin was calibrated on the spent holdouts.

    .venv/bin/python eval/safety/calibrate_margin.py [--max-fbr 0.0175] [--save grid.npz]

The out-of-fold rule of ``learned_layer_cv.py`` sets the margin on the shipped training
examples, whose benign half was written to trip the filter: on text by new authors it left
the false-block side of the target unused (pooled over the spent holdouts: FBR 0.011 against
0.02 allowed) and recall short of it. The spent holdouts (``--holdouts``: text by thirteen
authors, already scored once and never trained on) are a sample of that new-author text, so
the margin is chosen on them instead. The full default filter (lexicon, profanity-check,
vetoes, policy) is run at every margin of a grid; the margin is **the smallest one whose
pooled false-block rate on the holdouts' benign texts is <= ``--max-fbr``**, that blocks at
most ``--max-ml-blocks`` MovieLens-100k texts (rendered or bare title) and at most
``--max-explanation-fbr`` of the explanation sentences (the training examples' category
``explanation`` and "Because you watched <title>." for 300 MovieLens titles).

How well that rule does on a holdout it was not chosen on is estimated by leaving one holdout
out: the margin is chosen on the other twelve and the left-out one is scored; the pooled
left-out figures are printed per ``--max-fbr`` value. A new holdout scored once is the judge.
Only the learned layer's margin changes here; its training is untouched. Since holdouts 3-20
train the frozen members (2026-12-06), the layer calibrated here is the one without them
(``semantic_frozen_examples=[]``, margin 2.25); ``crossfit_frozen.py`` chooses the default's.
``--members`` picks the ensemble's members (default: the default three; ``lora regression
ngram mpnet`` adds the all-mpnet-base-v2 regression). Each member's logits are computed once
per text and reused at every margin, so a grid costs about one scoring of the texts plus a few
seconds per margin.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "eval" / "safety"))

from evaluate_safety import holdout_path, read_set  # noqa: E402

from llmrec.safety import OfflineToxicityClassifier, SafetyFilter  # noqa: E402
from llmrec.safety.semantic import (  # noqa: E402
    DEFAULT_EXAMPLES,
    DEFAULT_MEMBERS,
    MEMBERS,
    SemanticHarmModel,
    read_examples,
)

# the holdouts scored once and spent when the margin was calibrated (2026-12-05)
SPENT = (3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)


def per_text(memo: dict[str, Any], compute: Callable[..., np.ndarray]
             ) -> Callable[..., np.ndarray]:
    """``compute(texts, ...)`` -> (n, ...) rows, each text's row computed once into ``memo``."""
    def run(texts: list[str], *args: Any) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            for t, row in zip(todo, compute(todo, *args), strict=True):
                memo[t] = row
        return np.stack([memo[t] for t in texts]) if texts else compute(texts, *args)
    return run


def memoize(model: SemanticHarmModel, memo: dict[str, dict[str, Any]]) -> None:
    """Make ``model``'s members look each text up in ``memo[member]`` (shared by the models of
    every margin: the same members and training, so the same logits) before computing it."""
    if model.classifier is not None:
        model.classifier.logits = per_text(memo.setdefault("lora", {}), model.classifier.logits)
    if model.ngram is not None:
        model.ngram.logits = per_text(memo.setdefault("ngram", {}), model.ngram.logits)
    embed = model._embed
    by_encoder = {id(e): per_text(memo.setdefault(name, {}), lambda t, e=e: embed(t, e))
                  for name, e in (("regression", model.encoder), ("mpnet", model.mpnet_encoder))
                  if e is not None}
    model._embed = lambda texts, encoder=None: by_encoder[
        id(model.encoder if encoder is None else encoder)](texts)


def leave_one_out(blocked: np.ndarray, harmful: np.ndarray, sets: np.ndarray,
                  grid: np.ndarray, max_fbr: float, allowed: np.ndarray
                  ) -> tuple[int, int, int, int, list[float]]:
    """Pooled left-out (blocked harmful, harmful, blocked benign, benign) and the margins
    chosen, when each holdout's margin is picked on the others. ``blocked`` (M, n) per grid
    margin; ``allowed`` (M,) the margins that keep the MovieLens / explanation limits."""
    hits = n_harm = fb = n_ben = 0
    chosen = []
    for name in sorted(set(sets.tolist())):
        rest = sets != name
        i = pick(blocked[:, rest], harmful[rest], grid, max_fbr, allowed)
        chosen.append(float(grid[i]))
        out = sets == name
        hits += int(blocked[i, out & harmful].sum())
        n_harm += int((out & harmful).sum())
        fb += int(blocked[i, out & ~harmful].sum())
        n_ben += int((out & ~harmful).sum())
    return hits, n_harm, fb, n_ben, chosen


def pick(blocked: np.ndarray, harmful: np.ndarray, grid: np.ndarray, max_fbr: float,
         allowed: np.ndarray) -> int:
    """Index of the smallest margin with a pooled benign block rate <= ``max_fbr`` among the
    ``allowed`` ones (the largest allowed margin when none is low enough)."""
    ok = [i for i in np.argsort(grid)
          if allowed[i] and blocked[i, ~harmful].mean() <= max_fbr]
    return int(ok[0]) if ok else int(np.flatnonzero(allowed)[np.argmax(grid[allowed])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holdouts", type=int, nargs="+", default=list(SPENT),
                        help="Spent holdout numbers (eval/safety/safety_holdout<N>.jsonl).")
    parser.add_argument("--max-fbr", type=float, default=0.0175,
                        help="Pooled false-block rate allowed on the holdouts' benign texts "
                        "(the target's 0.02 less an eighth for the next author's text).")
    parser.add_argument("--also-fbr", type=float, nargs="*",
                        default=[0.01, 0.0125, 0.015, 0.0175, 0.02],
                        help="Left-one-out estimates printed for these limits too.")
    parser.add_argument("--grid", type=float, nargs=3, default=[1.0, 3.25, 0.125],
                        metavar=("LOW", "HIGH", "STEP"))
    parser.add_argument("--max-ml-blocks", type=int, default=3)
    parser.add_argument("--max-explanation-fbr", type=float, default=0.05)
    parser.add_argument("--members", nargs="+", choices=MEMBERS, default=list(DEFAULT_MEMBERS),
                        help="The ensemble's members (two or more).")
    parser.add_argument("--ml100k-cache", default=None)
    parser.add_argument("--save", default=None, help="Save the per-margin verdicts (npz).")
    args = parser.parse_args(argv)

    from llmrec.data import load_dataset

    rows, sets = [], []
    for n in args.holdouts:
        found = read_set(holdout_path(n))
        rows += found
        sets += [n] * len(found)
    texts = [r["text"] for r in rows]
    harmful = np.array([r["label"] == "harmful" for r in rows])
    sets_a = np.array(sets)
    kwargs = {"cache_dir": args.ml100k_cache} if args.ml100k_cache else {}
    catalog = load_dataset("ml-100k", **kwargs).catalog
    ml = list(catalog.texts()) + [str(t) for t in catalog.table["title"]]
    explanations = [r["text"] for r in read_examples(DEFAULT_EXAMPLES)
                    if r.get("category") == "explanation"]
    explanations += [f"Because you watched {t}." for t in list(catalog.table["title"])[:300]]

    low, high, step = args.grid
    grid = np.round(np.arange(high, low - step / 2, -step), 4)
    blocked, ml_blocks, expl_rate = [], [], []
    memo: dict[str, dict[str, Any]] = {}
    for margin in grid:
        # the frozen members without the spent holdouts: they train on them since holdouts
        # 21-22 (eval/safety/crossfit_frozen.py chooses that layer's margin)
        clf = OfflineToxicityClassifier(semantic_margin=float(margin),
                                        semantic_members=list(args.members),
                                        semantic_frozen_examples=[])
        memoize(clf.semantic_model_(), memo)
        flt = SafetyFilter(clf)
        blocked.append([v.blocked for v in flt.check(texts)])
        ml_blocks.append(sum(v.blocked for v in flt.check(ml)))
        expl_rate.append(float(np.mean([v.blocked for v in flt.check(explanations)])))
        print(f"margin {margin:.3f} scored", file=sys.stderr, flush=True)
    b = np.array(blocked)  # (M, n)
    ml_a, expl_a = np.array(ml_blocks), np.array(expl_rate)
    allowed = (ml_a <= args.max_ml_blocks) & (expl_a <= args.max_explanation_fbr)
    if args.save:
        np.savez(args.save, grid=grid, blocked=b, harmful=harmful, sets=sets_a,
                 ml_blocks=ml_a, explanation_rate=expl_a)

    n_h, n_b = int(harmful.sum()), int((~harmful).sum())
    print(f"members {' + '.join(clf.semantic_settings.members)}; "
          f"{len(args.holdouts)} holdouts ({n_h} harmful, {n_b} benign); {len(ml)} MovieLens "
          f"texts; {len(explanations)} explanation sentences\n")
    print("| margin | recall | FBR (blocked) | MovieLens blocked | explanations blocked |")
    print("|---|---|---|---|---|")
    for i in np.argsort(grid):
        print(f"| {grid[i]:.3f} | {b[i, harmful].mean():.3f} | {b[i, ~harmful].mean():.4f} "
              f"({int(b[i, ~harmful].sum())}) | {ml_a[i]} | {expl_a[i]:.3f} |")
    if not allowed.any():
        print(f"\nno margin of the grid blocks at most {args.max_ml_blocks} MovieLens texts and "
              f"{args.max_explanation_fbr:g} of the explanations (--max-ml-blocks, "
              f"--max-explanation-fbr); widen --grid upwards")
        return 1
    print("\n| max FBR | margin on all | left-one-out recall | left-one-out FBR | margins chosen |")
    print("|---|---|---|---|---|")
    for max_fbr in sorted({*args.also_fbr, args.max_fbr}):
        hits, nh, fb, nb, chosen = leave_one_out(b, harmful, sets_a, grid, max_fbr, allowed)
        full = grid[pick(b, harmful, grid, max_fbr, allowed)]
        print(f"| {max_fbr:g} | {full:.3f} | {hits / nh:.3f} ({hits}/{nh}) | "
              f"{fb / nb:.4f} ({fb}/{nb}) | {min(chosen):.3f}-{max(chosen):.3f} |")
    i = pick(b, harmful, grid, args.max_fbr, allowed)
    print(json.dumps({"margin": float(grid[i]), "recall": float(b[i, harmful].mean()),
                      "fbr": float(b[i, ~harmful].mean()), "ml_blocks": int(ml_a[i]),
                      "explanation_fbr": float(expl_a[i])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

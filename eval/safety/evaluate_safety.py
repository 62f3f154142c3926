"""Recall on harmful texts and false-block rate on benign ones, per safety backend.

    .venv/bin/python eval/safety/evaluate_safety.py            # holdout + the training sets
    .venv/bin/python eval/safety/evaluate_safety.py --ml100k   # + MovieLens-100k titles (benign)
    .venv/bin/python eval/safety/evaluate_safety.py \
        --detoxify-checkpoint toxic_original-c1212f89.ckpt --detoxify-config ./bert-base-uncased

Prints one markdown table per set: recall overall and per harmful category, false-block
rate (FBR) overall and on violent-sounding titles, and the filter's cost per text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from llmrec.safety import (  # noqa: E402
    DetoxifyClassifier,
    DetoxifyWeightsError,
    OfflineToxicityClassifier,
    Policy,
    ProfanityCheckClassifier,
    SafetyFilter,
)
from llmrec.safety.semantic import (  # noqa: E402
    ENSEMBLE_MARGIN_BEFORE_CALIBRATION,
    MEMBERS,
    METHODS,
)

HARM_CATEGORIES = ("insult", "threat", "identity_hate", "sexual", "self_harm")
# the earlier layers, as they were judged: the frozen members on the shipped examples alone
# (the spent holdouts 3-20 became their training text after holdouts 21 and 22)
BEFORE_FROZEN: dict[str, Any] = {"semantic_frozen_examples": []}


def holdout_path(n: int) -> Path:
    """Holdout ``n``'s file: ``eval/safety/`` while unscored or spent, ``llmrec/safety/data/
    frozen/`` once it trains the frozen members (holdouts 3-20)."""
    frozen = HERE.parent.parent / "llmrec" / "safety" / "data" / "frozen"
    path = frozen / f"safety_holdout{n}.jsonl"
    return path if path.is_file() else HERE / f"safety_holdout{n}.jsonl"


def read_set(path: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for i, row in enumerate(rows):
        if set(row) != {"text", "label", "category"} or row["label"] not in ("harmful", "benign"):
            raise ValueError(f"{path}:{i + 1}: need text, label (harmful|benign), category")
    return rows


def ml100k_rows(cache_dir: str | None) -> list[dict[str, str]]:
    from llmrec.data import load_dataset

    kwargs = {"cache_dir": cache_dir} if cache_dir else {}
    texts = load_dataset("ml-100k", **kwargs).catalog.texts()
    return [{"text": t, "label": "benign", "category": "ml100k_title"} for t in texts]


def measure(flt: SafetyFilter, rows: list[dict[str, str]], repeats: int) -> dict[str, Any]:
    texts = [r["text"] for r in rows]
    flt.check(texts[:8])  # warm-up (lazy imports, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        verdicts = flt.check(texts)
        best = min(best, time.perf_counter() - start)
    blocked = [v.blocked for v in verdicts]

    def rate(keep: Callable[[dict[str, str]], bool]) -> tuple[float | None, int]:
        picked = [b for b, r in zip(blocked, rows, strict=True) if keep(r)]
        return (sum(picked) / len(picked) if picked else None), len(picked)

    out: dict[str, Any] = {"n": len(rows), "ms_per_text": 1000 * best / max(1, len(rows))}
    out["recall"] = rate(lambda r: r["label"] == "harmful")
    for cat in HARM_CATEGORIES:
        out[f"recall_{cat}"] = rate(lambda r, c=cat: r["label"] == "harmful" and r["category"] == c)
    out["fbr"] = rate(lambda r: r["label"] == "benign")
    out["fbr_violent_title"] = rate(lambda r: r["category"] == "violent_title")
    out["errors"] = [
        {
            "text": r["text"],
            "label": r["label"],
            "category": r["category"],
            "reasons": [str(x) for x in v.reasons],
        }
        for v, r in zip(verdicts, rows, strict=True)
        if v.blocked != (r["label"] == "harmful")
    ]
    return out


LAYER_NAMES = {"lora": "fine-tuned", "regression": "regression on frozen embeddings",
               "ensemble": "ensemble of fine-tuned, regression and n-grams (mean harm log-odds; "
               "frozen members also on the spent holdouts 3-20)"}


def backends(args: argparse.Namespace) -> tuple[dict[str, Callable[[], SafetyFilter]], list[str]]:
    policy = Policy.from_file(args.policy) if args.policy else Policy.default()
    default = OfflineToxicityClassifier.semantic_method
    found: dict[str, Callable[[], SafetyFilter]] = {
        f"offline (default: {LAYER_NAMES[default]} learned layer)": lambda: SafetyFilter(
            OfflineToxicityClassifier(lexicon_path=args.lexicon), policy
        ),
    }

    def before(**kwargs: Any) -> Callable[[], SafetyFilter]:
        """An earlier layer as it was judged: the frozen members on the shipped examples."""
        return lambda: SafetyFilter(OfflineToxicityClassifier(
            lexicon_path=args.lexicon, **BEFORE_FROZEN, **kwargs), policy)

    for method in (m for m in METHODS if m not in (default, "ngram", "mpnet")):
        found[f"offline, learned layer = {LAYER_NAMES[method]} (shipped examples only)"] = (
            before(semantic_method=method))
    found["offline, frozen members on the shipped examples only, margin 2.25 (the default "
          "until holdouts 21-22)"] = before()
    found["offline, four members: + a regression on all-mpnet-base-v2 (judged by holdouts 19 "
          "and 20: tied; not the default)"] = before(semantic_members=list(MEMBERS))
    found["offline, learned-layer margin 3.25 (out of fold; the default until holdouts 17-18)"
          ] = before(semantic_margin=ENSEMBLE_MARGIN_BEFORE_CALIBRATION)
    found["offline, regression member on all-mpnet-base-v2 (judged by holdout 16; not the "
          "default)"] = before(semantic_regression_model="mpnet")
    found["offline, veto_dissent off (the mean alone vetoes; the default until holdout 15)"] = (
        before(veto_dissent=1.0))
    found["offline, vetoes as before holdout 12 (profanity_veto 0.01, no lexicon_veto)"] = (
        before(lexicon_veto=0.0, profanity_veto=0.01))
    found["offline, learned layer = ensemble of fine-tuned and regression (the default until "
          "holdout 11)"] = before(semantic_method="ensemble",
                                  semantic_members=["lora", "regression"])
    found |= {
        "offline without the learned layer": lambda: SafetyFilter(
            OfflineToxicityClassifier(lexicon_path=args.lexicon, semantic=False), policy
        ),
        "rules only (lexicon; no profanity model, no learned layer)": lambda: SafetyFilter(
            OfflineToxicityClassifier(use_profanity_model=False, lexicon_path=args.lexicon,
                                      semantic=False), policy
        ),
        "profanity-check alone (baseline)": lambda: SafetyFilter(
            ProfanityCheckClassifier(), policy
        ),
    }
    notes = []
    if args.detoxify_checkpoint or args.detoxify_config or args.detoxify_online:
        name = f"detoxify {args.detoxify_model_type}"
        found[name] = lambda: SafetyFilter(
            DetoxifyClassifier(
                args.detoxify_model_type,
                checkpoint=args.detoxify_checkpoint,
                huggingface_config_path=args.detoxify_config,
            ),
            policy,
        )
    else:
        notes.append(
            "detoxify: skipped, no weights given (pass --detoxify-checkpoint FILE.ckpt and "
            "--detoxify-config FOLDER for offline use, or --detoxify-online to download them)."
        )
    return found, notes


def fmt(value: tuple[float | None, int]) -> str:
    rate, n = value
    return "-" if rate is None else f"{rate:.3f} ({round(rate * n)}/{n})"


def table(title: str, results: dict[str, dict[str, Any]]) -> str:
    cols = ["recall", *[f"recall_{c}" for c in HARM_CATEGORIES], "fbr", "fbr_violent_title"]
    head = ["backend", *[c.replace("recall_", "") for c in cols], "ms/text"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        cells = [name, *[fmt(res[c]) for c in cols], f"{res['ms_per_text']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_DATA, _EVAL, _FROZEN = "llmrec/safety/data/", "eval/safety/", "llmrec/safety/data/frozen/"
_SPENT = "(spent: scored once; since holdouts 21-22 training text of the frozen members)"
# (flag, path from the repository root, report name, --help), in report order; with
# --skip-holdout only --eval is scored
SETS = [
    ("--holdout22", _EVAL + "safety_holdout22.jsonl",
     "holdout 22 (spent: judged the frozen members trained on holdouts 3-20, with 21)",
     "Holdout 22 (by a twenty-fourth author; scored once, pooled with holdout 21, with the "
     "frozen members trained on the spent holdouts, which shipped; then spent)."),
    ("--holdout21", _EVAL + "safety_holdout21.jsonl",
     "holdout 21 (spent: judged the frozen members trained on holdouts 3-20, with 22)",
     "Holdout 21 (by a twenty-third author; scored once, pooled with holdout 22, with the "
     "frozen members trained on the spent holdouts, which shipped; then spent)."),
    ("--holdout20", _FROZEN + "safety_holdout20.jsonl",
     "holdout 20 (spent: judged the four-member layer with holdout 19, not trained on)",
     "Holdout 20 (by a twenty-second author; scored once, pooled with holdout 19, with the "
     "four-member learned layer registered before scoring, which tied and did not ship)."),
    ("--holdout19", _FROZEN + "safety_holdout19.jsonl",
     "holdout 19 (spent: judged the four-member layer with holdout 20, not trained on)",
     "Holdout 19 (by a twenty-first author; scored once, pooled with holdout 20, with the "
     "four-member learned layer registered before scoring, which tied and did not ship)."),
    ("--holdout18", _FROZEN + "safety_holdout18.jsonl",
     "holdout 18 (spent: judged the calibrated margin with holdout 17, not trained on)",
     "Holdout 18 (by a twentieth author; scored once, pooled with holdout 17, with the "
     "learned layer's margin calibrated on the spent holdouts, which shipped; then spent)."),
    ("--holdout17", _FROZEN + "safety_holdout17.jsonl",
     "holdout 17 (spent: judged the calibrated margin with holdout 18, not trained on)",
     "Holdout 17 (by a nineteenth author; scored once, pooled with holdout 18, with the "
     "learned layer's margin calibrated on the spent holdouts, which shipped; then spent)."),
    ("--holdout16", _FROZEN + "safety_holdout16.jsonl",
     "holdout 16 (spent: judged the all-mpnet-base-v2 regression member, not trained on)",
     "The newest holdout, by an eighteenth author: scored once with the regression member "
     "on all-mpnet-base-v2 and on all-MiniLM-L6-v2 (registered with that change); then "
     "spent, never trained on."),
    ("--holdout15", _FROZEN + "safety_holdout15.jsonl",
     "holdout 15 (spent: judged veto_dissent, not trained on)",
     "Holdout 15 (by a seventeenth author; scored once with and without veto_dissent, which "
     "shipped; then spent)."),
    ("--holdout14", _FROZEN + "safety_holdout14.jsonl",
     "holdout 14 (spent: judged the coded-hate / trade-term lexicon, not trained on)",
     "Holdout 14 (by a sixteenth author; scored once with the lexicon before and after the "
     "coded-hate / trade-term lines, which shipped; then spent)."),
    ("--holdout13", _FROZEN + "safety_holdout13.jsonl",
     "holdout 13 (spent: turned down the spent holdouts as training data, not trained on)",
     "Holdout 13 (by a fifteenth author; turned down the spent holdouts as training data, "
     "then spent)."),
    ("--holdout12", _FROZEN + "safety_holdout12.jsonl",
     "holdout 12 (spent: judged the lexicon veto, not trained on)",
     "Holdout 12 (by a fourteenth author; scored once with and without the lexicon veto, "
     "which shipped; then spent)."),
    ("--holdout11", _FROZEN + "safety_holdout11.jsonl",
     "holdout 11 (spent: judged the n-gram member, not trained on)",
     "Holdout 11 (by a thirteenth author; judged the n-gram member, then spent)."),
    ("--holdout10", _FROZEN + "safety_holdout10.jsonl",
     "holdout 10 (spent: judged the ensemble change, not trained on)",
     "Holdout 10 (by a twelfth author; judged the ensemble change, then spent)."),
    ("--holdout9", _FROZEN + "safety_holdout9.jsonl",
     "holdout 9 (spent: judged the set-13 change, not trained on)",
     "The newest holdout, by a tenth author: scored before and after the set-13 change "
     "(which it turned down); never trained on."),
    ("--holdout8", _FROZEN + "safety_holdout8.jsonl", f"holdout 8 {_SPENT}",
     "Holdout 8 (by a seventh author; scored once, then spent)."),
    ("--holdout7", _FROZEN + "safety_holdout7.jsonl", f"holdout 7 {_SPENT}",
     "Holdout 7 (by a sixth author; scored once, then spent)."),
    ("--holdout6", _FROZEN + "safety_holdout6.jsonl", f"holdout 6 {_SPENT}",
     "Holdout 6 (by a fifth author; scored once, then spent)."),
    ("--holdout4", _FROZEN + "safety_holdout4.jsonl", f"holdout 4 {_SPENT}",
     "Holdout 4 (scored once, then spent; not training data)."),
    ("--eval", _DATA + "examples_set1.jsonl", "set 1 (lexicon tuning + learned-layer training)",
     "Set 1 (lexicon tuning set; training data of the learned layer)."),
    ("--holdout", _DATA + "examples_set2.jsonl", "set 2 (old holdout; learned-layer training)",
     "Set 2 (the first holdout; training data of the learned layer)."),
    ("--holdout2", _DATA + "examples_set4_holdout2.jsonl",
     "set 4 (holdout 2, spent; learned-layer training)",
     "Holdout 2 (scored once, then spent: now training data)."),
    ("--holdout3", _FROZEN + "safety_holdout3.jsonl", f"holdout 3 {_SPENT}",
     "Holdout 3 (scored once, then spent; not training data yet)."),
    ("--holdout5", _DATA + "examples_set8_holdout5.jsonl",
     "set 8 (holdout 5, spent; learned-layer training)",
     "Holdout 5 (by a separate author; scored once, then spent: now training data, set 8)."),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, path, _, help_text in SETS:
        parser.add_argument(flag, type=Path, default=HERE.parent.parent / path, help=help_text)
    parser.add_argument("--only", nargs="+", default=None, metavar="SET",
                        help="Score only these sets, named by their flags without dashes "
                        "(e.g. --only holdout15).")
    parser.add_argument("--skip-holdout", action="store_true",
                        help="While tuning: set 1 only (no holdout is scored).")
    parser.add_argument("--lexicon", default=None, help="Lexicon YAML for the offline backends.")
    parser.add_argument("--policy", help="Policy file (default: prompts/safety_policy.yaml).")
    parser.add_argument("--ml100k", action="store_true", help="Add MovieLens-100k titles.")
    parser.add_argument("--ml100k-cache", default=None, help="cache_dir for load_dataset.")
    parser.add_argument("--detoxify-checkpoint", default=None)
    parser.add_argument("--detoxify-config", default=None)
    parser.add_argument("--detoxify-model-type", default="original")
    parser.add_argument("--detoxify-online", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="Timing: best of N runs.")
    parser.add_argument("--errors", action="store_true", help="List each set's errors.")
    parser.add_argument("--json", type=Path, default=None, help="Also write results here.")
    args = parser.parse_args(argv)

    known = [flag[2:] for flag, _, _, _ in SETS]
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"--only: unknown set(s) {unknown}; known: {known}")
    sets = {name: read_set(getattr(args, flag[2:])) for flag, _, name, _ in SETS
            if (not args.skip_holdout or flag == "--eval")
            and (args.only is None or flag[2:] in args.only)}
    if args.ml100k:
        sets["MovieLens-100k catalog (all benign)"] = ml100k_rows(args.ml100k_cache)
    found, notes = backends(args)
    results: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in sets}
    for name, build in found.items():
        try:
            start = time.perf_counter()
            flt = build()
            load_s = time.perf_counter() - start
        except DetoxifyWeightsError as err:
            notes.append(f"{name}: skipped, {err}")
            continue
        notes.append(f"{name}: loaded in {load_s:.2f} s")
        for set_name, rows in sets.items():
            results[set_name][name] = measure(flt, rows, args.repeats)
    for set_name, res in results.items():
        n = len(sets[set_name])
        harmful = sum(r["label"] == "harmful" for r in sets[set_name])
        print(table(f"{set_name}: {n} texts, {harmful} harmful, {n - harmful} benign", res))
        print()
        if args.errors:
            for name, r in res.items():
                for e in r["errors"]:
                    kind = "missed" if e["label"] == "harmful" else "false block"
                    print(
                        f"- {set_name} / {name}: {kind} [{e['category']}] {e['text']!r}",
                        "; ".join(e["reasons"]),
                    )
            print()
    if args.lexicon:
        notes.append(f"offline backends use the lexicon {args.lexicon}")
    for note in notes:
        print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

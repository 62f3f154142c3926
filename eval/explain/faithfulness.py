"""Faithfulness, grounding and latency of llmrec's explanations on MovieLens-100k.

    python eval/explain/faithfulness.py [--model DIR | --epochs 10 --save-model DIR]
        [--users 943] [--k 10] [--llm] [--llm-users 5] [--out runs/explain]

For the test users' (leave-one-out) top-k, per evidence kind (attention, occlusion):
(a) delete the history item the explanation cites first and re-score the recommended item
exactly (``Recommender.score_items``): the fraction whose score drops; (b) the same for a
random history item among those the model reads (baseline); (c) the fraction of explanations
naming a catalog title outside the user's history (and outside the cited evidence), found by a
plain title search independent of the explainer's own check, and shared-attribute claims the
catalog does not support; (d) latency per explanation (template mode; LLM mode with --llm).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from llmrec import Recommender
from llmrec.data import load_dataset
from llmrec.explain import ExplainConfig, Explainer
from llmrec.explain.attributes import ItemFacts
from llmrec.explain.evidence import recommender_scorer


def title_finder(facts: ItemFacts, min_chars: int = 4):
    """``find(text) -> list of sets``: for each catalog title in ``text``, the items having
    that title (several for remakes). Plain regex search, case-sensitive, on word boundaries;
    a hit inside a longer hit does not count."""
    forms: dict[str, set[int]] = {}
    for i in range(len(facts)):
        for t in (facts.raw_title(i), facts.title(i)):
            if len(t) >= min_chars:
                forms.setdefault(t, set()).add(i)
    ordered = sorted(forms, key=len, reverse=True)

    def find(text: str) -> list[set[int]]:
        taken: list[tuple[int, int]] = []
        found: list[set[int]] = []
        for t in ordered:
            if t not in text:
                continue
            for m in re.finditer(rf"(?<!\w){re.escape(t)}(?!\w)", text):
                if not any(a <= m.start() and m.end() <= b for a, b in taken):
                    taken.append((m.start(), m.end()))
                    found.append(forms[t])
        return found

    return find


def attribute_claims_ok(facts: ItemFacts, item: int, exp) -> bool:
    """Every shared value is the item's own and some cited item's (read from the catalog)."""
    cited = [facts.catalog.index(c.item_id) for c in exp.evidence]
    mine = facts.attributes(item)
    for a in exp.attributes:
        own = mine.get(a.field)
        own = own if isinstance(own, list) else [own]
        theirs = set()
        for c in cited:
            v = facts.attributes(c).get(a.field)
            theirs |= set(v) if isinstance(v, list) else {v}
        if not set(a.values) <= set(own) & theirs:
            return False
    return True


def deletion_scores(rec: Recommender, rows: list[tuple[list[str], str]]) -> np.ndarray:
    out = []
    for s in range(0, len(rows), 1024):
        chunk = rows[s:s + 1024]
        out.append(rec.score_items([h for h, _ in chunk], [i for _, i in chunk]))
    return np.concatenate(out) if out else np.zeros(0)


def timed(explainer: Explainer, histories, lists) -> tuple[list, float, float]:
    """Explanations per user (the ``recommend`` path) and all users at once (the
    ``recommend_batch`` path): (explanations, seconds per-user, seconds at once); the safety
    cache is emptied before each."""
    explainer.explain_batch(histories[0], list(lists[0]))  # build the indexes
    times = []
    for batched in (False, True):
        if explainer._safety is not None:
            explainer._safety._cache.clear()
        t0 = time.perf_counter()
        if batched:
            explainer.explain_many(histories, lists)
        else:
            exps = [explainer.explain_batch(h, list(r)) for h, r in
                    zip(histories, lists, strict=True)]
        times.append(time.perf_counter() - t0)
    return exps, times[0], times[1]


def evaluate_evidence(rec, histories, lists, evidence: str, seed: int, find) -> dict:
    cfg = ExplainConfig(evidence=evidence)
    explainer = Explainer.for_recommender(rec, cfg)
    facts, window = explainer.facts, rec.model_config.max_len
    exps, per_user, at_once = timed(explainer, histories, lists)
    bare = Explainer(rec.catalog, cfg, None, scorer=recommender_scorer(rec), window=window)
    _, no_safety, _ = timed(bare, histories, lists)
    t0 = time.perf_counter()
    for s in range(0, len(histories), 256):
        rec.recommend_batch(histories[s:s + 256], k=len(lists[0]))
    recommend = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"base": [], "first": [], "random": [], "all": [], "random_all": []}
    outside_history = outside_evidence = bad_attrs = n = no_cite = 0
    methods: dict[str, int] = {}
    for h, recs, es in zip(histories, lists, exps, strict=True):
        read = h[-window:]
        hist = {rec.catalog.index(x) for x in h}
        for r, e in zip(recs, es, strict=True):
            n += 1
            methods[e.method] = methods.get(e.method, 0) + 1
            item = rec.catalog.index(r.item_id)
            named = find(e.text)
            cited = {rec.catalog.index(c.item_id) for c in e.evidence} | {item}
            outside_history += any(not owners & (hist | {item}) for owners in named)
            outside_evidence += any(not owners & cited for owners in named)
            bad_attrs += not attribute_claims_ok(facts, item, e)
            if not e.evidence:
                no_cite += 1
                continue
            ids = [c.item_id for c in e.evidence]
            rand = [read[j] for j in rng.choice(len(read), min(len(ids), len(read)),
                                                 replace=False)]
            rows["base"].append((h, r.item_id))
            rows["first"].append(([x for x in h if x != ids[0]], r.item_id))
            rows["random"].append(([x for x in h if x != rand[0]], r.item_id))
            rows["all"].append(([x for x in h if x not in ids], r.item_id))
            rows["random_all"].append(([x for x in h if x not in rand], r.item_id))
    s = {key: deletion_scores(rec, v) for key, v in rows.items()}
    base = s["base"]
    return {
        "evidence": evidence, "explanations": n, "without_citation": no_cite,
        "cited_first_drop_rate": float((s["first"] < base).mean()),
        "random_item_drop_rate": float((s["random"] < base).mean()),
        "cited_first_mean_drop": float((base - s["first"]).mean()),
        "random_item_mean_drop": float((base - s["random"]).mean()),
        "all_cited_drop_rate": float((s["all"] < base).mean()),
        "as_many_random_drop_rate": float((s["random_all"] < base).mean()),
        "mentions_outside_history": outside_history / n,
        "mentions_outside_evidence": outside_evidence / n,
        "unsupported_attribute_claims": bad_attrs / n,
        "ms_per_explanation_no_safety": 1000 * no_safety / n,
        "ms_per_explanation_per_user": 1000 * per_user / n,
        "ms_per_explanation_all_users": 1000 * at_once / n,
        "ms_per_recommendation_without_explanation": 1000 * recommend / n,
        "methods": methods,
        "examples": [{"item": r.item_id, "text": e.text, "method": e.method}
                     for r, e in list(zip(lists[0], exps[0], strict=True))[:3]],
    }


def evaluate_llm(rec, histories, lists, users: int, k: int, find) -> dict:
    cfg = ExplainConfig(method="llm", batch_size=8)
    explainer = Explainer.for_recommender(rec, cfg)
    t0 = time.perf_counter()
    gen = explainer.generator
    load = time.perf_counter() - t0
    hs, ls = histories[:users], [list(r)[:k] for r in lists[:users]]
    t0 = time.perf_counter()
    exps = explainer.explain_many(hs, ls)
    total = time.perf_counter() - t0
    flat = [(h, r, e) for h, rs, es in zip(hs, ls, exps, strict=True)
            for r, e in zip(rs, es, strict=True)]
    outside = sum(any(not owners & ({rec.catalog.index(x) for x in h}
                                    | {rec.catalog.index(r.item_id)}) for owners in find(e.text))
                  for h, r, e in flat)
    return {
        "model": getattr(gen, "name", "?"), "load_seconds": load, "explanations": len(flat),
        "s_per_explanation": total / len(flat),
        "llm_text_used": sum(e.method == "llm" for _, _, e in flat) / len(flat),
        "mentions_outside_history": outside / len(flat),
        "methods": sorted({e.method for _, _, e in flat}),
        "examples": [{"item": r.item_id, "text": e.text, "method": e.method}
                     for _, r, e in flat[:6]],
    }


def markdown(results: list[dict]) -> str:
    rows = [
        ("cited-first deletion: score drops", "cited_first_drop_rate", "{:.3f}"),
        ("random history item deletion: score drops (baseline)", "random_item_drop_rate",
         "{:.3f}"),
        ("mean score drop, cited first", "cited_first_mean_drop", "{:.4f}"),
        ("mean score drop, random item", "random_item_mean_drop", "{:.4f}"),
        ("all cited items deleted: score drops", "all_cited_drop_rate", "{:.3f}"),
        ("as many random items deleted: score drops", "as_many_random_drop_rate", "{:.3f}"),
        ("explanations naming a title outside the history", "mentions_outside_history",
         "{:.4f}"),
        ("... outside the cited evidence", "mentions_outside_evidence", "{:.4f}"),
        ("unsupported shared-attribute claims", "unsupported_attribute_claims", "{:.4f}"),
        ("explanations without a cited item", "without_citation", "{}"),
        ("ms / explanation, no safety filter (per user)", "ms_per_explanation_no_safety",
         "{:.3f}"),
        ("ms / explanation, with safety filter, per user", "ms_per_explanation_per_user",
         "{:.3f}"),
        ("ms / explanation, with safety filter, all users at once",
         "ms_per_explanation_all_users", "{:.3f}"),
        ("(ms / recommended item, recommend_batch without explanations)",
         "ms_per_recommendation_without_explanation", "{:.3f}"),
    ]
    head = "| metric | " + " | ".join(f"{r['evidence']} evidence" for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="A saved Recommender (else train one).")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--save-model", default=None)
    parser.add_argument("--users", type=int, default=0, help="Test users (0: all).")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--llm", action="store_true", help="Also time LLM explanations.")
    parser.add_argument("--llm-users", type=int, default=5)
    parser.add_argument("--llm-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/explain")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = load_dataset("ml-100k")
    split = ds.split()
    if args.model:
        rec = Recommender.from_pretrained(args.model)
    else:
        rec = Recommender()
        rec.fit(ds, split, epochs=args.epochs, seed=args.seed, progress=False)
        if args.save_model:
            rec.save_pretrained(args.save_model)
    cases = split.test
    n = len(cases) if args.users <= 0 else min(args.users, len(cases))
    histories = [[ds.catalog.ids[i] for i in cases.histories[u]] for u in range(n)]
    lists = []
    for s in range(0, n, 256):
        lists += rec.recommend_batch(histories[s:s + 256], k=args.k)
    find = title_finder(ItemFacts(rec.catalog))
    results = [evaluate_evidence(rec, histories, lists, ev, args.seed, find)
               for ev in ("attention", "occlusion")]
    print(f"# Explanation faithfulness, ml-100k, {n} test users x top-{args.k}\n")
    print(markdown(results))
    out = {"args": vars(args), "users": n, "results": results}
    if args.llm:
        out["llm"] = llm = evaluate_llm(rec, histories, lists, args.llm_users, args.llm_k, find)
        print(f"\nLLM ({llm['model']}): load {llm['load_seconds']:.1f} s, "
              f"{llm['s_per_explanation']:.2f} s / explanation ({llm['explanations']}), LLM "
              f"text kept {llm['llm_text_used']:.2f}, naming titles outside the history "
              f"{llm['mentions_outside_history']:.3f}")
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "faithfulness.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()

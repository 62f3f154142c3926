"""Exact vs faiss candidate retrieval for ``recommend`` on large synthetic catalogs.

For each catalog size and each retrieval (exact two-level top-k; faiss hnsw; faiss ivf) it
measures, in one process per row (so peak RSS is the row's own): index build time, one-user
``recommend`` latency p50 / p99, batched users/s, peak RSS, and the share of the exact
top-10 that the approximate lists keep (recall@10, on the same users, same model).

Item text embeddings are synthetic: ``--texts random`` (isotropic, the hardest case for an
approximate index) or ``--texts clustered`` (around 256 centres, closer to real text
embeddings). Random weights: speed and agreement with exact retrieval only, never quality.

    python eval/retrieval_speed.py --catalogs 100000 1000000 --texts clustered
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import peak_rss_gib, recommend_speed, synthetic_recommender

RETRIEVALS = ("exact", "hnsw", "ivf")


def _clustered(rec, n_items: int, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed + 1)
    centres = torch.nn.functional.normalize(torch.randn(256, 384, generator=g), dim=-1)
    which = torch.randint(256, (n_items,), generator=g)
    text = centres[which] + 0.05 * torch.randn(n_items, 384, generator=g)
    rec.model.items.set_text(torch.nn.functional.normalize(text, dim=-1))


def child(args: argparse.Namespace) -> None:
    from llmrec.models import RetrievalConfig

    n = int(args.n_items)
    rec, ids = synthetic_recommender(n)
    if args.texts == "clustered":
        _clustered(rec, n)
    rng = np.random.default_rng(1)
    probe = [[ids[i] for i in rng.choice(n, size=50, replace=False)] for _ in range(100)]
    exact = [r.item_ids for r in rec.recommend_batch(probe, k=10)]
    build = 0.0
    if args.retrieval != "exact":
        rec.set_retrieval(RetrievalConfig(backend="faiss", index=args.retrieval))
        t0 = time.perf_counter()
        rec.recommend(probe[0], k=10)  # builds the index
        build = time.perf_counter() - t0
    got = [r.item_ids for r in rec.recommend_batch(probe, k=10)]
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact,
                                                                       strict=True)]))
    runs = []
    for threads in args.threads or sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        if args.retrieval != "exact":
            rec.model.retriever.faiss.omp_set_num_threads(threads)
        runs.append(recommend_speed(rec, ids) | {"threads": threads})
    print(json.dumps({"n_items": n, "retrieval": args.retrieval, "build_s": build,
                      "recall@10": recall, "runs": runs, "peak_rss_gib": peak_rss_gib()}))


def markdown(rows: list[dict], texts: str) -> str:
    lines = [f"## recommend with exact vs faiss retrieval ({texts} synthetic texts)", "",
             "| catalog | retrieval | build s | recall@10 vs exact | threads | p50 ms | p99 ms "
             "| users/s (batch 256) | p50 vs exact | peak RSS GiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = {(r["n_items"], t["threads"]): t["p50_ms"] for r in rows
            if r.get("retrieval") == "exact" for t in r["runs"]}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['n_items']:,} | {r['retrieval']} | error: {r['error']} |")
            continue
        for t in r["runs"]:
            ratio = base.get((r["n_items"], t["threads"]))
            ratio_s = f"{t['p50_ms'] / ratio:.2f}x" if ratio else "-"
            lines.append(f"| {r['n_items']:,} | {r['retrieval']} | {r['build_s']:.1f} | "
                         f"{r['recall@10']:.3f} | {t['threads']} | {t['p50_ms']:.2f} | "
                         f"{t['p99_ms']:.2f} | {t['users_per_s']:,.0f} | {ratio_s} | "
                         f"{r['peak_rss_gib']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--retrievals", nargs="*", default=list(RETRIEVALS),
                        choices=RETRIEVALS)
    parser.add_argument("--texts", choices=("random", "clustered"), default="clustered")
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="Thread counts to time (default: 1 and all cores).")
    parser.add_argument("--out", default="runs/retrieval_speed")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n-items", help=argparse.SUPPRESS)
    parser.add_argument("--retrieval", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return []
    rows = []
    for n in args.catalogs:
        for retrieval in args.retrievals:
            cmd = [sys.executable, __file__, "--child", "--n-items", str(n), "--retrieval",
                   retrieval, "--texts", args.texts]
            if args.threads:
                cmd += ["--threads", *map(str, args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
            row = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                   else {"n_items": n, "retrieval": retrieval,
                         "error": proc.stderr.strip().splitlines()[-1:]})
            print(row, flush=True)
            rows.append(row)
    table = markdown(rows, args.texts)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{args.texts}.json").write_text(json.dumps(rows, indent=2))
    (out / f"results-{args.texts}.md").write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main()

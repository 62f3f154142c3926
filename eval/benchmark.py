"""The benchmark suite: quality on ml-100k (leave-one-out and cold-start items) and speed.

    python eval/benchmark.py                       # everything (about an hour on 2 CPU cores)
    python eval/benchmark.py --no-quality          # speed and memory only (minutes)
    python eval/benchmark.py --epochs 20 --catalogs 100000

Quality (full ranking over all items, no history masking, RecBole's sequential protocol):
popularity, an ID-only SASRec built from the project's sequence model (ModelConfig(mode="id"),
same trainer, same harness), llmrec text-only (inductive) and text + ID (transductive); the
same on the cold-start split (a share of the items never appears in training; NDCG@10 on
cases whose target is such an item vs. the others).

Speed, each as a ratio measured in this run: item encoding against plain
sentence-transformers ``encode`` (same encoder, batch size, texts); re-encoding an unchanged
catalog (embedding cache); training seconds per epoch against the ID-only SASRec;
``recommend`` p50/p99 latency for one user and batched users/s on ml-100k and on synthetic
catalogs (random texts and weights: for speed only, never for quality), each catalog in its
own process so its peak RSS is its own.

Writes ``<out>/benchmark.md``, ``benchmark.json`` and ``benchmark.png``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RECBOLE = {"SASRec": 0.0609, "BERT4Rec": 0.0621, "GRU4Rec": 0.0481, "Pop": 0.0226}


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# -- quality ---------------------------------------------------------------------------------
def quality(args: argparse.Namespace) -> dict:
    from llmrec import ModelConfig, Recommender, TrainConfig
    from llmrec.data import SplitConfig, load_dataset
    from llmrec.evaluation import EvalConfig, PopularityScorer, evaluate

    ds = load_dataset("ml-100k", cache_dir=args.cache_dir)
    cfg = EvalConfig(ks=(10,), metrics=("ndcg", "hr", "mrr"), mask_history=False)
    out: dict = {"loo": {}, "cold": {}, "epoch_seconds": {}, "train_minutes": {}}
    splits = {"loo": ds.split(), "cold": ds.split(SplitConfig(strategy="cold_start"))}
    for split_name, split in splits.items():
        pop = PopularityScorer(split.train, ds.n_items)
        report = evaluate(pop, split.test, cfg, name="popularity")
        out[split_name]["popularity"] = _metrics(report)
        for name, mode in (("SASRec (ID only)", "id"), ("llmrec text-only", "inductive"),
                           ("llmrec text + ID", "transductive")):
            rec = Recommender(model=ModelConfig(mode=mode), cache_dir=args.cache_dir)
            t0 = time.perf_counter()
            fit = rec.fit(ds, split, TrainConfig(
                epochs=args.epochs, patience=args.epochs, seed=args.seed,
                ema_decay=args.ema_decay, window_stride=args.window_stride, progress=False,
                head_positions=args.head_positions, head_epochs=args.head_epochs,
                lr_schedule=args.lr_schedule, decay_fraction=args.decay_fraction))
            minutes = (time.perf_counter() - t0) / 60
            report = rec.evaluate(split.test, cfg, name=name)
            out[split_name][name] = _metrics(report) | {"unseen offset": fit.unseen_offset}
            if split_name == "loo":
                secs = [h.seconds for h in fit.history]
                out["epoch_seconds"][name] = float(np.median(secs))
                out["train_minutes"][name] = minutes
            print(f"[{split_name}] {name}: ndcg@10 {report['ndcg@10']:.4f} "
                  f"(best epoch {fit.best_epoch}, unseen-item offset {fit.unseen_offset:g}, "
                  f"{minutes:.1f} min)", flush=True)
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def _metrics(report) -> dict:
    row = {k: float(v) for k, v in report.metrics.items()}
    for group, sub in report.groups.items():
        row |= {f"{group} {k}": float(v) for k, v in sub.metrics.items()}
    return row


# -- speed -----------------------------------------------------------------------------------
def encoding_speed(args: argparse.Namespace) -> dict:
    """Items/s of ItemTextEncoder.encode vs SentenceTransformer.encode on the same texts."""
    from sentence_transformers import SentenceTransformer

    from llmrec import Recommender
    from llmrec.data import load_dataset
    from llmrec.models import EncoderConfig, ItemTextEncoder
    from llmrec.models.encoder_config import resolve_model_path

    texts = load_dataset("ml-100k", cache_dir=args.cache_dir).catalog.texts()
    texts = texts + _synthetic_texts(args.encode_texts - len(texts))
    ours = ItemTextEncoder(EncoderConfig(batch_size=64))
    st = SentenceTransformer(resolve_model_path("default"), device="cpu")
    ours.encode(texts[:128], show_progress=False)  # warm-up both
    st.encode(texts[:128], batch_size=64)
    t_ours, t_st = [], []
    for _ in range(args.repeats):  # interleaved, best of N: the machine may be shared
        t0 = time.perf_counter()
        a = ours.encode(texts, show_progress=False)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = st.encode(texts, batch_size=64, normalize_embeddings=True)
        t_st.append(time.perf_counter() - t0)
    same = float(np.abs(np.asarray(a) - np.asarray(b)).max())
    with tempfile.TemporaryDirectory() as cache:
        rec = Recommender(cache_dir=cache)
        t0 = time.perf_counter()
        rec.encode_texts(texts, show_progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        rec.encode_texts(texts, show_progress=False)
        again = time.perf_counter() - t0
    return {"texts": len(texts), "llmrec_items_per_s": len(texts) / min(t_ours),
            "st_items_per_s": len(texts) / min(t_st), "ratio": min(t_st) / min(t_ours),
            "max_abs_diff": same, "first_encode_s": first, "unchanged_reencode_s": again}


def _synthetic_texts(n: int, seed: int = 0) -> list[str]:
    words = ["space", "war", "love", "crime", "comedy", "drama", "robot", "horse", "city",
             "night", "river", "music", "king", "ghost", "school", "family", "island"]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(5, 20)))) for _ in range(max(0, n))]


def synthetic_recommender(n_items: int, seed: int = 0):
    """A Recommender over ``n_items`` synthetic items with random weights and text
    embeddings (precomputed), assembled as from_pretrained assembles a saved one."""
    import pandas as pd

    from llmrec import ModelConfig, Recommender
    from llmrec.data import ItemCatalog
    from llmrec.models.model import SeqRecModel

    torch.manual_seed(seed)
    cfg = ModelConfig(n_items=n_items, text_dim=384)
    rec = Recommender(model=cfg, safety=None)
    ids = [f"s{i}" for i in range(n_items)]
    rec.catalog = ItemCatalog(ids, pd.DataFrame({"title": [f"Item {i}" for i in ids]}))
    model = SeqRecModel(cfg)
    text = torch.nn.functional.normalize(torch.randn(n_items, 384), dim=-1)
    model.items.set_text(text)
    rec.model = model.eval()
    rec.popularity = np.ones(n_items)
    rec.blocked = np.zeros(n_items, dtype=bool)
    rec.block_reasons = {}
    return rec, ids


def recommend_speed(rec, ids: list[str], users: int = 200, batch: int = 256,
                    seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    hist = [[ids[i] for i in rng.choice(len(ids), size=50, replace=False)]
            for _ in range(users + 3 * batch)]
    rec.recommend(hist[0], k=10)  # warm-up (item vectors computed once, then reused)
    lat = []
    for h in hist[:users]:
        t0 = time.perf_counter()
        rec.recommend(h, k=10)
        lat.append((time.perf_counter() - t0) * 1e3)
    rates = []  # three batches of new users (their texts rendered for the first time)
    for start in range(users, users + 3 * batch, batch):
        t0 = time.perf_counter()
        rec.recommend_batch(hist[start : start + batch], k=10)
        rates.append(batch / (time.perf_counter() - t0))
    return {"n_items": len(ids), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "batch": batch,
            "users_per_s": float(np.median(rates))}


def child(args: argparse.Namespace) -> None:
    """Run in a subprocess (so that nothing else runs beside it and its peak RSS is its own):
    one measurement, printed as the last line of JSON."""
    if args.child == "encoding":
        result = encoding_speed(args)
    else:
        cores = torch.get_num_threads()
        t0 = time.perf_counter()
        if args.child == "ml-100k":
            from llmrec import Recommender

            rec = Recommender.from_pretrained(args.ml100k_model, cache_dir=args.cache_dir)
            ids = list(rec.catalog.ids)
        else:
            rec, ids = synthetic_recommender(int(args.child))
        build = time.perf_counter() - t0
        # 1 thread: one request per core (a serving setting); all cores: one request alone
        runs = []
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            runs.append(recommend_speed(rec, ids) | {"threads": threads})
        result = {"runs": runs, "build_s": build, "head_scale": float(rec.model.head_scale)}
    print(json.dumps(result | {"peak_rss_gib": peak_rss_gib()}))


def _run_child(args: argparse.Namespace, what: str) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--ml100k-model", args.ml100k_model,
           "--encode-texts", str(args.encode_texts), "--repeats", str(args.repeats)]
    if args.cache_dir:
        cmd += ["--cache-dir", args.cache_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> dict:
    out: dict = {"encoding": _run_child(args, "encoding"), "recommend": []}
    print(f"encoding: {out['encoding']}", flush=True)
    names = (["ml-100k"] if Path(args.ml100k_model).is_dir() else []) + [
        str(n) for n in args.catalogs]
    for name in names:
        row = _run_child(args, name)
        label = "ml-100k (trained model)" if name == "ml-100k" else f"synthetic {int(name):,}"
        out["recommend"].append({"catalog": label} | row)
        print(f"recommend {label}: {row}", flush=True)
    return out


# -- report ----------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    lines = []
    q = results.get("quality")
    if q:
        lines += ["## Quality: ml-100k, test NDCG@10 / HR@10, full ranking, no history masking",
                  "", "| model | leave-one-out ndcg@10 | hr@10 | x RecBole SASRec | cold-start "
                  "split: warm ndcg@10 | cold ndcg@10 | cold / warm |",
                  "|---|---|---|---|---|---|---|"]
        for name, row in q["loo"].items():
            cold = q["cold"].get(name, {})
            w, c = cold.get("warm ndcg@10", float("nan")), cold.get("cold ndcg@10", float("nan"))
            lines.append(f"| {name} | {row['ndcg@10']:.4f} | {row['hr@10']:.4f} | "
                         f"{row['ndcg@10'] / RECBOLE['SASRec']:.2f} | {w:.4f} | {c:.4f} | "
                         f"{c / w if w else float('nan'):.2f} |")
        lines += ["", f"RecBole 1.2.1 on the same protocol: {RECBOLE}.", "",
                  "| model | median s/epoch | x SASRec (ID only) | training min |",
                  "|---|---|---|---|"]
        base = q["epoch_seconds"].get("SASRec (ID only)")
        for name, secs in q["epoch_seconds"].items():
            lines.append(f"| {name} | {secs:.1f} | {secs / base:.2f} | "
                         f"{q['train_minutes'][name]:.1f} |")
        lines.append(f"\nPeak RSS of the quality runs: {q['peak_rss_gib']:.2f} GiB")
    s = results.get("speed")
    if s:
        e = s["encoding"]
        lines += ["", "## Speed", "", "| item encoding | items/s |", "|---|---|",
                  f"| llmrec ItemTextEncoder.encode | {e['llmrec_items_per_s']:.0f} |",
                  f"| sentence-transformers encode | {e['st_items_per_s']:.0f} |",
                  f"| ratio (>= 0.95 wanted) | {e['ratio']:.3f} |",
                  "", f"{e['texts']} texts, batch 64; max |difference| of the embeddings "
                  f"{e['max_abs_diff']:.1e}. Unchanged catalog re-encoded through the cache in "
                  f"{e['unchanged_reencode_s']:.2f} s (first time {e['first_encode_s']:.1f} s).",
                  "",
                  "| catalog | torch threads | p50 ms | p99 ms | users/s (batch) | peak RSS GiB |",
                  "|---|---|---|---|---|---|"]
        for r in s["recommend"]:
            if "error" in r:
                lines.append(f"| {r['catalog']} | failed: {r['error']} | | | | |")
                continue
            rss = f"{r['peak_rss_gib']:.2f}"
            for t in r["runs"]:
                lines.append(f"| {r['catalog']} | {t['threads']} | {t['p50_ms']:.2f} | "
                             f"{t['p99_ms']:.2f} | {t['users_per_s']:.0f} | {rss} |")
        lines.append("\nrecommend(k=10), history of 50 items, each request a new random user; "
                     "users/s: median of three batches of 256. The synthetic "
                     "models re-rank retrieval's top 100 with the head (head weight 1); the "
                     "trained ml-100k model's head weight is chosen on validation data.")
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    q = results.get("quality")
    if not q:
        return
    fig = Figure(figsize=(9, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    names = list(q["loo"])
    x = np.arange(len(names))
    ax.bar(x - 0.2, [q["loo"][n]["ndcg@10"] for n in names], 0.4, label="leave-one-out")
    ax.bar(x + 0.2, [q["cold"].get(n, {}).get("cold ndcg@10", 0.0) for n in names], 0.4,
           label="cold-start targets")
    ax.axhline(RECBOLE["SASRec"], color="gray", ls="--", lw=1, label="RecBole SASRec")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("test NDCG@10")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> dict:
    from llmrec.train.config import SCHEDULES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--ema-decay", type=float, default=0.0)
    parser.add_argument("--lr-schedule", default="wsd", choices=SCHEDULES,
                        help="TrainConfig.lr_schedule (the main job's setting).")
    parser.add_argument("--decay-fraction", type=float, default=0.3)
    parser.add_argument("--window-stride", type=int, default=25,
                        help="TrainConfig.window_stride (the main job's setting).")
    parser.add_argument("--head-positions", type=int, default=4,
                        help="TrainConfig.head_positions, as in eval/ml100k_main.py.")
    parser.add_argument("--head-epochs", type=int, default=0,
                        help="TrainConfig.head_epochs, as in eval/ml100k_main.py.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catalogs", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--encode-texts", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ml100k-model", default="runs/ml100k/model",
                        help="A trained ml-100k model for the latency row (skipped if absent).")
    parser.add_argument("--out", default="runs/benchmark")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args)
        return {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args)}
    if args.quality:
        results["quality"] = quality(args)
    if args.speed:
        results["speed"] = speed(args)
    md = markdown(results)
    print("\n" + md)
    (out / "benchmark.md").write_text(md + "\n")
    (out / "benchmark.json").write_text(json.dumps(results, indent=2, default=str))
    chart(results, out / "benchmark.png")
    return results


if __name__ == "__main__":
    main()

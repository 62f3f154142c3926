"""Per-request cost of the safety filter: a mask lookup, not a classifier call.

    python eval/safety/request_cost.py --model runs/ml100k/model [--users 200]

Times ``recommend`` for single users (k=10) three ways, in the same run: with the precomputed
safety mask (what llmrec does), with no filter at all, and with what a filter applied at
request time would cost (classifying the top-50 candidates' texts on every request).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llmrec import Recommender


def _times(fn, n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/ml100k/model")
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args(argv)
    rec = Recommender.from_pretrained(args.model)
    assert rec.catalog is not None and rec.safety is not None
    rng = np.random.default_rng(0)
    ids = rec.catalog.ids
    hists = [list(rng.choice(ids, size=rng.integers(5, 50), replace=False))
             for _ in range(args.users)]
    blocked = rec.blocked.copy()

    def masked(i: int) -> None:
        rec.recommend(hists[i], k=10)

    def per_request(i: int) -> None:
        out = rec.recommend(hists[i], k=50)
        rec.safety.check([r.text for r in out])  # what a request-time filter would add

    rec.recommend(hists[0], k=10)  # warm-up
    rows = [("precomputed mask (llmrec)", _times(masked, args.users))]
    rec.blocked = np.zeros_like(blocked)
    rows.append(("no filter", _times(masked, args.users)))
    rec.blocked = blocked
    rows.append(("classify candidates per request", _times(per_request, args.users)))
    base = np.median(rows[1][1])
    print(f"recommend(k=10) latency per user, {args.users} users, catalog "
          f"{len(ids)} items, {int(blocked.sum())} blocked\n")
    print("| filter | p50 ms | p99 ms | p50 / no filter |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {np.median(t):.2f} | {np.percentile(t, 99):.2f} | "
              f"{np.median(t) / base:.2f}x |")


if __name__ == "__main__":
    main()

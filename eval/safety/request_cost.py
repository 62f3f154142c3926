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
import torch

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
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (one user per call runs best on one)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = Recommender.from_pretrained(args.model)
    assert rec.catalog is not None and rec.safety is not None
    rng = np.random.default_rng(0)
    ids = rec.catalog.ids
    hists = [list(rng.choice(ids, size=rng.integers(5, 50), replace=False))
             for _ in range(args.users)]
    # a non-trivial mask: the model's own verdicts plus a random 10% of the catalog
    blocked = rec.blocked.copy()
    blocked[rng.choice(len(ids), size=len(ids) // 10, replace=False)] = True
    rec.blocked = blocked

    def masked(i: int) -> None:
        rec.recommend(hists[i], k=10)

    def per_request(i: int) -> None:
        out = rec.recommend(hists[i], k=50)
        rec.safety.check([r.text for r in out])  # what a request-time filter would add

    def unfiltered(i: int) -> None:
        rec.blocked = np.zeros_like(blocked)
        try:
            rec.recommend(hists[i], k=10)
        finally:
            rec.blocked = blocked

    for fn in (masked, unfiltered, per_request):  # warm-up
        fn(0)
    # interleaved per user, so drifting machine load hits every variant alike
    times = {name: np.empty(args.users) for name in ("mask", "none", "per_request")}
    for i in range(args.users):
        for name, fn in (("mask", masked), ("none", unfiltered), ("per_request", per_request)):
            times[name][i] = _times(lambda _, f=fn, j=i: f(j), 1)[0]
    rows = [("precomputed mask (llmrec)", times["mask"]), ("no filter", times["none"]),
            ("classify candidates per request", times["per_request"])]
    base = np.median(times["none"])
    print(f"recommend(k=10) latency per user, {args.users} users, catalog "
          f"{len(ids)} items, {int(blocked.sum())} blocked\n")
    print("| filter | p50 ms | p99 ms | p50 / no filter |")
    print("|---|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {np.median(t):.2f} | {np.percentile(t, 99):.2f} | "
              f"{np.median(t) / base:.2f}x |")


if __name__ == "__main__":
    main()

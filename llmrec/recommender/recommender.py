"""The notebook-facing API: fit, evaluate, recommend, add items, save and load."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from llmrec.data.cases import EvalCases
from llmrec.data.catalog import ItemCatalog
from llmrec.data.dataset import RecDataset
from llmrec.data.split import Split
from llmrec.data.template import ItemTemplate
from llmrec.evaluation import EvalConfig, EvalReport, evaluate
from llmrec.evaluation.report import protocol_line
from llmrec.explain import ExplainConfig, Explainer
from llmrec.models.ann import RetrievalConfig, make_retriever, require_faiss
from llmrec.models.config import ModelConfig
from llmrec.models.embedding_cache import EmbeddingCache
from llmrec.models.encoder import ItemTextEncoder
from llmrec.models.encoder_config import DEFAULT_HUB_ID, EncoderConfig
from llmrec.models.model import ModelScorer, SeqRecModel, history_inputs
from llmrec.recommender.card import CardData, write_card
from llmrec.recommender.storage import atomic_dir, read_json, write_json
from llmrec.recommender.types import Evidence, Recommendation, RecommendationList, RemovedItem
from llmrec.safety import SafetyFilter, Verdict
from llmrec.safety.mpnet import MPNET
from llmrec.safety.semantic import ENSEMBLE_MARGIN_BEFORE_CALIBRATION
from llmrec.train.config import TrainConfig
from llmrec.train.trainer import FitResult, Trainer

logger = logging.getLogger("llmrec")


def describe(verdict: Verdict) -> str:
    """One line naming the rules and classifier labels that blocked an item."""
    parts = []
    for r in verdict.reasons:
        if r.action != "block":
            continue
        what = f"{r.rule}:{r.label}"
        if r.score is not None and r.threshold is not None:
            what += f" {r.score:.2f} >= {r.threshold:.2f}"
        if r.match:
            what += f" ({r.match})"
        parts.append(what)
    return "; ".join(parts) or "blocked"


def _json_default(value: object) -> object:
    """numpy scalars and arrays in catalog fields -> plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"catalog field value {value!r} is not JSON serialisable")
ON_UNKNOWN = ("error", "ignore")
N_EVIDENCE = 3
SEMANTIC_WEIGHTS = "safety_semantic.safetensors"  # a saved model's learned safety layer


class Recommender:
    """Text-aware sequential recommender.

    >>> rec = Recommender()                      # all-MiniLM-L6-v2 item encoder
    >>> rec.fit(load_dataset("ml-100k"))         # doctest: +SKIP
    >>> rec.recommend(["50", "181"], k=5)        # doctest: +SKIP
    """

    def __init__(self, encoder: EncoderConfig | None = None, model: ModelConfig | None = None,
                 *, safety: SafetyFilter | str | None = "default",
                 cache_dir: str | Path | None = None,
                 retrieval: RetrievalConfig | None = None) -> None:
        """``safety``: the filter whose verdicts remove items before ranking; ``"default"``
        is :class:`SafetyFilter()` (offline classifier + default policy), None turns it off.
        ``retrieval``: how :meth:`recommend` finds candidates (default exact; a faiss index
        for large catalogs, see :class:`RetrievalConfig`)."""
        self.encoder_config = encoder or EncoderConfig()
        self.model_config = model or ModelConfig()
        self.retrieval = _checked_retrieval(retrieval or RetrievalConfig())
        self.cache_dir = cache_dir
        if isinstance(safety, str):
            if safety != "default":
                raise ValueError(f"safety must be a SafetyFilter, 'default' or None, got "
                                 f"{safety!r}")
            safety = SafetyFilter()
        self.safety = safety
        self._encoder: ItemTextEncoder | None = None
        self.model: SeqRecModel | None = None
        self.catalog: ItemCatalog | None = None
        self.popularity: np.ndarray | None = None
        self.blocked: np.ndarray | None = None  # (N,) bool: the safety layer's verdicts
        self.block_reasons: dict[int, str] = {}
        self.card = CardData()  # what the model card says: data, evaluations
        self._explainer: Explainer | None = None

    def set_retrieval(self, config: RetrievalConfig) -> None:
        """Switch how :meth:`recommend` retrieves candidates (e.g. to a faiss index after
        loading a model); evaluation always ranks the full catalog exactly."""
        self.retrieval = _checked_retrieval(config)
        if self.model is not None:
            self.model.retriever = make_retriever(config)

    # -- encoder -----------------------------------------------------------------------
    @property
    def encoder(self) -> ItemTextEncoder:
        """The item text encoder (loaded on first use)."""
        if self._encoder is None:
            self._encoder = ItemTextEncoder(self.encoder_config)
            # an adapter_path without lora settings brings its own: keep them with the model
            # (a copy: the caller's config object is left as it was)
            if self.encoder_config.lora != self._encoder.config.lora:
                self.encoder_config = dataclasses.replace(self.encoder_config,
                                                          lora=self._encoder.config.lora)
        return self._encoder

    def encode_texts(self, texts: Sequence[str], *, show_progress: bool = True) -> np.ndarray:
        """Text embeddings, through the on-disk cache (unchanged texts are never re-encoded)."""
        from llmrec.data.sources.cache import cache_dir

        cache = EmbeddingCache(cache_dir(self.cache_dir) / "embeddings")
        return self.encoder.encode(list(texts), cache=cache, show_progress=show_progress)

    # -- training ----------------------------------------------------------------------
    def fit(self, dataset: RecDataset, split: Split | None = None,
            train: TrainConfig | None = None, **train_overrides: Any) -> FitResult:
        """Encode the catalog, then train on ``split`` (default: leave-one-out of ``dataset``)."""
        if train is not None and train_overrides:
            raise ValueError("pass either a TrainConfig or keyword overrides, not both")
        train = train or TrainConfig.from_dict(train_overrides)
        split = split or dataset.split()
        if split.n_items != dataset.n_items:
            raise ValueError(f"split has {split.n_items} items, dataset {dataset.n_items}")
        self.catalog = dataset.catalog
        text = self.encode_texts(dataset.catalog.texts(), show_progress=train.progress)
        cfg = ModelConfig.from_dict({**self.model_config.to_dict(), "n_items": dataset.n_items,
                                     "text_dim": text.shape[1]})
        self.model_config = cfg
        torch.manual_seed(train.seed)
        self.model = SeqRecModel(cfg)
        self.model.items.set_text(text)
        self.popularity = split.item_counts()
        self.blocked, self.block_reasons = self._scan(dataset.catalog)
        self.card.dataset = {
            "name": dataset.name, "n_users": dataset.n_users, "n_items": dataset.n_items,
            "n_interactions": len(dataset.interactions), "license": dataset.license,
            "split": f"{split.config.strategy} ({len(split.valid)} valid / {len(split.test)} "
                     "test cases)",
        }
        encoder = self.encoder if train.encoder_epochs else None
        texts = dataset.catalog.texts() if encoder is not None else None
        result = Trainer(self.model, split, train, encoder=encoder, item_texts=texts).train()
        self.model.retriever = make_retriever(self.retrieval)
        keys = ("epochs", "batch_size", "lr", "lr_schedule", "decay_fraction", "loss",
                "window_stride", "head_positions", "head_epochs", "encoder_epochs", "encoder_lr",
                "ema_decay", "average_epochs", "select", "metric", "seed")
        self.card.training = {k: getattr(train, k) for k in keys} | {
            "kept epoch": result.best_epoch, f"valid {result.metric}": round(result.best_metric,
                                                                            4),
            "head weight (chosen on valid)": float(self.model.head_scale)}
        if encoder is not None:
            encoder.eval()
        self.model.eval()
        return result

    def _scan(self, catalog: ItemCatalog, offset: int = 0) -> tuple[np.ndarray, dict[int, str]]:
        """Safety verdicts for every item, computed once (fit / add_items), kept as a mask."""
        blocked = np.zeros(len(catalog), dtype=bool)
        if self.safety is None:
            return blocked, {}
        verdicts = self.safety.check(catalog.texts(), items=catalog.table.to_dict("records"),
                                     item_ids=list(catalog.ids))
        reasons = {}
        for i, v in enumerate(verdicts):
            if v.blocked:
                blocked[i] = True
                reasons[offset + i] = describe(v)
        if blocked.any():
            logger.info("safety: %d of %d items blocked", int(blocked.sum()), len(catalog))
        return blocked, reasons

    def safety_report(self) -> list[tuple[str, str, str]]:
        """(item id, text, reason) of every blocked catalog item."""
        self._require_model()
        assert self.catalog is not None
        return [(self.catalog.ids[i], self.catalog.text(i), r)
                for i, r in sorted(self.block_reasons.items())]

    def _require_model(self) -> SeqRecModel:
        if self.model is None or self.catalog is None:
            raise RuntimeError("the recommender is not trained: call fit() or from_pretrained()")
        return self.model

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, cases: EvalCases | Split, config: EvalConfig | None = None,
                 *, name: str = "llmrec") -> EvalReport:
        """Full-ranking evaluation (test cases of a split, or any :class:`EvalCases`)."""
        model = self._require_model()
        if isinstance(cases, Split):
            cases = cases.test
        report = evaluate(ModelScorer(model), cases, config, item_popularity=self.popularity,
                          name=name)
        keys = [k for k in ("ndcg@10", "hr@10", "mrr@10", "auc", "coverage@10")
                if k in report.metrics]
        entry = {
            "name": f"{name} ({report.n_cases} cases)",
            "protocol": protocol_line(report.protocol),
            "metrics": [(k, report.metrics[k]) for k in keys],
        }
        # re-evaluating under the same name and protocol replaces the earlier figures
        self.card.evaluations = [e for e in self.card.evaluations
                                 if (e["name"], e["protocol"]) != (entry["name"],
                                                                   entry["protocol"])]
        self.card.evaluations.append(entry)
        return report

    # -- inference ---------------------------------------------------------------------
    def _timed_history(self, history: Sequence[str], times: Sequence[float] | None,
                       on_unknown: str, notes: list[str]
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """Catalog indices of ``history`` and, given, the timestamps of the items kept."""
        catalog = self.catalog
        assert catalog is not None
        if isinstance(history, str):
            raise TypeError("history must be a sequence of item ids, not one string")
        if times is not None and len(times) != len(history):
            raise ValueError(f"timestamps has {len(times)} values for a history of "
                             f"{len(history)} items: give one per history item")
        known = [str(h) in catalog for h in history]
        if not all(known):
            unknown = [h for h, k in zip(history, known, strict=True) if not k]
            if on_unknown == "error":
                raise KeyError(f"unknown item id(s) in history: {unknown[:10]} (pass "
                               "on_unknown='ignore' to skip them)")
            notes.append(f"ignored {len(unknown)} unknown item id(s): {unknown[:10]}")
        idx = np.array([catalog.index(str(h)) for h, k in zip(history, known, strict=True)
                        if k], dtype=np.int64)
        kept = None if times is None else np.asarray(times, dtype=np.float64)[
            np.asarray(known, dtype=bool)]
        max_len = self.model_config.max_len
        if len(idx) > max_len:
            notes.append(f"history of {len(idx)} items: the model reads the {max_len} most "
                         "recent")
        return idx, kept

    def recommend(self, history: Sequence[str], k: int = 10, *, exclude_history: bool = True,
                  on_unknown: str = "error", explain: bool | ExplainConfig = False,
                  timestamps: Sequence[float] | None = None) -> RecommendationList:
        """Top-``k`` items for one user's history (external item ids, oldest first).

        ``explain=True`` (or an :class:`ExplainConfig`) fills each
        ``Recommendation.explanation`` with a grounded, safety-checked explanation.
        ``timestamps``: one per history item (unix seconds, oldest first); required by a
        model trained with ``ModelConfig(time_gaps=True)``, an error for one without.
        """
        return self.recommend_batch([history], k, exclude_history=exclude_history,
                                    on_unknown=on_unknown, explain=explain,
                                    timestamps=None if timestamps is None else [timestamps])[0]

    def explainer(self, config: ExplainConfig | None = None) -> Explainer:
        """The explainer for this model and catalog (rebuilt when either changes)."""
        cfg = config or ExplainConfig()
        e = self._explainer
        if e is None or e.catalog is not self.catalog or e.config != cfg:
            e = self._explainer = Explainer.for_recommender(self, cfg)
        return e

    @torch.no_grad()
    def recommend_batch(self, histories: Sequence[Sequence[str]], k: int = 10, *,
                        exclude_history: bool = True, on_unknown: str = "error",
                        explain: bool | ExplainConfig = False,
                        timestamps: Sequence[Sequence[float]] | None = None,
                        ) -> list[RecommendationList]:
        """:meth:`recommend` for many users at once (one forward pass per batch);
        ``timestamps``: per history, one per item (see :meth:`recommend`).

        - An empty history (a cold-start user) gets the most popular training items.
        - Blocked items (safety layer) and, by default, the user's own history are never
          recommended; when fewer than ``k`` items remain the list is shorter, with a note.
        """
        model = self._require_model()
        catalog = self.catalog
        assert catalog is not None and self.blocked is not None
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if on_unknown not in ON_UNKNOWN:
            raise ValueError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
        notes = [[] for _ in histories]
        idx, times = self._timed_histories(histories, timestamps, on_unknown, notes)
        n = model.n_items
        blocked = self._blocked_tensor()  # (N,) shared by every row
        if model.training:  # eval() walks every submodule: ~1 ms a request
            model.eval()
        seq, gaps = history_inputs(model, idx, times)
        # the head re-ranks retrieval's top head_top_n; at weight 0 it reorders nothing and only
        # its attention over the k shown items is needed (for the evidence)
        top_n = k if float(model.head_scale) == 0.0 else max(k, self.model_config.head_top_n)
        out = model.rank(seq, top_n=top_n,
                         exclude=blocked if self.blocked.any() else None,
                         exclude_rows=idx if exclude_history else None,
                         report_masked=bool(self.blocked.any()), gaps=gaps)
        # the strongest history positions per candidate, for all rows at once: (B, C, E)
        evidence_pos = None
        if out.attention is not None:
            e = min(N_EVIDENCE, out.attention.shape[-1])
            evidence_pos = out.attention[:, :k].topk(e, dim=-1).indices.tolist()
        # every text the lists show, rendered in one pass over the catalog table
        rows_items, rows_values = out.items[:, :k].tolist(), out.scores[:, :k].tolist()
        hist_rows = seq.tolist()
        shown = {i for r in rows_items for i in r}
        if evidence_pos is not None:
            shown.update(hist_rows[r][p] for r, per in enumerate(evidence_pos)
                         for ps in per for p in ps)
        shown.discard(-1)
        text = dict(zip(shown, catalog.texts_for(shown), strict=True))
        results = []
        for row, h in enumerate(idx):
            res = RecommendationList(notes=notes[row])
            if len(h) == 0:
                res.notes.append("empty history (cold-start user): most popular items")
                scores = torch.as_tensor(self.popularity, dtype=torch.float32)
                scores = scores.masked_fill(blocked, float("-inf"))
                top = scores.topk(min(k, n))
                items, values, attn, pos = top.indices.tolist(), top.values.tolist(), None, None
            else:
                items, values = rows_items[row], rows_values[row]
                attn = out.attention[row] if out.attention is not None else None
                pos = evidence_pos[row] if evidence_pos is not None else None
            hist_pos = hist_rows[row]
            for rank, (item, score) in enumerate(zip(items, values, strict=True)):
                if len(res.items) == k or score == float("-inf"):
                    break
                evidence = []
                if attn is not None and pos is not None:
                    weights = attn[rank, pos[rank]].tolist()
                    for p, w in zip(pos[rank], weights, strict=True):
                        if hist_pos[p] >= 0:
                            j = hist_pos[p]
                            evidence.append(Evidence(catalog.ids[j], w, text[j]))
                res.items.append(Recommendation(catalog.ids[item], float(score),
                                                text.get(item) or catalog.text(item),
                                                len(res.items) + 1, evidence))
            if len(res.items) < k:
                res.notes.append(f"only {len(res.items)} recommendable items for k={k} "
                                 f"(catalog {n}, blocked {int(self.blocked.sum())}, "
                                 f"history excluded: {exclude_history})")
            if out.unmasked is not None and len(h):
                res.removed = [RemovedItem(catalog.ids[i], self.block_reasons.get(i, "blocked"))
                               for i in out.unmasked[row, :k].tolist() if self.blocked[i]]
            results.append(res)
        if explain:
            cfg = explain if isinstance(explain, ExplainConfig) else None
            self.explainer(cfg).explain_lists(histories, results, timestamps)
        return results

    def _timed_histories(self, histories: Sequence[Sequence[str]],
                         timestamps: Sequence[Sequence[float]] | None, on_unknown: str,
                         notes: list[list[str]]) -> tuple[list[np.ndarray], list | None]:
        """Per history, its catalog indices and (with ``timestamps``) the kept items' times."""
        if timestamps is not None and len(timestamps) != len(histories):
            raise ValueError(f"timestamps has {len(timestamps)} entries for {len(histories)} "
                             "histories: give one list per history")
        per = [self._timed_history(h, None if timestamps is None else timestamps[i],
                                   on_unknown, notes[i]) for i, h in enumerate(histories)]
        idx = [p[0] for p in per]
        return idx, None if timestamps is None else [p[1] for p in per]

    def _blocked_tensor(self) -> torch.Tensor:
        """The safety mask as a (N,) bool tensor (converted once per mask)."""
        assert self.blocked is not None
        cached = getattr(self, "_blocked_t", None)
        if cached is None or cached[0] is not self.blocked:
            cached = self._blocked_t = (self.blocked, torch.from_numpy(self.blocked))
        return cached[1]

    @torch.no_grad()
    def score_items(self, histories: Sequence[Sequence[str]], item_ids: Sequence[str], *,
                    timestamps: Sequence[Sequence[float]] | None = None) -> np.ndarray:
        """(len(histories),) final scores of ``item_ids[i]`` given ``histories[i]``, exactly as
        :meth:`recommend` scores it (retrieval + head), whether or not it is in the top-N."""
        model = self._require_model()
        assert self.catalog is not None
        if len(histories) != len(item_ids):
            raise ValueError(f"{len(histories)} histories but {len(item_ids)} item ids")
        idx, times = self._timed_histories(histories, timestamps, "error",
                                           [[] for _ in histories])
        seq, gaps = history_inputs(model, idx, times)
        target = torch.as_tensor(self.catalog.indices(item_ids))[:, None]  # (B, 1)
        if model.training:
            model.eval()
        return model.score_candidates(seq, target, gaps)[:, 0].numpy()

    # -- catalog changes ---------------------------------------------------------------
    def add_items(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Add items (id -> fields); they are recommendable at once, from their text."""
        model = self._require_model()
        catalog = self.catalog
        assert catalog is not None and self.popularity is not None and self.blocked is not None
        dupes = [i for i in items if str(i) in catalog]
        if dupes:
            raise ValueError(f"add_items: item id(s) already in the catalog: {dupes[:10]}")
        if not items:
            return
        table = pd.DataFrame([dict(f) for f in items.values()])
        missing = sorted(set(table.columns) - set(catalog.fields))
        if missing:
            raise ValueError(f"add_items: unknown field(s) {missing}; the catalog has "
                             f"{catalog.fields}")
        table = table.reindex(columns=catalog.fields)
        new = ItemCatalog([str(i) for i in items], table, catalog.template)
        text = self.encode_texts(new.texts(), show_progress=False)
        merged = ItemCatalog(catalog.ids + new.ids,
                             pd.concat([catalog.table, new.table], ignore_index=True),
                             catalog.template)
        model.grow_items(torch.from_numpy(np.asarray(text)))
        model.config.n_items = self.model_config.n_items = len(merged)
        self.catalog = merged
        self.popularity = np.concatenate([self.popularity, np.zeros(len(new))])
        blocked, reasons = self._scan(new, offset=len(catalog))
        self.blocked = np.concatenate([self.blocked, blocked])
        self.block_reasons.update(reasons)

    # -- persistence -------------------------------------------------------------------
    def _card(self) -> CardData:
        card = self.card
        card.base_model = str(self.encoder_config.model_name_or_path)
        if card.base_model == "default":
            card.base_model = DEFAULT_HUB_ID
        card.lora = (dataclasses.asdict(self.encoder_config.lora)
                     if self.encoder_config.lora is not None else None)
        card.model = {k: v for k, v in self.model_config.to_dict().items()}
        if self.encoder_config.adapter_path:
            card.adapter_origin = adapter_origin(self.encoder_config.adapter_path)
        if self.safety is not None and self.blocked is not None:
            kinds = Counter(r.split(" ")[0] for r in self.block_reasons.values())
            card.safety = {
                "classifier": getattr(self.safety.classifier, "name", "custom"),
                "policy": self.safety.policy.description or "custom policy",
                "blocked": int(self.blocked.sum()), "n_items": len(self.blocked),
                "reasons": ", ".join(f"{k}: {n}" for k, n in kinds.most_common()),
            }
        else:
            card.safety = None
        return card

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config JSON, safetensors weights, item embeddings, catalog, adapter.

        The write is atomic: a crash leaves any earlier save at ``path`` intact.
        """
        model = self._require_model()
        catalog = self.catalog
        assert catalog is not None and self.popularity is not None and self.blocked is not None
        path = Path(path)
        card = self._card()
        with atomic_dir(path) as tmp:
            write_json(tmp / "config.json", {
                "encoder": self.encoder_config.to_dict(),
                "model": self.model_config.to_dict(),
                "retrieval": self.retrieval.to_dict(),
                "modules": ["encoder", "item_tower", "sequence", "head", "safety_mask"],
                "block_reasons": {catalog.ids[i]: r for i, r in self.block_reasons.items()},
                "card": {"dataset": self.card.dataset, "evaluations": self.card.evaluations,
                         "adapter_origin": self.card.adapter_origin,
                         "training": self.card.training},
            })
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            save_file({"text": model.items.text.contiguous(),
                       "popularity": torch.from_numpy(self.popularity.astype(np.float64)),
                       "blocked": torch.from_numpy(self.blocked.astype(np.uint8))},
                      str(tmp / "item_embeddings.safetensors"))
            with (tmp / "catalog.jsonl").open("w", encoding="utf-8") as fh:
                for item_id, row in zip(catalog.ids, catalog.table.to_dict("records"),
                                        strict=True):
                    fh.write(json.dumps({"item_id": item_id, **row}, ensure_ascii=False,
                                        default=_json_default) + "\n")
            (tmp / "item_template.jinja").write_text(catalog.template.source, encoding="utf-8")
            if self.safety is not None:
                safety = _pinned_safety(self.safety)
                layer = _learned_layer(self.safety)
                if layer is not None:  # the learned layer travels with the model
                    save_file(layer.state(), str(tmp / SEMANTIC_WEIGHTS))
                    safety["classifier"]["semantic_weights"] = SEMANTIC_WEIGHTS
                write_json(tmp / "safety.json", safety)
            write_card(card, tmp / "README.md", previous=path / "README.md")
            if self._encoder is not None and self._encoder.config.lora is not None:
                self._encoder.save_adapter(tmp / "encoder_adapter")
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, *, cache_dir: str | Path | None = None,
                        retrieval: RetrievalConfig | None = None) -> Recommender:
        """Rebuild a saved recommender exactly (strict: missing or extra weights are errors).
        ``retrieval`` overrides the saved retrieval (e.g. ``RetrievalConfig()``, exact, on a
        machine without faiss)."""
        path = Path(path)
        cfg = read_json(path / "config.json")
        safety = (SafetyFilter.from_dict(_saved_safety(read_json(path / "safety.json"), path))
                  if (path / "safety.json").is_file() else None)
        # the adapter saved with the model supersedes the one it started from
        encoder = EncoderConfig.from_dict({**cfg["encoder"], "adapter_path": None})
        if retrieval is None:  # older saves: exact
            retrieval = RetrievalConfig.from_dict(cfg.get("retrieval", {}))
        rec = cls(encoder, ModelConfig.from_dict(cfg["model"]),
                  safety=safety, cache_dir=cache_dir, retrieval=retrieval)
        with (path / "catalog.jsonl").open(encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        ids = [str(r.pop("item_id")) for r in records]
        frame = pd.DataFrame.from_records(records, columns=list(records[0]) if records else [])
        template = ItemTemplate((path / "item_template.jinja").read_text(encoding="utf-8"),
                                name=str(path / "item_template.jinja"))
        rec.catalog = ItemCatalog(ids, frame, template)
        model = SeqRecModel(rec.model_config)
        state = load_file(str(path / "model.safetensors"))
        result = model.load_state_dict(state, strict=False)
        # models saved before the unseen-item offset existed: no offset (their scores as saved)
        missing = set(result.missing_keys) - {"unseen", "unseen_offset"}
        if missing or result.unexpected_keys:
            raise ValueError(f"{path}/model.safetensors does not match the config: missing "
                             f"{result.missing_keys}, unexpected {result.unexpected_keys}")
        extra = load_file(str(path / "item_embeddings.safetensors"))
        model.items.set_text(extra["text"])
        model.eval()
        model.retriever = make_retriever(retrieval)
        rec.model = model
        rec.popularity = extra["popularity"].numpy()
        rec.blocked = extra["blocked"].numpy().astype(bool)
        index = {item: i for i, item in enumerate(ids)}
        rec.block_reasons = {index[i]: r for i, r in cfg.get("block_reasons", {}).items()}
        card = cfg.get("card", {})
        rec.card.dataset = card.get("dataset")
        rec.card.adapter_origin = card.get("adapter_origin")
        rec.card.training = card.get("training")
        rec.card.evaluations = [{**e, "metrics": [tuple(m) for m in e["metrics"]]}
                                for e in card.get("evaluations", [])]
        if (path / "encoder_adapter").is_dir():
            rec.encoder.load_adapter(path / "encoder_adapter")
        return rec


def _checked_retrieval(config: RetrievalConfig) -> RetrievalConfig:
    """``config``, once it is known to work here (faiss importable for a faiss backend), so
    that a missing package fails at once rather than after training."""
    if not isinstance(config, RetrievalConfig):
        raise TypeError(f"retrieval must be a RetrievalConfig, got {type(config).__name__}")
    if config.backend == "faiss":
        require_faiss()  # raises ImportError with the install hint
    return config


def adapter_origin(path: str | Path) -> str:
    """One line on a starting adapter: the run that made it, when llmrec's adaptation did."""
    meta_file = Path(path) / "llmrec_adapt.json"
    if not meta_file.is_file():
        return f"`{path}`"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    corpus = meta.get("interactions") if meta.get("objective") == "pairs" else meta.get("corpus")
    return (f"`{path}` ({meta.get('objective')} objective on {corpus}, "
            f"{meta.get('epochs')} epoch(s) / max_steps {meta.get('max_steps')}, "
            f"lr {meta.get('lr')}, llmrec {meta.get('llmrec_version')})")


def _pinned_safety(safety: SafetyFilter) -> dict[str, Any]:
    """The filter's configuration with the learned layer's defaulted margin, ``c`` and
    regression encoder written out, so a saved model keeps its operating point when a later
    version's defaults change."""
    from llmrec.safety import OfflineToxicityClassifier

    values = safety.to_dict()
    clf = safety.classifier
    if isinstance(clf, OfflineToxicityClassifier) and clf.semantic:
        settings = clf.semantic_settings
        values["classifier"] = {**values["classifier"], "semantic_margin": settings.margin,
                                "semantic_c": settings.c, "semantic_ngram_c": settings.ngram_c,
                                "semantic_regression_model": settings.regression_model}
        if settings.method == "ensemble":
            values["classifier"]["semantic_members"] = list(settings.members)
    return values


def _learned_layer(safety: SafetyFilter) -> Any:
    """The filter's learned layer (a SemanticHarmModel, whichever method), or None."""
    from llmrec.safety import OfflineToxicityClassifier

    clf = safety.classifier
    if isinstance(clf, OfflineToxicityClassifier) and clf.semantic:
        return clf.semantic_model_()
    return None


_THREE_MEMBERS = ("lora", "regression", "ngram")  # the default ensemble up to 2026-12-06


def _saved_safety(values: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """A saved filter configuration as it was saved: an offline classifier stored before the
    learned layer existed has no "semantic" key, and its stored catalog verdicts were made
    without that layer, so it is rebuilt without it; one stored before the layer could be
    fine-tuned has no "semantic_method" and keeps the regression (and its settings) its verdicts
    came from; that regression now trains on the examples shipped with this version. An
    ensemble saved before it could have three members has no "semantic_members": its two. One
    saved before the layer could veto profanity-check or the lexicon has no "profanity_veto" /
    "lexicon_veto": its verdicts were made without that veto, so it stays off; one saved
    before a dissenting member could keep a block has no "veto_dissent": it stays off (1); one
    saved before the regression member could read all-mpnet-base-v2 has no
    "semantic_regression_model": its member read the layer's own encoder (semantic_model). One
    saved before the margin was pinned ("semantic_margin" None) with the three-member ensemble
    keeps the cross-validated 3.25 its verdicts were made with, not today's calibrated default;
    one saved before the members were pinned ("semantic_members" None) keeps the three members
    None meant then (lora, regression, ngram), whatever today's default; one saved before the
    frozen members could train on more examples has none ("semantic_frozen_examples" [])."""
    clf = values.get("classifier")
    if isinstance(clf, dict) and clf.get("type") == "offline" and "semantic" not in clf:
        values = {**values, "classifier": {**clf, "semantic": False}}
    clf = values.get("classifier")
    if isinstance(clf, dict) and clf.get("type") == "offline":
        values = {**values, "classifier": {"profanity_veto": 0.0, "lexicon_veto": 0.0,
                                           "veto_dissent": 1.0, "semantic_regression_model":
                                           clf.get("semantic_model", "default"), **clf}}
    clf = values.get("classifier")
    if isinstance(clf, dict) and clf.get("type") == "offline" and "semantic_method" not in clf:
        # the regression as it was then: c 10, margin 1.85 (its shipped examples were fewer)
        values = {**values, "classifier": {**clf, "semantic_method": "regression",
                                           "semantic_c": 10.0, "semantic_margin": 1.85}}
    clf = values.get("classifier")
    if (isinstance(clf, dict) and clf.get("type") == "offline"
            and clf.get("semantic_method") == "ensemble" and "semantic_members" not in clf):
        # saved when the ensemble had two members (before the n-gram one): keep them
        values = {**values, "classifier": {**clf, "semantic_members": ["lora", "regression"]}}
    clf = values.get("classifier")
    if (isinstance(clf, dict) and clf.get("type") == "offline"
            and clf.get("semantic_method", "ensemble") == "ensemble"
            and clf.get("semantic_members", "absent") is None):
        # saved before the members were pinned: None then meant these three
        values = {**values, "classifier": {**clf, "semantic_members": list(_THREE_MEMBERS)}}
    clf = values.get("classifier")
    if (isinstance(clf, dict) and clf.get("type") == "offline" and clf.get("semantic")
            and clf.get("semantic_method", "ensemble") == "ensemble"
            and clf.get("semantic_margin") is None
            and clf.get("semantic_members") == list(_THREE_MEMBERS)
            and clf.get("semantic_regression_model") != MPNET):
        # saved before the margin was pinned and recalibrated on the spent holdouts: the
        # three-member ensemble's verdicts were made with the cross-validated 3.25
        values = {**values, "classifier": {
            **clf, "semantic_margin": ENSEMBLE_MARGIN_BEFORE_CALIBRATION}}
    clf = values.get("classifier")
    if isinstance(clf, dict) and clf.get("type") == "offline" and (
            "semantic_frozen_examples" not in clf):
        # saved before the frozen members could train on more examples: they had none
        values = {**values, "classifier": {**clf, "semantic_frozen_examples": []}}
    clf = values.get("classifier")
    if (folder is not None and isinstance(clf, dict)
            and isinstance(clf.get("semantic_weights"), str)
            and not Path(clf["semantic_weights"]).is_absolute()):  # saved beside the model
        values = {**values, "classifier": {
            **clf, "semantic_weights": str(folder / clf["semantic_weights"])}}
    return values

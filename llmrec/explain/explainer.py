"""Explainer: grounded, safety-checked explanation strings for recommendations."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrec.data.catalog import ItemCatalog
from llmrec.explain.attributes import ItemFacts
from llmrec.explain.config import ExplainConfig
from llmrec.explain.evidence import (
    Scorer,
    attended_positions,
    attention_ranking,
    occlusion_drops,
    recommender_scorer,
)
from llmrec.explain.grounding import GroundingChecker
from llmrec.explain.safety import CachedSafety, blocked_because
from llmrec.explain.templates import NEUTRAL, ExplanationTemplate
from llmrec.explain.types import CitedItem, Explanation, SharedAttribute

if TYPE_CHECKING:
    from llmrec.safety import SafetyFilter

logger = logging.getLogger("llmrec")

Generator = Callable[[Sequence[str]], list[str]]
_Candidate = tuple[str, str, "_Plan"]  # text, method, the plan it cites
CAPITALISED_NOUNS = ("de", "lb")  # languages where a capital inside a sentence is no name


@dataclass
class _Plan:
    """Everything known about one explanation before any text is chosen."""

    item: int
    cited: list[CitedItem]
    cited_idx: list[int]
    attributes: list[SharedAttribute]
    kind: str
    source: str
    context: dict[str, Any]


class Explainer:
    """Explains recommendations from their evidence: cited history items + shared attributes.

    ``safety``: every final text passes it (None: no check, ``safe`` is None); ``generator``:
    ``prompts -> texts`` for method 'llm' (default: :class:`LLMGenerator` from the config,
    loaded on first use); ``scorer``: ``(histories, item_ids) -> (H, K) scores`` for occlusion
    evidence (:func:`recommender_scorer`, or :func:`pairwise_scorer` over any per-pair scorer
    such as ``Recommender.score_items``); ``window``: history items the model reads;
    ``cleared``: (N,) bool, the catalog items that passed ``safety`` when the catalog was
    scanned (template texts naming only those skip the filter's learned layer; None: every
    text gets every layer).
    """

    def __init__(self, catalog: ItemCatalog, config: ExplainConfig | None = None,
                 safety: SafetyFilter | None = None, *, generator: Generator | None = None,
                 scorer: Scorer | None = None, window: int | None = None,
                 cleared: np.ndarray | None = None) -> None:
        self.config = cfg = config or ExplainConfig()
        # (N,) bool: catalog items that passed ``safety`` (every layer) when the catalog was
        # scanned; a template text naming only such items skips the filter's learned layer
        self.cleared = None if cleared is None else np.asarray(cleared, dtype=bool)
        self.catalog, self.safety, self.scorer, self.window = catalog, safety, scorer, window
        self._safety = CachedSafety(safety) if safety is not None else None
        if cfg.evidence == "occlusion" and scorer is None:
            raise ValueError("evidence='occlusion' needs a scorer (Explainer.for_recommender "
                             "passes one)")
        self.evidence = cfg.evidence if cfg.evidence != "auto" else (
            "occlusion" if scorer is not None else "attention")
        self.facts = ItemFacts(catalog, cfg.attribute_fields)
        self.template = ExplanationTemplate.resolve(cfg.template, f"explain_{cfg.language}")
        self.llm_template: ExplanationTemplate | None = None
        if cfg.method == "llm":
            from llmrec.data.template import prompts_dir

            lang = cfg.language if (prompts_dir() / f"explain_llm_{cfg.language}.jinja"
                                    ).is_file() else "en"
            self.llm_template = ExplanationTemplate.resolve(cfg.llm_template,
                                                            f"explain_llm_{lang}")
        self._generator = generator
        self._checker: GroundingChecker | None = None
        self._neutral_text: str | None = None

    @classmethod
    def for_recommender(cls, rec: Any, config: ExplainConfig | None = None, *,
                        generator: Generator | None = None) -> Explainer:
        """An explainer over a trained :class:`~llmrec.Recommender`: its catalog, its safety
        filter (the default one when it has none), its exact scores for occlusion."""
        from llmrec.safety import SafetyFilter

        safety = rec.safety if rec.safety is not None else SafetyFilter()
        cleared = ~np.asarray(rec.blocked, dtype=bool) if rec.safety is not None else None
        return cls(rec.catalog, config, safety, generator=generator,
                   scorer=recommender_scorer(rec), window=rec.model_config.max_len,
                   cleared=cleared)

    @property
    def checker(self) -> GroundingChecker:
        """The grounding checker (title and attribute indexes built on first use)."""
        if self._checker is None:
            self._checker = GroundingChecker(self.facts)
        return self._checker

    @property
    def generator(self) -> Generator:
        """The LLM (loaded on first use: slow)."""
        if self._generator is None:
            from llmrec.explain.llm import LLMGenerator

            cfg = self.config
            self._generator = LLMGenerator(cfg.llm_model, cfg.llm_gguf_file, device=cfg.device,
                                           max_new_tokens=cfg.max_new_tokens,
                                           batch_size=cfg.batch_size)
        return self._generator

    # -- evidence ---------------------------------------------------------------------------
    def _cited(self, history: list[str], recs: Sequence[Any],
               times: list[float] | None = None) -> list[list[CitedItem]]:
        n = self.config.n_evidence
        attention = [dict(attention_ranking(r, history)) for r in recs]
        if self.evidence == "attention" or not history:
            ranked = [[(i, w, None) for i, w in a.items()] for a in attention]
        else:
            assert self.scorer is not None
            cfg = self.config
            tried = (None if cfg.occlusion_positions == "all"
                     else attended_positions(history, recs, cfg.occlusion_recent))
            drops = occlusion_drops(self.scorer, history, [r.item_id for r in recs], self.window,
                                    tried, times=times)
            ranked = []
            for row, att in zip(drops, attention, strict=True):
                items: dict[str, float] = {}
                for j in np.argsort(-row, kind="stable"):
                    if row[j] > 0 and history[j] not in items:
                        items[history[j]] = float(row[j])
                ranked.append([(i, att.get(i, 0.0), d) for i, d in items.items()])
        return [[CitedItem(i, self.facts.title(self.catalog.index(i)), w, d)
                 for i, w, d in r[:n]] for r in ranked]

    def _plan(self, item: int, cited: list[CitedItem], source: str) -> _Plan:
        cited_idx = [self.catalog.index(c.item_id) for c in cited]
        attributes = self.facts.shared(item, cited_idx)
        kind = "history" if cited else ("popular" if source == "popularity" else "general")
        own = self.facts.attributes(item)
        is_list = [isinstance(own.get(a.field), list) for a in attributes]
        values = [v for a, lst in zip(attributes, is_list, strict=True) if lst for v in a.values]
        context = {
            "kind": kind, "item": self.facts.title(item), "titles": [c.title for c in cited],
            "attributes": [SimpleNamespace(field=a.field, values=a.values,
                                           similarity=a.similarity, list=lst)
                           for a, lst in zip(attributes, is_list, strict=True)],
            "values": values[:self.config.max_values],
            "evidence": [SimpleNamespace(item_id=c.item_id, title=c.title, weight=c.weight)
                         for c in cited],
            "fields": own, "language": self.config.language,
        }
        return _Plan(item, cited, cited_idx, attributes, kind, source, context)

    # -- texts ------------------------------------------------------------------------------
    def _template(self, plan: _Plan, method: str) -> list[_Candidate]:
        """The template text of ``plan`` if it is grounded, else nothing."""
        text = self.template.render(plan.context)
        ok = self.checker.check(text, [*plan.cited_idx, plan.item]).ok
        return [(text, method, plan)] if ok else []

    def _candidates(self, plans: list[_Plan]) -> list[list[_Candidate]]:
        """Per plan, (text, method, plan) in order of preference, each grounded."""
        neutral = self._neutral() if plans else ""
        names = self.config.language.split("_")[0].split("-")[0] not in CAPITALISED_NOUNS
        llm = self._llm_texts(plans) if self.config.method == "llm" else [None] * len(plans)
        chains = []
        for plan, llm_text in zip(plans, llm, strict=True):
            chain: list[_Candidate] = []
            fallback = "template"
            if llm_text is not None:
                text, error = llm_text
                g = None if error else self.checker.check(
                    text, [*plan.cited_idx, plan.item], plan.cited_idx, names=names,
                    values=[v for a in plan.attributes for v in a.values])
                if g is not None and g.ok:
                    chain.append((text, "llm", plan))
                    fallback = "template (llm fallback: unsafe)"  # used if the LLM text is
                else:
                    fallback = f"template (llm fallback: {error or (g.reason if g else '')})"
            chain += self._template(plan, fallback)
            if neutral:
                why = "safety" if len(chain) > 0 else "grounding"
                chain.append((neutral, f"neutral ({why})", plan))
            chain.append((NEUTRAL, "neutral (fixed text)", plan))
            chains.append(chain)
        return chains

    def _fewer(self, plan: _Plan, why: str) -> list[_Candidate]:
        """Template texts citing one item each (a title can make the whole sentence unsafe,
        e.g. "Because you watched Liar Liar" reads as an insult to a classifier)."""
        if len(plan.cited) < 2:
            return []
        method = f"template (fewer items; safety: {why})"
        return [c for cited in plan.cited for c in
                self._template(self._plan(plan.item, [cited], plan.source), method)]

    def _neutral(self) -> str:
        """The template's neutral sentence (names nothing), or "" when it has none."""
        if self._neutral_text is not None:
            return self._neutral_text
        empty = {"kind": "neutral", "item": "", "titles": [], "attributes": [], "values": [],
                 "evidence": [], "fields": {}, "language": self.config.language}
        try:
            text = self.template.render(empty)
        except ValueError:
            text = ""
        self._neutral_text = text if text and self.checker.check(text, []).ok else ""
        return self._neutral_text

    def _llm_texts(self, plans: list[_Plan]) -> list[tuple[str, str]]:
        """(LLM text, error) per plan; a failing generator gives ("", reason) for all."""
        assert self.llm_template is not None
        prompts = [self.llm_template.render(p.context) for p in plans]
        try:
            texts = list(self.generator(prompts))
            if len(texts) != len(prompts):
                raise ValueError(f"{len(texts)} texts for {len(prompts)} prompts")
        except Exception as err:  # any LLM failure: the template is used
            logger.warning("llm explanations failed, using the template: %s", err)
            return [("", f"llm error: {type(err).__name__}: {err}"[:200])] * len(plans)
        return [(" ".join(str(t).split()), "") for t in texts]

    def _free(self, method: str, plan: _Plan) -> bool:
        """Whether a text must get every safety layer: LLM text, or a template naming an
        item not known to have passed the filter (blocked history items are cited too)."""
        if method == "llm" or self.cleared is None:
            return True
        n = len(self.cleared)
        return not all(j < n and self.cleared[j] for j in [*plan.cited_idx, plan.item])

    def _choose(self, chains: list[list[_Candidate]]) -> list[tuple[_Candidate, bool | None]]:
        """The first safe candidate of each chain (safety checked in batches, per round)."""
        if self._safety is None:
            return [(c[0], None) for c in chains]
        pos = [0] * len(chains)
        done: dict[int, tuple[_Candidate, bool | None]] = {}
        pending = list(range(len(chains)))
        while pending:
            verdicts = self._safety.check([chains[i][pos[i]][0] for i in pending],
                                          [self._free(*chains[i][pos[i]][1:]) for i in pending])
            still = []
            for i, v in zip(pending, verdicts, strict=True):
                chain, (_, method, plan) = chains[i], chains[i][pos[i]]
                if not v.blocked:
                    done[i] = (chain[pos[i]], True)
                    continue
                if pos[i] + 1 == len(chain):
                    done[i] = (chain[pos[i]], False)
                    continue
                why = blocked_because(v)
                if method.startswith("template") and "fewer items" not in method:
                    chain[pos[i] + 1:pos[i] + 1] = self._fewer(plan, why)
                text, nxt, nplan = chain[pos[i] + 1]
                if nxt.startswith("template (llm fallback: unsafe"):
                    nxt = f"template (llm fallback: unsafe: {why})"
                elif nxt == "neutral (safety)":
                    nxt = f"neutral (safety: {why})"
                elif nxt == "neutral (fixed text)":
                    nxt = f"neutral (fixed text; safety: {why})"
                chain[pos[i] + 1] = (text, nxt, nplan)
                pos[i] += 1
                still.append(i)
            pending = still
        return [done[i] for i in range(len(chains))]

    # -- public -----------------------------------------------------------------------------
    def explain_many(self, histories: Sequence[Sequence[str]],
                     recommendations: Sequence[Sequence[Any]],
                     timestamps: Sequence[Sequence[float]] | None = None,
                     ) -> list[list[Explanation]]:
        """Explanations for many users at once: ``recommendations[u]`` (e.g. a
        ``RecommendationList``) explained from ``histories[u]`` (oldest first; unknown ids are
        ignored). One safety call per round and one LLM pass (in batches) for all of them.
        ``timestamps``: per history, one per item (a scorer over a model that reads time
        gaps needs them for occlusion evidence)."""
        if len(histories) != len(recommendations):
            raise ValueError(f"{len(histories)} histories but {len(recommendations)} "
                             "recommendation lists")
        if timestamps is not None and len(timestamps) != len(histories):
            raise ValueError(f"{len(timestamps)} timestamp lists for {len(histories)} histories")
        plans: list[list[_Plan]] = []
        for u, (history_ids, recs) in enumerate(zip(histories, recommendations, strict=True)):
            if isinstance(history_ids, str):
                raise TypeError("a history must be a sequence of item ids, not one string")
            known = [str(h) in self.catalog for h in history_ids]
            history = [str(h) for h, k in zip(history_ids, known, strict=True) if k]
            times = None
            if timestamps is not None:
                if len(timestamps[u]) != len(history_ids):
                    raise ValueError(f"history {u}: {len(timestamps[u])} timestamps for "
                                     f"{len(history_ids)} items")
                times = [float(t) for t, k in zip(timestamps[u], known, strict=True) if k]
            recs = list(recs)
            cited = self._cited(history, recs, times) if recs else []
            source = self.evidence if history else "popularity"
            plans.append([self._plan(self.catalog.index(r.item_id), c, source)
                          for r, c in zip(recs, cited, strict=True)])
        chosen = iter(self._choose(self._candidates([p for user in plans for p in user])))
        lang = self.config.language
        return [[Explanation(text, self.catalog.ids[p.item], p.cited, p.attributes, method,
                             safe, p.source, lang)
                 for _, ((text, method, p), safe) in zip(user, chosen, strict=False)]
                for user in plans]

    def explain_batch(self, history_ids: Sequence[str], recommendations: Sequence[Any],
                      timestamps: Sequence[float] | None = None) -> list[Explanation]:
        """Explanations of several recommendations for one user (see :meth:`explain_many`)."""
        times = None if timestamps is None else [timestamps]
        return self.explain_many([history_ids], [recommendations], times)[0]

    def explain(self, history_ids: Sequence[str], recommendation: Any,
                timestamps: Sequence[float] | None = None) -> Explanation:
        """The explanation of one recommendation (see :meth:`explain_many`)."""
        return self.explain_batch(history_ids, [recommendation], timestamps)[0]

    def explain_lists(self, histories: Sequence[Sequence[str]], lists: Sequence[Any],
                      timestamps: Sequence[Sequence[float]] | None = None) -> None:
        """Fill ``explanation`` of every item of each ``RecommendationList`` in place."""
        explained = self.explain_many(histories, lists, timestamps)
        for recs, exps in zip(lists, explained, strict=True):
            for rec, exp in zip(recs, exps, strict=True):
                rec.explanation = exp

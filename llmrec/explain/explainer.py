"""Explainer: grounded, safety-checked explanation strings for recommendations."""

from __future__ import annotations

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

Generator = Callable[[Sequence[str]], list[str]]
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
    such as ``Recommender.score_items``); ``window``: history items the model reads.
    """

    def __init__(self, catalog: ItemCatalog, config: ExplainConfig | None = None,
                 safety: SafetyFilter | None = None, *, generator: Generator | None = None,
                 scorer: Scorer | None = None, window: int | None = None) -> None:
        self.config = cfg = config or ExplainConfig()
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
        return cls(rec.catalog, config, safety, generator=generator,
                   scorer=recommender_scorer(rec), window=rec.model_config.max_len)

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
    def _cited(self, history: list[str], recs: Sequence[Any]) -> list[list[CitedItem]]:
        n = self.config.n_evidence
        attention = [dict(attention_ranking(r, history)) for r in recs]
        if self.evidence == "attention" or not history:
            ranked = [[(i, w, None) for i, w in a.items()] for a in attention]
        else:
            assert self.scorer is not None
            drops = occlusion_drops(self.scorer, history, [r.item_id for r in recs], self.window)
            ranked = []
            for row, att in zip(drops, attention, strict=True):
                items: dict[str, float] = {}
                for j in np.argsort(-row, kind="stable"):
                    if row[j] > 0 and history[j] not in items:
                        items[history[j]] = float(row[j])
                ranked.append([(i, att.get(i, 0.0), d) for i, d in items.items()])
        return [[CitedItem(i, self.facts.title(self.catalog.index(i)), w, d)
                 for i, w, d in r[:n]] for r in ranked]

    def _plan(self, history: list[str], rec: Any, cited: list[CitedItem]) -> _Plan:
        item = self.catalog.index(rec.item_id)
        cited_idx = [self.catalog.index(c.item_id) for c in cited]
        attributes = self.facts.shared(item, cited_idx)
        kind = "history" if cited else ("general" if history else "popular")
        values = [v for a in attributes for v in a.values if not self._scalar(item, a.field)]
        context = {
            "kind": kind, "item": self.facts.title(item), "titles": [c.title for c in cited],
            "attributes": [SimpleNamespace(field=a.field, values=a.values,
                                           similarity=a.similarity,
                                           list=not self._scalar(item, a.field))
                           for a in attributes],
            "values": values[:self.config.max_values],
            "evidence": [SimpleNamespace(item_id=c.item_id, title=c.title, weight=c.weight)
                         for c in cited],
            "fields": self.facts.attributes(item), "language": self.config.language,
        }
        source = self.evidence if history else "popularity"
        return _Plan(item, cited, cited_idx, attributes, kind, source, context)

    def _scalar(self, item: int, field: str) -> bool:
        return not isinstance(self.facts.attributes(item).get(field), list)

    # -- texts ------------------------------------------------------------------------------
    def _candidates(self, plans: list[_Plan]) -> list[list[tuple[str, str]]]:
        """Per plan, (text, method) in order of preference, grounding-checked."""
        neutral = self._neutral() if plans else ""
        chains = []
        names = self.config.language.split("_")[0].split("-")[0] not in CAPITALISED_NOUNS
        llm = self._llm_texts(plans) if self.config.method == "llm" else [None] * len(plans)
        for plan, llm_text in zip(plans, llm, strict=True):
            allowed = [*plan.cited_idx, plan.item]
            chain: list[tuple[str, str]] = []
            template_text = self.template.render(plan.context)
            fallback = "template"
            if llm_text is not None:
                g = None if llm_text[1] else self.checker.check(
                    llm_text[0], allowed, plan.cited_idx, names=names,
                    values=[v for a in plan.attributes for v in a.values])
                if g is not None and g.ok:
                    chain.append((llm_text[0], "llm"))
                    fallback = "template (llm fallback: unsafe)"
                else:
                    why = llm_text[1] or (g.reason if g else "")
                    fallback = f"template (llm fallback: {why})"
            g = self.checker.check(template_text, allowed)
            if g.ok:
                chain.append((template_text, fallback))
            if neutral:
                why = "safety" if g.ok else f"grounding: {g.reason}"
                chain.append((neutral, f"neutral ({why})"))
            chain.append((NEUTRAL, "neutral (fixed text)"))
            chains.append(chain)
        return chains

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
            return [("", f"llm error: {type(err).__name__}: {err}"[:200])] * len(plans)
        return [(" ".join(str(t).split()), "") for t in texts]

    def _choose(self, chains: list[list[tuple[str, str]]]) -> list[tuple[str, str, bool | None]]:
        """The first safe candidate of each chain (safety checked in batches, per round)."""
        pos = [0] * len(chains)
        done: dict[int, tuple[str, str, bool | None]] = {}
        if self._safety is None:
            return [(c[0][0], c[0][1], None) for c in chains]
        pending = list(range(len(chains)))
        while pending:
            verdicts = self._safety.check([chains[i][pos[i]][0] for i in pending])
            still = []
            for i, v in zip(pending, verdicts, strict=True):
                text, method = chains[i][pos[i]]
                if not v.blocked:
                    done[i] = (text, method, True)
                elif pos[i] + 1 < len(chains[i]):
                    nxt_text, nxt_method = chains[i][pos[i] + 1]
                    why = blocked_because(v)
                    if nxt_method.startswith("template (llm fallback: unsafe"):
                        nxt_method = f"template (llm fallback: unsafe: {why})"
                    elif nxt_method == "neutral (safety)":
                        nxt_method = f"neutral (safety: {why})"
                    elif nxt_method == "neutral (fixed text)":
                        nxt_method = f"neutral (fixed text; safety: {why})"
                    chains[i][pos[i] + 1] = (nxt_text, nxt_method)
                    pos[i] += 1
                    still.append(i)
                else:
                    done[i] = (text, method, False)
            pending = still
        return [done[i] for i in range(len(chains))]

    # -- public -----------------------------------------------------------------------------
    def explain_many(self, histories: Sequence[Sequence[str]],
                     recommendations: Sequence[Sequence[Any]]) -> list[list[Explanation]]:
        """Explanations for many users at once: ``recommendations[u]`` (e.g. a
        ``RecommendationList``) explained from ``histories[u]`` (oldest first; unknown ids are
        ignored). One safety call per round and one LLM pass (in batches) for all of them."""
        if len(histories) != len(recommendations):
            raise ValueError(f"{len(histories)} histories but {len(recommendations)} "
                             "recommendation lists")
        plans: list[list[_Plan]] = []
        for history_ids, recs in zip(histories, recommendations, strict=True):
            if isinstance(history_ids, str):
                raise TypeError("a history must be a sequence of item ids, not one string")
            history = [str(h) for h in history_ids if str(h) in self.catalog]
            recs = list(recs)
            cited = self._cited(history, recs) if recs else []
            plans.append([self._plan(history, r, c) for r, c in zip(recs, cited, strict=True)])
        flat = [p for user in plans for p in user]
        chosen = iter(self._choose(self._candidates(flat)))
        return [[Explanation(text, self.catalog.ids[p.item], p.cited, p.attributes, method,
                             safe, p.source, self.config.language)
                 for p, (text, method, safe) in zip(user, chosen, strict=False)]
                for user in plans]

    def explain_batch(self, history_ids: Sequence[str], recommendations: Sequence[Any]
                      ) -> list[Explanation]:
        """Explanations of several recommendations for one user (see :meth:`explain_many`)."""
        return self.explain_many([history_ids], [recommendations])[0]

    def explain(self, history_ids: Sequence[str], recommendation: Any) -> Explanation:
        """The explanation of one recommendation (see :meth:`explain_many`)."""
        return self.explain_batch(history_ids, [recommendation])[0]

    def explain_lists(self, histories: Sequence[Sequence[str]], lists: Sequence[Any]) -> None:
        """Fill ``explanation`` of every item of each ``RecommendationList`` in place."""
        for recs, exps in zip(lists, self.explain_many(histories, lists), strict=True):
            for rec, exp in zip(recs, exps, strict=True):
                rec.explanation = exp

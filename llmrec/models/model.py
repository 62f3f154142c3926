"""The recommender network: item tower -> sequence encoder -> retrieval -> attention re-rank."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from llmrec.models.attention import gelu_init_
from llmrec.models.config import ModelConfig
from llmrec.models.head import AttentionScoringHead
from llmrec.models.sequence import SequenceEncoder, time_gap_buckets
from llmrec.models.topk import catalog_topk

if TYPE_CHECKING:
    from llmrec.models.ann import FaissRetriever


@dataclass
class RankOutput:
    """Re-ranked candidates for a batch of users."""

    items: torch.Tensor  # (B, C) candidate item indices, best first
    scores: torch.Tensor  # (B, C) final scores (retrieval + head), descending
    attention: torch.Tensor | None  # (B, C, L) head attention over history positions
    unmasked: torch.Tensor | None = None  # (B, C) retrieval's top items before ``exclude``


class ItemTower(nn.Module):
    """Item vectors from text embeddings (+ learned id embeddings in transductive mode)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, t = config.hidden_size, config.text_dim
        self.proj: nn.Module | None
        if config.mode == "id":
            self.proj = None
        elif config.projection == "mlp":
            self.proj = nn.Sequential(nn.Linear(t, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        else:
            self.proj = nn.Linear(t, d)
        self.ids = nn.Embedding(config.n_items, d) if config.mode != "inductive" else None
        self.register_buffer("text", torch.zeros(config.n_items, t), persistent=False)

    def set_text(self, text: torch.Tensor | np.ndarray) -> None:
        """Install the (N, text_dim) text embeddings of the catalog."""
        text = torch.as_tensor(np.asarray(text), dtype=torch.float32)
        if text.shape != self.text.shape:
            raise ValueError(
                f"text embeddings of shape {tuple(text.shape)}, expected {tuple(self.text.shape)}"
            )
        self.text = text.to(self.text.device)

    def forward(
        self, index: torch.Tensor | None = None, text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Vectors of items ``index`` (any shape; None = all) -> (..., D).

        ``text`` overrides the cached text embeddings of those items (LoRA training).
        """
        ids = None if self.ids is None else (self.ids.weight if index is None
                                             else self.ids(index))
        if self.proj is None:  # id mode
            assert ids is not None
            return ids
        if text is None:
            text = self.text if index is None else self.text[index]
        out = self.proj(text)
        return out if ids is None else out + ids

    def cached(self) -> torch.Tensor:
        """All item vectors (N, D) for inference: computed once and reused until a weight,
        the text embeddings or the device change (each request would otherwise run the
        projection over the whole catalog). Without grad only; under grad: ``self()``."""
        if torch.is_grad_enabled():
            return self()
        return self._cache_entry()[1]

    def cached_t(self) -> torch.Tensor:
        """:meth:`cached` transposed and contiguous, (D, N): the retrieval matrix. A user
        row times it reads the catalog in one sequential sweep (~3x faster than through the
        transposed view of the (N, D) matrix at 100k items)."""
        if torch.is_grad_enabled():
            return self().T
        _, vectors, slot = self._cache_entry()
        if slot[0] is None:
            slot[0] = vectors.T.contiguous()
        return slot[0]

    def _cache_entry(self) -> tuple[tuple, torch.Tensor, list[torch.Tensor | None]]:
        """(key, vectors, [transposed or None]) for the current weights, as one tuple: a
        thread never pairs its vectors with another thread's transpose."""
        key = (self.text.data_ptr(), self.text._version, len(self.text),
               tuple((p.data_ptr(), p._version) for p in self.parameters()))
        cache = getattr(self, "_cache", None)
        if cache is None or cache[0] != key:
            cache = self._cache = (key, self(), [None])
        return cache

    def grow(self, text: torch.Tensor) -> None:
        """Append new items: their text embeddings, and zero id vectors (text decides)."""
        self.text = torch.cat([self.text, text.to(self.text)])
        if self.ids is not None:
            old = self.ids.weight.data
            self.ids = nn.Embedding(len(self.text), old.shape[1]).to(old)
            self.ids.weight.data[: len(old)] = old
            self.ids.weight.data[len(old) :] = 0.0


class SeqRecModel(nn.Module):
    """Text-aware sequential recommender."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.items = ItemTower(c)
        self.sequence = SequenceEncoder(
            c.hidden_size, c.n_layers, c.n_heads, c.inner_size, c.dropout, c.max_len,
            gap_buckets=c.time_gap_buckets if c.time_gaps else 0,
        )
        self.head = AttentionScoringHead(c.hidden_size, c.n_heads, 2 * c.hidden_size, c.dropout)
        # weight of the head's score in the final score; chosen on validation data by the
        # trainer (0 = the head abstains from ranking; its attention still explains)
        self.register_buffer("head_scale", torch.ones(()))
        # items absent from the training data (cold-start items, items added later) and the
        # offset their retrieval scores get, chosen on validation data by the trainer (an
        # untrained id vector says nothing: such items would otherwise be over- or
        # under-promoted)
        self.register_buffer("unseen", torch.zeros(c.n_items, dtype=torch.bool))
        self.register_buffer("unseen_offset", torch.zeros(()))
        # approximate retrieval; None = exact scoring of the whole catalog
        self.retriever: FaissRetriever | None = None
        gelu_init_(self)
        self.head.reset_output()

    @property
    def n_items(self) -> int:
        return len(self.items.text)

    @property
    def head_abstains(self) -> bool:
        """No head, or its weight in the final score is 0: it cannot change an order, so
        scoring can skip it (and encode only the last position)."""
        return not self.config.head_top_n or float(self.head_scale) == 0.0

    def item_bias(self) -> torch.Tensor | None:
        """(N,) additive retrieval score per item (the unseen-item offset), or None if 0."""
        if float(self.unseen_offset) == 0.0:
            return None
        unseen = self.unseen
        if len(unseen) < self.n_items:  # items appended through items.grow: never trained
            unseen = torch.cat([unseen, unseen.new_ones(self.n_items - len(unseen))])
        return unseen.to(self.unseen_offset.dtype) * self.unseen_offset  # (N,)

    def retrieval_scores(self, user: torch.Tensor,
                         vectors: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) dot-product retrieval scores of every item for ``user`` (B, D), against
        ``vectors`` (N, D) or, by default, the cached catalog (:meth:`ItemTower.cached_t`)."""
        matrix = self.items.cached_t() if vectors is None else vectors.T  # (D, N)
        scores = user @ matrix  # (B, N), a fresh tensor
        bias = self.item_bias()
        return scores if bias is None else scores.add_(bias)

    def grow_items(self, text: torch.Tensor) -> None:
        """Append new items from their text embeddings; they count as unseen in training."""
        self.items.grow(text)
        extra = torch.ones(len(self.items.text) - len(self.unseen), dtype=torch.bool,
                           device=self.unseen.device)
        self.unseen = torch.cat([self.unseen, extra])

    def forward(self, seq: torch.Tensor, targets: torch.Tensor, **kwargs: Any) -> TrainOutput:
        """Training losses (see :func:`training_loss`); going through ``forward`` lets
        distributed wrappers synchronise gradients."""
        return training_loss(self, seq, targets, **kwargs)  # type: ignore[arg-type]

    def encode_history(
        self, seq: torch.Tensor, item_vectors: torch.Tensor | None = None,
        last_only: bool = False, gaps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``seq`` (B, L) item indices left-padded with -1 -> states (B, L, D); with
        ``last_only`` only the last position's (B, 1, D). ``gaps`` (B, L): the time-gap
        buckets of a model with ``time_gaps`` (see :func:`history_gaps`)."""
        valid = seq >= 0  # (B, L)
        idx = seq.clamp(min=0)
        vec = self.items(idx) if item_vectors is None else item_vectors[idx]  # (B, L, D)
        return self.sequence(vec * valid[..., None], valid, last_only=last_only, gaps=gaps)

    @torch.no_grad()
    def score_candidates(self, seq: torch.Tensor, candidates: torch.Tensor,
                         gaps: torch.Tensor | None = None) -> torch.Tensor:
        """Final scores (B, C) of ``candidates`` (B, C) given histories ``seq`` (B, L), exactly
        as :meth:`rank` scores them. When the head's weight is 0 (or it is off) its output
        cannot change a score, so it is skipped and only the last position is encoded."""
        vectors = self.items.cached()  # (N, D)
        if self.head_abstains:
            user = self.encode_history(seq, vectors, last_only=True, gaps=gaps)[:, 0]  # (B, D)
            scores = (vectors[candidates] * user[:, None, :]).sum(-1)  # (B, C)
            bias = self.item_bias()
            return scores if bias is None else scores + bias[candidates]
        states = self.encode_history(seq, vectors, gaps=gaps)  # (B, L, D)
        final, _ = self.rerank(states, seq >= 0, states[:, -1], candidates, vectors)
        return final

    def rerank(
        self,
        states: torch.Tensor,
        valid: torch.Tensor,
        user: torch.Tensor,
        candidates: torch.Tensor,
        item_vectors: torch.Tensor,
        scale: torch.Tensor | float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final scores (B, C) and head attention (B, C, L) of ``candidates`` (B, C).

        ``states`` (B, L, D) history states, ``valid`` (B, L) the positions the head may
        attend to, ``user`` (B, D) the state that retrieved the candidates. The final score
        is ``retrieval + scale * head`` (``scale`` defaults to :attr:`head_scale`).
        """
        cand = item_vectors[candidates]  # (B, C, D)
        retrieval = (cand * user[:, None, :]).sum(-1)  # (B, C)
        bias = self.item_bias()
        if bias is not None:
            retrieval = retrieval + bias[candidates]
        head = self.head(cand, states, valid)
        scale = self.head_scale if scale is None else scale
        return retrieval + scale * head.scores, head.attention

    @torch.no_grad()
    def rank(
        self, seq: torch.Tensor, *, top_n: int | None = None, exclude: torch.Tensor | None = None,
        exclude_rows: Sequence[np.ndarray | Sequence[int]] | None = None,
        report_masked: bool = True, gaps: torch.Tensor | None = None,
    ) -> RankOutput:
        """Two-stage ranking: dot-product retrieval of ``top_n`` candidates over the unmasked
        catalog, then the attention head.

        ``exclude`` (N,) or (B, N) bool, True = never recommend (e.g. the safety mask, shared
        by every row); ``exclude_rows``: per row, item indices never recommended to that row
        (e.g. the user's own history), applied sparsely. ``report_masked``: also return
        retrieval's top before ``exclude`` (``unmasked``, what the mask kept out, after the row
        exclusions); off saves a top-k over the catalog when nothing can be blocked.
        ``gaps`` (B, L): time-gap buckets, for a model with ``time_gaps``."""
        vectors = self.items.cached()  # (N, D)
        states = self.encode_history(seq, vectors, gaps=gaps)  # (B, L, D)
        n = min(top_n or self.config.head_top_n or self.n_items, self.n_items)
        if self.retriever is not None:
            values, indices, unmasked = self.retriever.search(
                self, states[:, -1], n, exclude, exclude_rows, report_masked)
            return self._rerank_top(seq, states, vectors, values, indices, unmasked)
        retrieval = self.retrieval_scores(states[:, -1])  # (B, N), masked in place
        if exclude_rows is not None:
            rows = np.repeat(np.arange(len(exclude_rows)), [len(r) for r in exclude_rows])
            if len(rows):
                cols = np.concatenate([np.asarray(r, dtype=np.int64) for r in exclude_rows])
                retrieval[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
        unmasked = None
        if exclude is not None:
            if report_masked:  # what the mask keeps out, reported
                unmasked = catalog_topk(retrieval, n)[1]
            retrieval.masked_fill_(exclude, float("-inf"))
        values, indices = catalog_topk(retrieval, n)
        return self._rerank_top(seq, states, vectors, values, indices, unmasked)

    def _rerank_top(self, seq: torch.Tensor, states: torch.Tensor, vectors: torch.Tensor,
                    values: torch.Tensor, indices: torch.Tensor,
                    unmasked: torch.Tensor | None) -> RankOutput:
        """:meth:`rank`'s second stage: the head re-ranks retrieval's ``indices`` (B, n)."""
        if self.config.head_top_n == 0:
            return RankOutput(indices, values, None, unmasked)
        final, attention = self.rerank(states, seq >= 0, states[:, -1], indices, vectors)
        final = final.masked_fill(torch.isinf(values), float("-inf"))
        order = final.argsort(dim=1, descending=True)
        return RankOutput(
            indices.gather(1, order),
            final.gather(1, order),
            attention.gather(1, order[..., None].expand_as(attention)),
            unmasked,
        )

    @torch.no_grad()
    def score_all(self, seq: torch.Tensor, gaps: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) scores for full-ranking evaluation: the re-ranked top-N come first, in the
        head's order; every other item keeps its retrieval score below them."""
        vectors = self.items.cached()
        if self.head_abstains:
            user = self.encode_history(seq, vectors, last_only=True, gaps=gaps)[:, 0]
            return self.retrieval_scores(user)
        states = self.encode_history(seq, vectors, gaps=gaps)
        retrieval = self.retrieval_scores(states[:, -1])  # (B, N)
        n = min(self.config.head_top_n, self.n_items)
        indices = catalog_topk(retrieval, n)[1]
        final, _ = self.rerank(states, seq >= 0, states[:, -1], indices, vectors)  # (B, n)
        lift = retrieval.max(1, keepdim=True).values - final.min(1, keepdim=True).values + 1.0
        return retrieval.scatter(1, indices, final + lift)


@dataclass
class TrainOutput:
    """Losses of one training batch."""

    loss: torch.Tensor  # scalar: retrieval + head_weight * head
    retrieval_loss: torch.Tensor
    head_loss: torch.Tensor
    user: torch.Tensor | None = None  # (B, D) last-position states (with grad), for extra losses


def sampled_candidates(
    targets: torch.Tensor,
    n_items: int,
    n_random: int,
    popularity: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """In-batch targets plus uniform random items, with log-Q correction terms.

    Returns candidates (C,), the log expected sampling count of each (C,), and the label of
    every target (same shape as ``targets``, -100 where the target is -100).
    """
    real = targets[targets >= 0]
    random = torch.randint(n_items, (n_random,), generator=generator, device=targets.device)
    cand, inverse = torch.unique(torch.cat([real, random]), return_inverse=True)
    p = popularity / popularity.sum()
    expected = len(real) * p[cand] + n_random / n_items  # expected draws per candidate
    labels = torch.full_like(targets, -100)
    labels[targets >= 0] = inverse[: len(real)]
    return cand, expected.log(), labels


def _head_loss(model: SeqRecModel, seq: torch.Tensor, states: torch.Tensor,
               targets: torch.Tensor, vectors: torch.Tensor, n_positions: int) -> torch.Tensor:
    """Re-ranking loss of the head at up to ``n_positions`` positions per window (always the
    last one): its candidates are the current retrieval's top-N, target included.

    The head learns on top of detached retrieval representations: it can re-order what
    retrieval found but never pulls the shared item and history vectors its own way (which,
    measured on ml-100k, slowed retrieval training several-fold)."""
    states, vectors = states.detach(), vectors.detach()
    b, length = targets.shape
    has_target = targets >= 0  # (B, L)
    priority = torch.rand(b, length, device=seq.device)  # (B, L)
    priority[:, -1] += 2.0  # the last position always trains the head
    priority = priority.masked_fill(~has_target, -1.0)
    pick = priority.topk(min(n_positions, length), dim=1)  # (B, P)
    rows, cols = (pick.values >= 0).nonzero(as_tuple=True)  # (M,), (M,)
    if len(rows) == 0:
        return states.new_zeros(())
    pos = pick.indices[rows, cols]  # (M,) chosen position per example
    st = states[rows]  # (M, L, D)
    keys = (seq[rows] >= 0) & (torch.arange(length, device=seq.device) <= pos[:, None])
    user = states[rows, pos]  # (M, D)
    tgt = targets[rows, pos]  # (M,)
    with torch.no_grad():
        n = min(model.config.head_top_n, vectors.shape[0])
        top = (user @ vectors.T).topk(n, dim=1).indices  # (M, n)
        # make sure the target is a candidate: replace the weakest one when missing
        top[:, -1] = torch.where((top == tgt[:, None]).any(1), top[:, -1], tgt)
        label = (top == tgt[:, None]).float().argmax(1)  # (M,)
    final, _ = model.rerank(st, keys, user, top, vectors, scale=1.0)  # (M, n)
    return nn.functional.cross_entropy(final, label)


def training_loss(
    model: SeqRecModel,
    seq: torch.Tensor,
    targets: torch.Tensor,
    *,
    head_weight: float,
    head_positions: int = 8,
    sampled: tuple[torch.Tensor, ...] | None = None,
    candidate_text: torch.Tensor | None = None,
    seen: torch.Tensor | None = None,
    head_only: bool = False,
    gaps: torch.Tensor | None = None,
) -> TrainOutput:
    """Next-item cross-entropy at every position, plus the head's re-ranking loss.

    ``seq`` (B, L) left-padded histories, ``targets`` (B, L) next items (-100 = none).
    ``sampled`` = (candidates, log_q, labels) switches to sampled softmax with log-Q
    correction; ``candidate_text`` (C, text_dim) then gives the candidates' live text
    embeddings (encoder fine-tuning). ``seen`` (N,) bool: the items that occur in the
    training data; the full softmax leaves the others out, so items never seen in training
    (new or cold-start items) are not taught to score low merely for being absent.
    ``head_only``: only the head's loss, on states and item vectors computed without
    gradients (the head's own training phase, :attr:`TrainConfig.head_epochs`).
    ``gaps`` (B, L): the inputs' time-gap buckets, for a model with ``time_gaps``.
    """
    if head_only:  # the head alone learns, on frozen retrieval states
        with torch.no_grad():
            vectors = model.items()  # (N, D)
            states = model.encode_history(seq, vectors, gaps=gaps)  # (B, L, D)
        head = _head_loss(model, seq, states, targets, vectors, head_positions)
        return TrainOutput(head_weight * head, head.new_zeros(()), head)
    vectors = model.items()  # (N, D)
    states = model.encode_history(seq, vectors, gaps=gaps)  # (B, L, D)
    if sampled is None:
        logits = states @ vectors.T  # (B, L, N)
        if seen is not None:
            logits = logits.masked_fill(~seen, torch.finfo(logits.dtype).min)
        retrieval = nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=-100
        )
    else:
        cand, log_q, labels = sampled
        cand_vec = model.items(cand, candidate_text)  # (C, D)
        logits = states @ cand_vec.T - log_q  # (B, L, C)
        retrieval = nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=-100
        )
    head = retrieval.new_zeros(())
    if model.config.head_top_n and head_weight > 0:
        head = _head_loss(model, seq, states, targets, vectors, head_positions)
    return TrainOutput(retrieval + head_weight * head, retrieval, head, states[:, -1])


def pad_left(
    histories: Sequence[np.ndarray | Sequence[int]],
    max_len: int,
    device: torch.device | str = "cpu",
    length: int | None = None,
    fill: int = -1,
) -> torch.Tensor:
    """The most recent ``max_len`` items of each history, left-padded with ``fill``: (B, L).

    ``L`` is ``length`` if given, else the longest kept history (at least 1).
    """
    kept = [np.asarray(h[-max_len:], dtype=np.int64) for h in histories]
    width = length or max(1, max((len(h) for h in kept), default=1))
    out = np.full((len(kept), width), fill, dtype=np.int64)
    for row, h in enumerate(kept):
        if len(h):
            out[row, width - len(h) :] = h
    return torch.from_numpy(out).to(device)


def history_gaps(model: SeqRecModel, times: Sequence[np.ndarray | Sequence[float]] | None,
                 device: torch.device | str = "cpu", length: int | None = None,
                 histories: Sequence[Sized] | None = None) -> torch.Tensor | None:
    """The time-gap buckets (B, L) of histories with timestamps ``times`` (each oldest
    first), aligned with :func:`pad_left` of those histories; None for a model without
    ``time_gaps``. Gaps come from the full history, so the oldest kept item keeps its gap
    to the event before it. ``histories``: checked to have one timestamp per item; when
    every one is empty, ``times`` may be None (a cold-start user has no gaps)."""
    cfg = model.config
    if not cfg.time_gaps:
        if times is not None:
            raise ValueError("timestamps given, but this model does not read time gaps "
                             "(ModelConfig.time_gaps=False)")
        return None
    if times is None:
        if histories is not None and all(len(h) == 0 for h in histories):
            times = [[] for _ in histories]
        else:
            raise ValueError("this model reads time gaps (ModelConfig.time_gaps=True): pass "
                             "the histories' timestamps (recommend(..., timestamps=[...]), "
                             "one unix time per item; CLI: --timestamps)")
    if histories is not None:
        if len(histories) != len(times):
            raise ValueError(f"{len(times)} timestamp lists for {len(histories)} histories")
        for i, (h, t) in enumerate(zip(histories, times, strict=True)):
            if len(h) != len(t):
                raise ValueError(f"history {i} has {len(h)} items but {len(t)} timestamps")
    buckets = [time_gap_buckets(t, cfg.time_gap_buckets) for t in times]
    return pad_left(buckets, cfg.max_len, device, length, fill=0)


def history_inputs(model: SeqRecModel, histories: Sequence[np.ndarray | Sequence[int]],
                   times: Sequence[np.ndarray | Sequence[float]] | None = None,
                   device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's inputs for ``histories`` (catalog indices, oldest first): the left-padded
    items (B, L) and, for a model with ``time_gaps``, their gap buckets (B, L) from
    ``times`` (see :func:`history_gaps`)."""
    seq = pad_left(histories, model.config.max_len, device)
    return seq, history_gaps(model, times, device, seq.shape[1], histories)


class ModelScorer:
    """Adapts a :class:`SeqRecModel` to the evaluation harness's scorer protocol; a model
    with ``time_gaps`` asks the harness for the cases' history timestamps."""

    def __init__(self, model: SeqRecModel, device: torch.device | str = "cpu") -> None:
        self.model, self.device = model, device

    @property
    def needs_times(self) -> bool:
        """Whether the harness must pass the cases' history timestamps (time-gap models)."""
        return self.model.config.time_gaps

    def __call__(self, users: np.ndarray, histories: list[np.ndarray],
                 times: list[np.ndarray] | None = None) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            seq, gaps = history_inputs(self.model, histories, times, self.device)
            return self.model.score_all(seq, gaps)
        finally:
            self.model.train(was_training)

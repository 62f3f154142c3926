"""The module the trainer optimises: the recommender plus, optionally, the item encoder.

Wrapping both in one ``nn.Module`` whose ``forward`` computes the whole loss lets
``accelerate`` (DDP, FSDP) see every trainable parameter.
"""

from __future__ import annotations

import torch
from torch import nn

from llmrec.models.encoder import ItemTextEncoder
from llmrec.models.model import SeqRecModel, TrainOutput


class JointModule(nn.Module):
    """Recommender losses; with ``live=True`` also a loss through the encoder's adapter."""

    def __init__(self, model: SeqRecModel, encoder: ItemTextEncoder | None = None,
                 texts: list[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.encoder = encoder
        self.texts = texts or []

    def forward(self, seq: torch.Tensor, targets: torch.Tensor, *, live: bool = False,
                encoder_items: int = 0, popularity: torch.Tensor | None = None,
                generator: torch.Generator | None = None, **kwargs: object) -> TrainOutput:
        out = self.model(seq, targets, **kwargs)
        if not live or self.encoder is None:
            return out
        last = targets[:, -1]  # (B,) each window's final next item
        keep = last >= 0
        if not bool(keep.any()):
            return out
        real = last[keep]
        n_items = self.model.n_items
        n_random = max(0, encoder_items - len(torch.unique(real)))
        rand = torch.randint(n_items, (n_random,), generator=generator).to(real.device)
        cand, inverse = torch.unique(torch.cat([real, rand]), return_inverse=True)  # (C,)
        text = self.encoder([self.texts[i] for i in cand.tolist()])  # (C, text_dim)
        vectors = self.model.items(cand, text)  # (C, D) through the live encoder
        user = out.user[keep]  # (b, D): the states the model forward already computed
        p = popularity / popularity.sum() if popularity is not None else None
        expected = (len(real) * p[cand] if p is not None else 0) + n_random / n_items
        logits = user @ vectors.T - torch.log(torch.as_tensor(expected) + 1e-12)  # (b, C)
        live_loss = nn.functional.cross_entropy(logits, inverse[: len(real)])
        return TrainOutput(out.loss + live_loss, out.retrieval_loss + live_loss, out.head_loss)

    @torch.no_grad()
    def refresh_text(self) -> None:
        """Re-encode the catalog with the current adapter into the model's text cache."""
        if self.encoder is None:
            return
        was = self.encoder.training
        self.model.items.set_text(self.encoder.encode(self.texts, show_progress=False))
        self.encoder.train(was)

"""Averages of a model's weights, validated and kept instead of the raw weights: an
exponential moving average (``TrainConfig.ema_decay > 0``) or a uniform average of the
epoch-end weights over the last epochs (``TrainConfig.average_epochs > 0``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

COUNT = "__updates__"  # the update count's key in state_dict (not a parameter name)


class WeightAverage:
    """``shadow = decay * shadow + (1 - decay) * weight`` at every :meth:`update`; with
    ``decay=None`` the uniform mean of the weights passed to :meth:`update` so far (the first
    update copies them).

    Checkpointed with the run (``state_dict`` / ``load_state_dict``), so a resumed run
    averages exactly as an uninterrupted one.
    """

    def __init__(self, model: nn.Module, decay: float | None) -> None:
        if decay is not None and not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.model, self.decay = model, decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()
                       if p.dtype.is_floating_point}
        self.count = torch.zeros((), dtype=torch.int64)  # updates so far (uniform mean)

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        weight = 1.0 - self.decay if self.decay is not None else 1.0 / int(self.count)
        for n, p in self.model.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach(), weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The averaged weights inside the block, the raw ones restored after it."""
        params = dict(self.model.named_parameters())
        raw = {n: params[n].detach().clone() for n in self.shadow}
        with torch.no_grad():
            for n, v in self.shadow.items():
                params[n].copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, v in raw.items():
                    params[n].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.shadow, COUNT: self.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        count = state.pop(COUNT, None)  # absent from checkpoints written before it existed
        self.count.fill_(0 if count is None else int(count))
        if set(state) != set(self.shadow):
            raise ValueError(f"weight average: checkpoint names differ: missing "
                             f"{sorted(set(self.shadow) - set(state))[:5]}, unexpected "
                             f"{sorted(set(state) - set(self.shadow))[:5]}")
        for n, v in state.items():
            self.shadow[n].copy_(v)

"""Train a tiny recommender with the library's Trainer; run it alone or under torchrun.

    python finetune/ddp_check.py OUT.json --batch-size 26          # one process
    torchrun --nproc_per_node 2 finetune/ddp_check.py OUT.json     # 2 CPU processes (gloo)

With 2 processes each one sees ``--batch-size`` windows per step (13 by default), so the
single-process reference uses twice that. Writes the final weights' checksum and validation
metrics as JSON (main process only). Used by tests/test_distributed.py.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from llmrec.data.cases import EvalCases
from llmrec.data.split import Split, SplitConfig
from llmrec.models.config import ModelConfig
from llmrec.models.model import SeqRecModel
from llmrec.train import TrainConfig, Trainer

N_ITEMS = 12


def cyclic_split(n_users: int = 26) -> Split:
    seqs = [np.array([(u + i) % N_ITEMS for i in range(10)]) for u in range(n_users)]
    valid = EvalCases(np.arange(n_users), [s[:-2] for s in seqs],
                      np.array([s[-2] for s in seqs]), N_ITEMS)
    test = EvalCases(np.arange(n_users), [s[:-1] for s in seqs],
                     np.array([s[-1] for s in seqs]), N_ITEMS)
    return Split([s[:-2] for s in seqs], valid, test, N_ITEMS, SplitConfig())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SeqRecModel(ModelConfig(hidden_size=32, n_layers=2, n_heads=4, inner_size=37,
                                    dropout=0.0, max_len=7, n_items=N_ITEMS, text_dim=16,
                                    head_top_n=0))
    model.items.set_text(torch.randn(N_ITEMS, 16, generator=torch.Generator().manual_seed(1)))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=3e-3, cpu=True,
                      progress=False, patience=100, warmup_steps=0, lr_schedule="constant")
    result = Trainer(model, cyclic_split(), cfg).train()
    if int(os.environ.get("RANK", "0")) == 0:
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        with open(args.out, "w") as fh:
            json.dump({"world_size": int(os.environ.get("WORLD_SIZE", "1")),
                       "weights": flat.tolist(), "valid": result.history[-1].valid,
                       "loss": [h.loss for h in result.history]}, fh)


if __name__ == "__main__":
    main()

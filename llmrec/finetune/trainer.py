"""Domain-adaptive LoRA fine-tuning of the item encoder, on ``accelerate``.

The run folder holds ``adapter/`` (a peft adapter for the encoder: pass it as
``EncoderConfig(adapter_path=...)``), ``checkpoints/step-*`` (accelerate state + position in
the corpus, for exact resume), ``metrics.jsonl``, ``tensorboard/`` and ``learning_curve.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from llmrec.finetune.config import (
    AdaptModelArguments,
    AdaptTrainingArguments,
    CorpusArguments,
    to_dict,
)
from llmrec.finetune.corpus import Corpus, load_corpus
from llmrec.finetune.objectives import AdaptModule
from llmrec.train.curves import finish_trackers, plot_learning_curves
from llmrec.version import __version__

KEEP_CHECKPOINTS = 2


@dataclass
class AdaptResult:
    """What an adaptation run produced."""

    adapter_dir: str
    objective: str
    steps: int
    examples: int
    final_loss: float
    seconds: float
    examples_per_second: float
    corpus: str
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_objective(model: AdaptModelArguments, corpus: CorpusArguments) -> str:
    """The objective ``auto`` stands for: pairs with logs, clm for decoder-only, else simcse."""
    if model.objective != "auto":
        return model.objective
    if corpus.interactions:
        return "pairs"
    from transformers import AutoConfig

    from llmrec.models.encoder_config import resolve_model_path

    extra = {"gguf_file": model.gguf_file} if model.gguf_file else {}
    cfg = AutoConfig.from_pretrained(resolve_model_path(model.model_name_or_path), **extra)
    causal = any(a.endswith("ForCausalLM") for a in (cfg.architectures or [])) or bool(
        getattr(cfg, "is_decoder", False))
    return "clm" if causal else "simcse"


class DomainAdapter:
    """Trains the encoder's LoRA adapter on a domain corpus."""

    def __init__(self, model_args: AdaptModelArguments, corpus_args: CorpusArguments,
                 train_args: AdaptTrainingArguments) -> None:
        self.model_args, self.corpus_args, self.args = model_args, corpus_args, train_args
        self.objective = resolve_objective(model_args, corpus_args)
        self.out = Path(train_args.output_dir)

    # -- checkpoints ---------------------------------------------------------------------
    def _latest(self) -> Path | None:
        root = self.out / "checkpoints"
        done = sorted(p for p in root.glob("step-*") if (p / "trainer_state.json").is_file())
        return done[-1] if done else None

    def _checkpoint(self, acc: Accelerator, state: dict) -> None:
        path = self.out / "checkpoints" / f"step-{state['step']:08d}"
        acc.save_state(str(path), safe_serialization=True)
        if acc.is_main_process:  # written last: without it the checkpoint is ignored
            (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
            for old in sorted((self.out / "checkpoints").glob("step-*"))[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    # -- training ------------------------------------------------------------------------
    def train(self) -> AdaptResult:
        a = self.args
        set_seed(a.seed)
        tracker = a.report_to if a.report_to != "none" else None
        acc = Accelerator(cpu=a.cpu, mixed_precision=a.mixed_precision,
                          gradient_accumulation_steps=a.grad_accum, log_with=tracker,
                          project_dir=str(self.out))
        corpus = load_corpus(self.corpus_args, pairs=self.objective == "pairs", seed=a.seed)
        if corpus.stream is not None and not a.max_steps:
            raise ValueError("max_steps: a streamed corpus has no known length; set max_steps")
        module = AdaptModule(self.model_args.encoder_config(), self.objective,
                             temperature=a.temperature, mlm_probability=a.mlm_probability)
        optim = torch.optim.AdamW(module.trainable_parameters(), lr=a.lr,
                                  weight_decay=a.weight_decay)
        per_epoch = None if corpus.stream is not None else math.ceil(len(corpus) / a.batch_size)
        total = a.max_steps or a.epochs * math.ceil(per_epoch / a.grad_accum)  # type: ignore[operator]
        sched = torch.optim.lr_scheduler.LambdaLR(optim, _schedule(a, total))
        model, optim, sched = acc.prepare(module, optim, sched)
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
        if tracker:
            acc.init_trackers("tensorboard", config=_flat(to_dict(
                self.model_args, self.corpus_args, self.args)))

        step, epoch, skip, history = 0, 0, 0, []
        latest = self._latest() if a.resume else None
        if latest is not None:
            acc.load_state(str(latest))
            st = json.loads((latest / "trainer_state.json").read_text())
            step, epoch, skip, history = st["step"], st["epoch"], st["batch"], st["history"]
        t0, examples, window = time.perf_counter(), 0, []
        bar = tqdm(total=total, initial=step, desc=f"adapt ({self.objective})",
                   disable=not (a.progress and acc.is_local_main_process))
        while step < total and epoch < (a.epochs if not a.max_steps else 10**9):
            batch_no = skip
            model.train()
            for batch in self._shard(acc, corpus, epoch, skip):
                with acc.accumulate(model):
                    loss = model(batch)
                    acc.backward(loss)
                    if acc.sync_gradients and a.max_grad_norm:
                        acc.clip_grad_norm_(module.trainable_parameters(), a.max_grad_norm)
                    optim.step()
                    sched.step()
                    optim.zero_grad()
                batch_no += 1
                examples += len(batch) * acc.num_processes
                window.append(loss.item())
                if not acc.sync_gradients:
                    continue
                step += 1
                bar.update(1)
                if step % a.logging_steps == 0 or step == total:
                    row = {"step": step, "epoch": epoch, "loss": sum(window) / len(window),
                           "lr": sched.get_last_lr()[0]}
                    window = []
                    history.append(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                    acc.log({"train/loss": row["loss"], "train/lr": row["lr"]}, step=step)
                    if acc.is_main_process:
                        with (self.out / "metrics.jsonl").open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                if step % a.save_steps == 0 and step < total:
                    self._checkpoint(acc, {"step": step, "epoch": epoch, "batch": batch_no,
                                           "history": history})
                if step >= total:
                    break
            else:  # the epoch ran out
                epoch, skip = epoch + 1, 0
                if step < total:
                    self._checkpoint(acc, {"step": step, "epoch": epoch, "batch": 0,
                                           "history": history})
                continue
            break
        bar.close()
        seconds = time.perf_counter() - t0
        adapter = self._save(acc, module, history)
        finish_trackers(acc)
        final = history[-1]["loss"] if history else float("nan")
        return AdaptResult(str(adapter), self.objective, step, examples, final, seconds,
                           examples / max(seconds, 1e-9), corpus.description, history)

    def _shard(self, acc: Accelerator, corpus: Corpus, epoch: int, skip: int):
        """This process's share of each global batch (all processes see the same order)."""
        a = self.args
        size = a.batch_size * acc.num_processes
        for batch in corpus.batches(size, a.seed, epoch, skip, self.corpus_args.shuffle_buffer):
            part = batch[acc.process_index :: acc.num_processes]
            if len(part) < 2 and self.objective in ("simcse", "pairs"):
                continue  # in-batch negatives need a partner
            if part:
                yield part

    def _save(self, acc: Accelerator, module: AdaptModule, history: list[dict]) -> Path:
        acc.wait_for_everyone()
        final = self.out / "adapter"
        if acc.is_main_process:
            tmp = self.out / "adapter.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            module.encoder.save_adapter(tmp)
            (tmp / "llmrec_adapt.json").write_text(json.dumps(
                {"objective": self.objective, "llmrec_version": __version__,
                 **to_dict(self.model_args, self.corpus_args, self.args)},
                indent=2, sort_keys=True, default=str))
            old = self.out / "adapter.old"
            if final.exists():
                final.replace(old)
            tmp.replace(final)
            shutil.rmtree(old, ignore_errors=True)
            if history:
                plot_learning_curves(history, self.out / "learning_curve.png", x="step",
                                     panels=[("loss", ["loss"]), ("learning rate", ["lr"])],
                                     title=f"domain adaptation ({self.objective})")
        acc.wait_for_everyone()
        return final


def _schedule(a: AdaptTrainingArguments, total: int):
    def factor(step: int) -> float:
        if a.warmup_steps and step < a.warmup_steps:
            return (step + 1) / a.warmup_steps
        if a.lr_schedule == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - a.warmup_steps))

    return factor


def _flat(values: dict) -> dict:
    """Hyperparameters as TensorBoard accepts them (scalars and strings)."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
            for k, v in values.items()}


def adapt(model_args: AdaptModelArguments, corpus_args: CorpusArguments,
          train_args: AdaptTrainingArguments) -> AdaptResult:
    """Run domain-adaptive fine-tuning; see :class:`DomainAdapter`."""
    return DomainAdapter(model_args, corpus_args, train_args).train()

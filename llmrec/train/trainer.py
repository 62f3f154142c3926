"""The training loop, on ``accelerate``: CPU, one GPU, several GPUs or nodes, same code.

Every epoch writes a checkpoint (``accelerate`` state: weights, optimizer, RNG) and a line of
metrics; a killed run resumes from its latest checkpoint to the same model an uninterrupted
run reaches, because the window order depends only on (seed, epoch).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from llmrec.data.split import Split
from llmrec.evaluation import EvalConfig, EvalReport, evaluate
from llmrec.models.encoder import ItemTextEncoder
from llmrec.models.model import ModelScorer, SeqRecModel, TrainOutput, sampled_candidates
from llmrec.models.sequence import time_gap_buckets
from llmrec.train.config import TrainConfig
from llmrec.train.curves import finish_trackers, plot_learning_curves
from llmrec.train.data import EpochShuffled, training_windows, trim_padding
from llmrec.train.ema import WeightAverage
from llmrec.train.joint import JointModule

KEEP_CHECKPOINTS = 2
HEAD_SCALES = (0.0, 0.5, 1.0)
# retrieval-score offsets tried for items absent from training (see SeqRecModel.unseen)
UNSEEN_OFFSETS = (-8.0, -4.0, -2.0, -1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0,
                  1.25, 1.5, 1.75, 2.0, 3.0, 4.0, 8.0)
MIN_UNSEEN_CASES = 20  # validation targets needed to judge the unseen / seen NDCG ratio


def _schedule(cfg: TrainConfig, total: int):
    """Multiplier of the learning rate at optimizer step ``s``."""

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        if cfg.lr_schedule == "wsd":
            start = max(cfg.warmup_steps, round(total * (1.0 - cfg.decay_fraction)))
            return 1.0 if step < start else max(0.0, 1.0 - (step - start) / max(1, total - start))
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def choose_head_scale(reports: dict[float, EvalReport], metric: str, z: float = 1.645) -> float:
    """The head's weight: the smallest scale unless a larger one beats it on ``metric`` by
    more than ``z`` standard errors of the paired per-case difference.

    Picking the raw best of several noisy validation scores (943 cases on ml-100k) often
    picks a weight that only looked better (it lowered test NDCG@10 by ~0.005 there), so
    the head must earn its say in the ranking.
    """
    return choose_significant(reports, min(reports), metric, z)


def choose_significant(reports: dict[float, EvalReport], base: float, metric: str,
                       z: float = 1.645) -> float:
    """The setting among ``reports`` that beats ``base`` on ``metric`` by the largest mean
    gain, counting only gains above ``z`` standard errors of the paired per-case
    difference; ``base`` when none does."""
    chosen, best = base, 0.0
    for scale in sorted(reports):
        if scale == base:
            continue
        a, b = reports[scale].per_case, reports[base].per_case
        if a is None or b is None:
            raise ValueError("choose_head_scale needs reports made with keep_cases=True")
        diff = a[metric] - b[metric]
        gain = float(diff.mean())
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if gain > z * se and gain > best:
            chosen, best = scale, gain
    return chosen


def choose_unseen_offset(reports: dict[float, EvalReport], cold: np.ndarray, metric: str,
                         min_ratio: float) -> float:
    """The unseen-item offset among ``reports`` (offset -> validation report with per-case
    values; ``cold`` (cases,) marks targets never seen in training). With at least
    :data:`MIN_UNSEEN_CASES` cold cases and ``min_ratio`` > 0: the best ``metric`` among the
    offsets whose cold-case mean is >= ``min_ratio`` x the other cases' mean; otherwise, or
    when no offset reaches that ratio (e.g. id-only vectors know nothing of unseen items), 0
    unless another offset is significantly better (:func:`choose_significant`)."""
    cold = np.asarray(cold, dtype=bool)
    if int(cold.sum()) < MIN_UNSEEN_CASES or min_ratio <= 0 or cold.all():
        return choose_significant(reports, 0.0, metric)

    def ratio(offset: float) -> float:
        per = reports[offset].per_case[metric]
        return float(per[cold].mean()) / max(float(per[~cold].mean()), 1e-12)

    feasible = [o for o in sorted(reports) if ratio(o) >= min_ratio]
    if not feasible:
        return choose_significant(reports, 0.0, metric)
    return max(feasible, key=lambda o: reports[o].metrics[metric])


def significantly_worse(cases: np.ndarray, best: np.ndarray, z: float = 1.645) -> bool:
    """Whether per-case scores ``cases`` are below ``best`` (same cases, same order) by more
    than ``z`` standard errors of the paired difference."""
    diff = np.asarray(cases, dtype=np.float64) - np.asarray(best, dtype=np.float64)
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()) < -z * se


@dataclass
class EpochLog:
    """What one epoch did."""

    epoch: int
    loss: float
    retrieval_loss: float
    head_loss: float
    seconds: float
    valid: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    """Outcome of :meth:`Trainer.train`."""

    best_epoch: int
    best_metric: float
    metric: str
    history: list[EpochLog]
    stopped_early: bool
    seconds: float
    unseen_offset: float = 0.0  # retrieval offset of items absent from training (validated)
    head_phase: list[EpochLog] = field(default_factory=list)  # TrainConfig.head_epochs > 0

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Trains a :class:`SeqRecModel` on a :class:`Split`, early-stopping on validation."""

    def __init__(self, model: SeqRecModel, split: Split, config: TrainConfig, *,
                 encoder: ItemTextEncoder | None = None,
                 item_texts: list[str] | None = None) -> None:
        self.model, self.split, self.config = model, split, config
        if config.head_epochs and not model.config.head_top_n:
            raise ValueError("head_epochs > 0 needs a model with a scoring head "
                             "(ModelConfig.head_top_n > 0)")
        self.out = Path(config.output_dir) if config.output_dir else None
        if config.encoder_epochs:
            if model.config.mode == "id":
                raise ValueError("encoder_epochs > 0 needs a mode that reads item text "
                                 "('inductive' or 'transductive'), not 'id'")
            if encoder is None or not encoder.trainable_parameters():
                raise ValueError("encoder_epochs > 0 needs an item encoder with a LoRA adapter "
                                 "(EncoderConfig(lora=LoraSettings()))")
            if item_texts is None or len(item_texts) != model.n_items:
                raise ValueError("encoder_epochs > 0 needs item_texts for every catalog item")
        self.joint = JointModule(model, encoder if config.encoder_epochs else None, item_texts)

    def _train_gaps(self) -> list[np.ndarray] | None:
        """Per training sequence, its items' time-gap buckets (a model with time_gaps)."""
        cfg = self.model.config
        if not cfg.time_gaps:
            return None
        if self.split.train_times is None or self.split.valid.history_times is None:
            raise ValueError("ModelConfig.time_gaps=True needs a split with train_times and "
                             "valid cases with history_times (splits made by "
                             "RecDataset.split carry them)")
        out = []
        for u, t in enumerate(self.split.train_times):
            try:
                out.append(time_gap_buckets(t, cfg.time_gap_buckets))
            except ValueError as err:
                raise ValueError(f"training sequence of user {u}: {err}") from err
        return out

    # -- checkpoints ---------------------------------------------------------------------
    def _latest(self) -> Path | None:
        if self.out is None or not (self.out / "checkpoints").is_dir():
            return None
        done = sorted(p for p in (self.out / "checkpoints").glob("epoch-*")
                      if (p / "trainer_state.json").is_file())
        return done[-1] if done else None

    def _checkpoint(self, acc: Accelerator, epoch: int, state: dict) -> None:
        if self.out is None:
            return
        path = self.out / "checkpoints" / f"epoch-{epoch:04d}"
        acc.save_state(str(path), safe_serialization=True)
        if acc.is_main_process:
            if self._best_cases is not None:
                save_file({"cases": torch.from_numpy(self._best_cases)},
                          str(path / "best_cases.safetensors"))
            # written last: a checkpoint without it is incomplete and ignored on resume
            (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
            old = sorted((self.out / "checkpoints").glob("epoch-*"))[:-KEEP_CHECKPOINTS]
            for p in old:
                shutil.rmtree(p, ignore_errors=True)
        acc.wait_for_everyone()

    # -- training ------------------------------------------------------------------------
    def train(self) -> FitResult:
        cfg = self.config
        set_seed(cfg.seed)
        # the head (when off) and the adapter (before its phase) take no part in some steps
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        tracker = cfg.report_to if self.out is not None and cfg.report_to != "none" else None
        acc = Accelerator(cpu=cfg.cpu, mixed_precision=cfg.mixed_precision,
                          gradient_accumulation_steps=cfg.grad_accum, kwargs_handlers=[ddp],
                          log_with=tracker, project_dir=str(self.out) if self.out else None)
        inputs, targets, gaps = training_windows(
            self.split.train, self.model.config.max_len, cfg.window_stride or None,
            gaps=self._train_gaps())
        data = EpochShuffled(inputs, targets, *(() if gaps is None else (gaps,)), seed=cfg.seed)
        loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=False)
        groups = [{"params": list(self.model.parameters()), "lr": cfg.lr}]
        if self.joint.encoder is not None:
            groups.append({"params": self.joint.encoder.trainable_parameters(),
                           "lr": cfg.encoder_lr, "weight_decay": 0.0})
        optim = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = cfg.epochs * -(-len(loader) // cfg.grad_accum)
        schedule = _schedule(cfg, total)
        # the adapter trains only in the final epochs, where the cosine schedule is near 0:
        # it keeps its own constant rate
        lambdas = [schedule] + [lambda _: 1.0] * (len(groups) - 1)
        lr_sched = torch.optim.lr_scheduler.LambdaLR(optim, lambdas)
        model, optim, loader, lr_sched = acc.prepare(self.joint, optim, loader, lr_sched)
        # ema: every step's weights (ema_decay); tail: the last epochs' ends (average_epochs)
        ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay else None
        tail = WeightAverage(self.model, None) if cfg.average_epochs else None
        for average in (ema, tail):
            if average is not None:
                acc.register_for_checkpointing(average)
        first_live = cfg.epochs - cfg.encoder_epochs
        popularity = torch.as_tensor(self.split.item_counts() + 1.0, device=acc.device)
        # items absent from training are left out of the full softmax (see training_loss)
        seen = torch.as_tensor(self.split.item_counts() > 0, device=acc.device)
        self.model.unseen.copy_(~seen)
        self.model.unseen_offset.fill_(0.0)  # chosen after training (choose_unseen_offset)
        seen = None if bool(seen.all()) else seen
        sampler = torch.Generator(device="cpu").manual_seed(cfg.seed)

        # best: highest validation score so far (its per-case values in self._best_cases);
        # kept_epoch / kept: the weights that will be restored (see TrainConfig.select)
        start, best, kept_epoch, kept, bad, history = 0, -1.0, -1, -1.0, 0, []
        self._best_cases: np.ndarray | None = None
        latest = self._latest() if cfg.resume else None
        if latest is not None:
            acc.load_state(str(latest))
            st = json.loads((latest / "trainer_state.json").read_text())
            start, best, bad = st["epoch"] + 1, st["best"], st["bad"]
            kept_epoch, kept = st["best_epoch"], st["kept"]
            if (latest / "best_cases.safetensors").is_file():
                self._best_cases = load_file(str(latest / "best_cases.safetensors"))[
                    "cases"].numpy()
            history = [EpochLog(**h) for h in st["history"]]
            sampler.set_state(torch.tensor(st["sampler"], dtype=torch.uint8))
            if start > first_live:  # the text cache is not in the checkpoint: rebuild it
                self.joint.refresh_text()
        if self.out is not None and acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
        if tracker:
            acc.init_trackers("tensorboard", config={
                k: v if isinstance(v, (int, float, str, bool)) else str(v)
                for k, v in {**asdict(cfg), **self.model.config.to_dict()}.items()})
        t0, stopped = time.perf_counter(), False
        for epoch in range(start, cfg.epochs):
            if bad > cfg.patience:
                stopped = True
                break
            data.shuffle_for(epoch)
            live = epoch >= first_live
            model.train()
            if self.joint.encoder is not None:
                self.joint.encoder.train(live)
            sums, steps, t1 = np.zeros(3), 0, time.perf_counter()
            bar = tqdm(loader, desc=f"epoch {epoch}", leave=False,
                       disable=not (cfg.progress and acc.is_local_main_process))
            for batch in bar:
                seq, tgt, *gap = trim_padding(*batch)
                kwargs: dict = {"head_weight": 0.0 if cfg.head_epochs else cfg.head_weight,
                                "head_positions": cfg.head_positions}
                if gap:
                    kwargs["gaps"] = gap[0]
                if live:
                    kwargs |= {"live": True, "encoder_items": cfg.encoder_items,
                               "popularity": popularity, "generator": sampler}
                if cfg.loss == "full" and seen is not None:
                    kwargs["seen"] = seen
                if cfg.loss == "sampled":
                    kwargs["sampled"] = sampled_candidates(
                        tgt, self.model.n_items, cfg.n_negatives, popularity, sampler)
                out = self._step(acc, model, optim, lr_sched, model.parameters(), seq, tgt,
                                 **kwargs)
                if ema is not None and acc.sync_gradients:
                    ema.update()
                sums += [out.loss.item(), out.retrieval_loss.item(), out.head_loss.item()]
                steps += 1
                bar.set_postfix(loss=f"{sums[0] / steps:.3f}")
            if live:
                self.joint.refresh_text()
            if tail is not None and epoch >= cfg.epochs - cfg.average_epochs:
                tail.update()
            log = EpochLog(epoch, *(sums / max(steps, 1)).tolist(),
                           seconds=time.perf_counter() - t1)
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                averaged = (ema.applied() if ema is not None
                            else tail.applied() if tail is not None and int(tail.count)
                            else contextlib.nullcontext())
                with averaged:  # validated, and saved if kept: the averaged weights
                    log.valid = self.validate(acc)
                    value, cases = log.valid[cfg.metric], self._valid_cases
                    worse = (value <= best if cfg.select == "best"
                             else self._best_cases is not None
                             and significantly_worse(cases, self._best_cases))
                    if not worse:
                        self._save_best(acc)
                if value > best:
                    best, self._best_cases = value, cases
                if not worse:
                    kept_epoch, kept, bad = epoch, value, 0
                else:
                    bad += 1
            history.append(log)
            self._log(acc, log)
            self._checkpoint(acc, epoch, {
                "epoch": epoch, "best": best, "best_epoch": kept_epoch, "kept": kept, "bad": bad,
                "history": [asdict(h) for h in history],
                "sampler": sampler.get_state().tolist(),
            })
        self._restore_best(acc)
        head_phase = self._train_head(acc, model, data, loader) if cfg.head_epochs else []
        offset = self.choose_unseen_offset(acc)
        self._curves(acc, history)
        return FitResult(kept_epoch, kept, cfg.metric, history, stopped,
                         time.perf_counter() - t0, offset, head_phase)

    def _step(self, acc: Accelerator, model: torch.nn.Module, optim: Any, lr_sched: Any,
              params: Iterable[torch.nn.Parameter], seq: torch.Tensor, tgt: torch.Tensor,
              **kwargs: Any) -> TrainOutput:
        """One (accumulated) optimizer step on the losses of ``model(seq, tgt, **kwargs)``;
        ``params`` are the gradients clipped."""
        with acc.accumulate(model):
            out = model(seq, tgt, **kwargs)
            acc.backward(out.loss)
            if acc.sync_gradients and self.config.max_grad_norm:
                acc.clip_grad_norm_(params, self.config.max_grad_norm)
            optim.step()
            lr_sched.step()
            optim.zero_grad()
        return out

    def _train_head(self, acc: Accelerator, model: torch.nn.Module, data: EpochShuffled,
                    loader: DataLoader) -> list[EpochLog]:
        """The head's own phase (:attr:`TrainConfig.head_epochs`): on the restored retrieval
        weights, frozen and without dropout (the states it will see when ranking), the head
        trains for ``head_epochs`` epochs, its learning rate decaying linearly to 0; then its
        weight in the final score is chosen on validation. Seeded on its own, so a run resumed
        after the retrieval epochs reaches the same head."""
        cfg = self.config
        set_seed(cfg.seed + 1)
        params = list(self.model.head.parameters())
        optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = max(1, cfg.head_epochs * -(-len(loader) // cfg.grad_accum))
        lr_sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: max(0.0, 1.0 - s / total))
        optim, lr_sched = acc.prepare(optim, lr_sched)
        logs = []
        for i in range(cfg.head_epochs):
            data.shuffle_for(cfg.epochs + i)
            model.eval()
            self.model.head.train()
            total_loss, steps, t1 = 0.0, 0, time.perf_counter()
            bar = tqdm(loader, desc=f"head epoch {i}", leave=False,
                       disable=not (cfg.progress and acc.is_local_main_process))
            for batch in bar:
                seq, tgt, *gap = trim_padding(*batch)
                out = self._step(acc, model, optim, lr_sched, params, seq, tgt,
                                 head_weight=cfg.head_weight,
                                 head_positions=cfg.head_positions, head_only=True,
                                 gaps=gap[0] if gap else None)
                total_loss += out.head_loss.item()
                steps += 1
            loss = total_loss / max(steps, 1)
            logs.append(EpochLog(cfg.epochs + i, loss, 0.0, loss,
                                 seconds=time.perf_counter() - t1))
        model.eval()
        logs[-1].valid = self.validate(acc, head=True)
        return logs

    def choose_unseen_offset(self, acc: Accelerator) -> float:
        """Set and return the retrieval offset of items absent from training, chosen on the
        validation cases among :data:`UNSEEN_OFFSETS` by :func:`choose_unseen_offset`.
        Without unseen validation targets: 0."""
        model = self.model
        model.unseen_offset.fill_(0.0)
        targets = np.asarray(self.split.valid.targets)
        unseen = model.unseen.cpu().numpy()
        if not unseen.any() or not unseen[targets].any():
            return 0.0
        k = int(self.config.metric.split("@")[1])
        cfg = EvalConfig(ks=(k,), metrics=("ndcg",), mask_history=False,
                         batch_size=self.config.eval_batch_size, keep_cases=True)
        reports = {}
        for offset in UNSEEN_OFFSETS:
            model.unseen_offset.fill_(offset)
            reports[offset] = evaluate(ModelScorer(model, acc.device), self.split.valid, cfg,
                                       name="valid")
        # id-only vectors of unseen items are untrained noise: promoting them to reach a
        # ratio would only spread random items over every list, so no ratio there
        ratio = 0.0 if model.config.mode == "id" else self.config.unseen_min_ratio
        chosen = choose_unseen_offset(reports, unseen[targets], self.config.metric, ratio)
        model.unseen_offset.fill_(chosen)
        return chosen

    def validate(self, acc: Accelerator, head: bool | None = None) -> dict[str, float]:
        """Validation metrics of the current weights (full ranking, no history masking).

        The head's weight in the final score is chosen here, on validation data, among
        :data:`HEAD_SCALES` (see :func:`choose_head_scale`); the metrics of the chosen weight
        are returned, with it. ``head`` False: the head is not trained yet (its own phase
        comes later) and is left out (weight 0); default: unless it has a phase of its own.
        """
        model = self.model
        k = int(self.config.metric.split("@")[1])
        cfg = EvalConfig(ks=(k,), metrics=("ndcg", "hr", "mrr"), mask_history=False,
                         batch_size=self.config.eval_batch_size, keep_cases=True)
        head = not self.config.head_epochs if head is None else head
        scales = (HEAD_SCALES if head else (0.0,)) if model.config.head_top_n else (1.0,)
        reports = {}
        for scale in scales:
            model.head_scale.fill_(scale)
            reports[scale] = evaluate(ModelScorer(model, acc.device), self.split.valid, cfg,
                                      name="valid")
        chosen = choose_head_scale(reports, self.config.metric)
        model.head_scale.fill_(chosen)
        self._valid_cases = reports[chosen].per_case[self.config.metric]
        return {**reports[chosen].metrics, "head_scale": chosen}

    def _log(self, acc: Accelerator, log: EpochLog) -> None:
        scalars = {"train/loss": log.loss, "train/retrieval_loss": log.retrieval_loss,
                   "train/head_loss": log.head_loss, "train/seconds": log.seconds,
                   **{f"valid/{k}": v for k, v in log.valid.items()}}
        acc.log(scalars, step=log.epoch)
        if self.out is not None and acc.is_main_process:
            with (self.out / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(asdict(log)) + "\n")

    def _curves(self, acc: Accelerator, history: list[EpochLog]) -> None:
        """learning_curve.png in the output folder; trackers closed."""
        finish_trackers(acc)
        if self.out is None or not acc.is_main_process or not history:
            return
        rows = [{"epoch": h.epoch, "loss": h.loss, "retrieval_loss": h.retrieval_loss,
                 "head_loss": h.head_loss, **{f"valid {k}": v for k, v in h.valid.items()
                                              if k != "head_scale"}} for h in history]
        metrics = sorted({k for r in rows for k in r if k.startswith("valid ")})
        plot_learning_curves(rows, self.out / "learning_curve.png", x="epoch",
                             panels=[("training loss", ["loss", "retrieval_loss", "head_loss"]),
                                     ("validation", metrics)],
                             title="llmrec training")

    def _save_best(self, acc: Accelerator) -> None:
        state = {k: v.detach().cpu().clone() for k, v in self.joint.state_dict().items()}
        self._best_state = state
        if self.out is not None and acc.is_main_process:
            tmp = self.out / "best.safetensors.tmp"
            save_file(state, str(tmp))
            tmp.replace(self.out / "best.safetensors")

    def _restore_best(self, acc: Accelerator) -> None:
        state = getattr(self, "_best_state", None)
        if state is None and self.out is not None and (self.out / "best.safetensors").is_file():
            state = load_file(str(self.out / "best.safetensors"))
        if state is not None:
            self.joint.load_state_dict(state, strict=True)
            self.joint.refresh_text()

"""The training loop: a small Trainer for fine-tuning and masked-LM pre-training, on one process or many (DDP).

    from roberta_prelayernorm.training import Trainer, TrainingConfig
    trainer = Trainer(TrainingConfig(task="sequence-classification", model="path/or/hub-id",
                                     train="train.jsonl", validation="dev.jsonl", output_dir="out", epochs=3))
    trainer.train()            # or trainer.train(resume=True) to continue from out/checkpoints
    trainer.evaluate()         # metrics on the validation data

Everything the run produces goes in output_dir: metrics.jsonl (one JSON object per log or evaluation),
curves.png, best/ and last/ (model + tokenizer + config, loadable by from_pretrained here and in
transformers), the best (else the last) model again at the top, and checkpoints/step-N/ (model, optimizer,
scheduler, RNG states and position in the data). Every folder is written whole (files.atomic_folder), so a
crash never leaves half of one. The run holds a lock on output_dir (files.exclusive_lock): one run per folder.

Data order and masking are functions of (seed, epoch, step), not of a running random state, so a resumed run
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import time
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import MissingFileError, SettingError
from ..files import append_text, atomic_write_text, check_output, exclusive_lock
from ..jsonout import dumps
from ..tasks import OPTION_NAMES, TASKS, Task, make_task
from ..tasks.records import read_records
from . import corpus
from .card import model_card
from .checkpoints import (
    clean_temporaries,
    file_fingerprint,
    find_checkpoint,
    fresh_output,
    load_checkpoint,
    save_checkpoint,
    save_model,
    save_top,
)
from .config import COMPILED_PAD_MULTIPLE, PRECISIONS, TrainingConfig
from .curves import plot_curves
from .losses import NonFiniteLossError, Step, StepLosses
from .batches import Prefetcher, step_batches, to_device
from .setup import (Distributed, EpochPlan, autocast, choose_device, compile_modules, generator, setup_distributed,
                    training_device)
from .state import TrainState, linear_schedule, make_optimizer
from .throughput import run_throughput

logger = logging.getLogger("roberta_prelayernorm.training")
# Steps a run may always skip, whatever max_skipped_share allows (a short run's few bad batches).
MIN_SKIPPED = 10


def model_config(name_or_path: str):
    from ..config import RobertaPreLayerNormConfig

    return RobertaPreLayerNormConfig.from_pretrained(name_or_path)


def load_model(task: Task, name_or_path: str, from_scratch: bool = False, **overrides):
    """The task's head class, from a checkpoint (a new head where it lacks one) or, from_scratch, a config."""
    cls = task.head_class()
    if from_scratch:
        config = model_config(name_or_path)
        config.update(overrides)
        return cls(config)
    # A head trained for another label set is replaced, with a warning, rather than refused.
    return cls.from_pretrained(name_or_path, ignore_mismatched_sizes=task.replaces_mismatched_head, **overrides)


def adopt_labels(task: Task, model) -> None:
    """Give a model passed in the data's label names (when its head has the right size)."""
    overrides = task.config_overrides()
    if "id2label" in overrides:
        if model.config.num_labels != len(overrides["id2label"]):
            raise SettingError(f"the model has num_labels={model.config.num_labels} but the training data has "
                               f"{len(overrides['id2label'])} labels {list(overrides['id2label'].values())}")
        model.config.update(overrides)


def check_length(max_length: int, tokenizer, model_config) -> None:
    """max_length must fit the model's positions; the tokenizer learns the model's limit (saved with it)."""
    from ..config import max_sequence_length
    from ..tokenizer import fit_to_model

    limit = max_sequence_length(model_config)
    if max_length > limit:
        raise SettingError(f"max_length={max_length} is longer than the model takes: {limit} tokens "
                           f"(max_position_embeddings={model_config.max_position_embeddings} less RoBERTa's offset "
                           f"{model_config.pad_token_id + 1}); use --max-length {limit} or less")
    fit_to_model(tokenizer, model_config)


def training_features(config: TrainingConfig, task: Task, tokenizer):
    """The features of config.train, the task fitted to its records (label set); a tokenize-corpus folder
    (masked-lm only) gives its blocks, read on demand."""
    if config.train is None:
        raise SettingError("config.train is not set: give a training data file")
    if corpus.is_corpus(config.train):
        if not task.reads_corpus:
            readers = " or ".join(f"task={name!r}" for name, cls in TASKS.items() if cls.reads_corpus)
            raise SettingError(f"train={config.train!r} is a tokenized corpus, which only {readers} reads")
        return corpus.CorpusBlocks(config.train, config.max_length, tokenizer)
    records = read_records(config.train)
    task.fit(records)
    return task.features(task.examples(records))


class Trainer:
    """Trains a model on one task; see the module docstring. `model` and `tokenizer` may be given as objects
    (then config.model is only needed for a tokenizer when none is given)."""

    def __init__(self, config: TrainingConfig, model=None, tokenizer=None):
        from ..tokenizer import AutoTokenizer

        config.check()
        check_output(config.output_dir, "output_dir", folder=True)  # before any work
        self.config = config
        self.dist = setup_distributed()
        self.device = training_device(config.device, self.dist.local_rank, config.precision)
        self.autocast = autocast(config.precision, self.device)

        if tokenizer is None:
            source = config.tokenizer or config.model
            if source is None:
                raise SettingError("no tokenizer: pass tokenizer=..., or set config.tokenizer or config.model")
            tokenizer = AutoTokenizer.from_pretrained(source)
        self.tokenizer = tokenizer
        if model is None and config.model is None:
            raise SettingError("no model: pass model=..., or set config.model to a folder or hub id")
        for path in (config.train, config.validation):  # the cheap checks first: files, then lengths
            if path is not None and not os.path.exists(path):
                raise MissingFileError(f"data file {path!r} does not exist")
        # The length is checked against the model before the data is tokenized (its config suffices).
        check_length(max_length=config.max_length, tokenizer=tokenizer,
                     model_config=model.config if model is not None else model_config(config.model))
        self.task = make_task(config.task, tokenizer, config.max_length,
                              **{name: getattr(config, name) for name in OPTION_NAMES})
        self.task.pad_to_multiple_of = config.pad_multiple
        self.train_features = training_features(config, self.task, tokenizer)
        self.eval_examples = self.eval_features = None
        if config.validation:
            self.eval_examples = self.task.examples(read_records(config.validation))
            self.eval_features = self.task.features(self.eval_examples)

        torch.manual_seed(config.seed)  # a new head's initial weights depend on it
        if model is None:
            model = load_model(self.task, config.model, config.from_scratch, **self.task.config_overrides())
        else:
            adopt_labels(self.task, model)
        if model.config.vocab_size < len(tokenizer):
            raise SettingError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                               f"{model.config.vocab_size}; use the model's own tokenizer")
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls on tensor cores (autocast's are half)
            torch.backends.cudnn.allow_tf32 = True
        self.ddp = None
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Gradients live in the all-reduce buckets: no copy between them, no second copy in memory.
            self.ddp = DistributedDataParallel(self.model, device_ids=ids, gradient_as_bucket_view=True)
        # What the steps and evaluation call: the model (DDP-wrapped for steps), compiled with config.compile.
        self.train_module = self.ddp or self.model
        self.eval_module = self.model
        if config.compile:
            self.train_module, self.eval_module = compile_modules(self.train_module, self.model)

        self.metrics_path = os.path.join(config.output_dir, "metrics.jsonl")
        self.history: list[dict] = []
        self.best: Optional[dict] = None

    # -- helpers ----------------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.dist.is_main:
            from tqdm.auto import tqdm

            if self.config.progress:
                tqdm.write(message)  # above the progress bar, not through it
            else:
                logger.info(message)

    def warn(self, message: str) -> None:
        """A message shown with or without the progress bar (a warning reaches stderr without logging set up)."""
        if self.dist.is_main:
            from tqdm.auto import tqdm

            if self.config.progress:
                tqdm.write(message)
            else:
                logger.warning(message)

    def epoch_plan(self, epoch: int) -> "EpochPlan":
        """This process's feature indices for each optimizer step of an epoch: steps of grad_accum micro-batches."""
        cfg = self.config
        return EpochPlan(len(self.train_features), generator(cfg.seed, epoch), cfg.batch_size, cfg.grad_accum,
                         self.dist)

    def steps_per_epoch(self) -> int:
        return len(self.epoch_plan(0))

    def total_steps(self) -> int:
        cfg = self.config
        return cfg.max_steps or math.ceil(cfg.epochs * self.steps_per_epoch())

    def _optimizer(self, total: int):
        """(optimizer, scheduler) for a run of `total` steps."""
        return make_optimizer(self.model, self.config, total)

    # -- training ---------------------------------------------------------------------------------------
    def train(self, resume=None) -> dict:
        """Train to max_steps (or epochs); returns the last validation metrics (or the last training loss).

        resume: True for the latest checkpoint in output_dir, or a path (a checkpoint folder or an output
        folder); the run continues exactly where that checkpoint stopped.
        """
        cfg = self.config
        os.makedirs(os.path.join(cfg.output_dir, "checkpoints"), exist_ok=True)
        # One run per output folder, for the whole run (rank 0 holds the lock for the job).
        with exclusive_lock(cfg.output_dir) if self.dist.is_main else contextlib.nullcontext():
            return self._train(resume)

    def _train(self, resume) -> dict:
        cfg = self.config
        total = self.total_steps()
        if self.steps_per_epoch() == 0:
            raise SettingError(f"{cfg.train} gives {len(self.train_features)} features: too few for "
                               f"{self.dist.world_size} processes")
        optimizer, scheduler = self._optimizer(total)
        state = TrainState(self.model, optimizer, scheduler,
                           torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16"))
        if self.dist.is_main:  # first: a write a kill cut short is finished or undone before anything is read
            clean_temporaries(cfg.output_dir)
        if resume:
            self._resume(cfg.output_dir if resume is True else resume, state)
        elif self.dist.is_main:
            fresh_output(cfg.output_dir, cfg.overwrite, remove=True)
        self.log(f"training {self.task.name}: {len(self.train_features)} features, {total} steps of "
                 f"{cfg.batch_size * self.dist.world_size * cfg.grad_accum} (batch {cfg.batch_size} x "
                 f"{self.dist.world_size} processes x {cfg.grad_accum} accumulation), {self.device}, {cfg.precision}")
        results = self.fit(state, total)
        if state.step > state.steps_taken:
            self.warn(f"{state.step - state.steps_taken} of {state.step} steps were skipped for a non-finite loss "
                      f"(on_nonfinite='skip')")
        if state.steps_taken == 0:
            raise NonFiniteLossError(f"no optimizer step was taken: all {total} steps had a non-finite loss and "
                                     "were skipped (on_nonfinite='skip'); no model was saved. Check the data "
                                     "(labels) and the settings, or run with on_nonfinite='stop' to see the first")
        if self.dist.is_main:
            self._save_model(os.path.join(cfg.output_dir, "last"), results)
            save_top(cfg.output_dir, os.path.join(cfg.output_dir, "best" if self.best else "last"))
            self.plot()
            self.log(f"saved {os.path.join(cfg.output_dir, 'last')}" +
                     (f" and best ({self.best['metric']} {self.best['value']:.4f} at step {self.best['step']})"
                      if self.best else ""))
        self._barrier()
        return results or (self.history[-1] if self.history else {})

    def fit(self, state: TrainState, total: int) -> dict:
        """The loop: optimizer steps from state.step to `total`, logging, evaluating and checkpointing on the
        way; returns the last validation metrics ({} without validation data)."""
        from tqdm.auto import tqdm

        cfg, per_epoch = self.config, self.steps_per_epoch()
        bar = tqdm(total=total, initial=state.step, disable=not (cfg.progress and self.dist.is_main), unit="step")
        module = self.train_module
        module.train()
        results, speed, loss = {}, {}, float("nan")
        throughput = run_throughput(cfg, self.model.config, self.task.name, self.device)
        self.losses = losses = StepLosses(cfg.on_nonfinite, self.warn, skipped=state.step - state.steps_taken,
                                          max_skipped=max(int(cfg.max_skipped_share * total), MIN_SKIPPED))
        plans = {}
        batches = Prefetcher(lambda key: step_batches(  # key: (epoch, k)
            self.task, self.train_features, plans[key[0]][key[1]], self.device, seed=cfg.seed, epoch=key[0],
            k=key[1], rank=self.dist.rank))
        try:
            while state.step < total:
                plans.clear()  # an epoch's plan holds its shuffle (8 bytes per block): one at a time
                plan = plans[state.epoch] = self.epoch_plan(state.epoch)
                for k in range(state.step_in_epoch, len(plan)):
                    if k + 1 < len(plan) and state.step + 1 < total:  # collated while the device runs step k
                        batches.ahead((state.epoch, k + 1))
                    started = time.perf_counter()
                    tokens = self._train_step(module, state, batches.get((state.epoch, k)), k)
                    throughput.add(tokens, time.perf_counter() - started)
                    state.step += 1
                    step = state.step
                    state.step_in_epoch = k + 1
                    epoch_end = state.step_in_epoch == len(plan)
                    if epoch_end:
                        state.epoch, state.step_in_epoch = state.epoch + 1, 0
                    lr = state.scheduler.get_last_lr()[0]
                    due = (lambda every: step % every == 0 if every else epoch_end)
                    log = step % cfg.log_every == 0 or step == total
                    evaluate = self.eval_features is not None and (due(cfg.eval_every) or step == total)
                    save = due(cfg.save_every) and step < total
                    if log or evaluate or save:  # they need the losses: read them from the device
                        started = time.perf_counter()
                        losses.settle(state)
                        throughput.add(0, time.perf_counter() - started)  # the device finishing the steps
                    if log:
                        loss = self._reduce_mean(losses.take_mean())
                        speed = self._speed(throughput.report())
                        skipped = {"skipped_steps": losses.skipped} if cfg.on_nonfinite == "skip" else {}
                        self._record({"split": "train", "step": step, "epoch": round(step / per_epoch, 4),
                                      "loss": loss, "learning_rate": lr, **skipped, **speed})
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                                    **{name: f"{value:.3g}" for name, value in speed.items()})  # of the last log
                    if evaluate:
                        results = self.evaluate()
                        self._record({"split": "validation", "step": step, "epoch": round(step / per_epoch, 4),
                                      **results})
                        self._maybe_save_best(results, step)
                        module.train()
                    if save:
                        save_checkpoint(state, tokenizer=self.tokenizer, config=cfg, distributed=self.dist,
                                        device=self.device, best=self.best,
                                        settings=self.settings() if self.dist.is_main else None)  # rank 0 writes
                    if step >= total:
                        break
        finally:
            batches.close()
            bar.close()
        return results

    def _speed(self, local: dict) -> dict:
        """tokens_per_s of all processes together and the mean MFU of the devices, rounded for the log."""
        out = {"tokens_per_s": round(self._reduce_mean(local["tokens_per_s"]) * self.dist.world_size, 1)}
        if "mfu" in local:
            out["mfu"] = round(self._reduce_mean(local["mfu"]), 4)
        return out

    def _train_step(self, module, state: TrainState, micro_batches: list, k: int) -> int:
        """One optimizer step (state.step + 1, the k-th of its epoch) over its micro-batches (step_batches);
        returns the number of (non-padding) tokens this process trained on. The losses stay on the device
        (self.losses); a non-finite step's update is skipped there, by the fused AdamW's `found_inf` (GradScaler's
        own with fp16), or else on the host, which then reads the step at once."""
        cfg, world = self.config, self.dist.world_size
        optimizer, scaler = state.optimizer, state.scaler
        examples = sum(len(indices) for indices, _, _ in micro_batches) * world
        losses = []
        for j, (indices, batch, _) in enumerate(micro_batches):
            batch = to_device(batch, self.device, compiled=cfg.compile)
            last = j == len(micro_batches) - 1
            # Under DDP, gradients are averaged across processes only on the last micro-batch of a step.
            sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with sync:
                with self.autocast():
                    loss = module(**batch).loss
                # Weighted so the step's gradient is the mean over all its examples, on every process.
                scaler.scale(loss * (len(indices) * world / examples)).backward()
            losses.append(loss.detach().float())
        losses = torch.stack(losses)
        finite = torch.isfinite(losses).all().to(torch.float32).reshape(1)
        if self.dist.active:  # every process must agree, or they would step apart
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        self.losses.add(Step(state.step + 1, state.epoch, torch.cat([losses, finite]),
                             [indices for indices, _, _ in micro_batches],
                             [len(indices) * world / examples for indices, _, _ in micro_batches]))
        tokens = sum(tokens for _, _, tokens in micro_batches)
        if not optimizer.defaults.get("fused"):
            if not self.losses.settle(state):
                optimizer.zero_grad(set_to_none=True)
                return tokens
        elif not scaler.is_enabled():
            optimizer.found_inf = (1.0 - finite).reshape(())  # the fused update skips itself after a bad loss
        if cfg.max_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        state.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    def _reduce_mean(self, value: float) -> float:
        if not self.dist.active or math.isnan(value):
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.item() / self.dist.world_size

    def _barrier(self) -> None:
        if self.dist.active:
            dist.barrier()

    # -- evaluation -------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, examples: Optional[list] = None, features: Optional[list] = None) -> dict:
        """Loss and the task's metrics on the validation data (or on `examples`/`features` given)."""
        if examples is None:
            examples, features = self.eval_examples, self.eval_features
            if examples is None:
                raise SettingError("no validation data: set config.validation or pass examples and features")
        elif features is None:
            features = self.task.features(examples)
        return evaluate_model(self.eval_module, self.task, examples, features, self.config.eval_batch_size or
                              2 * self.config.batch_size, self.device, self.autocast, self.dist, self.config.seed,
                              compiled=self.config.compile)

    # -- records ----------------------------------------------------------------------------------------
    def _record(self, entry: dict) -> None:
        """Append to metrics.jsonl (rank 0) and to the in-memory history."""
        entry = {"time": round(time.time(), 3), **entry}
        self.history.append(entry)
        if not self.dist.is_main:
            return
        append_text(self.metrics_path, dumps(entry) + "\n")  # strict JSON: a NaN loss is null
        if entry["split"] == "validation":
            shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in entry.items() if k not in ("time", "split", "epoch"))
            self.log(f"validation: {shown}")

    def _maybe_save_best(self, results: dict, step: int) -> None:
        if math.isnan(results.get(self.task.metric, 0.0)):
            self.log(f"validation {self.task.metric} is NaN (constant labels or predictions?); best/ is chosen by "
                     "the validation loss until it is a number")
        best = better_best(self.best, results, step, self.task.metric, self.task.greater_is_better)
        if best is not None:
            self.best = best
            if self.dist.is_main:
                self._save_model(os.path.join(self.config.output_dir, "best"), {**results, "step": step})

    def _save_model(self, target: str, results: dict) -> None:
        """The model, tokenizer, config and model card (+ eval_results.json) into `target` (best/ or last/)."""
        base = None if self.config.from_scratch else self.config.model
        save_model(self.model, self.tokenizer, target,
                   card=model_card(self.task.name, self.task.metric, base, results), results=results)

    def plot(self) -> Optional[str]:
        """Draw the training and validation curves into output_dir/curves.png (needs matplotlib)."""
        path = os.path.join(self.config.output_dir, "curves.png")
        if not plot_curves(self.history, self.task.name, self.task.metric, path):
            self.log("matplotlib is not installed (pip install 'roberta-prelayernorm[train]'): no curves.png")
            return None
        return path

    @functools.cached_property
    def train_fingerprint(self) -> str:
        return file_fingerprint(self.config.train)  # once per run: the data does not change under it

    def settings(self) -> dict:
        """Every setting that changes the run's trajectory, as stored in checkpoints and compared on resume."""
        cfg, config = self.config, self.model.config
        names = ("task", "epochs", "max_steps", "batch_size", "grad_accum", "learning_rate", "weight_decay",
                 "warmup_ratio", "warmup_steps", "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon",
                 "max_length", *OPTION_NAMES, "precision", "seed")
        return {**{name: getattr(cfg, name) for name in names}, "world_size": self.dist.world_size,
                "model": f"{type(self.model).__name__} ({config.num_hidden_layers} layers x {config.hidden_size}, "
                         f"vocab {config.vocab_size}, {config.num_labels} labels)",
                "train": self.train_fingerprint}

    def _resume(self, path, state: TrainState) -> None:
        folder, saved = load_checkpoint(path, state, settings=self.settings(), distributed=self.dist,
                                        device=self.device)
        self.best = saved["best"]
        if self.best and not os.path.isdir(os.path.join(self.config.output_dir, "best")):
            # Resumed into another folder (or a machine given only the checkpoint): best/ is not here, so the
            # later evaluations choose it again.
            self.log(f"best/ (step {self.best['step']}) is not in {self.config.output_dir}: the best model is chosen "
                     "again from the evaluations that follow")
            self.best = None
        if self.dist.is_main and os.path.exists(self.metrics_path):
            # Entries past the checkpoint are redone by the resumed run; keep only those before it.
            with open(self.metrics_path, encoding="utf-8") as f:
                kept = [line for line in f if line.strip() and json.loads(line)["step"] <= state.step]
            atomic_write_text(self.metrics_path, "".join(kept))
            self.history = [json.loads(line) for line in kept]
        self.log(f"resumed from {folder} at step {state.step}")


def better_best(best: Optional[dict], results: dict, step: int, metric: str, greater: bool) -> Optional[dict]:
    """The new best ({"metric", "value", "step"}) if validation `results` beat `best`, else None. An undefined
    metric (NaN: Pearson of constant labels or predictions) falls back to the lowest loss, until a real metric
    replaces that stand-in."""
    chosen, value = metric, results.get(metric)
    if value is not None and math.isnan(value):
        chosen, greater, value = "loss", False, results.get("loss")
    if value is None or math.isnan(value):
        return None
    if best is None or best["metric"] != chosen:  # a real metric replaces the loss stand-in, never the reverse
        better = best is None or chosen == metric
    else:
        better = value > best["value"] if greater else value < best["value"]
    return {"metric": chosen, "value": value, "step": step} if better else None


@torch.no_grad()
def evaluate_model(model, task: Task, examples: list, features: list, batch_size: int, device,
                   autocast=contextlib.nullcontext, distributed: Optional[Distributed] = None, seed: int = 0,
                   compiled: bool = False) -> dict:
    """Loss and metrics of `model` (torch.compile'd: `compiled`) on features; under DDP each process runs a
    share, the results are gathered."""
    distributed = distributed or Distributed()
    was_training = model.training
    model.eval()
    mine = list(range(distributed.rank, len(features), distributed.world_size))
    outputs, loss_sum = [], 0.0
    for start in range(0, len(mine), batch_size):
        indices = mine[start:start + batch_size]
        batch = task.collate([features[i] for i in indices], generator(seed, indices[0]))
        batch = to_device(batch, device, compiled)
        with autocast():
            output = model(**batch)
        loss_sum += output.loss.item() * len(indices)
        outputs += zip(indices, task.outputs(batch, output))
    if distributed.active:
        gathered = [None] * distributed.world_size
        dist.all_gather_object(gathered, (outputs, loss_sum))
        outputs = [item for part, _ in gathered for item in part]
        loss_sum = sum(s for _, s in gathered)
    outputs = [value for _, value in sorted(outputs, key=lambda item: item[0])]
    model.train(was_training)
    return {"loss": loss_sum / len(features), **task.score(examples, features, outputs)}


def evaluate(task: str, model: str, data: str, batch_size: int = 32, max_length: int = 128, precision: str = "fp32",
             device: Optional[str] = None, compile: bool = False, **task_options) -> dict:
    """The metrics of a saved model (folder or hub id, with its tokenizer) on a data file; `task_options` are
    the task's own (any of tasks.OPTION_NAMES: as the model was trained with)."""
    from ..tokenizer import AutoTokenizer

    for name, value in (("batch_size", batch_size), ("max_length", max_length)):
        if not isinstance(value, int) or value < 1:
            raise SettingError(f"{name}={value!r} is not allowed: an int >= 1")
    if precision not in PRECISIONS:
        raise SettingError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")

    tokenizer = AutoTokenizer.from_pretrained(model)
    task_object = make_task(task, tokenizer, max_length, **task_options)
    if compile:
        task_object.pad_to_multiple_of = COMPILED_PAD_MULTIPLE
    loaded = load_model(task_object, model)
    check_length(max_length=max_length, tokenizer=tokenizer, model_config=loaded.config)
    task_object.from_config(loaded.config)
    examples = task_object.examples(read_records(data))
    features = task_object.features(examples)
    target = choose_device(device)
    loaded = loaded.to(target)
    return evaluate_model(torch.compile(loaded) if compile else loaded, task_object, examples, features, batch_size,
                          target, autocast(precision, target), compiled=compile)


__all__ = ["Trainer", "TrainingConfig", "NonFiniteLossError", "evaluate", "evaluate_model", "find_checkpoint",
           "linear_schedule"]

"""TrainingConfig: every setting of a run, declared once. Each field's metadata (`flag`) holds its command-line
flag, help and choices: `add_arguments` generates the `train` and `evaluate` options from it. No torch here,
so the command line's help stays fast."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from ..flags import flag
from ..flags import need as need_setting
from ..tasks import TASKS

PRECISIONS = ("fp32", "bf16", "fp16")
NONFINITE_ACTIONS = ("stop", "skip")
COMPILED_PAD_MULTIPLE = 64  # batch lengths of a compiled model: multiples of this, so few shapes compile


# Each task's own options (stride, mlm_probability...) are declared in its file, as the fields of its Options.
TASK_OPTIONS = tuple(dict.fromkeys(task.Options for task in TASKS.values() if dataclasses.fields(task.Options)))


@dataclass
class TrainingConfig(*TASK_OPTIONS):
    """Everything a run needs; the CLI's `train` options are generated from these fields (see `flags.flag`),
    the tasks' options among them (inherited from each task's Options; their flags follow --max-length)."""

    task: str = flag(None, required=True, choices=tuple(TASKS))
    output_dir: str = flag(None, name="--output", required=True, help="output folder", metavar="OUTPUT",
                           after="validation")
    # folder or hub id; not needed when a model object is given to Trainer
    model: Optional[str] = flag(None, "checkpoint folder or hub id to start from", required=True)
    # data file (.jsonl/.csv), a saved `datasets` folder, or (masked-lm) a tokenize-corpus folder
    train: Optional[str] = flag(None, "training data: .jsonl, .csv, a datasets folder, or (masked-lm) a "
                                      "tokenize-corpus folder", required=True)
    validation: Optional[str] = flag(None, "validation data, same format (metrics and the best model need it)")
    tokenizer: Optional[str] = flag(None, "tokenizer folder or hub id (default: the model's)")
    from_scratch: bool = flag(False, "fresh weights, using only --model's config")
    epochs: float = flag(3.0, "passes over the training data (default 3)", group="length")
    max_steps: Optional[int] = flag(None, "optimizer steps to train for (instead of --epochs)", group="length")
    learning_rate: float = flag(5e-5, "peak learning rate (default 5e-5)")
    batch_size: int = flag(16, "examples per process per micro-batch (16)")
    eval_batch_size: Optional[int] = flag(None, "default: 2 x --batch-size")
    grad_accum: int = flag(1, "micro-batches per optimizer step (default 1)")
    warmup_ratio: float = flag(0.0, "fraction of steps warming up (default 0)", group="warmup")
    warmup_steps: Optional[int] = flag(None, "steps of linear warm-up (instead of --warmup-ratio)", group="warmup")
    weight_decay: float = flag(0.0, "AdamW weight decay (default 0)")
    adam_beta1: float = flag(0.9, "AdamW beta1 (default 0.9)")
    adam_beta2: float = flag(0.999, "AdamW beta2 (default 0.999)")
    adam_epsilon: float = flag(1e-8, "AdamW epsilon (default 1e-8)")
    max_grad_norm: float = flag(1.0, "gradient clipping norm; 0 turns it off")
    max_length: int = flag(128, "tokens per sequence / masked-LM block (128)")
    precision: str = flag("fp32", "mixed precision for forward/backward (weights stay fp32)", choices=PRECISIONS)
    gradient_checkpointing: bool = flag(False, "trade compute for activation memory")
    compile: bool = flag(False, "torch.compile the model for training and evaluation (--no-compile: off; on by "
                                "default in --recipe efficient-mlm on CUDA)", action=argparse.BooleanOptionalAction)
    pad_to_multiple_of: Optional[int] = flag(None, "round each batch's length up to a multiple of N (at most "
                                                   "--max-length), so a compiled model sees few shapes (default: 64 "
                                                   "with --compile, else 1)")
    eval_every: Optional[int] = flag(None, "evaluate every N steps (default: every epoch)")
    save_every: Optional[int] = flag(None, "checkpoint every N steps (default: every epoch)")
    keep_checkpoints: int = flag(2, "checkpoints kept (default 2)")
    log_every: int = flag(10, "log the training loss every N steps (10)")
    seed: int = flag(42, "seed for the new head, data order and masking")
    on_nonfinite: str = flag("stop", "on a NaN/inf loss: stop with an error naming the step and batch (default), or "
                                     "skip that step's update", choices=NONFINITE_ACTIONS)
    max_skipped_share: float = flag(0.1, "with --on-nonfinite skip: stop with an error once more than this share "
                                         "of the run's steps (and more than 10) were skipped (default 0.1)")
    overwrite: bool = flag(False, "replace a finished run in --output (its best/, last/ and metrics); else refused")
    progress: bool = flag(True, "no progress bar", invert=True)
    device: Optional[str] = flag(None, "cpu, cuda, cuda:1, ... (default: cuda:LOCAL_RANK if available)")
    # a GPU's peak FLOP/s for MFU; default: throughput.PEAK_BF16_FLOPS by name
    peak_flops: Optional[float] = flag(None, "the GPU's peak FLOP/s, for the MFU in the log (default: a table of "
                                             "bf16 peaks by name)")

    @property
    def pad_multiple(self) -> int:
        """pad_to_multiple_of, or its default: 64 for a compiled model, else 1 (each batch at its longest)."""
        return self.pad_to_multiple_of or (COMPILED_PAD_MULTIPLE if self.compile else 1)

    def check(self) -> None:
        """Raise ValueError naming the first impossible setting (the task's own options included)."""
        def need(ok: bool, name: str, allowed: str):
            need_setting(ok, self, name, allowed)

        need(self.task in TASKS, "task", f"one of {', '.join(TASKS)}")
        need(self.output_dir is not None, "output_dir", "a folder")
        need(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}")
        need(self.on_nonfinite in NONFINITE_ACTIONS, "on_nonfinite", f"one of {', '.join(NONFINITE_ACTIONS)}")
        TASKS[self.task].Options.check(self, self.max_length)  # the task's own options
        for name in ("epochs", "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm"):
            need(math.isfinite(getattr(self, name)), name, "a finite number")
        need(self.epochs > 0, "epochs", "a number > 0")
        need(self.max_steps is None or self.max_steps > 0, "max_steps", "an int > 0")
        for name in ("batch_size", "grad_accum", "max_length", "keep_checkpoints", "log_every"):
            need(getattr(self, name) >= 1, name, "an int >= 1")
        for name in ("eval_batch_size", "eval_every", "save_every", "pad_to_multiple_of"):
            need(getattr(self, name) is None or getattr(self, name) >= 1, name, "an int >= 1 (or unset)")
        need(self.learning_rate > 0, "learning_rate", "a number > 0")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        for name in ("adam_beta1", "adam_beta2"):
            need(0 <= getattr(self, name) < 1, name, "a number in [0, 1)")
        need(self.adam_epsilon > 0, "adam_epsilon", "a number > 0")
        need(self.peak_flops is None or self.peak_flops > 0, "peak_flops", "a number > 0 (or unset)")
        need(0 <= self.warmup_ratio < 1, "warmup_ratio", "a fraction in [0, 1)")
        need(self.warmup_steps is None or self.warmup_steps >= 0, "warmup_steps", "an int >= 0")
        need(self.max_grad_norm >= 0, "max_grad_norm", "a number >= 0 (0: no clipping)")
        need(0 <= self.max_skipped_share <= 1, "max_skipped_share", "a share in [0, 1]")
        # torch's generators take 64 bits: a larger seed would fail deep inside the first one seeded.
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**64, "seed", "an int in [0, 2**64)")


def flag_order() -> list[dataclasses.Field]:
    """TrainingConfig's fields in the order of their flags: its own in field order, the tasks' options after
    max_length, a field with `after=` moved."""
    order = [f for f in dataclasses.fields(TrainingConfig) if f.name in TrainingConfig.__annotations__]
    place = next(i for i, f in enumerate(order) if f.name == "max_length") + 1
    order[place:place] = [f for options in TASK_OPTIONS for f in dataclasses.fields(options)]
    for moved in [f for f in order if "after" in f.metadata]:
        order.remove(moved)
        order.insert(next(i for i, f in enumerate(order) if f.name == moved.metadata["after"]) + 1, moved)
    return order


def add_arguments(parser: argparse.ArgumentParser, names=None, **overrides) -> None:
    """Add the flags of TrainingConfig's fields `names` (default: all) to `parser`, in flag_order; each parsed
    value lands on the field's name. `overrides` maps a field name to add_argument keywords that replace its
    own (another default, help...)."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for config_field in flag_order():
        if names is not None and config_field.name not in names:
            continue
        options = {**config_field.metadata, **overrides.get(config_field.name, {})}
        options.pop("after", None)
        option = options.pop("name", "--" + config_field.name.replace("_", "-"))
        group = options.pop("group", None)
        kind = config_field.type.removeprefix("Optional[").removesuffix("]")  # annotations are strings here
        if options.pop("invert", False):
            option, options["action"] = "--no-" + option[2:], "store_false"
        elif kind == "bool":
            options.setdefault("action", "store_true")
        elif kind in ("int", "float"):
            options.setdefault("type", {"int": int, "float": float}[kind])
        if config_field.default is not dataclasses.MISSING and not options.get("required"):
            options.setdefault("default", config_field.default)
        if options.get("help") is None:
            options.pop("help")
        if group is not None and group not in groups:
            groups[group] = parser.add_mutually_exclusive_group()
        (parser if group is None else groups[group]).add_argument(option, dest=config_field.name, **options)


def config_of(args: argparse.Namespace, **given) -> TrainingConfig:
    """The TrainingConfig of parsed `train` arguments; `given` (settings a recipe chose) replaces them. An
    option parsed as None (unset) takes the field's default."""
    names = {config_field.name for config_field in dataclasses.fields(TrainingConfig)}
    parsed = {name: value for name, value in vars(args).items() if name in names and value is not None}
    return TrainingConfig(**{**parsed, **given})

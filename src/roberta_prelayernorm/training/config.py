"""TrainingConfig: every setting of a run, declared once, in sections (run, data, schedule, optimizer, logging,
and each task's own options). Each field's metadata (`flags.flag`) holds its command-line flag, help and
choices: `add_arguments` generates the `train` and `evaluate` options from the sections, one help group each,
and each section checks its own values. No torch here, so the command line's help stays fast."""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from ..flags import flag, need
from ..tasks import TASKS

PRECISIONS = ("fp32", "bf16", "fp16")
NONFINITE_ACTIONS = ("stop", "skip")
COMPILED_PAD_MULTIPLE = 64  # batch lengths of a compiled model: multiples of this, so few shapes compile


def need_all(settings, names, ok, allowed: str) -> None:
    """Refuse the first of the settings `names` whose value fails `ok`."""
    for name in names:
        need(ok(getattr(settings, name)), settings, name, allowed)


@dataclass
class RunSettings:
    """What to train, from what, where, and on what hardware."""

    task: str = flag(None, required=True, choices=tuple(TASKS))
    # folder or hub id; not needed when a model object is given to Trainer
    model: Optional[str] = flag(None, "checkpoint folder or hub id to start from", required=True)
    from_scratch: bool = flag(False, "fresh weights, using only --model's config")
    tokenizer: Optional[str] = flag(None, "tokenizer folder or hub id (default: the model's)")
    output_dir: str = flag(None, name="--output", required=True, help="output folder", metavar="OUTPUT")
    overwrite: bool = flag(False, "replace a finished run in --output (its best/, last/ and metrics); else refused")
    seed: int = flag(42, "seed for the new head, data order and masking")
    device: Optional[str] = flag(None, "cpu, cuda, cuda:1, ... (default: cuda:LOCAL_RANK if available)")
    precision: str = flag("fp32", "mixed precision for forward/backward (weights stay fp32)", choices=PRECISIONS)
    compile: bool = flag(False, "torch.compile the model for training and evaluation (on by default in --recipe "
                                "efficient-mlm on CUDA)", action=argparse.BooleanOptionalAction)
    gradient_checkpointing: bool = flag(False, "trade compute for activation memory")

    def check(self) -> None:
        need(self.task in TASKS, self, "task", f"one of {', '.join(TASKS)}")
        need(self.output_dir is not None, self, "output_dir", "a folder")
        need(self.precision in PRECISIONS, self, "precision", f"one of {', '.join(PRECISIONS)}")
        # torch's generators take 64 bits: a larger seed would fail deep inside the first one seeded.
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**64, self, "seed", "an int in [0, 2**64)")


@dataclass
class DataSettings:
    """The data and how it is cut into batches."""

    # data file (.jsonl/.csv), a saved `datasets` folder, or (masked-lm) a tokenize-corpus folder
    train: Optional[str] = flag(None, "training data: .jsonl, .csv, a datasets folder, or (masked-lm) a "
                                      "tokenize-corpus folder", required=True)
    validation: Optional[str] = flag(None, "validation data, same format (metrics and the best model need it)")
    max_length: int = flag(128, "tokens per sequence / masked-LM block")
    batch_size: int = flag(16, "examples per process per micro-batch")
    eval_batch_size: Optional[int] = flag(None, "default: 2 x --batch-size")
    pad_to_multiple_of: Optional[int] = flag(None, "round each batch's length up to a multiple of N (at most "
                                                   "--max-length), so a compiled model sees few shapes (default: 64 "
                                                   "with --compile, else 1)")

    def check(self) -> None:
        need_all(self, ("batch_size", "max_length"), lambda value: value >= 1, "an int >= 1")
        need_all(self, ("eval_batch_size", "pad_to_multiple_of"), lambda value: value is None or value >= 1,
                 "an int >= 1 (or unset)")


@dataclass
class ScheduleSettings:
    """How long the run is and how the learning rate moves."""

    epochs: float = flag(3.0, "passes over the training data", group="length")
    max_steps: Optional[int] = flag(None, "optimizer steps to train for (instead of --epochs)", group="length")
    grad_accum: int = flag(1, "micro-batches per optimizer step")
    learning_rate: float = flag(5e-5, "peak learning rate")
    warmup_ratio: float = flag(0.0, "fraction of steps warming up", group="warmup")
    warmup_steps: Optional[int] = flag(None, "steps of linear warm-up (instead of --warmup-ratio)", group="warmup")

    def check(self) -> None:
        need_all(self, ("epochs", "learning_rate", "warmup_ratio"), math.isfinite, "a finite number")
        need(self.epochs > 0, self, "epochs", "a number > 0")
        need(self.max_steps is None or self.max_steps > 0, self, "max_steps", "an int > 0")
        need(self.grad_accum >= 1, self, "grad_accum", "an int >= 1")
        need(self.learning_rate > 0, self, "learning_rate", "a number > 0")
        need(0 <= self.warmup_ratio < 1, self, "warmup_ratio", "a fraction in [0, 1)")
        need(self.warmup_steps is None or self.warmup_steps >= 0, self, "warmup_steps", "an int >= 0")


@dataclass
class OptimizerSettings:
    """AdamW, clipping, and what a non-finite loss does."""

    weight_decay: float = flag(0.0, "AdamW weight decay")
    adam_beta1: float = flag(0.9, "AdamW beta1")
    adam_beta2: float = flag(0.999, "AdamW beta2")
    adam_epsilon: float = flag(1e-8, "AdamW epsilon")
    max_grad_norm: float = flag(1.0, "gradient clipping norm; 0 turns it off")
    on_nonfinite: str = flag("stop", "on a NaN/inf loss: stop with an error naming the step and batch, or skip "
                                     "that step's update", choices=NONFINITE_ACTIONS)
    max_skipped_share: float = flag(0.1, "with --on-nonfinite skip: stop with an error once more than this share "
                                         "of the run's steps (and more than 10) were skipped")

    def check(self) -> None:
        need_all(self, ("weight_decay", "max_grad_norm"), math.isfinite, "a finite number")
        need(self.weight_decay >= 0, self, "weight_decay", "a number >= 0")
        need_all(self, ("adam_beta1", "adam_beta2"), lambda value: 0 <= value < 1, "a number in [0, 1)")
        need(self.adam_epsilon > 0, self, "adam_epsilon", "a number > 0")
        need(self.max_grad_norm >= 0, self, "max_grad_norm", "a number >= 0 (0: no clipping)")
        need(self.on_nonfinite in NONFINITE_ACTIONS, self, "on_nonfinite", f"one of {', '.join(NONFINITE_ACTIONS)}")
        need(0 <= self.max_skipped_share <= 1, self, "max_skipped_share", "a share in [0, 1]")


@dataclass
class LoggingSettings:
    """What the run writes, and when."""

    log_every: int = flag(10, "log the training loss every N steps")
    eval_every: Optional[int] = flag(None, "evaluate every N steps (default: every epoch)")
    save_every: Optional[int] = flag(None, "checkpoint every N steps (default: every epoch)")
    keep_checkpoints: int = flag(2, "checkpoints kept")
    progress: bool = flag(True, "no progress bar", invert=True)
    # a GPU's peak FLOP/s for MFU; default: throughput.PEAK_BF16_FLOPS by name
    peak_flops: Optional[float] = flag(None, "the GPU's peak FLOP/s, for the MFU in the log (default: a table of "
                                             "bf16 peaks by name)")

    def check(self) -> None:
        need_all(self, ("log_every", "keep_checkpoints"), lambda value: value >= 1, "an int >= 1")
        need_all(self, ("eval_every", "save_every"), lambda value: value is None or value >= 1,
                 "an int >= 1 (or unset)")
        need(self.peak_flops is None or self.peak_flops > 0, self, "peak_flops", "a number > 0 (or unset)")


# The sections in the order of `train --help`; each task's own options (stride, mlm_probability...) are declared
# in its file, as the fields of its Options, and follow as one section per task.
SECTIONS = (RunSettings, DataSettings, ScheduleSettings, OptimizerSettings, LoggingSettings)
TASK_OPTIONS = {task.Options: name for name, task in TASKS.items() if dataclasses.fields(task.Options)}


@dataclass
class TrainingConfig(*SECTIONS, *TASK_OPTIONS):
    """Everything a run needs: the fields of every section, flat (`TrainingConfig(learning_rate=...)`,
    `config.stride`); the CLI's `train` options are generated from the sections (see `add_arguments`)."""

    @property
    def pad_multiple(self) -> int:
        """pad_to_multiple_of, or its default: 64 for a compiled model, else 1 (each batch at its longest)."""
        return self.pad_to_multiple_of or (COMPILED_PAD_MULTIPLE if self.compile else 1)

    def check(self) -> None:
        """Raise SettingError naming the first impossible setting: each section checks its own, then the task
        its options."""
        for section in SECTIONS:
            section.check(self)
        TASKS[self.task].Options.check(self, self.max_length)


def sections() -> list[tuple[str, type]]:
    """(help title, dataclass) of TrainingConfig's sections, in `train --help` order."""
    return [(section.__name__.removesuffix("Settings").lower(), section) for section in SECTIONS] + [
        (f"{name} options", options) for options, name in TASK_OPTIONS.items()]


def add_arguments(parser, section: type, names=None, **overrides) -> None:
    """Add the flags of `section`'s fields (those in `names`, default all) to `parser` (a parser or an argument
    group), in field order. A flag left off the command line is left out of the parsed namespace, so what the
    user gave is told from the defaults, which stay in the dataclass (the help states them). `overrides` maps a
    field name to add_argument keywords that replace its own (a command's own default, help...)."""
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for config_field in dataclasses.fields(section):
        if names is not None and config_field.name not in names:
            continue
        options = {"default": argparse.SUPPRESS, **config_field.metadata, **overrides.get(config_field.name, {})}
        option = options.pop("name", "--" + config_field.name.replace("_", "-"))
        group = options.pop("group", None)
        kind = config_field.type.removeprefix("Optional[").removesuffix("]")  # annotations are strings here
        if options.pop("invert", False):
            option, options["action"] = "--no-" + option[2:], "store_false"
        elif kind == "bool":
            options.setdefault("action", "store_true")
        elif kind in ("int", "float"):
            options.setdefault("type", {"int": int, "float": float}[kind])
        shown = options["default"] if options["default"] is not argparse.SUPPRESS else config_field.default
        if options.get("help") is not None and kind != "bool" and shown is not None and not options.get("required"):
            options["help"] += f" (default: {shown})"
        if options.get("help") is None:
            options.pop("help")
        if group is not None and group not in exclusive:
            exclusive[group] = parser.add_mutually_exclusive_group()
        (parser if group is None else exclusive[group]).add_argument(option, dest=config_field.name, **options)


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainingConfig fields the command line gave (flags left off are absent: see add_arguments)."""
    names = {config_field.name for config_field in dataclasses.fields(TrainingConfig)}
    return {name: value for name, value in vars(args).items() if name in names}

"""What every task defines: its names, head class, pipeline names, record format, and for training its examples,
features, batches and scores. One file per task in this package holds all of that for its task.

Importing a task does not import torch: the modules that need it are imported where they are used.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional

MASK_MODES = ("80-10-10", "mask")  # masked-LM: what a chosen token becomes (collate.mask_tokens)

if TYPE_CHECKING:
    import torch

    from .records import Record


@dataclasses.dataclass
class Options:
    """A task's own settings (none here): a subclass declares each as a `flags.flag` field, which makes it a
    keyword of the task, a field of TrainingConfig, a `train` and `evaluate` flag and a resume setting."""

    def check(self, max_length: int) -> None:
        """Raise ValueError naming the first impossible setting."""


class Task:
    """One task (subclasses fill it in). The class tells what the task is; an instance, built with a tokenizer,
    turns training records into scored batches for the trainer."""

    name: str  # the training name (train --task)
    pipeline_names: tuple[str, ...]  # transformers' pipeline names of the task (the first is the main one)
    hub_tag: Optional[str] = None  # the hub's pipeline tag for models of the task (the model card's)
    record_format: str  # its lines of the training data formats (train --help)
    Options = Options  # the task's own settings
    metric: str  # the validation metric that picks the best model
    greater_is_better = True
    reads_corpus = False  # whether it trains on a tokenize-corpus folder
    replaces_mismatched_head = True  # a checkpoint's head of another size is replaced (with a warning)

    @staticmethod
    def head_class() -> type:
        """The model class with the task's head."""
        raise NotImplementedError

    @property
    def model_class(self) -> str:
        """The name of the head class, as roberta_prelayernorm exports it."""
        return self.head_class().__name__

    def __init__(self, tokenizer, max_length: int = 128, **options):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.options = self.Options(**options)
        self.options.check(max_length)
        self.pad_to_multiple_of = 1  # batch widths rounded up to a multiple of this (few shapes when compiled)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls.Options))

    @classmethod
    def predicted_share(cls, options: Options) -> float:
        """The share of tokens that go through an LM head (for the FLOPs of a step): none by default."""
        return 0.0

    def fit(self, records: list[Record]) -> None:
        """Learn what the data defines (the label set) from the training records."""

    def from_config(self, config) -> None:
        """Take the label set from a trained model's config (for evaluation)."""

    def config_overrides(self) -> dict:
        """Config fields the model needs for this data (id2label, problem_type)."""
        return {}

    def examples(self, records: list[Record]) -> list[dict]:
        """Check and normalise each record; a bad one raises DataError naming file, line and field."""
        raise NotImplementedError

    def features(self, examples: list[dict]) -> list[dict]:
        """Tokenised model inputs; each keeps the index of its example ("example") for scoring."""
        raise NotImplementedError

    def collate(self, features: list[dict], generator: Optional[torch.Generator] = None) -> dict:
        """A padded batch; by default one label per feature (classification of a whole text or of choices)."""
        return self.pad(features, ("input_ids", "attention_mask"), ("labels",))

    def pad(self, features: list[dict], padded: tuple[str, ...], stacked: tuple[str, ...] = ()) -> dict:
        """collate.collate with this task's pad token, width multiple and length limit."""
        from .collate import collate

        return collate(features, self.tokenizer.pad_token_id, padded, stacked, self.pad_to_multiple_of,
                       self.max_length)

    def outputs(self, batch: dict, output) -> list:
        """What scoring needs from a forward pass, one item per feature, as plain Python values (by default
        each feature's logits)."""
        return output.logits.float().tolist()

    def score(self, examples: list[dict], features: list[dict], outputs: list) -> dict:
        raise NotImplementedError


def record_text(record: Record, name: str, required: bool = True) -> Optional[str]:
    value = record.get(name, str, required)
    if value is not None and not value.strip():
        raise record.error(name, "is empty")
    return value


def record_str_list(record: Record, name: str) -> list[str]:
    value = record.get(name, list)
    if not value:
        raise record.error(name, "is an empty list")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise record.error(name, f"item {i} is {type(item).__name__} {item!r:.40}; expected str")
    return value

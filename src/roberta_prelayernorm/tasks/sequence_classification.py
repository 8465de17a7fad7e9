"""Sequence classification: one label (a class, several classes, or a score) per text or text pair."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

from . import metrics
from .base import Task, record_text

# The most classes a file's class indices may ask for (index MAX_CLASSES - 1 at most).
MAX_CLASSES = 100_000

if TYPE_CHECKING:
    from .records import Record


class SequenceClassification(Task):
    name = "sequence-classification"
    pipeline_names = ("text-classification", "sentiment-analysis")
    hub_tag = "text-classification"
    record_format = (
        '  sequence-classification  {"text": str, "text_pair": str (optional), "label": L}; L is a class name (str),\n'
        '                           a class index (int), a list of names (multi-label) or a float (regression);\n'
        '                           every record of a file uses the same kind.\n'
    )

    @staticmethod
    def head_class() -> type:
        from ..modeling import RobertaPreLayerNormForSequenceClassification as head
        return head

    def __init__(self, tokenizer, max_length: int = 128):
        super().__init__(tokenizer, max_length)
        self.kind: Optional[str] = None  # "class" (names or indices), "multi" or "regression"
        self.names: list[str] = []

    @staticmethod
    def _kind(value) -> str:
        if isinstance(value, list):
            return "multi"
        if isinstance(value, float):
            return "float"
        return "index" if isinstance(value, int) else "name"

    def fit(self, records: list[Record]) -> None:
        """Decide the file's label kind from all its labels: every label a string: class names ("3.5" too);
        every label an int: class indices; floats (ints allowed among them, as scores) with at least one not
        a whole number: regression; every label a list: multi-label. Anything else is an error at the first
        line whose label does not fit the first line's, as is a float like 1.0 among int class indices."""
        labels = [r.get("label", (str, int, float, list)) for r in records]
        kinds = [self._kind(v) for v in labels]
        regression = "float" in kinds and any(not float(v).is_integer() for v, k in zip(labels, kinds) if k == "float")
        if set(kinds) <= {"index", "float"} and "float" in kinds and not regression and "index" in kinds:
            bad = records[kinds.index("float")]
            raise bad.error("label", f"{bad.fields['label']!r} is a float among integer class indices (first at "
                                     f"{records[kinds.index('index')].where}); write every class index as an int, "
                                     "or every label as a float for regression")
        if regression or set(kinds) == {"float"}:
            kinds = ["float" if k == "index" else k for k in kinds]
        names = {"name": "a class name (string)", "index": "a class index (int)", "float": "a float (regression)",
                 "multi": "a list (multi-label)"}
        for record, kind in zip(records, kinds):
            if kind != kinds[0]:
                raise record.error("label", f"is {names[kind]} but the first record's label ({records[0].where}) is "
                                            f"{names[kinds[0]]}; every label of a file must be of one kind")
        kind = kinds[0]
        if kind == "float":
            bad = next((r for r, v in zip(records, labels) if not math.isfinite(v)), None)
            if bad is not None:
                raise bad.error("label", f"{bad.fields['label']!r} is not a finite number")
            self.kind, self.names = "regression", ["LABEL_0"]
        elif kind == "index":
            bad = next((r for r, v in zip(records, labels) if v < 0), None)
            if bad is not None:
                raise bad.error("label", f"class index {bad.fields['label']} is negative")
            # Checked before the names are made: one stray 1e9 would otherwise allocate a billion of them.
            bad = next((r for r, v in zip(records, labels) if v >= MAX_CLASSES), None)
            if bad is not None:
                raise bad.error("label", f"class index {bad.fields['label']} is too large: class indices run from 0 "
                                         f"to the number of classes - 1, at most {MAX_CLASSES - 1}")
            self.kind, self.names = "class", [f"LABEL_{i}" for i in range(max(labels) + 1)]
        elif kind == "name":
            self.kind, self.names = "class", sorted(set(labels))
        else:
            for record, value in zip(records, labels):
                bad = next((x for x in value if isinstance(x, bool) or not isinstance(x, (str, int))), None)
                if bad is not None:
                    raise record.error("label", f"holds {bad!r}; multi-label lists hold class names or indices")
            self.kind, self.names = "multi", sorted({str(x) for v in labels for x in v})
            if not self.names:
                raise records[0].error("label", "every label list in the file is empty: there is no class to learn")
        if self.kind == "class" and len(self.names) < 2:
            raise records[0].error("label", f"the training data has a single class {self.names}; need at least 2")

    def from_config(self, config) -> None:
        self.names = [config.id2label[i] for i in range(config.num_labels)]
        self.kind = {"regression": "regression", "multi_label_classification": "multi"}.get(config.problem_type,
                                                                                           "class")

    def config_overrides(self) -> dict:
        problem = {"class": "single_label_classification", "multi": "multi_label_classification",
                   "regression": "regression"}[self.kind]
        return {"id2label": dict(enumerate(self.names)), "problem_type": problem}

    def _label(self, record: Record):
        if self.kind == "regression":
            value = float(record.get("label", (int, float)))
            if not math.isfinite(value):
                raise record.error("label", f"{value!r} is not a finite number")
            return value
        if self.kind == "multi":
            items = record.get("label", list)
            unknown = [x for x in items if str(x) not in self.names]
            if unknown:
                raise record.error("label", f"has {unknown[0]!r}, not among the labels {self.names}")
            return [float(name in {str(x) for x in items}) for name in self.names]
        value = record.get("label", (str, int))
        if isinstance(value, int):
            if not 0 <= value < len(self.names):
                raise record.error("label", f"index {value} is outside [0, {len(self.names)})")
            return value
        if value not in self.names:
            raise record.error("label", f"{value!r} is not among the labels {self.names}")
        return self.names.index(value)

    def examples(self, records: list[Record]) -> list[dict]:
        return [{"text": record_text(r, "text"), "text_pair": record_text(r, "text_pair", required=False),
                 "label": self._label(r)} for r in records]

    def features(self, examples: list[dict]) -> list[dict]:
        features = []
        for i, e in enumerate(examples):
            encoding = self.tokenizer(e["text"], e["text_pair"], truncation=True, max_length=self.max_length)
            features.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"],
                             "labels": e["label"], "example": i})
        return features

    def score(self, examples, features, outputs):
        references = [e["label"] for e in examples]
        if self.kind == "regression":
            predictions = [row[0] for row in outputs]
            return {"pearson": metrics.pearson(predictions, references),
                    "spearman": metrics.spearman(predictions, references)}
        if self.kind == "multi":  # sigmoid(x) > 0.5 <=> x > 0
            predictions = [[float(x > 0) for x in row] for row in outputs]
        else:
            predictions = [max(range(len(row)), key=row.__getitem__) for row in outputs]
        return {"accuracy": metrics.accuracy(predictions, references),
                "macro_f1": metrics.macro_f1(predictions, references)}

    @property
    def metric(self) -> str:
        return "pearson" if self.kind == "regression" else "accuracy"

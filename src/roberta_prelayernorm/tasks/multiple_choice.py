"""Multiple choice: the best of several candidate endings of a prompt."""

from __future__ import annotations

from . import metrics
from .base import Task, record_str_list, record_text


class MultipleChoice(Task):
    name = "multiple-choice"
    pipeline_names = ("multiple-choice",)
    record_format = (
        '  multiple-choice          {"prompt": str, "choices": [str, ...], "label": int (index) or str (a choice)}.\n'
    )

    @staticmethod
    def head_class() -> type:
        from ..modeling import RobertaPreLayerNormForMultipleChoice as head
        return head
    metric = "accuracy"

    def examples(self, records):
        examples = []
        for r in records:
            prompt, choices = record_text(r, "prompt"), record_str_list(r, "choices")
            if len(choices) < 2:
                raise r.error("choices", f"has {len(choices)} choice; need at least 2")
            if examples and len(choices) != len(examples[0]["choices"]):
                raise r.error("choices", f"has {len(choices)} choices but the file's first record has "
                                         f"{len(examples[0]['choices'])}; every record needs the same number")
            label = r.get("label", (int, str))
            if isinstance(label, str):
                if label not in choices:
                    raise r.error("label", f"{label!r:.40} is not one of the choices")
                label = choices.index(label)
            elif not 0 <= label < len(choices):
                raise r.error("label", f"index {label} is outside [0, {len(choices)})")
            examples.append({"prompt": prompt, "choices": choices, "label": label})
        return examples

    def features(self, examples):
        features = []
        for n, e in enumerate(examples):
            encoding = self.tokenizer([e["prompt"]] * len(e["choices"]), e["choices"], truncation=True,
                                      max_length=self.max_length)
            features.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"],
                             "labels": e["label"], "example": n})
        return features

    def score(self, examples, features, outputs):
        predictions = [max(range(len(row)), key=row.__getitem__) for row in outputs]
        return {"accuracy": metrics.accuracy(predictions, [e["label"] for e in examples])}

"""Token classification: a BIO/IOB2 tag per word (NER)."""

from __future__ import annotations

import dataclasses

from ..flags import flag
from . import metrics
from .base import Options, Task, record_str_list


@dataclasses.dataclass
class TokenClassificationOptions(Options):
    label_all_pieces: bool = flag(False, "label every sub-word piece, not only each word's first")


class TokenClassification(Task):
    """NER-style tagging. Each word's label goes on its first sub-word piece (others are ignored, -100), or
    with label_all_pieces on every piece (a B- tag's continuation pieces get its I- tag)."""

    name = "token-classification"
    pipeline_names = ("token-classification", "ner")
    hub_tag = "token-classification"
    Options = TokenClassificationOptions
    record_format = (
        '  token-classification     {"tokens": [str, ...], "tags": [str, ...]}: one BIO/IOB2 tag per word.\n'
    )

    @staticmethod
    def head_class() -> type:
        from ..modeling import RobertaPreLayerNormForTokenClassification as head
        return head
    metric = "f1"

    def __init__(self, tokenizer, max_length: int = 128, **options):
        super().__init__(tokenizer, max_length, **options)
        self.names: list[str] = []

    def fit(self, records):
        tags = {t for r in records for t in record_str_list(r, "tags")}
        self.names = (["O"] if "O" in tags else []) + sorted(tags - {"O"})

    def from_config(self, config):
        self.names = [config.id2label[i] for i in range(config.num_labels)]

    def config_overrides(self):
        return {"id2label": dict(enumerate(self.names))}

    def examples(self, records):
        examples = []
        for r in records:
            tokens, tags = record_str_list(r, "tokens"), record_str_list(r, "tags")
            if len(tokens) != len(tags):
                raise r.error("tags", f"has {len(tags)} tags for {len(tokens)} tokens; need one tag per token")
            unknown = [t for t in tags if t not in self.names]
            if unknown:
                raise r.error("tags", f"has {unknown[0]!r}, not among the tags {self.names}")
            examples.append({"tokens": tokens, "tags": tags})
        return examples

    def features(self, examples):
        index = {name: i for i, name in enumerate(self.names)}
        # The I- tag a B- tag's later pieces get when every piece is labelled.
        inside = {i: index.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(self.names)}
        features = []
        for n, e in enumerate(examples):
            encoding = self.tokenizer(e["tokens"], is_split_into_words=True, truncation=True,
                                      max_length=self.max_length)
            word_ids = encoding.word_ids()
            labels, previous = [], None
            for word in word_ids:
                if word is None:
                    labels.append(-100)
                elif word != previous:
                    labels.append(index[e["tags"][word]])
                else:
                    labels.append(inside[index[e["tags"][word]]] if self.options.label_all_pieces else -100)
                previous = word
            features.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"],
                             "labels": labels, "word_ids": word_ids, "example": n})
        return features

    def collate(self, features, generator=None):
        return self.pad(features, ("input_ids", "attention_mask", "labels"))

    def outputs(self, batch, output):
        lengths = batch["attention_mask"].sum(1).tolist()
        return [row[:n] for row, n in zip(output.logits.argmax(-1).tolist(), lengths)]

    def score(self, examples, features, outputs):
        predictions, references = [], []
        for feature, predicted in zip(features, outputs):
            tags = examples[feature["example"]]["tags"]
            # Words cut off by max_length are predicted "O", so truncation costs recall instead of hiding it.
            words = ["O"] * len(tags)
            previous = None
            for word, label in zip(feature["word_ids"], predicted):
                if word is not None and word != previous:
                    words[word] = self.names[label]
                previous = word
            predictions.append(words)
            references.append(tags)
        scores = metrics.entity_scores(predictions, references)
        flat_p = [t for s in predictions for t in s]
        flat_r = [t for s in references for t in s]
        return {**scores, "accuracy": metrics.accuracy(flat_p, flat_r)}

"""The five tasks: each checks its records, turns them into features, batches them and scores outputs.

Record formats: see formats.FORMATS.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from . import metrics
from .collate import MASK_MODES, collate, mask_tokens
from .data import Record
from .formats import TASKS



class Task:
    """What the trainer needs to know about a task (subclasses fill it in)."""

    name: str
    model_class: str  # the name of the head class in roberta_prelayernorm
    metric: str  # the validation metric that picks the best model
    greater_is_better = True

    def __init__(self, tokenizer, max_length: int = 128):
        self.tokenizer = tokenizer
        self.max_length = max_length

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
        return collate(features, self.tokenizer.pad_token_id, ("input_ids", "attention_mask"), ("labels",))

    def outputs(self, batch: dict, output) -> list:
        """What scoring needs from a forward pass, one item per feature, as plain Python values (by default
        each feature's logits)."""
        return output.logits.float().tolist()

    def score(self, examples: list[dict], features: list[dict], outputs: list) -> dict:
        raise NotImplementedError


def _text(record: Record, name: str, required: bool = True) -> Optional[str]:
    value = record.get(name, str, required)
    if value is not None and not value.strip():
        raise record.error(name, "is empty")
    return value


def _str_list(record: Record, name: str) -> list[str]:
    value = record.get(name, list)
    if not value:
        raise record.error(name, "is an empty list")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise record.error(name, f"item {i} is {type(item).__name__} {item!r:.40}; expected str")
    return value


class SequenceClassification(Task):
    name = "sequence-classification"
    model_class = "RobertaPreLayerNormForSequenceClassification"

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
        return [{"text": _text(r, "text"), "text_pair": _text(r, "text_pair", required=False), "label": self._label(r)}
                for r in records]

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


class TokenClassification(Task):
    """NER-style tagging. Each word's label goes on its first sub-word piece (others are ignored, -100), or
    with label_all_pieces on every piece (a B- tag's continuation pieces get its I- tag)."""

    name = "token-classification"
    model_class = "RobertaPreLayerNormForTokenClassification"
    metric = "f1"

    def __init__(self, tokenizer, max_length: int = 128, label_all_pieces: bool = False):
        super().__init__(tokenizer, max_length)
        self.label_all_pieces = label_all_pieces
        self.names: list[str] = []

    def fit(self, records):
        tags = {t for r in records for t in _str_list(r, "tags")}
        self.names = (["O"] if "O" in tags else []) + sorted(tags - {"O"})

    def from_config(self, config):
        self.names = [config.id2label[i] for i in range(config.num_labels)]

    def config_overrides(self):
        return {"id2label": dict(enumerate(self.names))}

    def examples(self, records):
        examples = []
        for r in records:
            tokens, tags = _str_list(r, "tokens"), _str_list(r, "tags")
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
                    labels.append(inside[index[e["tags"][word]]] if self.label_all_pieces else -100)
                previous = word
            features.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"],
                             "labels": labels, "word_ids": word_ids, "example": n})
        return features

    def collate(self, features, generator=None):
        return collate(features, self.tokenizer.pad_token_id, ("input_ids", "attention_mask", "labels"))

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


class QuestionAnswering(Task):
    """SQuAD-style extractive QA. Long contexts are split into windows of max_length tokens overlapping by
    `stride`; an answer maps to the token span holding it, or to <s> (position 0) where a window lacks it or the
    question is unanswerable. Prediction takes the best span over the windows, or no answer when <s> scores
    higher (SQuAD v2)."""

    name = "question-answering"
    model_class = "RobertaPreLayerNormForQuestionAnswering"
    metric = "f1"
    n_best, max_answer_tokens = 20, 30

    def __init__(self, tokenizer, max_length: int = 128, stride: int = 32):
        super().__init__(tokenizer, max_length)
        self.stride = stride

    def config_overrides(self):
        return {"num_labels": 2}

    def examples(self, records):
        examples = []
        for r in records:
            question, context = _text(r, "question"), _text(r, "context")
            answers = r.get("answers", dict)
            texts, starts = answers.get("text"), answers.get("answer_start")
            if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
                raise r.error("answers", "must be {\"text\": [str, ...], \"answer_start\": [int, ...]} with lists "
                                         f"of equal length (empty for no answer); got {answers!r:.80}")
            for text, start in zip(texts, starts):
                if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
                    raise r.error("answers", f"has text {text!r:.40} / answer_start {start!r}; expected str / int")
                if not 0 <= start <= len(context) - len(text) or not text:
                    raise r.error("answers.answer_start", f"{start} with answer {text!r:.40} is outside the "
                                                          f"context's {len(context)} characters (or the text is empty)")
                if context[start:start + len(text)] != text:
                    raise r.error("answers.answer_start", f"{start} does not point at {text!r:.40} in the context "
                                                          f"(found {context[start:start + len(text)]!r:.40})")
            examples.append({"id": r.fields.get("id", str(r.where)), "question": question, "context": context,
                             "answers": {"text": texts, "answer_start": starts}, "where": r.where})
        return examples

    def features(self, examples):
        features = []
        for n, e in enumerate(examples):
            room = self.max_length - len(self.tokenizer(e["question"], add_special_tokens=False)["input_ids"]) - 4
            if room <= self.stride:
                raise ValueError(
                    f"{e['where']}: field 'question' is too long for max_length={self.max_length} with "
                    f"stride={self.stride}: {room} context tokens per window left, need more than the stride"
                )
            encoding = self.tokenizer(e["question"], e["context"], truncation="only_second",
                                      max_length=self.max_length, stride=self.stride,
                                      return_overflowing_tokens=True, return_offsets_mapping=True)
            for row in range(len(encoding["input_ids"])):
                sequence = encoding.sequence_ids(row)
                offsets = [o if s == 1 else None for o, s in zip(encoding["offset_mapping"][row], sequence)]
                start = end = 0
                if e["answers"]["text"]:
                    first = e["answers"]["answer_start"][0]
                    last = first + len(e["answers"]["text"][0])
                    inside = [i for i, o in enumerate(offsets) if o is not None and o[0] < last and o[1] > first]
                    context = [i for i, o in enumerate(offsets) if o is not None]
                    if inside and offsets[context[0]][0] <= first and offsets[context[-1]][1] >= last:
                        start, end = inside[0], inside[-1]
                features.append({"input_ids": encoding["input_ids"][row],
                                 "attention_mask": encoding["attention_mask"][row],
                                 "start_positions": start, "end_positions": end, "offsets": offsets, "example": n})
        return features

    def collate(self, features, generator=None):
        return collate(features, self.tokenizer.pad_token_id, ("input_ids", "attention_mask"),
                       ("start_positions", "end_positions"))

    def outputs(self, batch, output):
        lengths = batch["attention_mask"].sum(1).tolist()
        return [(s[:n], e[:n]) for s, e, n in zip(output.start_logits.float().tolist(),
                                                  output.end_logits.float().tolist(), lengths)]

    def predict(self, example: dict, windows: list[tuple[dict, tuple]]) -> str:
        """The answer text for one example from its windows' logits ("" for no answer)."""
        best, best_score, null_score = "", float("-inf"), float("inf")
        for feature, (start_logits, end_logits) in windows:
            null_score = min(null_score, start_logits[0] + end_logits[0])
            offsets = feature["offsets"]
            top_starts = sorted(range(len(start_logits)), key=start_logits.__getitem__)[-self.n_best:]
            top_ends = sorted(range(len(end_logits)), key=end_logits.__getitem__)[-self.n_best:]
            for s in top_starts:
                for t in top_ends:
                    if offsets[s] is None or offsets[t] is None or t < s or t - s + 1 > self.max_answer_tokens:
                        continue
                    score = start_logits[s] + end_logits[t]
                    if score > best_score:
                        best_score, best = score, example["context"][offsets[s][0]:offsets[t][1]]
        return best if best_score > null_score else ""

    def score(self, examples, features, outputs):
        windows: dict[int, list] = {}
        for feature, output in zip(features, outputs):
            windows.setdefault(feature["example"], []).append((feature, output))
        predictions = [self.predict(e, windows[n]) for n, e in enumerate(examples)]
        return metrics.squad_scores(predictions, [e["answers"]["text"] for e in examples])


class MultipleChoice(Task):
    name = "multiple-choice"
    model_class = "RobertaPreLayerNormForMultipleChoice"
    metric = "accuracy"

    def examples(self, records):
        examples = []
        for r in records:
            prompt, choices = _text(r, "prompt"), _str_list(r, "choices")
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


class MaskedLM(Task):
    """Masked-LM pre-training: each text is <s> text </s>, the texts concatenated and cut into blocks of
    max_length tokens (the last may be shorter); a fresh `rate` of the tokens is masked in every batch."""

    name = "masked-lm"
    model_class = "RobertaPreLayerNormForMaskedLM"
    metric = "loss"
    greater_is_better = False

    def __init__(self, tokenizer, max_length: int = 128, rate: float = 0.15, mask_mode: str = "80-10-10"):
        super().__init__(tokenizer, max_length)
        if not 0 < rate < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {rate}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; masked-lm needs one")
        self.rate, self.mask_mode = rate, mask_mode

    def examples(self, records):
        return [{"text": _text(r, "text")} for r in records]

    def features(self, examples):
        stream, special = [], []
        for start in range(0, len(examples), 1000):
            encoding = self.tokenizer([e["text"] for e in examples[start:start + 1000]],
                                      return_special_tokens_mask=True, verbose=False)
            for ids, mask in zip(encoding["input_ids"], encoding["special_tokens_mask"]):
                stream += ids
                special += mask
        return [{"input_ids": stream[i:i + self.max_length], "special_tokens_mask": special[i:i + self.max_length],
                 "attention_mask": [1] * len(stream[i:i + self.max_length]), "example": i // self.max_length}
                for i in range(0, len(stream), self.max_length)]

    def collate(self, features, generator=None):
        batch = collate(features, self.tokenizer.pad_token_id, ("input_ids", "attention_mask", "special_tokens_mask"))
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], batch.pop("special_tokens_mask"), self.rate, self.mask_mode,
            self.tokenizer.mask_token_id, len(self.tokenizer), generator)
        return batch

    def config_overrides(self):
        return {"sparse_prediction": True}  # the LM head (and the last layer) run at the masked positions only

    def outputs(self, batch, output):
        labels = batch["labels"].to(output.logits.device)
        labelled = labels != -100  # (B, T)
        logits = output.logits  # (M, V) with sparse prediction, else (B, T, V)
        if logits.dim() == 3:
            logits = logits[labelled]
        losses = F.cross_entropy(logits.float(), labels[labelled], reduction="none")  # (M,)
        rows = labelled.nonzero()[:, 0]  # row-major, the order of the sparse logits
        sums = losses.new_zeros(labels.size(0)).index_add_(0, rows, losses)
        return list(zip(sums.tolist(), labelled.sum(1).tolist()))

    def score(self, examples, features, outputs):
        total, count = sum(s for s, _ in outputs), sum(c for _, c in outputs)
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": metrics.perplexity(loss), "masked_tokens": count}


def make_task(name: str, tokenizer, max_length: int = 128, *, stride: int = 32, label_all_pieces: bool = False,
              mlm_probability: float = 0.15, mask_mode: str = "80-10-10") -> Task:
    """The Task object for `name` (one of TASKS) with its options."""
    if name == "sequence-classification":
        return SequenceClassification(tokenizer, max_length)
    if name == "token-classification":
        return TokenClassification(tokenizer, max_length, label_all_pieces)
    if name == "question-answering":
        return QuestionAnswering(tokenizer, max_length, stride)
    if name == "multiple-choice":
        return MultipleChoice(tokenizer, max_length)
    if name == "masked-lm":
        return MaskedLM(tokenizer, max_length, mlm_probability, mask_mode)
    raise ValueError(f"task={name!r} is not one of {', '.join(TASKS)}")

"""Extractive question answering: the span of a context that answers a question."""

from __future__ import annotations

import dataclasses

from ..errors import SettingError
from ..flags import flag, need
from . import metrics
from .base import Options, Task, record_text


@dataclasses.dataclass
class QuestionAnsweringOptions(Options):
    stride: int = flag(32, "window overlap in tokens")

    def check(self, max_length: int) -> None:
        need(0 <= self.stride < max_length, self, "stride", f"an int in [0, max_length={max_length})")


def question_windows(tokenizer, question: str, context: str, max_length: int, stride: int, no_room) -> dict:
    """<s> question </s></s> context </s> in windows of max_length tokens, a long context cut into pieces
    overlapping by `stride` tokens (with offsets; overflow_to_sample_mapping all 0). Training and the pipeline
    share it. Where the question and special tokens leave no more than `stride` tokens for the context, raises
    ValueError(no_room(room, special_tokens))."""
    from ..tokenizer import window_room

    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = window_room(max_length, specials, len(tokenizer(question, add_special_tokens=False)["input_ids"]))
    if stride >= room:
        raise SettingError(no_room(room, specials))
    return tokenizer(question, context, truncation="only_second", max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True)


class QuestionAnswering(Task):
    """SQuAD-style extractive QA. Long contexts are split into windows of max_length tokens overlapping by
    `stride`; an answer maps to the token span holding it, or to <s> (position 0) where a window lacks it or the
    question is unanswerable. Prediction takes the best span over the windows, or no answer when <s> scores
    higher (SQuAD v2)."""

    name = "question-answering"
    pipeline_names = ("question-answering",)
    hub_tag = "question-answering"
    Options = QuestionAnsweringOptions
    record_format = (
        '  question-answering       {"question": str, "context": str, '
        '"answers": {"text": [str], "answer_start": [int]}}\n'
        '                           (SQuAD); empty lists mark an unanswerable question. "id" is optional.\n'
    )

    @staticmethod
    def head_class() -> type:
        from ..modeling import RobertaPreLayerNormForQuestionAnswering as head
        return head
    metric = "f1"
    n_best, max_answer_tokens = 20, 30

    def config_overrides(self):
        return {"num_labels": 2}

    def examples(self, records):
        examples = []
        for r in records:
            question, context = record_text(r, "question"), record_text(r, "context")
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
            encoding = question_windows(
                self.tokenizer, e["question"], e["context"], self.max_length, self.options.stride,
                lambda room, specials: f"{e['where']}: field 'question' is too long for max_length={self.max_length} "
                                       f"with stride={self.options.stride}: {room} context tokens per window left, "
                                       "need more than the stride")
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
        return self.pad(features, ("input_ids", "attention_mask"), ("start_positions", "end_positions"))

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

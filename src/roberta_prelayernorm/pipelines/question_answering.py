"""question-answering: the span of a context that answers a question."""

from __future__ import annotations

import numpy as np

from ..errors import SettingError
from ..tasks.question_answering import question_windows
from .base import Pipeline, check_int
from .command import Command, positive_int


def answer_options(parser):
    parser.add_argument("--question", help="the question (with --context; else --input or stdin)")
    parser.add_argument("--context", help="the text to find the answer in")
    parser.add_argument("--top-k", type=positive_int, default=1, help="number of answers (default 1: an object)")
    parser.add_argument("--doc-stride", type=int, help="overlap of the chunks of a long context, in tokens")
    parser.add_argument("--max-seq-len", type=positive_int, help="tokens per chunk (default min(384, model's))")
    parser.add_argument("--max-question-len", type=positive_int, default=64, help="question tokens kept (64)")
    parser.add_argument("--max-answer-len", type=positive_int, default=15, help="longest answer in tokens (15)")
    parser.add_argument("--handle-impossible-answer", action="store_true", help="allow the empty answer")
    parser.add_argument("--no-align-to-words", action="store_true", help="do not widen answers to whole words")


class QuestionAnsweringPipeline(Pipeline):
    """`qa(question="...", context="...")` -> {"score", "start", "end", "answer"} (character offsets into the
    context); `top_k=n` gives a list of the n best answers.

    Inputs: question= and context= (strings, or lists paired up; a single context is shared by a list of
    questions), a {"question", "context"} dict, or a list of dicts. A context too long for `max_seq_len`
    tokens (default min(384, model_max_length)) is split into chunks overlapping by `doc_stride` tokens
    (default max_seq_len // 2, at most 128); questions are cut to `max_question_len` tokens, answers to
    `max_answer_len`. `handle_impossible_answer=True` lets the empty answer win; `align_to_words` (default
    True) widens answers to whole words.
    """

    task = "question-answering"
    command = Command(
        "answer", "find the answer to a question in a context", fields={"question": str, "context": str},
        optional={}, example='roberta-prelayernorm answer --model ./my-qa --question "Who was Jim Henson?" '
                             '--context "Jim Henson was a puppeteer"',
        add_options=answer_options,
        options=lambda a: {"top_k": a.top_k, "doc_stride": a.doc_stride, "max_seq_len": a.max_seq_len,
                           "max_question_len": a.max_question_len, "max_answer_len": a.max_answer_len,
                           "handle_impossible_answer": a.handle_impossible_answer,
                           "align_to_words": not a.no_align_to_words},
        from_args=lambda a: [{"question": a.question, "context": a.context}]
        if a.question is not None or a.context is not None else [])
    output_keys = ("start_logits", "end_logits")
    token_outputs = output_keys
    defaults = {"top_k": 1, "doc_stride": None, "max_seq_len": None, "max_question_len": 64, "max_answer_len": 15,
                "handle_impossible_answer": False, "align_to_words": True}

    def check_options(self, options):
        options = super().check_options(options)
        for name in ("top_k", "max_answer_len", "max_question_len", "max_seq_len", "doc_stride"):
            value = options[name]
            lowest = 0 if name == "doc_stride" else 1
            if value is None and name in ("max_seq_len", "doc_stride"):
                continue
            check_int(name, value, lowest)
        if options["max_seq_len"] is None:
            options["max_seq_len"] = min(self.tokenizer.model_max_length, 384)
        if options["doc_stride"] is None:
            options["doc_stride"] = min(options["max_seq_len"] // 2, 128)
        if options["doc_stride"] > options["max_seq_len"]:
            raise SettingError(f"doc_stride={options['doc_stride']} is larger than "
                               f"max_seq_len={options['max_seq_len']}")
        # Lengths no input could fit, refused here rather than on every input.
        limit = self.tokenizer.model_max_length
        if options["max_seq_len"] > limit:
            raise SettingError(f"max_seq_len={options['max_seq_len']} is longer than the model takes: at most {limit}")
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        if options["max_seq_len"] < specials + 2 + options["doc_stride"]:
            raise SettingError(f"max_seq_len={options['max_seq_len']} leaves no room for a question and a context with "
                               f"doc_stride={options['doc_stride']}: it must be at least {specials + 2} + doc_stride "
                               f"({specials} special tokens, one question token and one context token)")
        return options

    def split_inputs(self, inputs, kwargs):
        question, context = kwargs.pop("question", None), kwargs.pop("context", None)
        if inputs is not None:
            if question is not None or context is not None:
                raise TypeError("give inputs (dicts) or question= and context=, not both")
            if isinstance(inputs, dict):
                return [inputs], True
            return list(inputs), False
        if question is None or context is None:
            raise TypeError("question-answering needs question= and context= (or {'question', 'context'} dicts)")
        if isinstance(question, str) and isinstance(context, str):
            return [{"question": question, "context": context}], True
        if isinstance(context, str):
            context = [context] * len(question)
        if isinstance(question, str) or len(question) != len(context):
            raise SettingError(f"question and context must be lists of the same length (or a single context); got "
                               f"{describe(question)} and {describe(context)}")
        return [{"question": q, "context": c} for q, c in zip(question, context)], False

    def preprocess(self, item, options):
        if not isinstance(item, dict) or set(item) != {"question", "context"}:
            raise SettingError(f"a question-answering input must be a dict with keys 'question' and 'context', got "
                               f"{item!r:.80}")
        for key in ("question", "context"):
            if not isinstance(item[key], str) or not item[key]:
                raise SettingError(f"{key} must be a non-empty string, got {item[key]!r:.80}")
        question = self.truncate_question(item["question"], options["max_question_len"])
        max_seq_len, doc_stride = options["max_seq_len"], options["doc_stride"]
        encoding = question_windows(
            self.tokenizer, question, item["context"], max_seq_len, doc_stride,
            lambda room, specials: f"doc_stride={doc_stride} leaves no room for the context: max_seq_len={max_seq_len} "
                                   f"minus the question and {specials} special tokens is {room}; use a smaller "
                                   "doc_stride, a larger max_seq_len or a shorter max_question_len")
        features = []
        for span, input_ids in enumerate(encoding["input_ids"]):
            # Only context tokens (and <s>, the "no answer" slot some models use) can be part of an answer.
            p_mask = [sequence != 1 for sequence in encoding.sequence_ids(span)]
            for index, token in enumerate(input_ids):
                if token == self.tokenizer.cls_token_id:
                    p_mask[index] = False
            features.append({"input_ids": input_ids, "p_mask": p_mask, "encoding": encoding.encodings[span]})
        return features

    def truncate_question(self, question: str, max_question_len: int) -> str:
        """The question cut after its first `max_question_len` tokens."""
        offsets = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return question if len(offsets) <= max_question_len else question[:offsets[max_question_len - 1][1]]

    def postprocess(self, item, features, outputs, options):
        context, top_k = item["context"], options["top_k"]
        # Answers with their words widened may coincide, so look at more candidates than asked for.
        candidates = top_k * 2 + 10 if options["align_to_words"] else top_k
        null_score, answers = 1000000.0, []
        for feature, output in zip(features, outputs):
            starts, ends, scores, null_score = best_spans(
                output["start_logits"].numpy(), output["end_logits"].numpy(), np.array(feature["p_mask"]),
                null_score, candidates, options["handle_impossible_answer"], options["max_answer_len"])
            for s, e, score in zip(starts, ends, scores):
                start, end = char_span(feature["encoding"], int(s), int(e), options["align_to_words"])
                text = context[start:end]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:  # one answer found in two chunks (or widened to the same words)
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": start, "end": end, "answer": text})
        if options["handle_impossible_answer"]:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]
        return answers[0] if top_k == 1 and answers else answers


def best_spans(start, end, p_mask, null_score: float, top_k: int, handle_impossible_answer: bool,
               max_answer_len: int):
    """The top_k (start, end) token spans by P(start) * P(end), as transformers' select_starts_ends/decode_spans.

    Returns starts, ends, scores and the lowest "no answer" score (P(<s>) * P(<s>)) seen so far.
    """
    allowed = ~p_mask.astype(bool)
    start = np.where(allowed, start, -10000.0)
    end = np.where(allowed, end, -10000.0)
    start = np.exp(start - start.max())
    start = start / start.sum()
    end = np.exp(end - end.max())
    end = end / end.sum()
    if handle_impossible_answer:
        null_score = min(null_score, float(start[0] * end[0]))
    start[0] = end[0] = 0.0
    # Span scores: upper triangle (end >= start), no longer than max_answer_len tokens.
    candidates = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = [np.argmax(flat)]
    elif len(flat) <= top_k:  # argpartition needs top_k < len(flat)
        order = np.argsort(-flat)
    else:
        best = np.argpartition(-flat, top_k)[:top_k]
        order = best[np.argsort(-flat[best])]
    starts, ends = np.unravel_index(order, candidates.shape)
    # Candidates are chosen before spans outside the context are dropped: transformers returns fewer than
    # top_k answers then, and so does this.
    keep = np.isin(starts, allowed.nonzero()[0]) & np.isin(ends, allowed.nonzero()[0])
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[starts, ends], null_score


def char_span(encoding, start: int, end: int, align_to_words: bool) -> tuple[int, int]:
    """Character offsets in the context of tokens start..end, widened to whole words if asked."""
    if align_to_words:
        start_word, end_word = encoding.token_to_word(start), encoding.token_to_word(end)
        if start_word is not None and end_word is not None:
            return (encoding.word_to_chars(start_word, sequence_index=1)[0],
                    encoding.word_to_chars(end_word, sequence_index=1)[1])
    return encoding.offsets[start][0], encoding.offsets[end][1]


def describe(value) -> str:
    return "a str" if isinstance(value, str) else f"{type(value).__name__} of {len(value)}"

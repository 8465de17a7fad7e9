"""pipelines/: the task pipelines against transformers' pipelines on the same tiny checkpoints (the oracle).

Each checkpoint is a tiny random encoder with a head whose weights are scaled up, so scores are spread out and
rankings are not decided by float noise; the tokenizer is the `bpe_dir` vocabulary saved by transformers'
RobertaTokenizerFast with a short model_max_length, so long inputs are split.
"""

from __future__ import annotations

import contextlib
import random
import warnings

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.pipelines import pipeline
from training_utils import LONG

transformers = pytest.importorskip("transformers")

MAX_LEN = 40  # tokenizer.model_max_length: texts longer than this are split into chunks
SCORE_ATOL = 1e-4
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "MISC"}

TEXTS = [
    "Hello, my dog is cute",
    "The function returns None when the list is empty.",
    "x",
    "Guido van Rossum created Python in Amsterdam; Paris and New York use it.",
]
LONG_TEXT = " ".join(TEXTS[1:] * 3) + " Use the with statement to open files in Berlin."
CONTEXT = ("Python is a programming language created by Guido van Rossum. The first release was in 1991. "
           "The with statement wraps a block with methods defined by a context manager. "
           "Exceptions are raised with the raise statement and caught with try.")
QUESTIONS = ["Who created Python?", "When was the first release?", "What does the with statement do?"]


def build(folder, cls_name: str, bpe_dir, seed: int = 0, **config):
    """Save a tiny random model of class `cls_name` (heads scaled up) and the tokenizer into `folder`."""
    torch.manual_seed(seed)
    cfg = rp.RobertaPreLayerNormConfig(
        vocab_size=1500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=MAX_LEN + 2, type_vocab_size=1, layer_norm_eps=1e-5, initializer_range=0.3,
        **config)
    model = getattr(rp, cls_name)(cfg).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith("roberta_prelayernorm.") and "layer_norm" not in name:  # the head
                param.normal_(0.0, 1.0 if param.dim() > 1 else 0.1)
    model.save_pretrained(folder)
    tokenizer = transformers.RobertaTokenizerFast(
        vocab_file=str(bpe_dir / "vocab.json"), merges_file=str(bpe_dir / "merges.txt"), model_max_length=MAX_LEN)
    tokenizer.save_pretrained(folder)
    return str(folder)


def theirs(task, folder, **kwargs):
    return transformers.pipeline(task, model=folder, tokenizer=folder, device="cpu", **kwargs)


def assert_same(ours, reference, where=""):
    """Equal structures; floats (scores) to SCORE_ATOL, everything else exactly."""
    if isinstance(reference, dict):
        assert isinstance(ours, dict) and set(ours) == set(reference), f"{where}: {ours!r} != {reference!r}"
        for key in reference:
            assert_same(ours[key], reference[key], f"{where}.{key}")
    elif isinstance(reference, (list, tuple)):
        assert isinstance(ours, list) and len(ours) == len(reference), f"{where}: {ours!r} != {reference!r}"
        for i, (a, b) in enumerate(zip(ours, reference)):
            assert_same(a, b, f"{where}[{i}]")
    elif hasattr(reference, "dtype") and reference.dtype.kind == "f" or isinstance(reference, float):
        assert isinstance(ours, float), f"{where}: {ours!r} is not a float"
        assert abs(ours - float(reference)) <= SCORE_ATOL, f"{where}: {ours} != {float(reference)}"
    else:
        if hasattr(reference, "item"):
            reference = reference.item()
        assert type(ours) is type(reference) and ours == reference, f"{where}: {ours!r} != {reference!r}"


# -- checkpoints ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(bpe_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    seq = "RobertaPreLayerNormForSequenceClassification"
    return {
        "single": build(root / "single", seq, bpe_dir, seed=2, id2label={0: "negative", 1: "neutral", 2: "positive"}),
        "multi": build(root / "multi", seq, bpe_dir, num_labels=4, problem_type="multi_label_classification"),
        "one": build(root / "one", seq, bpe_dir, num_labels=1),
        "regression": build(root / "regression", seq, bpe_dir, num_labels=1, problem_type="regression"),
        "ner": build(root / "ner", "RobertaPreLayerNormForTokenClassification", bpe_dir, id2label=NER_LABELS),
        "qa": build(root / "qa", "RobertaPreLayerNormForQuestionAnswering", bpe_dir),
        "mlm": build(root / "mlm", "RobertaPreLayerNormForMaskedLM", bpe_dir),
        "mc": build(root / "mc", "RobertaPreLayerNormForMultipleChoice", bpe_dir, num_labels=1),
    }


PAIRS = [{"text": TEXTS[0], "text_pair": TEXTS[1]}, {"text": TEXTS[2], "text_pair": TEXTS[3]}]


# -- text-classification --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["single", "multi", "one", "regression"])
def test_text_classification_equals_transformers(folders, kind):
    ours = pipeline("text-classification", model=folders[kind], batch_size=3)
    reference = theirs("text-classification", folders[kind])
    options = [{}, {"top_k": 2}, {"top_k": None, "function_to_apply": "softmax"},
               {"function_to_apply": "sigmoid", "top_k": 1}, {"function_to_apply": "none"}]
    for kwargs in options:
        for inputs in (TEXTS + PAIRS, TEXTS[1], PAIRS[0]):
            assert_same(ours(inputs, **kwargs), reference(inputs, **kwargs), f"{kind} {kwargs} {inputs!r:.30}")
    if kind == "single":  # the scaled head makes different texts get different labels
        assert len({result["label"] for result in ours(TEXTS + PAIRS)}) > 1


def test_sentiment_analysis_alias_and_options_at_creation(folders):
    ours = pipeline("sentiment-analysis", model=folders["single"], top_k=None)
    reference = theirs("sentiment-analysis", folders["single"], top_k=None)
    assert_same(ours(TEXTS), reference(TEXTS))
    assert_same(ours(TEXTS, top_k=1), reference(TEXTS, top_k=1))  # a call overrides the creation option


# -- fill-mask ------------------------------------------------------------------------------------------
MASKED = ["The capital of France is <mask>.", "Use <mask> to open files and <mask> them.", "<mask>",
          "Exceptions are <mask> with the raise statement."]


def test_fill_mask_equals_transformers(folders):
    ours = pipeline("fill-mask", model=folders["mlm"], batch_size=2)
    reference = theirs("fill-mask", folders["mlm"])
    for kwargs in ({}, {"top_k": 1}, {"top_k": 12}, {"targets": [" the", "Ġfile", "zzzq"]}, {"targets": "Ġthe"},
                   {"targets": [" the", " raise"], "top_k": 5}):
        assert_same(ours(MASKED, **kwargs), reference(MASKED, **kwargs), str(kwargs))
        assert_same(ours(MASKED[0], **kwargs), reference(MASKED[0], **kwargs), str(kwargs))
    tokens = {row["token"] for row in ours(MASKED[0], top_k=12)}
    assert len(tokens) == 12


def test_fill_mask_needs_a_mask(folders):
    with pytest.raises(ValueError, match="no mask token"):
        pipeline("fill-mask", model=folders["mlm"])("no mask here")


# -- token-classification -------------------------------------------------------------------------------
STRATEGIES = ["none", "simple", "first", "average", "max"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_token_classification_equals_transformers(folders, strategy):
    words = strategy in ("first", "average", "max")  # transformers' warning for them, as transformers gives it
    with pytest.warns(UserWarning, match="fallback heuristic") if words else contextlib.nullcontext():
        ours = pipeline("ner", model=folders["ner"], aggregation_strategy=strategy, batch_size=3)
    reference = theirs("ner", folders["ner"], aggregation_strategy=strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fallback heuristic" for word-based strategies, on both sides
        for kwargs in ({}, {"ignore_labels": []}, {"ignore_labels": ["O", "MISC"]}):
            found = ours(TEXTS, **kwargs)
            assert_same(found, reference(TEXTS, **kwargs), f"{strategy} {kwargs}")
            assert_same(ours(TEXTS[3], **kwargs), reference(TEXTS[3], **kwargs), f"{strategy} {kwargs}")
        # A text longer than the model: cut at model_max_length, or with stride split and merged.
        assert_same(ours(LONG_TEXT), reference(LONG_TEXT), f"{strategy} long")
        if strategy != "none":
            for stride in (0, 8, 20):
                found = ours(LONG_TEXT, stride=stride)
                assert_same(found, reference(LONG_TEXT, stride=stride), f"{strategy} stride={stride}")
                assert max(entity["end"] for entity in found) > len(LONG_TEXT) - 20  # reaches the end
        assert len({entity.get("entity", entity.get("entity_group")) for entity in ours(TEXTS[3])}) > 1
        for entity in ours(TEXTS[3]):  # spans point into the text (a lone "Ġ" token has an empty span)
            assert 0 <= entity["start"] <= entity["end"] <= len(TEXTS[3])


def test_token_classification_stride_needs_aggregation(folders):
    with pytest.raises(ValueError, match="aggregation_strategy"):
        pipeline("ner", model=folders["ner"], stride=4)
    with pytest.raises(ValueError, match="aggregation_strategy='bogus'"):
        pipeline("ner", model=folders["ner"], aggregation_strategy="bogus")


# -- question-answering ---------------------------------------------------------------------------------
def test_question_answering_equals_transformers(folders):
    ours = pipeline("question-answering", model=folders["qa"], batch_size=3)
    reference = theirs("question-answering", folders["qa"])
    options = [{}, {"top_k": 3}, {"handle_impossible_answer": True, "top_k": 20}, {"max_answer_len": 2, "top_k": 5},
               {"doc_stride": 5, "max_seq_len": 24, "top_k": 4}, {"align_to_words": False, "top_k": 3},
               {"max_seq_len": 32}]
    for kwargs in options:
        found = ours(question=QUESTIONS, context=CONTEXT, **kwargs)
        assert_same(found, reference(question=QUESTIONS, context=CONTEXT, **kwargs), str(kwargs))
        one = {"question": QUESTIONS[0], "context": CONTEXT}
        assert_same(ours(one, **kwargs), reference(one, **kwargs), str(kwargs))
        assert_same(ours(question=QUESTIONS[1], context=TEXTS[3], **kwargs),
                    reference(question=QUESTIONS[1], context=TEXTS[3], **kwargs), str(kwargs))
    for answer in ours(question=QUESTIONS[0], context=CONTEXT, top_k=5):
        assert CONTEXT[answer["start"]:answer["end"]] == answer["answer"]
    assert len({answer["answer"] for answer in found}) > 1


def test_question_answering_max_question_len_cuts_the_question(folders):
    # transformers' pipeline ignores max_question_len with fast tokenizers (only its slow-tokenizer path cuts the
    # question); here the question is cut to its first max_question_len tokens, as documented.
    ours = pipeline("question-answering", model=folders["qa"])
    reference = theirs("question-answering", folders["qa"])
    question = "What does the with statement do with the methods of a context manager in Python?"
    tokenizer = ours.tokenizer
    cut = question[:tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"][5][1]]
    options = {"top_k": 3, "doc_stride": 8}
    assert_same(ours(question=question, context=CONTEXT, max_question_len=6, **options),
                reference(question=cut, context=CONTEXT, **options))
    assert_same(ours(question=question, context=CONTEXT, **options),
                reference(question=question, context=CONTEXT, **options))


def test_question_answering_doc_stride_must_leave_room(folders):
    # transformers' tokenizer panics here (pyo3_runtime.PanicException); this is a ValueError saying why.
    ours = pipeline("question-answering", model=folders["qa"])
    with pytest.raises(ValueError, match="doc_stride=20 .* room for the context"):
        ours(question="What does the with statement do with the methods of a context manager?", context=CONTEXT)


# -- multiple-choice (no transformers pipeline: compare with its model on a padded batch) ------------------
CHOICES = ["It is eaten with a fork and a knife.", "It is eaten while held in the hand.", "No.",
           "The with statement wraps a block."]


def test_multiple_choice_equals_transformers_model(folders):
    ours = pipeline("multiple-choice", model=folders["mc"], batch_size=3)
    model = transformers.AutoModelForMultipleChoice.from_pretrained(folders["mc"]).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folders["mc"])
    prompts = [TEXTS[0], TEXTS[1]]
    for prompt in prompts:
        encoding = tokenizer([prompt] * len(CHOICES), CHOICES, padding=True, return_tensors="pt")
        with torch.no_grad():
            probs = model(**{k: v.unsqueeze(0) for k, v in encoding.items()}).logits.softmax(-1)[0].tolist()
        order = sorted(range(len(CHOICES)), key=lambda i: -probs[i])
        expected = [{"choice": CHOICES[i], "index": i, "score": probs[i]} for i in order]
        assert_same(ours(prompt=prompt, choices=CHOICES), expected)
        assert_same(ours({"prompt": prompt, "choices": CHOICES}, top_k=2), expected[:2])
    batch = ours([{"prompt": p, "choices": CHOICES[:n]} for p, n in zip(prompts, (4, 2))])
    assert [len(result) for result in batch] == [4, 2]
    assert abs(sum(choice["score"] for choice in batch[1]) - 1) < 1e-6


# -- batching and shapes --------------------------------------------------------------------------------
def test_batches_are_length_sorted_padded_to_their_longest_and_results_in_order(folders, capsys):
    ours = pipeline("text-classification", model=folders["single"], batch_size=2, top_k=None)
    texts = [TEXTS[3], TEXTS[2], TEXTS[0], TEXTS[1], "a b"]
    widths, forward = [], ours.forward

    def spy(batch):
        widths.append((tuple(batch["input_ids"].shape), batch["attention_mask"].sum(1).tolist()))
        return forward(batch)

    ours.forward = spy
    batched = ours(texts)
    lengths = sorted((len(ours.tokenizer(t)["input_ids"]) for t in texts), reverse=True)
    assert [w for w, _ in widths] == [(2, lengths[0]), (2, lengths[2]), (1, lengths[4])]
    assert [n for _, rows in widths for n in rows] == lengths
    ours.forward = forward
    one_by_one = [ours(text) for text in texts]
    assert_same(batched, one_by_one)  # padding changes nothing, order is the input's
    assert capsys.readouterr().err == ""  # no progress bar when stderr is not a terminal


def test_single_input_gives_single_result_and_list_gives_list(folders):
    # transformers unwraps a list of one for fill-mask and question-answering; here a list gives a list.
    fill = pipeline("fill-mask", model=folders["mlm"])
    assert isinstance(fill([MASKED[0]]), list) and len(fill([MASKED[0]])) == 1
    assert fill([MASKED[0]])[0] == fill(MASKED[0])
    qa = pipeline("question-answering", model=folders["qa"])
    one = {"question": QUESTIONS[0], "context": CONTEXT}
    assert qa([one]) == [qa(one)]


def test_errors_name_the_argument(folders):
    with pytest.raises(ValueError, match="task='summarization'"):
        pipeline("summarization", model=folders["single"])
    with pytest.raises(TypeError, match="'bogus'"):
        pipeline("text-classification", model=folders["single"], bogus=1)
    with pytest.raises(ValueError, match="top_k must be an int >= 1"):
        pipeline("fill-mask", model=folders["mlm"])(MASKED[0], top_k=0)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline("text-classification", model=folders["single"], batch_size=0)
    with pytest.raises(ValueError, match="model is required"):
        pipeline("ner")
    with pytest.raises(rp.CheckpointNotFoundError):
        pipeline("ner", model=folders["single"] + "-missing")


def test_pipeline_is_exported_lazily():
    import subprocess
    import sys

    code = ("import sys, roberta_prelayernorm as rp; assert 'torch' not in sys.modules; "
            "from roberta_prelayernorm.pipelines import pipeline; assert 'torch' not in sys.modules; "
            "assert rp.pipeline is pipeline")
    subprocess.run([sys.executable, "-c", code], check=True)


def random_text(rng: random.Random, words: int) -> str:
    """Words of letters, digits, punctuation and non-ASCII, with runs of spaces, tabs and newlines between."""
    pieces = ["dog", "the", "Berlin", "1991", "é", "naïve", "--", "...", "日本語", "x", "it's", "🙂", "a.b"]
    spaces = [" ", " ", " ", "  ", "\t", "\n", " \n "]
    return "".join(rng.choice(pieces) + rng.choice(spaces) for _ in range(words))


@pytest.mark.usefixtures("one_thread")
def test_long_texts_are_cut_by_characters_with_the_same_ids(heads):
    classify = rp.pipeline("text-classification", model=heads["classify"], truncation=True)
    choose = rp.pipeline("multiple-choice", model=heads["choose"], truncation=True)
    tokenizer = classify.tokenizer
    seen, call = [], tokenizer.__call__

    class Recording(type(tokenizer)):
        """The tokenizer, recording the length of each text it is given."""

        def __call__(self, text, text_pair=None, **kwargs):
            seen.extend(len(t) for t in (text if isinstance(text, list) else [text]) if isinstance(t, str))
            return call(text, text_pair, **kwargs)

    tokenizer.__class__ = Recording
    rng = random.Random(0)
    for words in (3, 40, 300, 3000, 20000):
        text, short = random_text(rng, words), random_text(rng, 5)
        # Two long texts: the oracle, tokenizers' own truncation, makes overflowing pieces for every pair of
        # windows of the two (quadratic: gigabytes at 20,000 words each), so only up to 300 words.
        both = [{"text": text, "text_pair": text[::-1]}] if words <= 300 else []
        for item in [text, {"text": text, "text_pair": short}, {"text": short, "text_pair": text}] + both:
            expected = call(item, truncation=True) if isinstance(item, str) else call(
                item["text"], item["text_pair"], truncation=True)
            assert classify.features(item, classify.options) == [{"input_ids": expected["input_ids"]}]
        choices = [short, text[::-1]] if both else [short, short[::-1]]
        expected = call([text, text], choices, truncation=True)["input_ids"]
        assert [f["input_ids"] for f in choose.features({"prompt": text, "choices": choices}, choose.options)] \
            == expected
    # The 20,000-word texts (about 88,000 characters) reached the tokenizer cut; so does a pair of them.
    assert len(text) > 80_000 and max(seen) < 20_000
    assert len(classify.features({"text": text, "text_pair": text}, classify.options)[0]["input_ids"]) == 64


@pytest.mark.usefixtures("one_thread")
def test_pipelines_take_the_length_from_the_model_when_the_tokenizer_has_none(heads):
    tokenizer = rp.AutoTokenizer.from_pretrained(heads["classify"], model_max_length=None)
    assert tokenizer.model_max_length > 1e20
    classify = rp.pipeline("text-classification", model=heads["classify"], tokenizer=tokenizer)
    assert classify.tokenizer.model_max_length == 64
    assert classify(LONG, truncation=True)[0]["label"]

"""The documentation's usage examples run with only the import line changed, and give transformers' numbers.

Each snippet is the documentation's (v4.37 page this project started from), verbatim but for the import. The
hub id resolves offline to a cache entry laid out here: a tiny checkpoint of the snippet's head (as a
fine-tune on the hub would be) with a tokenizer trained in the tests.
"""

from __future__ import annotations

import pytest
import torch

from hubcache import add_to_hub_cache, go_offline
from parity import transformers_model

transformers = pytest.importorskip("transformers")

REPO = "andreasmadsen/efficient_mlm_m0.40"

SEQUENCE_CLASSIFICATION = '''
import torch
from transformers import AutoTokenizer, RobertaPreLayerNormForSequenceClassification
tokenizer = AutoTokenizer.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
model = RobertaPreLayerNormForSequenceClassification.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
inputs = tokenizer("Hello, my dog is cute", return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
predicted_class_id = logits.argmax().item()
# To train a model on `num_labels` classes, you can pass `num_labels=num_labels` to `.from_pretrained(...)`
num_labels = len(model.config.id2label)
model = RobertaPreLayerNormForSequenceClassification.from_pretrained("andreasmadsen/efficient_mlm_m0.40", num_labels=num_labels)
labels = torch.tensor([1])
loss = model(**inputs, labels=labels).loss
'''

MULTI_LABEL = '''
import torch
from transformers import AutoTokenizer, RobertaPreLayerNormForSequenceClassification
tokenizer = AutoTokenizer.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
model = RobertaPreLayerNormForSequenceClassification.from_pretrained("andreasmadsen/efficient_mlm_m0.40", problem_type="multi_label_classification")
inputs = tokenizer("Hello, my dog is cute", return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
predicted_class_ids = torch.arange(0, logits.shape[-1])[torch.sigmoid(logits).squeeze(dim=0) > 0.5]
# To train a model on `num_labels` classes, you can pass `num_labels=num_labels` to `.from_pretrained(...)`
num_labels = len(model.config.id2label)
model = RobertaPreLayerNormForSequenceClassification.from_pretrained(
    "andreasmadsen/efficient_mlm_m0.40", num_labels=num_labels, problem_type="multi_label_classification"
)
labels = torch.sum(
    torch.nn.functional.one_hot(predicted_class_ids[None, :].clone(), num_classes=num_labels), dim=1
).to(torch.float)
loss = model(**inputs, labels=labels).loss
'''

MULTIPLE_CHOICE = '''
from transformers import AutoTokenizer, RobertaPreLayerNormForMultipleChoice
import torch
tokenizer = AutoTokenizer.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
model = RobertaPreLayerNormForMultipleChoice.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
prompt = "In Italy, pizza served in formal settings, such as at a restaurant, is presented unsliced."
choice0 = "It is eaten with a fork and a knife."
choice1 = "It is eaten while held in the hand."
labels = torch.tensor(0).unsqueeze(0)  # choice0 is correct (according to Wikipedia ;)), batch size 1
encoding = tokenizer([prompt, prompt], [choice0, choice1], return_tensors="pt", padding=True)
outputs = model(**{k: v.unsqueeze(0) for k, v in encoding.items()}, labels=labels)  # batch size is 1
# the linear classifier still needs to be trained
loss = outputs.loss
logits = outputs.logits
'''

TOKEN_CLASSIFICATION = '''
from transformers import AutoTokenizer, RobertaPreLayerNormForTokenClassification
import torch
tokenizer = AutoTokenizer.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
model = RobertaPreLayerNormForTokenClassification.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
inputs = tokenizer(
    "HuggingFace is a company based in Paris and New York", add_special_tokens=False, return_tensors="pt"
)
with torch.no_grad():
    logits = model(**inputs).logits
predicted_token_class_ids = logits.argmax(-1)
# Note that tokens are classified rather then input words which means that
# there might be more predicted token classes than words.
# Multiple token classes might account for the same word
predicted_tokens_classes = [model.config.id2label[t.item()] for t in predicted_token_class_ids[0]]
labels = predicted_token_class_ids
loss = model(**inputs, labels=labels).loss
'''

QUESTION_ANSWERING = '''
from transformers import AutoTokenizer, RobertaPreLayerNormForQuestionAnswering
import torch
tokenizer = AutoTokenizer.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
model = RobertaPreLayerNormForQuestionAnswering.from_pretrained("andreasmadsen/efficient_mlm_m0.40")
question, text = "Who was Jim Henson?", "Jim Henson was a nice puppet"
inputs = tokenizer(question, text, return_tensors="pt")
with torch.no_grad():
    outputs = model(**inputs)
answer_start_index = outputs.start_logits.argmax()
answer_end_index = outputs.end_logits.argmax()
predict_answer_tokens = inputs.input_ids[0, answer_start_index : answer_end_index + 1]
# target is "nice puppet"
target_start_index = torch.tensor([14])
target_end_index = torch.tensor([15])
outputs = model(**inputs, start_positions=target_start_index, end_positions=target_end_index)
loss = outputs.loss
'''

SNIPPETS = {
    "sequence-classification": ("RobertaPreLayerNormForSequenceClassification", SEQUENCE_CLASSIFICATION,
                                {"num_labels": 3}, ["logits", "predicted_class_id", "loss"]),
    "multi-label": ("RobertaPreLayerNormForSequenceClassification", MULTI_LABEL,
                    {"num_labels": 4, "problem_type": "multi_label_classification"},
                    ["logits", "predicted_class_ids", "labels", "loss"]),
    "multiple-choice": ("RobertaPreLayerNormForMultipleChoice", MULTIPLE_CHOICE, {}, ["logits", "loss"]),
    "token-classification": ("RobertaPreLayerNormForTokenClassification", TOKEN_CLASSIFICATION,
                             {"num_labels": 5}, ["logits", "predicted_tokens_classes", "loss"]),
    "question-answering": ("RobertaPreLayerNormForQuestionAnswering", QUESTION_ANSWERING, {"num_labels": 2},
                           ["predict_answer_tokens", "loss"]),
}


def run_snippet(code: str, package: str) -> dict:
    namespace: dict = {}
    exec(compile(code.replace("from transformers import", f"from {package} import"), package, "exec"), namespace)
    return namespace


def lay_out_repo(tmp_path, monkeypatch, bpe_dir, model_class: str, **config):
    """The hub id resolves, offline, to a tiny checkpoint of `model_class` (.bin, as efficient_mlm ships)."""
    folder = tmp_path / "repo"
    model = transformers_model(model_class, vocab_size=1500, max_position_embeddings=130, type_vocab_size=1,
                               **config)
    with torch.no_grad():  # make the random heads decisive, so argmax comparisons are meaningful
        for name, param in model.named_parameters():
            if not name.startswith("roberta_prelayernorm."):
                param.mul_(20)
    model.save_pretrained(folder, safe_serialization=False)
    tokenizer = transformers.RobertaTokenizerFast(vocab_file=str(bpe_dir / "vocab.json"),
                                                  merges_file=str(bpe_dir / "merges.txt"))
    tokenizer.save_pretrained(folder)
    add_to_hub_cache(tmp_path / "cache", REPO, folder)
    go_offline(monkeypatch, tmp_path / "cache")
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(tmp_path / "cache"))  # read at import


@pytest.mark.parametrize("example", sorted(SNIPPETS))
def test_documentation_example_gives_transformers_numbers(tmp_path, monkeypatch, bpe_dir, example):
    model_class, code, config, compared = SNIPPETS[example]
    lay_out_repo(tmp_path, monkeypatch, bpe_dir, model_class, **config)
    ours = run_snippet(code, "roberta_prelayernorm")
    theirs = run_snippet(code, "transformers")
    for name in compared:
        a, b = ours[name], theirs[name]
        if isinstance(b, torch.Tensor):
            assert a.shape == b.shape and a.dtype == b.dtype, name
            if a.dtype.is_floating_point:
                assert (a - b).abs().max().item() <= 1e-5, name
            else:
                assert torch.equal(a, b), name
        else:
            assert a == b, name
    if "inputs" in theirs:
        assert torch.equal(ours["inputs"]["input_ids"], theirs["inputs"]["input_ids"])


def test_examples_run_on_the_pretraining_checkpoint(tmp_path, monkeypatch, bpe_dir):
    """On the real repo's kind of checkpoint (masked-LM weights only) every head loads with a fresh head."""
    lay_out_repo(tmp_path, monkeypatch, bpe_dir, "RobertaPreLayerNormForMaskedLM", num_labels=2)
    for _, (_, code, _, _) in sorted(SNIPPETS.items()):
        namespace = run_snippet(code, "roberta_prelayernorm")
        assert torch.isfinite(namespace["loss"]).all()

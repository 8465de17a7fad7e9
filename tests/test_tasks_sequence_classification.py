"""tasks/sequence_classification.py: label kinds (classes, regression, multi-label) decided per file."""

import json

import pytest

import roberta_prelayernorm as rp
from roberta_prelayernorm.tasks import make_task
from roberta_prelayernorm.training import DataError, Trainer, read_records
from training_utils import config, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


def test_label_kinds_and_csv(tmp_path, tiny):
    path = tmp_path / "reg.csv"
    path.write_text('text,text_pair,label\nA good dog,It is cute,4.5\n"A bad, rude cat",,1\nfine,ok,3.25\n')
    records = read_records(path)
    assert records[1].fields == {"text": "A bad, rude cat", "text_pair": None, "label": 1}
    assert str(records[1].where) == f"{path}, line 3"
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, train=str(path), validation=str(path),
                             max_steps=2))
    assert trainer.task.kind == "regression" and trainer.model.config.problem_type == "regression"
    assert set(trainer.train()) >= {"loss", "pearson", "spearman"}
    multi = write_jsonl(tmp_path / "multi.jsonl", [{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["y"]},
                                                   {"text": "c", "label": []}])
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, train=multi, validation=multi, max_steps=2,
                             output_dir=str(tmp_path / "multi")))
    assert trainer.model.config.problem_type == "multi_label_classification"
    assert trainer.train_features[0]["labels"] == [1.0, 1.0]
    assert set(trainer.train()) >= {"accuracy", "macro_f1"}


def fit_labels(tmp_path, labels, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": v} for i, v in enumerate(labels)])
    task = make_task("sequence-classification", tokenizer, 64)
    records = read_records(path)
    task.fit(records)
    task.examples(records)
    return task


@pytest.mark.parametrize("labels, message", [
    ([0, 1, 1.0], "d.jsonl, line 3: field 'label': 1.0 is a float among integer class indices"),
    ([0.5, float("nan"), 1.0], "d.jsonl, line 2: field 'label': nan is not a finite number"),
    ([0.5, float("inf")], "line 2: field 'label': inf is not a finite number"),
    ([[], []], "line 1: field 'label': every label list in the file is empty"),
    (["3.5", 3.5], "line 2: field 'label': is a float \\(regression\\) but the first record's label"),
    ([1, -1], "line 2: field 'label': class index -1 is negative"),
])
def test_label_kinds_are_decided_per_file(tmp_path, tiny, labels, message):
    with pytest.raises(DataError, match=message):
        fit_labels(tmp_path, labels, rp.AutoTokenizer.from_pretrained(tiny))


def test_label_kind_rules(tmp_path, tiny):
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    assert fit_labels(tmp_path, ["3.5", "2"], tokenizer).names == ["2", "3.5"]  # strings: class names
    assert fit_labels(tmp_path, [3, 3.5], tokenizer).kind == "regression"
    assert fit_labels(tmp_path, [1.0, 2.0], tokenizer).kind == "regression"
    assert fit_labels(tmp_path, [0, 2], tokenizer).names == ["LABEL_0", "LABEL_1", "LABEL_2"]


def test_a_stray_huge_class_index_is_refused_before_names_are_made(tmp_path, tiny):
    from roberta_prelayernorm.tasks import make_task
    from roberta_prelayernorm.training import DataError, read_records

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": v}) + "\n" for i, v in enumerate([0, 1, 200_000])))
    task = make_task("sequence-classification", rp.AutoTokenizer.from_pretrained(tiny), 64)
    with pytest.raises(DataError, match=r"line 3: field 'label': class index 200000 is too large: class indices run "
                                        r"from 0 to the number of classes - 1, at most 99999"):
        task.fit(read_records(str(path)))

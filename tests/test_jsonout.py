"""jsonout.py: strict JSON, NaN written as null (here in a task command's results)."""

import json

import pytest
import torch

import roberta_prelayernorm as rp

pytestmark = pytest.mark.usefixtures("one_thread")


def test_nan_scores_are_written_as_null(heads, tmp_path, capsys):
    from roberta_prelayernorm.cli import main

    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"])
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    rp.AutoTokenizer.from_pretrained(heads["classify"]).save_pretrained(tmp_path / "nan")
    assert main(["classify", "--model", str(tmp_path / "nan"), "hello", "--top-k", "all"]) == 0

    def strict(word):
        raise ValueError(f"{word} is not JSON")

    result = json.loads(capsys.readouterr().out, parse_constant=strict)["result"]
    assert [entry["score"] for entry in result] == [None, None]


def test_a_json_lines_record_stays_one_line_for_every_reader():
    from roberta_prelayernorm.jsonout import line

    value = {"text": "a\x85b\u2028c\u2029d é \n\x0b", "score": float("nan")}
    record = line(value)
    assert record.splitlines() == [record] and "é" in record  # readable, and one line even for str.splitlines
    assert json.loads(record) == {**value, "score": None}

"""`roberta-prelayernorm export`: every head to ONNX, run in onnxruntime on other shapes, equal to PyTorch."""

from __future__ import annotations

import pytest

from parity import HEADS
from roberta_prelayernorm import cli, export
from test_ecosystem import tiny

pytestmark = pytest.mark.slow  # ONNX export and onnxruntime: `make test-fast` leaves them out

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name", HEADS)
def test_every_head_exports_and_matches_pytorch_in_onnxruntime(tmp_path, name, capsys):
    import onnxruntime

    tiny(name).save_pretrained(tmp_path / "model")
    assert cli.main(["export", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "onnx")]) == 0
    out = tmp_path / "onnx"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx"]
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    expected_outputs = {"RobertaPreLayerNormModel": ["last_hidden_state", "pooler_output"],
                        "RobertaPreLayerNormForQuestionAnswering": ["start_logits", "end_logits"]}
    assert [o.name for o in session.get_outputs()] == expected_outputs.get(name, ["logits"])
    assert all(isinstance(d, str) for i in session.get_inputs() for d in i.shape)  # every dimension dynamic
    model = export.load_model(str(tmp_path / "model"))
    assert export.largest_difference(model, str(out / "model.onnx")) < 1e-4  # on shapes other than the export's
    assert "largest difference from PyTorch" in capsys.readouterr().out


def test_int8_and_single_token_type(tmp_path, bpe_dir, capsys):
    import onnxruntime

    from roberta_prelayernorm import AutoTokenizer

    model = tiny("RobertaPreLayerNormForSequenceClassification", type_vocab_size=1, vocab_size=1500)
    model.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(bpe_dir).save_pretrained(tmp_path / "model")
    assert cli.main(["export", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "onnx"),
                     "--int8"]) == 0
    names = {p.name for p in (tmp_path / "onnx").iterdir()}
    assert {"model.onnx", "model_int8.onnx", "config.json", "vocab.json", "merges.txt"} <= names
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model_int8.onnx"))
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    differences = capsys.readouterr().out.splitlines()[-2:]
    assert "model.onnx" in differences[0] and "model_int8.onnx" in differences[1]
    assert float(differences[1].split()[-1]) < 1e-2  # int8 is close, not equal


def test_export_errors_are_one_line_and_leave_nothing(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert cli.main(["export", "--model", str(tmp_path), "--output", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert cli.main(["export", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing" in err and err.strip().count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]

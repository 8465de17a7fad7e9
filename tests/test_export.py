"""export.py: every head to ONNX, run in onnxruntime on other shapes, equal to PyTorch."""

from __future__ import annotations

import re

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


def avx2_u8s8(a, b):
    """ONNX Runtime's AVX2 u8 x s8 product (VPMADDUBSW): each adjacent pair of products along K is added into
    an int16 that saturates, then the pairs are summed in int32. VNNI CPUs compute the exact a @ b."""
    import numpy as np

    products = a.astype(np.int32)[:, :, None] * b.astype(np.int32)[None]  # (M, K, N)
    if products.shape[1] % 2:
        products = np.concatenate([products, np.zeros_like(products[:, :1])], axis=1)
    pairs = np.clip(products[:, 0::2] + products[:, 1::2], -32768, 32767)
    return pairs.sum(axis=1), products.sum(axis=1)


def int8_weights(path):
    """The int8 weight matrices (K, N) of every MatMulInteger in an ONNX file."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    return [initializers[node.input[1]] for node in graph.node
            if node.op_type == "MatMulInteger" and node.input[1] in initializers]


def test_int8_export_cannot_saturate_on_avx2_only_cpus(tmp_path, capsys):
    """This CPU has VNNI; the AVX2 kernels' saturation is emulated on the exported integer weights, with the
    worst activations (every u8 at 255) and random ones, against the old settings (full-range s8) as control."""
    import numpy as np
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = tiny("RobertaPreLayerNormForSequenceClassification", type_vocab_size=1)
    model.save_pretrained(tmp_path / "model")
    assert cli.main(["export", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "onnx"),
                     "--int8"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"checked in onnxruntime \S+ on .*avx2 (yes|no), avx512_vnni (yes|no)", out), out
    quantize_dynamic(str(tmp_path / "onnx" / "model.onnx"), str(tmp_path / "full_range.onnx"),
                     weight_type=QuantType.QInt8)  # the settings before: VNNI-only accuracy
    rng = np.random.default_rng(0)

    def saturated(weights) -> int:
        count = 0
        for b in weights:
            for a in (np.full((1, b.shape[0]), 255, np.uint8), rng.integers(0, 256, (8, b.shape[0]), np.uint8)):
                clipped, exact = avx2_u8s8(a, b)
                count += int((clipped != exact).sum())
        return count

    exported, control = int8_weights(tmp_path / "onnx" / "model_int8.onnx"), int8_weights(tmp_path / "full_range.onnx")
    assert len(exported) == len(control) > 0
    assert saturated(control) > 0  # the emulation sees the failure the old settings have
    assert saturated(exported) == 0
    assert max(int(np.abs(b.astype(np.int32)).max()) for b in exported) * 2 * 255 <= 32767  # for any activations

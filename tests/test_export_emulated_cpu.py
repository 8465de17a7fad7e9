"""`export --int8` on a CPU without VNNI: ONNX Runtime's own AVX2 int8 kernels, run on an emulated Haswell
(qemu-user: AVX2 and FMA, no AVX-512, no VNNI), against PyTorch, with the old full-range weights as control."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm import cli

pytestmark = pytest.mark.slow  # ONNX export, and ONNX Runtime under an emulator
pytest.importorskip("onnxruntime")
QEMU = shutil.which("qemu-x86_64")

# Run under the emulated CPU: the features its CPUID reports (numpy reads them as ONNX Runtime does) and each
# model's largest difference from PyTorch's logits.
ON_THE_EMULATED_CPU = """
import json, sys
import numpy as np, onnxruntime
folder = sys.argv[1]
ids, expected = np.load(folder + "/ids.npy"), np.load(folder + "/logits.npy")
differences = {}
for name in ("onnx/model_int8.onnx", "full_range.onnx"):
    session = onnxruntime.InferenceSession(folder + "/" + name, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    differences[name] = float(np.abs(logits - expected).max())
from numpy._core._multiarray_umath import __cpu_features__
features = {name: bool(__cpu_features__[name]) for name in ("AVX2", "AVX512F", "AVX512VNNI")}
print(json.dumps({"features": features, "differences": differences}))
"""


@pytest.mark.skipif(QEMU is None or platform.machine() != "x86_64",
                    reason="needs qemu-x86_64 (Debian's qemu-user, installed by `make test` where apt allows)")
def test_int8_export_is_accurate_on_an_avx2_only_cpu(tmp_path, capsys):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    config = rp.RobertaPreLayerNormConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                          intermediate_size=1024, max_position_embeddings=130, type_vocab_size=1,
                                          num_labels=3)
    model = rp.RobertaPreLayerNormForSequenceClassification(config).eval()
    with torch.no_grad():  # weights spread over their range (as trained ones can be), so full-range s8 pairs saturate
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.uniform_(-0.08, 0.08)
    model.save_pretrained(tmp_path / "model")
    assert cli.main(["export", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "onnx"),
                     "--int8"]) == 0
    capsys.readouterr()
    quantize_dynamic(str(tmp_path / "onnx" / "model.onnx"), str(tmp_path / "full_range.onnx"),
                     weight_type=QuantType.QInt8)  # the settings before: accurate on VNNI CPUs only
    ids = torch.randint(3, 1000, (4, 48))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    np.save(tmp_path / "ids.npy", ids.numpy())
    np.save(tmp_path / "logits.npy", logits.numpy())

    def run(*emulator) -> dict:
        done = subprocess.run([*emulator, sys.executable, "-c", ON_THE_EMULATED_CPU, str(tmp_path)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    emulated, here = run(QEMU, "-cpu", "Haswell"), run()
    assert emulated["features"] == {"AVX2": True, "AVX512F": False, "AVX512VNNI": False}  # no AVX-512, no VNNI
    assert emulated["differences"]["full_range.onnx"] > 0.1  # the control: the AVX2 kernels' int16 pairs saturate
    for result in (emulated, here):
        assert result["differences"]["onnx/model_int8.onnx"] < 0.02, result  # the bound, on both CPUs

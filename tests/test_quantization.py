"""quantization.py: int8 dynamic quantization, close to float, and the dtype it takes."""

from __future__ import annotations

import pytest
import torch

import roberta_prelayernorm as rp
from parity import loaded_pair, padded_batch

transformers = pytest.importorskip("transformers")


def test_int8_quantization(tmp_path):
    theirs, ours = loaded_pair(tmp_path, "RobertaPreLayerNormForMaskedLM", hidden_size=64, intermediate_size=128)
    quantized = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path, quantize="int8")
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    names = {name: isinstance(m, DynamicQuantizedLinear) for name, m in quantized.named_modules()}
    assert names["roberta_prelayernorm.encoder.layer.0.attention.self.query"]
    assert names["roberta_prelayernorm.encoder.layer.2.output.dense"] and names["lm_head.dense"]
    assert not names["lm_head.decoder"]  # tied to the embeddings: stays float
    assert {n for n in names if not n.endswith("._packed_params")} == {name for name, _ in ours.named_modules()}
    input_ids, attention_mask, _ = padded_batch(99)
    with torch.no_grad():
        reference = ours(input_ids, attention_mask).logits[attention_mask.bool()]
        approx = quantized(input_ids, attention_mask).logits[attention_mask.bool()]
    cosine = torch.nn.functional.cosine_similarity(approx, reference, dim=-1)
    assert cosine.min() > 0.99
    assert (approx.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9
    with pytest.raises(ValueError, match="quantize='int4' is not supported"):
        rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path, quantize="int4")
    from roberta_prelayernorm.quantization import quantize_int8

    with pytest.raises(ValueError, match="call model.eval"):
        quantize_int8(ours.train())


@pytest.mark.usefixtures("one_thread")
def test_an_int8_model_cast_to_bf16_says_so(heads):
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"], quantize="int8")
    model(torch.tensor([[0, 5, 2]]))
    with pytest.raises(ValueError, match="has int8 layers, which take float32, but it was cast to torch.bfloat16"):
        model.to(torch.bfloat16)(torch.tensor([[0, 5, 2]]))

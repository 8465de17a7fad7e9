"""The fast paths are exact (padding-free packing in training too) or bounded (bf16, int8), and compile cleanly."""

from __future__ import annotations

import pytest
import torch

import roberta_prelayernorm as rp
from parity import assert_close, padded_batch, transformers_model

transformers = pytest.importorskip("transformers")


def loaded_pair(tmp_path, name, **config):
    theirs = transformers_model(name, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **config)
    theirs.save_pretrained(tmp_path)
    return theirs, getattr(rp, name).from_pretrained(tmp_path)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_padding_free_training_step_gives_transformers_gradients(tmp_path, checkpointing):
    theirs, ours = loaded_pair(tmp_path, "RobertaPreLayerNormForMaskedLM")
    theirs.train(), ours.train()
    if checkpointing:
        ours.gradient_checkpointing_enable()
    input_ids, attention_mask, token_type_ids = padded_batch(99, lengths=(9, 2, 5, 7))
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    for model in (theirs, ours):
        model(input_ids, attention_mask, token_type_ids, labels=labels).loss.backward()
    their_grads = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, their_grads[name].grad, f"grad of {name}", atol=1e-6)


def test_bf16_autocast_on_cpu_is_close(tmp_path):
    theirs, ours = loaded_pair(tmp_path, "RobertaPreLayerNormForSequenceClassification")
    input_ids, attention_mask, _ = padded_batch(99)
    with torch.no_grad():
        reference = ours(input_ids, attention_mask).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = ours(input_ids, attention_mask).logits
    assert fast.dtype == torch.bfloat16
    assert_close(fast.float(), reference, "bf16 logits", atol=0.05)


def test_whole_model_compiles_without_graph_breaks():
    torch.manual_seed(0)
    model = rp.RobertaPreLayerNormForSequenceClassification(rp.RobertaPreLayerNormConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40)).eval()
    input_ids, attention_mask, _ = padded_batch(99)
    explanation = torch._dynamo.explain(model)(input_ids, attention_mask, labels=torch.tensor([0, 1, 1]))
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]
    assert explanation.graph_count == 1


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

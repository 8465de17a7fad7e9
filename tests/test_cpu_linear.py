"""cpu_linear.py: oneDNN's Linear path gives the plain path's numbers, never stale weights, off where it must be."""

from __future__ import annotations

import copy

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm import cpu_linear

pytestmark = pytest.mark.skipif(not cpu_linear.ops_available(), reason="oneDNN's linear ops are not in this build")

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(autouse=True)
def fast_path_on():
    cpu_linear.set_fast_path(True)
    yield
    cpu_linear.set_fast_path(None)


def tiny(cls=rp.RobertaPreLayerNormForSequenceClassification, seed=0, **config):
    torch.manual_seed(seed)
    return cls(rp.RobertaPreLayerNormConfig(**{**TINY, **config})).eval()


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return ids, mask


def plain(fn):
    cpu_linear.set_fast_path(False)
    try:
        return fn()
    finally:
        cpu_linear.set_fast_path(True)


def real(logits, mask):  # positions with attention_mask 1 (padding is outside the contract)
    return logits[mask.bool()] if logits.dim() == 3 else logits


def test_logits_equal_plain_path_and_weights_are_prepacked():
    model, (ids, mask) = tiny(rp.RobertaPreLayerNormForMaskedLM), batch()
    cpu_linear.clear_cache()
    with torch.no_grad():
        fast = model(ids, mask).logits
        assert len(cpu_linear._packed) == 2 * 6 + 2  # 6 Linear layers a layer, the LM head's dense and decoder
        slow = plain(lambda: model(ids, mask).logits)
    torch.testing.assert_close(real(fast, mask), real(slow, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
def test_gradients_equal_plain_path(padded):
    model, (ids, mask) = tiny(), batch()
    mask = mask if padded else torch.ones_like(mask)
    labels = torch.tensor([0, 1, 1])
    model.train()

    def grads():
        model.zero_grad()
        model(ids, mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fast, slow = grads(), plain(grads)
    assert fast.keys() == slow.keys() and len(fast) > 30
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name], atol=1e-5, rtol=1e-5, msg=name)


def test_training_keeps_the_default_gemm():
    """Calls autograd records take F.linear (repacking changed weights every step measured slower)."""
    model, (ids, mask) = tiny(), batch()
    model.train()
    cpu_linear.clear_cache()
    model(ids, mask, labels=torch.tensor([0, 1, 1])).loss.backward()
    assert len(cpu_linear._packed) == 0
    model.eval()
    model(ids, mask)  # eval without no_grad: autograd still records it
    assert len(cpu_linear._packed) == 0
    outputs(model, ids, mask)
    assert len(cpu_linear._packed) == 2 * 6 + 2


def fresh_like(model):
    """A new model with `model`'s current weights, never run (nothing cached)."""
    clone = type(model)(model.config).to(next(model.parameters()).dtype).eval()
    clone.load_state_dict(model.state_dict())
    return clone


def outputs(model, ids, mask):
    with torch.no_grad():
        return real(model(ids, mask).logits, mask)


def test_fresh_after_optimizer_step():
    model, (ids, mask) = tiny(), batch()
    outputs(model, ids, mask)  # prepack
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(ids, mask, labels=torch.tensor([0, 1, 1])).loss.backward()
    optimizer.step()
    model.eval()
    torch.testing.assert_close(outputs(model, ids, mask), outputs(fresh_like(model), ids, mask), atol=0, rtol=0)


def test_fresh_after_load_state_dict():
    model, other, (ids, mask) = tiny(seed=0), tiny(seed=1), batch()
    before = outputs(model, ids, mask)
    model.load_state_dict(other.state_dict())
    after = outputs(model, ids, mask)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, outputs(other, ids, mask), atol=0, rtol=0)


@pytest.mark.parametrize("convert", ["bfloat16", "half", "double_and_back"])
def test_fresh_after_dtype_changes(convert):
    model, (ids, mask) = tiny(), batch()
    outputs(model, ids, mask)
    if convert == "bfloat16":
        model.to(torch.bfloat16)
    elif convert == "half":
        model.half()
    else:
        model.double().float()
    torch.testing.assert_close(outputs(model, ids, mask), outputs(fresh_like(model), ids, mask), atol=0, rtol=0)


def test_fresh_after_resize_token_embeddings():
    model, (ids, mask) = tiny(rp.RobertaPreLayerNormForMaskedLM), batch()
    outputs(model, ids, mask)
    model.resize_token_embeddings(120)
    with torch.no_grad():
        model.get_input_embeddings().weight[99:] = 0.5  # in place on the (tied) parameter: a new version
    assert isinstance(model.get_output_embeddings(), cpu_linear.Linear)
    result = outputs(model, ids, mask)
    assert result.shape[-1] == 120
    torch.testing.assert_close(result, outputs(fresh_like(model), ids, mask), atol=0, rtol=0)


def test_lora_wrap_trains():
    peft = pytest.importorskip("peft")
    model, (ids, mask) = tiny(), batch()
    lora = peft.get_peft_model(model, peft.LoraConfig(target_modules=["query", "value"], r=4, lora_alpha=8,
                                                      init_lora_weights=False))
    lora.train()
    loss = lora(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    grads = {n: p.grad for n, p in lora.named_parameters() if p.requires_grad and "lora_" in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    lora.eval()
    torch.testing.assert_close(outputs(lora, ids, mask), plain(lambda: outputs(lora, ids, mask)),
                               atol=1e-5, rtol=1e-5)


def test_state_dict_keys_and_copies_unchanged():
    model, (ids, mask) = tiny(), batch()
    outputs(model, ids, mask)
    assert "roberta_prelayernorm.encoder.layer.0.attention.self.query.weight" in model.state_dict()
    copy.deepcopy(model)  # the cache lives outside the module: deep copies and pickles see plain parameters


def test_export_traces_the_plain_path():
    layer = cpu_linear.Linear(8, 4).eval()
    program = torch.export.export(layer, (torch.randn(2, 3, 8),))
    targets = {str(node.target) for node in program.graph.nodes}
    assert not any("mkldnn" in t for t in targets) and any("linear" in t for t in targets)


def test_switch_and_environment(monkeypatch):
    cpu_linear.set_fast_path(None)
    monkeypatch.setenv(cpu_linear.ENV, "0")
    assert not cpu_linear.fast_path_enabled()
    monkeypatch.setenv(cpu_linear.ENV, "1")
    assert cpu_linear.fast_path_enabled()
    monkeypatch.setenv(cpu_linear.ENV, "fast")
    with pytest.raises(ValueError, match="ROBERTA_PRELAYERNORM_CPU_LINEAR='fast'"):
        cpu_linear.fast_path_enabled()
    monkeypatch.delenv(cpu_linear.ENV)
    cpu_linear.set_fast_path(False)
    assert not cpu_linear.fast_path_enabled()


def test_falls_back_without_the_ops(monkeypatch):
    monkeypatch.setattr(cpu_linear, "ops_available", lambda: False)
    cpu_linear.clear_cache()
    model, (ids, mask) = tiny(), batch()
    outputs(model, ids, mask)
    assert len(cpu_linear._packed) == 0


def test_weights_made_under_inference_mode_use_the_plain_path():
    cpu_linear.clear_cache()
    with torch.inference_mode():
        layer = cpu_linear.Linear(8, 4)
        x = torch.randn(2, 8)
        torch.testing.assert_close(layer(x), x @ layer.weight.t() + layer.bias)
    assert len(cpu_linear._packed) == 0


def test_autocast_and_other_dtypes_use_the_plain_path():
    cpu_linear.clear_cache()
    layer = cpu_linear.Linear(8, 4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 8)).dtype == torch.bfloat16
    with torch.no_grad():
        layer.double()(torch.randn(2, 8, dtype=torch.float64))
    assert len(cpu_linear._packed) == 0


def test_bf16_model_runs_onednn_and_stays_close():
    if not cpu_linear.fast_path_enabled(torch.bfloat16):
        pytest.skip("no oneDNN bf16 kernels on this CPU")
    model, (ids, mask) = tiny(), batch()
    reference = outputs(model, ids, mask)
    cpu_linear.clear_cache()
    model.to(torch.bfloat16)
    result = outputs(model, ids, mask)
    assert result.dtype == torch.bfloat16 and len(cpu_linear._packed) == 2 * 6 + 2
    torch.testing.assert_close(result.float(), reference, atol=0.05, rtol=0.05)


def test_int8_uses_the_fastest_engine_and_restores_the_setting():
    from roberta_prelayernorm.quantization import fastest_int8_engine, quantize_int8

    engine = torch.backends.quantized.engine
    assert fastest_int8_engine() in torch.backends.quantized.supported_engines
    model, (ids, mask) = tiny(), batch()
    quantized = quantize_int8(model)
    assert torch.backends.quantized.engine == engine
    torch.testing.assert_close(outputs(quantized, ids, mask), outputs(model, ids, mask), atol=0.05, rtol=0.05)


def test_the_engine_pick_keeps_full_range_onednn_unless_another_is_clearly_faster():
    from roberta_prelayernorm.quantization import pick_engine

    close = {"x86": 1.0, "fbgemm": 1.01, "onednn": 1.08}
    assert pick_engine(close) == "x86"  # no preference: the least time
    assert pick_engine(close, preferred="onednn") == "onednn"  # within 10%: the more accurate one
    assert pick_engine({**close, "onednn": 1.2}, preferred="onednn") == "x86"  # clearly slower: not kept
    assert pick_engine({"x86": 1.0}, preferred="onednn") == "x86"  # not a candidate here


def test_full_range_int8_halves_the_error_of_torchs_7_bit_inputs():
    """oneDNN on VNNI/AMX takes 8-bit inputs exactly: the full range is closer to float than torch's 7 bits."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    from roberta_prelayernorm.quantization import (FullRangeLinear, full_range_available, quantized_engine,
                                                   quantized_linear)

    if not full_range_available() or "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("no oneDNN int8 kernels with VNNI/AMX here")
    torch.manual_seed(0)
    linear, x = torch.nn.Linear(64, 48), torch.randn(40, 64)
    with quantized_engine("onednn"), torch.no_grad():
        full = quantized_linear(linear, per_channel_dynamic_qconfig, full_range=True)
        seven_bits = quantized_linear(linear, per_channel_dynamic_qconfig)
        errors = [(layer(x) - linear(x)).abs().mean().item() for layer in (full, seven_bits)]
    assert isinstance(full, FullRangeLinear) and errors[0] < 0.7 * errors[1]
    assert any(key.endswith("_packed_params") for key in full.state_dict())  # save_pretrained still refuses


def test_int8_without_the_fast_path_keeps_torchs_stock_layers():
    from roberta_prelayernorm.quantization import FullRangeLinear, full_range_available, quantize_int8

    model, (ids, mask) = tiny(), batch()
    cpu_linear.set_fast_path(False)
    assert not full_range_available()
    stock = quantize_int8(model)
    layers = [m for m in stock.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(layers) == 2 * 6 + 2 and not any(isinstance(m, FullRangeLinear) for m in layers)
    torch.testing.assert_close(outputs(stock, ids, mask), outputs(model, ids, mask), atol=0.05, rtol=0.05)


# -- writes no version counter sees (issue 20): the next forward uses the new weights ------------------
def reinit_transformers_style(model):
    """transformers' _init_weights writes through `.data` (no version bump)."""
    model.apply(model._init_weights)


def write_through_data(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data.mul_(1.5)


def zero_one_row_and_one_column(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data[1] = 0
            module.weight.data[:, 2] = 0


def fused_adamw_step(model):
    """The fused CPU AdamW writes weights without bumping their version counters."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    model(*batch(), labels=torch.tensor([0, 1, 1])).loss.backward()
    optimizer.step()
    model.eval()


@pytest.mark.parametrize("write", [reinit_transformers_style, write_through_data, zero_one_row_and_one_column,
                                   fused_adamw_step], ids=lambda f: f.__name__)
def test_fresh_after_writes_no_version_counter_sees(write):
    model, (ids, mask) = tiny(), batch()
    before = outputs(model, ids, mask)  # prepack
    write(model)
    after = outputs(model, ids, mask)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, outputs(fresh_like(model), ids, mask), atol=0, rtol=0)


def test_fresh_after_peft_merge_and_unload():
    peft = pytest.importorskip("peft")
    model, (ids, mask) = tiny(), batch()
    lora = peft.get_peft_model(model, peft.LoraConfig(target_modules=["query", "value"], r=4, init_lora_weights=False))
    with torch.no_grad():
        before = real(lora(input_ids=ids, attention_mask=mask).logits, mask)  # the base layers prepack
    merged = lora.merge_and_unload()
    after = outputs(merged, ids, mask)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)  # merged = base + adapter
    torch.testing.assert_close(after, outputs(fresh_like(merged), ids, mask), atol=0, rtol=0)

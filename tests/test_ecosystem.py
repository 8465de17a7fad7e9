"""The model inside the tools people train and ship with: accelerate, torch.export, PEFT, the hub, Trainer."""

from __future__ import annotations

import pytest
import torch

import roberta_prelayernorm as rp
from parity import HEADS, padded_batch, tiny_config_dict
from roberta_prelayernorm import outputs


def tiny(name: str, seed: int = 0, **overrides):
    config = rp.RobertaPreLayerNormConfig(**tiny_config_dict(num_hidden_layers=2, num_labels=2, **overrides))
    if name == "RobertaPreLayerNormForCausalLM":
        config.is_decoder = True
    torch.manual_seed(seed)
    return getattr(rp, name)(config).eval()


def inputs_for(name: str, lengths=(9, 6, 3), seed: int = 0) -> dict:
    input_ids, attention_mask, _ = padded_batch(99, lengths=lengths, seed=seed)
    if name == "RobertaPreLayerNormForMultipleChoice":  # (B, choices, T): two examples of len(lengths) choices
        input_ids = torch.stack([input_ids, input_ids.flip(0)])
        attention_mask = torch.stack([attention_mask, attention_mask.flip(0)])
    return {"input_ids": input_ids, "attention_mask": attention_mask}


# -- outputs ------------------------------------------------------------------------------------------
def test_output_built_from_mapping_pairs_or_keywords():
    logits, loss = torch.randn(2, 3), torch.tensor(0.5)
    for out in (outputs.SequenceClassifierOutput({"logits": logits, "loss": loss}),
                outputs.SequenceClassifierOutput([("loss", loss), ("logits", logits)]),
                outputs.SequenceClassifierOutput(loss=loss, logits=logits)):
        assert list(out.keys()) == ["loss", "logits"]
        assert out.logits is logits and out[0] is loss and out["logits"] is logits and out.hidden_states is None
    only_logits = outputs.SequenceClassifierOutput({"logits": logits})
    assert list(only_logits.keys()) == ["logits"] and only_logits.loss is None and only_logits[0] is logits
    with pytest.raises(TypeError, match="no field 'logit'"):
        outputs.SequenceClassifierOutput({"logit": logits})


def test_accelerate_send_to_device_and_gather_keep_every_field():
    from accelerate.utils import gather, send_to_device

    model = tiny("RobertaPreLayerNormForQuestionAnswering")
    out = model(**inputs_for("RobertaPreLayerNormForQuestionAnswering"), output_hidden_states=True,
                start_positions=torch.tensor([1, 2, 0]), end_positions=torch.tensor([2, 3, 1]))
    for moved in (send_to_device(out, "cpu"), gather(out)):
        assert type(moved) is type(out) and list(moved.keys()) == list(out.keys())
        for key in out.keys():
            if isinstance(out[key], torch.Tensor):
                assert torch.equal(moved[key], out[key]), key
            else:
                assert all(torch.equal(a, b) for a, b in zip(moved[key], out[key])), key


def test_accelerator_bf16_prepare_and_backward_on_cpu():
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="bf16", cpu=True)
    model = tiny("RobertaPreLayerNormForSequenceClassification").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    batch = inputs_for("RobertaPreLayerNormForSequenceClassification")
    before = model.classifier.out_proj.weight.detach().clone()
    out = model(**batch, labels=torch.tensor([0, 1, 1]))
    assert isinstance(out, outputs.SequenceClassifierOutput) and out.logits.dtype == torch.float32
    accelerator.backward(out.loss)
    optimizer.step()
    assert torch.isfinite(out.loss) and not torch.equal(before, model.classifier.out_proj.weight)


# -- torch.export -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HEADS)
def test_torch_export_dynamic_batch_and_sequence(name):
    model = tiny(name)
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=38)
    choices = torch.export.Dim("choices", min=1)
    dims = {0: batch, 1: choices, 2: seq} if name == "RobertaPreLayerNormForMultipleChoice" else {0: batch, 1: seq}
    kwargs = {"use_cache": False} if name == "RobertaPreLayerNormForCausalLM" else {}
    exported = torch.export.export(model, (), {**inputs_for(name), **kwargs},
                                   dynamic_shapes={"input_ids": dims, "attention_mask": dims,
                                                   **{k: None for k in kwargs}})
    other = inputs_for(name, lengths=(4, 12, 7, 2, 12), seed=1)  # other batch size and length
    ours, theirs = exported.module()(**other, **kwargs), model(**other, **kwargs)
    assert type(ours) is type(theirs) and list(ours.keys()) == list(theirs.keys())
    assert_same_at_tokens(ours, theirs, other["attention_mask"].bool())


def assert_same_at_tokens(ours: dict, theirs: dict, real) -> None:
    """Equal outputs; per-token outputs only at real tokens (eager skips padding, a traced graph computes it)."""
    for key, value in theirs.items():
        mine = ours[key]
        assert tuple(mine.shape) == tuple(value.shape), key
        if value.shape[:real.dim()] == real.shape:
            mine, value = mine[real], value[real]
        torch.testing.assert_close(mine, value, atol=1e-4, rtol=1e-4, msg=key)

"""validation.py: the input checks every forward runs (ids, masks, shapes, dtypes, labels)."""

import pytest
import torch

import roberta_prelayernorm as rp
from parity import tiny


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_ids=torch.tensor([[0, 99, 2]])), r"input_ids holds 99 .* \[0, 99\).*vocab_size=99"),
    (dict(input_ids=torch.tensor([[0, -1, 2]])), r"input_ids holds -1"),
    (dict(input_ids=torch.tensor([[0.0, 5.0]])), "input_ids must hold integers"),
    (dict(input_ids=torch.tensor([0, 5, 2])), r"input_ids must have shape \(batch, seq_len\), got \(3,\)"),
    (dict(input_ids=torch.zeros((2, 0), dtype=torch.long)), "empty input"),
    (dict(), "pass exactly one of input_ids and inputs_embeds, got neither"),
    (dict(input_ids=torch.tensor([[0, 2]]), inputs_embeds=torch.zeros(1, 2, 32)), "got both"),
    (dict(inputs_embeds=torch.zeros(1, 2, 31)), r"inputs_embeds must have shape \(batch, seq_len, hidden_size=32\)"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), attention_mask=torch.ones(1, 4)), r"attention_mask must have shape"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), token_type_ids=torch.tensor([[0, 2, 0]])),
     r"token_type_ids holds 2 .* type_vocab_size=2"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), token_type_ids=torch.tensor([[0, 1]])), "token_type_ids must have shape"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), position_ids=torch.tensor([[2, 3, 40]])), "position_ids holds 40"),
    (dict(input_ids=torch.ones((1, 39), dtype=torch.long) * 5), r"sequence length 39 is longer than this model allows: 38"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), head_mask=torch.ones(3, 3)), r"head_mask must have shape"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), labels=torch.tensor([[0, 5, 120]])), r"labels holds 120"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), labels=torch.tensor([[0, 5, 1, 1]])), r"labels must have shape \(1, 3\)"),
    (dict(input_ids=torch.tensor([[0, 5, 2]]), labels=torch.tensor([[0.0, 5.0, 1.0]])), "labels must hold integers"),
])
def test_bad_inputs_get_clear_errors(kwargs, match):
    model = tiny()
    with pytest.raises(ValueError, match=match):
        model(**kwargs)


def test_bad_labels_for_other_heads():
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 8, 2]])
    with pytest.raises(ValueError, match=r"labels holds 3 .* \[0, 3\) or -100"):
        tiny(rp.RobertaPreLayerNormForSequenceClassification)(ids, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"multi-label classification must be 0/1 of shape \(2, 3\)"):
        tiny(rp.RobertaPreLayerNormForSequenceClassification, problem_type="multi_label_classification")(
            ids, labels=torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"labels for regression must have one value per output"):
        tiny(rp.RobertaPreLayerNormForSequenceClassification, num_labels=1)(ids, labels=torch.ones(3))
    with pytest.raises(ValueError, match=r"start_positions must have shape \(batch=2,\)"):
        tiny(rp.RobertaPreLayerNormForQuestionAnswering, num_labels=2)(
            ids, start_positions=torch.tensor([1, 2, 3]), end_positions=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(batch, num_choices, seq_len\)"):
        tiny(rp.RobertaPreLayerNormForMultipleChoice)(ids)
    with pytest.raises(ValueError, match="no cross-attention layers"):
        tiny(rp.RobertaPreLayerNormForCausalLM, is_decoder=True)(ids, encoder_hidden_states=torch.zeros(2, 3, 32))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_an_attention_mask_other_than_0_and_1_is_an_input_error(tiny, value):
    model = rp.RobertaPreLayerNormModel(rp.RobertaPreLayerNormConfig.from_pretrained(tiny))
    mask = torch.tensor([[1, 1, value]], dtype=torch.float if isinstance(value, float) else torch.long)
    with pytest.raises(rp.InputError, match=f"attention_mask holds {value}.*must be 0 or 1"):
        model(torch.tensor([[0, 5, 2]]), mask)


@pytest.mark.usefixtures("one_thread")
def test_ids_of_other_integer_dtypes_are_named(tiny):
    from roberta_prelayernorm import InputError

    model = rp.RobertaPreLayerNormModel.from_pretrained(tiny)
    ids = torch.tensor([[0, 5, 2]])
    reference = model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(model(input_ids=ids.int()).last_hidden_state, reference)  # as transformers
    for dtype in (torch.int16, torch.uint8, torch.int8):
        with pytest.raises(InputError, match=rf"input_ids must hold torch.long \(int64\) or torch.int32 ids, got "
                                             rf"dtype {dtype}; convert with input_ids.long\(\)"):
            model(input_ids=ids.to(dtype))
    with pytest.raises(InputError, match="token_type_ids must hold torch.long"):
        model(input_ids=ids, token_type_ids=torch.zeros_like(ids, dtype=torch.uint8))

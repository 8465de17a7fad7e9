"""modeling.py: model behaviour beyond the parity tests: outputs, utilities, generation, the padding contract."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import roberta_prelayernorm as rp
from parity import assert_close, padded_batch, tiny, tiny_config_dict, transformers_model

transformers = pytest.importorskip("transformers")


def test_output_is_attribute_key_and_index_addressable():
    model = tiny(rp.RobertaPreLayerNormForSequenceClassification)
    input_ids, attention_mask, _ = padded_batch(99)
    out = model(input_ids, attention_mask, labels=torch.tensor([0, 1, 2]))
    assert out.loss is out["loss"] is out[0] and out.logits is out[1] and out.hidden_states is None
    assert list(out.keys()) == ["loss", "logits"] and len(out.to_tuple()) == 2
    out = model(input_ids, attention_mask, output_hidden_states=True)
    assert out[0] is out.logits and out[1] is out.hidden_states and "loss" not in out


def test_parameter_and_module_names_equal_transformers():
    """Checkpoint keys and the module names LoRA's target_modules=["query", "value"] finds."""
    for name in ("RobertaPreLayerNormForMaskedLM", "RobertaPreLayerNormForMultipleChoice"):
        ours = tiny(getattr(rp, name))
        theirs = transformers_model(name)
        assert set(ours.state_dict()) == set(theirs.state_dict())
        targets = [n for n, _ in ours.named_modules() if n.split(".")[-1] in ("query", "value")]
        assert targets == [n for n, _ in theirs.named_modules() if n.split(".")[-1] in ("query", "value")]
        assert len(targets) == 6
        assert ours.num_parameters() == theirs.num_parameters()
        assert ours.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)


def test_init_weights_scheme():
    model = tiny(initializer_range=0.05, vocab_size=2000, hidden_size=64, intermediate_size=256)
    embeddings = model.get_input_embeddings().weight
    assert abs(embeddings.std().item() - 0.05) < 0.003 and embeddings[1].abs().max() == 0  # pad row zero
    layer = model.roberta_prelayernorm.encoder.layer[0]
    assert layer.intermediate.dense.bias.abs().max() == 0
    assert torch.equal(layer.attention.LayerNorm.weight, torch.ones(64))
    assert model.lm_head.decoder.weight is embeddings and model.lm_head.decoder.bias is model.lm_head.bias


def test_resize_token_embeddings_keeps_rows_and_ties():
    model = tiny()
    old = model.get_input_embeddings().weight.detach().clone()
    new = model.resize_token_embeddings(110, pad_to_multiple_of=8)
    assert new.num_embeddings == 112 and model.config.vocab_size == 112
    assert torch.equal(model.get_input_embeddings().weight[:99], old)
    assert model.lm_head.decoder.weight is model.get_input_embeddings().weight
    assert model.lm_head.bias.shape == (112,) and model.lm_head.decoder.bias is model.lm_head.bias
    out = model(torch.tensor([[0, 111, 2]]))
    assert out.logits.shape == (1, 3, 112)
    model.resize_token_embeddings(50)
    assert model.lm_head.bias.shape == (50,) and model(torch.tensor([[0, 49, 2]])).logits.shape[-1] == 50


def test_gradient_checkpointing_gives_the_same_gradients():
    model = tiny(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()
    input_ids, attention_mask, _ = padded_batch(99)
    labels = input_ids.masked_fill(attention_mask == 0, -100)

    def grads():
        model.zero_grad()
        model(input_ids, attention_mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    recomputed = grads()
    assert plain.keys() == recomputed.keys()
    for name in plain:
        assert_close(recomputed[name], plain[name], name, atol=1e-6)


def test_device_dtype_and_training_mode():
    model = tiny()
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    model.to(torch.bfloat16)
    assert model.dtype == torch.bfloat16
    out = model(torch.tensor([[0, 5, 6, 2]]))
    assert out.logits.dtype == torch.bfloat16


def test_sdpa_path_equals_the_explicit_attention_path():
    model = tiny(rp.RobertaPreLayerNormModel)
    input_ids, attention_mask, _ = padded_batch(99)
    with torch.no_grad():
        fused = model(input_ids, attention_mask).last_hidden_state
        explicit = model(input_ids, attention_mask, output_attentions=True).last_hidden_state
    assert_close(fused, explicit, "last_hidden_state", rows=attention_mask.bool())


_MODEL = None


def shared_model():
    global _MODEL
    if _MODEL is None:
        torch.manual_seed(0)
        _MODEL = rp.RobertaPreLayerNormForTokenClassification(
            rp.RobertaPreLayerNormConfig(**tiny_config_dict(hidden_dropout_prob=0.0))).eval()
    return _MODEL


def test_real_tokens_do_not_depend_on_padding_or_batch_mates():
    """Rows alone, in a batch and with more padding equal; then, as a property, any lengths, padding
    beyond the longest and either side."""
    model = tiny(rp.RobertaPreLayerNormForTokenClassification)
    input_ids, attention_mask, _ = padded_batch(99, lengths=(5, 9, 2))
    with torch.no_grad():
        batched = model(input_ids, attention_mask).logits
        for row, n in enumerate((5, 9, 2)):
            alone = model(input_ids[row:row + 1, :n]).logits[0]
            assert_close(batched[row, :n], alone, f"row {row}")
            extra = torch.cat([input_ids[row:row + 1, :n], torch.ones(1, 7, dtype=torch.long)], dim=1)
            mask = torch.cat([torch.ones(1, n), torch.zeros(1, 7)], dim=1)
            assert_close(model(extra, mask).logits[0, :n], alone, f"row {row} with more padding")

    @settings(max_examples=40, deadline=None)
    @given(
        lengths=st.lists(st.integers(1, 30), min_size=1, max_size=5),
        extra_padding=st.integers(0, 6),
        seed=st.integers(0, 2**16),
        side=st.sampled_from(["right", "left"]),
    )
    def outputs_do_not_depend_on_batch_mates_or_padding(lengths, extra_padding, seed, side):
        model = shared_model()
        g = torch.Generator().manual_seed(seed)
        sequences = [torch.randint(3, 99, (n,), generator=g) for n in lengths]
        T = max(lengths) + extra_padding
        input_ids = torch.ones((len(lengths), T), dtype=torch.long)
        attention_mask = torch.zeros((len(lengths), T), dtype=torch.long)
        for row, seq in enumerate(sequences):
            span = slice(0, len(seq)) if side == "right" else slice(T - len(seq), T)
            input_ids[row, span], attention_mask[row, span] = seq, 1
        with torch.no_grad():
            batched = model(input_ids, attention_mask).logits
            for row, seq in enumerate(sequences):
                alone = model(seq[None]).logits[0]
                assert_close(batched[row][attention_mask[row].bool()], alone, f"row {row} of {lengths}")

    outputs_do_not_depend_on_batch_mates_or_padding()


def partitions(items: list):
    """Every way to split `items` into groups."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for groups in partitions(rest):
        yield [[first], *groups]
        for i in range(len(groups)):
            yield [*groups[:i], [first, *groups[i]], *groups[i + 1:]]


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=6), overhead=st.integers(0, 2000))
def test_length_buckets_find_the_cheapest_grouping(lengths, overhead):
    """Groups of runs of the sorted rows cost no more than the best of all groupings (brute force); every row
    with tokens is in one group, rows without are in none."""
    from roberta_prelayernorm.modeling import length_buckets

    groups, cost = length_buckets(lengths, overhead)
    rows = [r for r, n in enumerate(lengths) if n]
    assert sorted(r for group in groups for r in group) == rows

    def cost_of(grouping):
        return sum(len(group) * max(lengths[r] for r in group) ** 2 + overhead for group in grouping)

    assert cost == cost_of(groups) == min(cost_of(grouping) for grouping in partitions(rows))


def test_attention_in_length_buckets_equals_the_padded_path(monkeypatch):
    """A ragged batch on the CPU runs its attention in buckets of like lengths: the same outputs and gradients
    as the padded path, and the same as each row alone."""
    from roberta_prelayernorm import modeling

    lengths = (38, 3, 30, 11, 12, 1, 36, 5)
    model = tiny(rp.RobertaPreLayerNormForTokenClassification, hidden_dropout_prob=0.0,
                 attention_probs_dropout_prob=0.0)
    input_ids, attention_mask, _ = padded_batch(99, lengths=lengths)
    packing = modeling.Packing(attention_mask, torch.device("cpu"))
    assert packing.buckets is not None and len(packing.buckets) > 1

    def run():
        model.zero_grad()
        logits = model(input_ids, attention_mask).logits
        logits[attention_mask.bool()].square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    model.train()  # with autograd, and attention dropout 0: buckets still
    bucketed, grads = run()
    monkeypatch.setattr(modeling.Packing, "buckets", None)
    padded, padded_grads = run()
    real = attention_mask.bool()
    assert_close(bucketed, padded, "logits", rows=real)
    for i, (ours, theirs) in enumerate(zip(grads, padded_grads)):
        assert_close(ours, theirs, f"gradient {i}")
    monkeypatch.undo()
    model.eval()
    with torch.no_grad():
        for row, n in enumerate(lengths):
            assert_close(bucketed[row, :n], model(input_ids[row:row + 1, :n]).logits[0], f"row {row} alone")


def test_labels_at_padding_are_ignored():
    model = tiny(rp.RobertaPreLayerNormForTokenClassification)
    input_ids, attention_mask, _ = padded_batch(99)
    labels = torch.randint(0, 3, input_ids.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = model(input_ids, attention_mask, labels=labels).loss
        explicit = model(input_ids, attention_mask, labels=labels.masked_fill(attention_mask == 0, -100)).loss
    assert_close(loss, explicit, "loss")


def greedy_by_full_forwards(model, input_ids, steps):
    tokens = input_ids
    for _ in range(steps):
        with torch.no_grad():
            next_ids = model(tokens).logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_ids], dim=1)
    return tokens


def test_generate_greedy_equals_repeated_full_forwards():
    model = tiny(rp.RobertaPreLayerNormForCausalLM, is_decoder=True)
    prompt = torch.randint(3, 99, (2, 5), generator=torch.Generator().manual_seed(0))
    out = model.generate(prompt, max_new_tokens=8, eos_token_id=-1)
    assert out.shape == (2, 13) and torch.equal(out, greedy_by_full_forwards(model, prompt, 8))


def test_generate_sampling_is_seeded_and_stops_at_eos():
    model = tiny(rp.RobertaPreLayerNormForCausalLM, is_decoder=True)
    prompt = torch.randint(3, 99, (3, 4), generator=torch.Generator().manual_seed(1))
    kwargs = dict(max_new_tokens=6, do_sample=True, temperature=0.7, top_k=20, top_p=0.9, eos_token_id=-1)
    a = model.generate(prompt, generator=torch.Generator().manual_seed(5), **kwargs)
    b = model.generate(prompt, generator=torch.Generator().manual_seed(5), **kwargs)
    assert torch.equal(a, b) and a.shape == (3, 10)
    greedy = model.generate(prompt, max_new_tokens=6, eos_token_id=-1)
    eos = int(greedy[0, 5])  # make the second generated token of row 0 the end of sequence
    out = model.generate(prompt, max_new_tokens=6, eos_token_id=eos, pad_token_id=1)
    assert int(out[0, 5]) == eos and (out[0, 6:] == 1).all()


def test_generate_with_left_padded_prompts_equals_unpadded():
    model = tiny(rp.RobertaPreLayerNormForCausalLM, is_decoder=True)
    short = torch.tensor([[0, 17, 33]])
    padded = torch.tensor([[1, 1, 0, 17, 33]])
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    alone = model.generate(short, max_new_tokens=5, eos_token_id=-1)
    batched = model.generate(padded, attention_mask=mask, max_new_tokens=5, eos_token_id=-1)
    assert torch.equal(batched[:, 2:], alone)


def test_auto_classes_pick_the_class_and_refuse_direct_construction(tmp_path):
    model = tiny(rp.RobertaPreLayerNormForQuestionAnswering, num_labels=2)
    model.save_pretrained(tmp_path)
    loaded = rp.AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    assert type(loaded) is rp.RobertaPreLayerNormForQuestionAnswering
    assert type(rp.AutoModel.from_config(loaded.config)) is rp.RobertaPreLayerNormModel
    config = rp.AutoConfig.from_pretrained(tmp_path)
    assert config.architectures == ["RobertaPreLayerNormForQuestionAnswering"]
    with pytest.raises(TypeError, match="factory"):
        rp.AutoModel()


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, roberta_prelayernorm; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.usefixtures("one_thread")
def test_qa_positions_on_padding_are_ignored_like_positions_past_the_sequence(tiny):
    torch.manual_seed(0)
    model = rp.RobertaPreLayerNormForQuestionAnswering(rp.RobertaPreLayerNormConfig.from_pretrained(tiny)).eval()
    ids = torch.tensor([[0, 50, 60, 70, 2, 1, 1], [0, 50, 60, 70, 80, 90, 2]])
    mask = (ids != 1).long()
    mask[1] = 1
    on_padding = model(ids, mask, start_positions=torch.tensor([5, 2]), end_positions=torch.tensor([6, 3])).loss
    past_end = model(ids, mask, start_positions=torch.tensor([99, 2]), end_positions=torch.tensor([99, 3])).loss
    assert on_padding.item() < 100
    torch.testing.assert_close(on_padding, past_end)

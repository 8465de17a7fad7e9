"""modeling.py against transformers: every head and forward flag gives its numbers on the same weights, both ways.

transformers 4.57.6 builds tiny random models and saves them; this package loads them and must return the same
logits, losses, hidden states and attentions (to 1e-5, at real-token positions), and the reverse.
"""

from __future__ import annotations

import pytest
import torch

import roberta_prelayernorm as rp
from parity import HEADS, assert_close, loaded_pair, padded_batch, transformers_model

transformers = pytest.importorskip("transformers")


def compare(ours, theirs, mask, where):
    """Recursively compare outputs; per-token tensors (B, T, ...) and attentions only at real tokens."""
    if isinstance(ours, (tuple, list)):
        assert isinstance(theirs, (tuple, list)) and len(ours) == len(theirs), (
            f"{where}: {len(ours)} items != {len(theirs) if isinstance(theirs, (tuple, list)) else theirs!r}"
        )
        for i, (a, b) in enumerate(zip(ours, theirs)):
            compare(a, b, mask, f"{where}[{i}]")
        return
    if ours is None or theirs is None:
        assert ours is None and theirs is None, f"{where}: {type(ours).__name__} vs {type(theirs).__name__}"
        return
    B, T = mask.shape
    if ours.dim() == 4 and ours.shape[0] == B and ours.shape[2] == T:  # attentions (B, H, T, S)
        assert_close(ours.transpose(1, 2), theirs.transpose(1, 2), where, rows=mask)
    elif ours.dim() >= 2 and tuple(ours.shape[:2]) == (B, T):
        assert_close(ours, theirs, where, rows=mask)
    else:
        assert_close(ours, theirs, where)


def head_inputs(name, config, seed=0):
    """Inputs and labels for one head; returns (kwargs, real-token mask of the flattened batch)."""
    input_ids, attention_mask, token_type_ids = padded_batch(
        config.vocab_size, lengths=(9, 6, 3, 7), seed=seed, type_vocab_size=config.type_vocab_size
    )
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    B, T = input_ids.shape
    g = torch.Generator().manual_seed(seed + 1)
    real = attention_mask.bool()
    if name == "RobertaPreLayerNormForMultipleChoice":
        kwargs = {k: v.view(2, 2, T) for k, v in kwargs.items()}
        kwargs["labels"] = torch.tensor([1, 0])
    elif name == "RobertaPreLayerNormForSequenceClassification":
        kwargs["labels"] = torch.randint(0, config.num_labels, (B,), generator=g)
    elif name == "RobertaPreLayerNormForQuestionAnswering":
        kwargs["start_positions"] = torch.tensor([1, 2, 0, 30])  # 30: past the end, ignored
        kwargs["end_positions"] = torch.tensor([3, 4, 1, 5])
    elif name != "RobertaPreLayerNormModel":
        V = config.num_labels if name == "RobertaPreLayerNormForTokenClassification" else config.vocab_size
        labels = torch.randint(0, V, (B, T), generator=g).masked_fill(~real, -100)
        labels[0, 2] = -100
        kwargs["labels"] = labels
    return kwargs, real


def qa_loss_over_real_tokens(start_logits, end_logits, kwargs, real):
    """transformers' QA loss, but with the softmax over real tokens only (this package's padding contract:
    transformers also spreads probability over padding positions, whose logits depend on padding)."""
    T = real.shape[1]
    losses = []
    for logits, positions in ((start_logits, kwargs["start_positions"]), (end_logits, kwargs["end_positions"])):
        logits = logits.masked_fill(~real, torch.finfo(logits.dtype).min)
        losses.append(torch.nn.functional.cross_entropy(logits, positions.clamp(0, T), ignore_index=T))
    return (losses[0] + losses[1]) / 2


def config_overrides(name):
    if name == "RobertaPreLayerNormForCausalLM":
        return {"is_decoder": True}
    if name == "RobertaPreLayerNormForQuestionAnswering":
        return {"num_labels": 2}  # start and end logits
    return {}


VARIANTS = ["plain", "head_mask_1d", "head_mask_2d", "inputs_embeds", "position_ids", "tuple", "no_mask"]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Each head built by transformers and saved once: {name: (transformers model, folder)}."""
    out = {}
    for name in HEADS:
        model = transformers_model(name, **config_overrides(name))
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        out[name] = (model, folder)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", HEADS)
def test_head_matches_transformers(saved_models, name, variant):
    theirs_model, folder = saved_models[name]
    ours_model = getattr(rp, name).from_pretrained(folder)
    assert not ours_model.training
    config = theirs_model.config
    kwargs, real = head_inputs(name, config)
    kwargs.update(output_hidden_states=True, output_attentions=True)
    L, H = config.num_hidden_layers, config.num_attention_heads
    if variant == "head_mask_1d":
        kwargs["head_mask"] = torch.tensor([1.0, 0.0, 0.5, 1.0])
    elif variant == "head_mask_2d":
        kwargs["head_mask"] = torch.rand(L, H, generator=torch.Generator().manual_seed(3))
    elif variant == "inputs_embeds":
        ids = kwargs.pop("input_ids")
        kwargs["inputs_embeds"] = theirs_model.get_input_embeddings()(ids).detach()
    elif variant == "position_ids":
        kwargs["position_ids"] = torch.arange(kwargs["input_ids"].shape[-1]).expand_as(kwargs["input_ids"]) + 2
    elif variant == "tuple":
        kwargs["return_dict"] = False
    elif variant == "no_mask":
        del kwargs["attention_mask"]
        real = torch.ones_like(real)
        if "labels" in kwargs and kwargs["labels"].dim() > 1:
            kwargs["labels"] = kwargs["labels"].clamp(min=0)
    if name == "RobertaPreLayerNormForMultipleChoice":
        real = real.view(-1, real.shape[-1])
    with torch.no_grad():
        theirs = theirs_model(**kwargs)
        ours = ours_model(**kwargs)
    qa_with_padding = name == "RobertaPreLayerNormForQuestionAnswering" and variant != "no_mask"
    if variant == "tuple":
        assert isinstance(ours, tuple)
        if qa_with_padding:
            theirs = (qa_loss_over_real_tokens(theirs[1], theirs[2], kwargs, real),) + theirs[1:]
        compare(ours, theirs, real, name)
        return
    assert type(ours).__name__ == type(theirs).__name__
    if qa_with_padding:
        theirs["loss"] = qa_loss_over_real_tokens(theirs.start_logits, theirs.end_logits, kwargs, real)
    for key in theirs.keys():
        if key == "past_key_values":
            continue  # compared through incremental decoding below
        compare(ours[key], theirs[key], real, f"{name}.{key}")
    assert [k for k in ours.keys() if k != "past_key_values"] == [k for k in theirs.keys() if k != "past_key_values"]
    assert len(ours.hidden_states) == L + 1 and len(ours.attentions) == L


@pytest.mark.parametrize("problem_type,num_labels", [
    ("regression", 1), ("single_label_classification", 3), ("multi_label_classification", 3), (None, 1), (None, 4),
])
def test_sequence_classification_problem_types(tmp_path, problem_type, num_labels):
    name = "RobertaPreLayerNormForSequenceClassification"
    theirs_model = transformers_model(name, num_labels=num_labels, problem_type=problem_type)
    theirs_model.save_pretrained(tmp_path)
    ours_model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path)
    input_ids, attention_mask, _ = padded_batch(99, lengths=(5, 8, 2))
    g = torch.Generator().manual_seed(0)
    if problem_type == "regression" or num_labels == 1:
        labels = torch.randn(3, generator=g)
    elif problem_type == "multi_label_classification":
        labels = (torch.rand(3, num_labels, generator=g) > 0.5).float()
    else:
        labels = torch.randint(0, num_labels, (3,), generator=g)
    with torch.no_grad():
        theirs = theirs_model(input_ids, attention_mask, labels=labels)
        ours = ours_model(input_ids, attention_mask, labels=labels)
    assert_close(ours.logits, theirs.logits, "logits")
    assert_close(ours.loss, theirs.loss, "loss")
    assert ours_model.config.problem_type == theirs_model.config.problem_type


@pytest.mark.parametrize("name", HEADS)
def test_saved_here_loads_in_transformers(tmp_path, name):
    config = rp.RobertaPreLayerNormConfig(**__import__("parity").tiny_config_dict(**config_overrides(name)))
    torch.manual_seed(1)
    ours_model = getattr(rp, name)(config).eval()
    ours_model.save_pretrained(tmp_path)
    theirs_model, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] or set(info["missing_keys"]) <= {"lm_head.decoder.weight", "lm_head.decoder.bias"}
    assert info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    kwargs, real = head_inputs(name, theirs_model.config, seed=5)
    if name == "RobertaPreLayerNormForMultipleChoice":
        real = real.view(-1, real.shape[-1])
    with torch.no_grad():
        ours, theirs = ours_model(**kwargs), theirs_model(**kwargs)
    if name == "RobertaPreLayerNormForQuestionAnswering":
        theirs["loss"] = qa_loss_over_real_tokens(theirs.start_logits, theirs.end_logits, kwargs, real)
    for key in theirs.keys():
        if key != "past_key_values":
            compare(ours[key], theirs[key], real, f"{name}.{key}")
    # and back: what transformers saves from it still loads here to the same numbers
    theirs_model.save_pretrained(tmp_path / "again")
    again = getattr(rp, name).from_pretrained(tmp_path / "again")
    for (k, a), (_, b) in zip(sorted(again.state_dict().items()), sorted(ours_model.state_dict().items())):
        assert torch.equal(a, b), k


def test_causal_lm_incremental_decoding_matches(saved_models):
    theirs_model, folder = saved_models["RobertaPreLayerNormForCausalLM"]
    ours_model = rp.RobertaPreLayerNormForCausalLM.from_pretrained(folder)
    input_ids, attention_mask, _ = padded_batch(99, lengths=(8, 8), seed=4)
    prefix, step = input_ids[:, :5], input_ids[:, 5:6]
    with torch.no_grad():
        theirs_cache = theirs_model(prefix, use_cache=True).past_key_values
        ours_out = ours_model(prefix, use_cache=True)
        assert len(ours_out.past_key_values) == 3 and ours_out.past_key_values[0][0].shape == (2, 4, 5, 8)
        theirs_step = theirs_model(step, past_key_values=theirs_cache, use_cache=True).logits
        ours_step = ours_model(step, past_key_values=ours_out.past_key_values, use_cache=True).logits
        full = ours_model(input_ids[:, :6]).logits[:, -1:]
    assert_close(ours_step, theirs_step, "cached step logits")
    assert_close(ours_step, full, "cached step vs full forward")


def test_cross_attention_matches(tmp_path):
    name = "RobertaPreLayerNormForCausalLM"
    theirs_model = transformers_model(name, is_decoder=True, add_cross_attention=True)
    theirs_model.save_pretrained(tmp_path)
    ours_model = rp.RobertaPreLayerNormForCausalLM.from_pretrained(tmp_path)
    input_ids, attention_mask, _ = padded_batch(99, lengths=(7, 4), seed=2)
    g = torch.Generator().manual_seed(0)
    encoder_hidden_states = torch.randn(2, 5, 32, generator=g)
    encoder_attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    kwargs = dict(attention_mask=attention_mask, encoder_hidden_states=encoder_hidden_states,
                  encoder_attention_mask=encoder_attention_mask, output_attentions=True, output_hidden_states=True)
    with torch.no_grad():
        theirs = theirs_model(input_ids, **kwargs, labels=input_ids.masked_fill(attention_mask == 0, -100))
        ours = ours_model(input_ids, **kwargs, labels=input_ids.masked_fill(attention_mask == 0, -100))
    real = attention_mask.bool()
    for key in ("loss", "logits", "hidden_states", "attentions", "cross_attentions"):
        compare(ours[key], theirs[key], real, key)
    # incremental decoding reuses the cached cross-attention keys and values
    with torch.no_grad():
        kw = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
        theirs_cache = theirs_model(input_ids[:, :3], use_cache=True, **kw).past_key_values
        ours_cache = ours_model(input_ids[:, :3], use_cache=True, **kw).past_key_values
        assert len(ours_cache[0]) == 4
        theirs_step = theirs_model(input_ids[:, 3:4], past_key_values=theirs_cache, **kw).logits
        ours_step = ours_model(input_ids[:, 3:4], past_key_values=ours_cache, **kw).logits
    assert_close(ours_step, theirs_step, "cross-attention cached step")


def test_efficient_mlm_shape_runs_512_tokens(tmp_path):
    """max_position_embeddings 514, type_vocab_size 1, eps 1e-5 (the efficient_mlm checkpoints' shape)."""
    overrides = dict(max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, num_hidden_layers=2)
    theirs_model = transformers_model("RobertaPreLayerNormForMaskedLM", **overrides)
    theirs_model.save_pretrained(tmp_path)
    ours_model = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path)
    input_ids = torch.randint(3, 99, (1, 512), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert_close(ours_model(input_ids).logits, theirs_model(input_ids).logits, "512-token logits")
    with pytest.raises(ValueError, match="512"):
        ours_model(torch.randint(3, 99, (1, 513)))


@pytest.mark.slow
def test_full_size_efficient_mlm_architecture_runs_512_tokens():
    """The real checkpoints' size: 24 layers, 1024 wide, 16 heads, 4096 intermediate, 514 positions."""
    config = rp.RobertaPreLayerNormConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                          intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1,
                                          layer_norm_eps=1e-5)
    with torch.device("meta"):
        skeleton = rp.RobertaPreLayerNormForMaskedLM(config)
    assert skeleton.num_parameters() > 350_000_000
    model = rp.RobertaPreLayerNormModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        out = model(torch.randint(3, 50265, (1, 512)))
    assert out.last_hidden_state.shape == (1, 512, 1024) and torch.isfinite(out.last_hidden_state).all()


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

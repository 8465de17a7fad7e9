"""modeling.py's sparse prediction (config.sparse_prediction): equal to the dense computation and transformers'.

The LM head, and the last layer's queries and feed-forward block, run at the labelled positions only; loss and
gradients equal the dense computation and transformers'.
"""

from __future__ import annotations

import math

import pytest
import torch

import roberta_prelayernorm as rp
from parity import padded_batch, tiny_config_dict, transformers_model

TOL = 1e-6


def mlm_batch(seed=0, lengths=(9, 6, 3), rate=0.4):
    input_ids, attention_mask, token_type_ids = padded_batch(99, lengths=lengths, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    chosen = (torch.rand(input_ids.shape, generator=g) < rate) & attention_mask.bool()
    chosen[0, 1] = True  # at least one label
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return input_ids, attention_mask, token_type_ids, labels


def pair(seed=0, **overrides):
    """The same weights without and with sparse prediction (no dropout, so train mode is deterministic)."""
    config = rp.RobertaPreLayerNormConfig(**tiny_config_dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                                             **overrides))
    torch.manual_seed(seed)
    dense = rp.RobertaPreLayerNormForMaskedLM(config)
    sparse = rp.RobertaPreLayerNormForMaskedLM(rp.RobertaPreLayerNormConfig(**{**config.to_dict(),
                                                                              "sparse_prediction": True}))
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


def last_layer_rows(model, run):
    """How many positions the last layer's feed-forward block saw while `run()` ran."""
    seen = []
    layer = model.roberta_prelayernorm.encoder.layer[-1]
    handle = layer.intermediate.register_forward_hook(lambda module, args, out: seen.append(out.shape[:-1].numel()))
    try:
        run()
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("padding", [True, False])
def test_loss_and_logits_equal_dense_and_transformers(padding):
    dense, sparse = pair()
    lengths = (9, 6, 3) if padding else (9, 9, 9)
    input_ids, attention_mask, token_type_ids, labels = mlm_batch(lengths=lengths)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, labels=labels)
    theirs_model = transformers_model("RobertaPreLayerNormForMaskedLM", hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0)
    theirs_model.load_state_dict(dense.state_dict(), strict=False)
    with torch.no_grad():
        d, s, t = dense.eval()(**kwargs), sparse.eval()(**kwargs), theirs_model(**kwargs)
    keep = labels != -100
    assert s.logits.shape == (int(keep.sum()), 99)
    torch.testing.assert_close(s.logits, d.logits[keep], atol=TOL, rtol=0)
    torch.testing.assert_close(s.logits, t.logits[keep], atol=1e-5, rtol=0)
    torch.testing.assert_close(s.loss, d.loss, atol=TOL, rtol=0)
    torch.testing.assert_close(s.loss, t.loss, atol=TOL, rtol=0)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_equal_dense(checkpointing):
    dense, sparse = pair(seed=3)
    input_ids, attention_mask, token_type_ids, labels = mlm_batch(seed=3)
    losses = []
    for model in (dense, sparse):
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        loss = model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, labels=labels).loss
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], atol=TOL, rtol=0)
    grads = dict(sparse.named_parameters())
    for name, p in dense.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, atol=TOL, rtol=0, msg=name)


def test_last_layer_runs_at_labelled_positions_only():
    _, sparse = pair()
    input_ids, attention_mask, _, labels = mlm_batch()
    M, real = int((labels != -100).sum()), int(attention_mask.sum())
    slots = labels.size(0) * int((labels != -100).sum(1).max())  # B x K: each row's labels, empty slots after
    assert M <= slots < real
    assert last_layer_rows(sparse, lambda: sparse(input_ids, attention_mask=attention_mask, labels=labels)) == slots
    # asking for hidden states or attentions needs every position of the last layer: the exact dense layer runs
    dense, _ = pair()
    expected = dense(input_ids, attention_mask=attention_mask, labels=labels)
    for flag in ("output_hidden_states", "output_attentions"):
        run = lambda: sparse(input_ids, attention_mask=attention_mask, labels=labels, **{flag: True})  # noqa: E731
        assert last_layer_rows(sparse, run) == real
        out = sparse(input_ids, attention_mask=attention_mask, labels=labels, **{flag: True})
        assert out.logits.shape == (M, 99)
        torch.testing.assert_close(out.loss, expected.loss, atol=TOL, rtol=0)
        torch.testing.assert_close(out.logits, expected.logits[labels != -100], atol=TOL, rtol=0)
    hidden = sparse(input_ids, attention_mask=attention_mask, labels=labels, output_hidden_states=True).hidden_states
    reference = dense(input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
    for ours, theirs in zip(hidden, reference, strict=True):
        torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)
    # a 3D attention mask gives each query its own keys: dense last layer, sparse head, same loss as dense
    mask3d = attention_mask[:, None, :].expand(-1, input_ids.size(1), -1)
    run = lambda: sparse(input_ids, attention_mask=mask3d, labels=labels)  # noqa: E731
    assert last_layer_rows(sparse, run) == input_ids.numel()
    torch.testing.assert_close(sparse(input_ids, attention_mask=mask3d, labels=labels).loss,
                               dense(input_ids, attention_mask=mask3d, labels=labels).loss, atol=TOL, rtol=0)


def test_without_labels_or_switched_off_the_output_is_dense():
    dense, sparse = pair()
    input_ids, attention_mask, _, labels = mlm_batch()
    with torch.no_grad():
        assert sparse(input_ids, attention_mask=attention_mask).logits.shape == (*input_ids.shape, 99)
        sparse.config.sparse_prediction = False
        out = sparse(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (*input_ids.shape, 99)


def test_other_ignore_index_selects_positions_and_loss_ignores_minus_100():
    dense, sparse = pair(sparse_pred_ignore_index=0)
    input_ids, attention_mask, _, labels = mlm_batch()
    sparse_labels = labels.masked_fill(labels == -100, 0)
    sparse_labels[0, 2] = -100  # selected (not 0), but ignored by the loss
    with torch.no_grad():
        s = sparse.eval()(input_ids, attention_mask=attention_mask, labels=sparse_labels)
        d = dense.eval()(input_ids, attention_mask=attention_mask, labels=labels)
    assert s.logits.shape[0] == int((labels != -100).sum()) + 1
    torch.testing.assert_close(s.loss, d.loss, atol=TOL, rtol=0)


def test_labels_of_the_wrong_shape_are_refused():
    _, sparse = pair()
    input_ids, attention_mask, _, labels = mlm_batch()
    with pytest.raises(ValueError, match=r"labels must have shape \(3, 9\), got \(3, 8\)"):
        sparse(input_ids, attention_mask=attention_mask, labels=labels[:, :8])


def test_trainer_steps_are_sparse_and_saved_models_answer_densely(tmp_path):
    """The masked-LM task trains with sparse prediction (its batches carry the masked positions; the model's
    config is never switched), so best/, last/ and checkpoints return (B, T, V) logits with labels, as the
    documented API does."""
    import json

    from training_utils import data, head, make_tiny_model

    from roberta_prelayernorm.training.trainer import Trainer, TrainingConfig

    tiny = make_tiny_model(str(tmp_path / "tiny"))
    config = TrainingConfig(task="masked-lm", model=tiny, output_dir=str(tmp_path / "out"), max_length=64,
                            train=str(head(data("corpus.jsonl"), 8, tmp_path / "t.jsonl")), max_steps=2, batch_size=4,
                            save_every=1, progress=False)
    trainer = Trainer(config)
    batch = trainer.task.collate(trainer.train_features[:4], torch.Generator().manual_seed(0))
    B, K = batch["prediction_positions"].shape
    assert K == math.ceil(0.15 * batch["input_ids"].size(1)) < batch["input_ids"].size(1)
    assert last_layer_rows(trainer.model, lambda: trainer.model(**batch)) == B * K
    trainer.train()
    assert not trainer.model.config.sparse_prediction
    for folder in (".", "last", "checkpoints/step-00000001"):
        saved = json.loads((tmp_path / "out" / folder / "config.json").read_text())
        assert not saved.get("sparse_prediction", False), folder
    model = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(str(tmp_path / "out" / "last"))
    ids = torch.randint(4, model.config.vocab_size, (2, 9))
    assert model(ids, labels=ids).logits.shape == (2, 9, model.config.vocab_size)


@pytest.mark.parametrize("head", ["dense", "positions", "config", "causal"])
def test_vocabulary_padded_for_aligned_gemms_gives_the_same_logits_loss_and_gradients(head, monkeypatch):
    """The LM head's vocabulary axis padded to a multiple of 64 (what it does on GPUs, forced here on the CPU):
    logits at the real size (a view that still reshapes as (-1, V)), loss and gradients equal the unpadded ones."""
    from roberta_prelayernorm import modeling

    dense, sparse = pair(is_decoder=head == "causal")
    model = sparse if head == "config" else dense
    if head == "causal":
        model = rp.RobertaPreLayerNormForCausalLM(model.config)
        model.load_state_dict(dense.state_dict(), strict=False)
    input_ids, attention_mask, token_type_ids, labels = mlm_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels if head != "causal" else input_ids)
    if head == "positions":
        kwargs["prediction_positions"] = modeling.positions_where(labels.ne(-100), capacity=6)

    def run():
        model.zero_grad()
        out = model(**kwargs)
        out.loss.backward()
        return out.logits, out.loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    logits, loss, grads = run()
    monkeypatch.setattr(modeling, "VOCAB_PADDED_ON", ("cpu",))
    padded_logits, padded_loss, padded_grads = run()
    assert 99 % modeling.VOCAB_MULTIPLE and padded_logits.shape == logits.shape
    assert not padded_logits.is_contiguous()  # the padded path ran: a view of 128-wide scores
    assert padded_logits.reshape(-1, 99).shape == padded_logits.view(-1, 99).shape
    torch.testing.assert_close(padded_logits, logits, rtol=0, atol=TOL)
    assert abs(padded_loss.item() - loss.item()) < TOL
    for a, b in zip(padded_grads, grads):
        torch.testing.assert_close(a, b, rtol=0, atol=TOL)

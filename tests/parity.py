"""Shared helpers for the parity tests: tiny configs, inputs with padding, and output comparison."""

from __future__ import annotations

import torch

import roberta_prelayernorm as rp

ATOL = 1e-5

HEADS = [
    "RobertaPreLayerNormModel",
    "RobertaPreLayerNormForSequenceClassification",
    "RobertaPreLayerNormForMultipleChoice",
    "RobertaPreLayerNormForTokenClassification",
    "RobertaPreLayerNormForQuestionAnswering",
    "RobertaPreLayerNormForMaskedLM",
    "RobertaPreLayerNormForCausalLM",
]


def tiny_config_dict(**overrides) -> dict:
    config = dict(
        vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40, type_vocab_size=2, num_labels=3, layer_norm_eps=1e-12,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    )
    config.update(overrides)
    return config


def transformers_model(name: str, seed: int = 0, **config_overrides):
    """A randomly initialised transformers model of class `name` (the oracle)."""
    import transformers

    config = transformers.RobertaPreLayerNormConfig(**tiny_config_dict(**config_overrides))
    torch.manual_seed(seed)
    return getattr(transformers, name)(config).eval()


def padded_batch(vocab_size: int, lengths=(9, 6, 3), pad_id: int = 1, seed: int = 0, type_vocab_size: int = 2):
    """input_ids (B, T) with right padding, the attention mask and token type ids."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    input_ids = torch.full((len(lengths), T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(lengths), T), dtype=torch.long)
    token_type_ids = torch.zeros((len(lengths), T), dtype=torch.long)
    for row, n in enumerate(lengths):
        input_ids[row, :n] = torch.randint(3, vocab_size, (n,), generator=g)
        input_ids[row, 0], input_ids[row, n - 1] = 0, 2
        attention_mask[row, :n] = 1
        if type_vocab_size > 1:
            token_type_ids[row, n // 2:n] = 1
    return input_ids, attention_mask, token_type_ids


def assert_close(ours, theirs, where: str, rows=None, atol: float = ATOL) -> None:
    """Equal to `atol`; `rows` (a bool mask over the leading dims) limits the check to real tokens."""
    assert ours is not None and theirs is not None, f"{where}: one side is None"
    assert ours.shape == theirs.shape, f"{where}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    if rows is not None:
        ours, theirs = ours[rows], theirs[rows]
    diff = (ours.float() - theirs.float()).abs().max().item() if ours.numel() else 0.0
    assert diff <= atol, f"{where}: max abs difference {diff:.3g} > {atol}"


def tiny(cls=rp.RobertaPreLayerNormForMaskedLM, seed=0, **overrides):
    torch.manual_seed(seed)
    return cls(rp.RobertaPreLayerNormConfig(**tiny_config_dict(**overrides))).eval()


def loaded_pair(tmp_path, name, **config):
    theirs = transformers_model(name, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **config)
    theirs.save_pretrained(tmp_path)
    return theirs, getattr(rp, name).from_pretrained(tmp_path)

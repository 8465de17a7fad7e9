"""Input checks run before any work: each bad input gets a ValueError naming the argument, the bad value and
what is allowed, instead of an IndexError from deep inside torch.

Shape and dtype checks are free. Value-range checks (token ids < vocab_size, ...) need the values, so they
run on CPU tensors only: on an accelerator they would force a device-to-host synchronisation per forward.
Under torch.compile they are skipped too, since reading values would break the graph.
"""

from __future__ import annotations

from typing import Optional

import torch

from .config import max_sequence_length
from .errors import SettingError


class InputError(SettingError):
    """A forward argument has the wrong type, shape, dtype or values."""


def _shape(t) -> tuple:
    return tuple(t.shape)


def _require_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _require_integer(name: str, t: torch.Tensor) -> None:
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise InputError(f"{name} must hold integers (torch.long), got dtype {t.dtype}")


def _require_ids(name: str, t: torch.Tensor) -> None:
    """Ids index an embedding table, which takes int64 and int32 (as in transformers); other integers are named
    here rather than in the embedding's words."""
    _require_integer(name, t)
    if t.dtype not in (torch.long, torch.int32):
        raise InputError(f"{name} must hold torch.long (int64) or torch.int32 ids, got dtype {t.dtype}; convert with "
                         f"{name}.long()")


def _check_range(name: str, t: torch.Tensor, low: int, high: int, what: str, allow: Optional[int] = None) -> None:
    """Values of `t` in [low, high) (or equal to `allow`), checked where that costs no synchronisation."""
    allowed = f"in [{low}, {high})" + (f" or {allow}" if allow is not None else "")
    if allow is None:  # no `tensor | False`: TorchScript's tracer refuses a Python bool there
        _check_values(name, t, lambda t: (t >= low) & (t < high), allowed, what)
    else:
        _check_values(name, t, lambda t: ((t >= low) & (t < high)) | (t == allow), allowed, what)


def _check_values(name: str, t: torch.Tensor, valid, allowed: str, what: str) -> None:
    """valid(t) must hold everywhere; checked only on CPU tensors (reading values on an accelerator would cost a
    synchronisation on every call) and not under compilation."""
    if t.device.type != "cpu" or t.numel() == 0 or torch.compiler.is_compiling():
        return
    ok = valid(t)
    if not bool(ok.all()):
        bad = t[~ok]
        raise InputError(f"{name} holds {bad[0].item()} (and {bad.numel() - 1} more not allowed); values must be "
                         f"{allowed}: {what}")


def check_inputs(config, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                 past_length: int = 0) -> tuple[int, int]:
    """Validate a forward call's inputs against the config; returns (batch size, sequence length)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError(
            "pass exactly one of input_ids and inputs_embeds, got "
            + ("both" if input_ids is not None else "neither")
        )
    if input_ids is not None:
        _require_tensor("input_ids", input_ids)
        _require_ids("input_ids", input_ids)
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must have shape (batch, seq_len), got {_shape(input_ids)}")
        B, T = input_ids.shape
    else:
        _require_tensor("inputs_embeds", inputs_embeds)
        if not inputs_embeds.dtype.is_floating_point:
            raise InputError(f"inputs_embeds must be a floating-point tensor, got dtype {inputs_embeds.dtype}")
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.hidden_size:
            raise InputError(
                f"inputs_embeds must have shape (batch, seq_len, hidden_size={config.hidden_size}), "
                f"got {_shape(inputs_embeds)}"
            )
        B, T = inputs_embeds.shape[:2]
    if B == 0 or T == 0:
        raise InputError(f"empty input: batch size {B}, sequence length {T}; both must be at least 1")

    if attention_mask is not None:
        _require_tensor("attention_mask", attention_mask)
        S = past_length + T
        if _shape(attention_mask) not in ((B, S), (B, T, S)):
            expected = f"(batch={B}, seq_len={S})" + (f" (past {past_length} + new {T})" if past_length else "")
            raise InputError(f"attention_mask must have shape {expected}, got {_shape(attention_mask)}")
        if attention_mask.dtype.is_complex:
            raise InputError(f"attention_mask must hold 0/1 (bool, int or float), got dtype {attention_mask.dtype}")
        if attention_mask.dtype != torch.bool:
            _check_values("attention_mask", attention_mask, lambda t: (t == 0) | (t == 1), "0 or 1",
                          "1 for a real token, 0 for padding")

    if token_type_ids is not None:
        _require_tensor("token_type_ids", token_type_ids)
        _require_ids("token_type_ids", token_type_ids)
        if _shape(token_type_ids) != (B, T):
            raise InputError(f"token_type_ids must have shape (batch={B}, seq_len={T}), got {_shape(token_type_ids)}")
        _check_range("token_type_ids", token_type_ids, 0, config.type_vocab_size,
                     f"this model has type_vocab_size={config.type_vocab_size}")

    limit = config.max_position_embeddings
    if position_ids is not None:
        _require_tensor("position_ids", position_ids)
        _require_ids("position_ids", position_ids)
        if _shape(position_ids) not in ((B, T), (1, T)):
            raise InputError(f"position_ids must have shape (batch={B}, seq_len={T}), got {_shape(position_ids)}")
        _check_range("position_ids", position_ids, 0, limit, f"the position table has {limit} rows")
    else:
        longest = max_sequence_length(config)
        if past_length + T > longest:
            raise InputError(
                f"sequence length {past_length + T} is longer than this model allows: {longest} tokens "
                f"(max_position_embeddings={limit} minus the pad_token_id + 1 = {config.pad_token_id + 1} "
                "offset of RoBERTa positions); truncate the input (tokenizer truncation=True, max_length=...)"
            )

    if input_ids is not None:
        _check_range("input_ids", input_ids, 0, config.vocab_size,
                     f"this model has vocab_size={config.vocab_size} (does the tokenizer match the model?)")

    if head_mask is not None:
        _require_tensor("head_mask", head_mask)
        H, L = config.num_attention_heads, config.num_hidden_layers
        if _shape(head_mask) not in ((H,), (L, H)):
            raise InputError(
                f"head_mask must have shape (num_heads={H},) or (num_layers={L}, num_heads={H}), "
                f"got {_shape(head_mask)}"
            )
    return B, T


def check_positions(positions, source: Optional[torch.Tensor]) -> None:
    """prediction_positions: (batch, K) integers, each a column of the input, or -1 for an empty slot."""
    _require_tensor("prediction_positions", positions)
    _require_integer("prediction_positions", positions)
    if source is None:
        return  # check_inputs names the missing input
    B, T = source.shape[:2]
    if positions.dim() != 2 or positions.size(0) != B:
        raise InputError(f"prediction_positions must have shape (batch={B}, K), got {_shape(positions)}")
    _check_range("prediction_positions", positions, 0, T, f"columns of the {T}-token input", allow=-1)


def check_labels(kind: str, labels, logits: torch.Tensor, name: str) -> None:
    """Validate labels for a loss: `kind` is a problem type, or "positions" for QA start/end positions."""
    _require_tensor(name, labels)
    num_classes = logits.size(-1)
    if kind == "regression":
        if labels.numel() != logits.numel():
            raise InputError(
                f"{name} for regression must have one value per output (shape {_shape(logits)}), "
                f"got shape {_shape(labels)}"
            )
        return
    if kind == "multi_label_classification":
        if _shape(labels) != _shape(logits):
            raise InputError(
                f"{name} for multi-label classification must be 0/1 of shape {_shape(logits)} "
                f"(batch, num_labels), got shape {_shape(labels)}"
            )
        return
    _require_integer(name, labels)
    if kind == "positions":
        if labels.dim() != 1 or labels.size(0) != logits.size(0):
            raise InputError(f"{name} must have shape (batch={logits.size(0)},), got {_shape(labels)}")
        return  # positions past the end are clamped and ignored, as in transformers
    if _shape(labels) != _shape(logits)[:-1] and labels.numel() != logits.numel() // num_classes:
        raise InputError(f"{name} must have shape {_shape(logits)[:-1]}, got {_shape(labels)}")
    _check_range(name, labels, 0, num_classes, f"class indices below {num_classes}, or -100 to ignore", allow=-100)

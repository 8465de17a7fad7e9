"""Batching: dynamic padding (each batch padded to its own longest sequence) and masked-LM masking."""

from __future__ import annotations

from typing import Optional

import torch

from .config import MASK_MODES

# Keys padded with something other than the pad token: attention masks with 0, token labels with -100
# (ignored by the loss).
PAD_VALUES = {"attention_mask": 0, "labels": -100, "special_tokens_mask": 1}


def pad(sequences: list, value: int) -> torch.Tensor:
    """Right-pad lists of ints (or lists of lists, for multiple choice) into one long tensor."""
    if sequences and isinstance(sequences[0][0], list):  # (B, N, T): pad every choice to the batch's longest
        width = max(len(s) for choices in sequences for s in choices)
        return torch.tensor([[s + [value] * (width - len(s)) for s in choices] for choices in sequences])
    width = max(len(s) for s in sequences)
    return torch.tensor([s + [value] * (width - len(s)) for s in sequences])


def collate(features: list[dict], pad_token_id: int, padded: tuple[str, ...] = (),
            stacked: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """One batch: the `padded` keys (token sequences) padded to the longest, the `stacked` ones (one value
    per example: class labels, answer positions) stacked."""
    batch = {key: pad([f[key] for f in features], PAD_VALUES.get(key, pad_token_id)) for key in padded}
    batch.update({key: torch.tensor([f[key] for f in features]) for key in stacked})
    return batch


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, rate: float, mode: str, mask_token_id: int,
                vocab_size: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: each non-special token is chosen with probability `rate` and predicted.

    mode "80-10-10": a chosen token becomes <mask> 80% of the time, a random token 10%, stays itself 10%;
    mode "mask": every chosen token becomes <mask> (the efficient_mlm "-801010"-less variants).
    Returns (masked input_ids, labels: the original id where chosen, -100 elsewhere).
    """
    if not 0 < rate < 1:
        raise ValueError(f"mlm masking rate must be in (0, 1), got {rate}")
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    chosen = (torch.rand(input_ids.shape, generator=generator) < rate) & ~special.bool()
    if not chosen.any() and not special.bool().all():
        # Nothing chosen means no loss (a mean over no tokens is NaN): choose one token, drawn uniformly
        # (short batches at low rates hit this; the draw comes from the same generator, so runs still repeat).
        candidates = (~special.bool()).nonzero()
        chosen[tuple(candidates[torch.randint(len(candidates), (1,), generator=generator)][0])] = True
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    if mode == "mask":
        inputs[chosen] = mask_token_id
        return inputs, labels
    draw = torch.rand(input_ids.shape, generator=generator)
    inputs[chosen & (draw < 0.8)] = mask_token_id
    randomised = chosen & (draw >= 0.8) & (draw < 0.9)
    inputs[randomised] = torch.randint(vocab_size, input_ids.shape, generator=generator)[randomised]
    return inputs, labels

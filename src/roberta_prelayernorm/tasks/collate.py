"""Batching: dynamic padding (each batch padded to its own longest sequence) and masked-LM masking."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

# Keys padded with something other than the pad token: attention masks with 0, token labels with -100
# (ignored by the loss).
PAD_VALUES = {"attention_mask": 0, "labels": -100, "special_tokens_mask": 1}


def padded_width(longest: int, multiple: int = 1, limit: Optional[int] = None) -> int:
    """The batch's width: its longest sequence rounded up to a multiple of `multiple` (so that compiled models
    see few shapes), but not past `limit` (the task's max_length) where the longest fits in it."""
    width = -(-longest // multiple) * multiple
    return max(longest, min(width, limit)) if limit is not None else width


def pad(sequences: list, value: int, multiple: int = 1, limit: Optional[int] = None) -> torch.Tensor:
    """Right-pad lists of ints (or lists of lists, for multiple choice) into one long tensor of padded_width."""
    if sequences and isinstance(sequences[0][0], list):  # (B, N, T): pad every choice to the batch's width
        width = padded_width(max(len(s) for choices in sequences for s in choices), multiple, limit)
        return torch.stack([padded_rows(choices, value, width) for choices in sequences])
    return padded_rows(sequences, value, padded_width(max(len(s) for s in sequences), multiple, limit))


def padded_rows(sequences: list, value: int, width: int) -> torch.Tensor:
    """(len(sequences), width): each list written into a row of `value`s. Row by row through numpy: building
    the tensor from nested Python lists takes many times longer, time the prefetch thread holds the interpreter
    lock while the training step launches kernels."""
    rows = np.full((len(sequences), width), value, dtype=np.float32 if isinstance(sequences[0][0], float) else np.int64)
    for row, sequence in zip(rows, sequences):
        row[:len(sequence)] = sequence
    return torch.from_numpy(rows)


def collate(features: list[dict], pad_token_id: int, padded: tuple[str, ...] = (), stacked: tuple[str, ...] = (),
            multiple: int = 1, limit: Optional[int] = None) -> dict[str, torch.Tensor]:
    """One batch: the `padded` keys (token sequences) padded to padded_width, the `stacked` ones (one value
    per example: class labels, answer positions) stacked."""
    batch = {key: pad([f[key] for f in features], PAD_VALUES.get(key, pad_token_id), multiple, limit)
             for key in padded}
    batch.update({key: torch.tensor([f[key] for f in features]) for key in stacked})
    return batch


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, rate: float, mode: str, mask_token_id: int,
                vocab_size: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masking by the paper's rule (fairseq's): each row chooses floor(rate x n + U) of its n maskable
    (non-special, non-padding) tokens, U uniform in [0, 1), uniformly without replacement, and predicts them.

    A row of T tokens never chooses more than ceil(rate x T) (`capacity`), so sparse prediction has a static
    number of slots per batch shape; the expected share is `rate` exactly.
    mode "80-10-10": a chosen token becomes <mask> 80% of the time, a random token 10%, stays itself 10%;
    mode "mask": every chosen token becomes <mask> (the efficient_mlm "-801010"-less variants).
    Returns (masked input_ids, labels: the original id where chosen, -100 elsewhere). The rate and mode are
    checked where they are set (the MaskedLM task).
    """
    maskable = ~special.bool()
    share = rate * maskable.sum(1).double()  # (B,)
    counts = torch.minimum((share + torch.rand(share.shape, generator=generator, dtype=torch.float64)).floor(),
                           share.ceil())  # the minimum: a sum that rounds up to the next integer stays in bound
    keys = torch.rand(input_ids.shape, generator=generator).masked_fill(~maskable, 2.0)  # maskable ones first
    # The counts[row] smallest keys of each row: the first counts[row] places of its order, scattered back.
    order = keys.argsort(dim=1)
    chosen = torch.zeros_like(maskable).scatter_(1, order, torch.arange(keys.size(1)) < counts[:, None])
    if not chosen.any() and maskable.any():
        # Nothing chosen means no loss (a mean over no tokens is NaN): choose one token, drawn uniformly
        # (short batches at low rates hit this; the draw comes from the same generator, so runs still repeat).
        candidates = maskable.nonzero()
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


def capacity(rate: float, length: int) -> int:
    """The most tokens mask_tokens chooses in a row of `length` tokens: the static number of prediction slots."""
    return max(1, math.ceil(rate * length))

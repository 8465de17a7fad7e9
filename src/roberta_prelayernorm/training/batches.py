"""Getting batches to the device without stalling it: the coming steps' micro-batches are collated in a
background thread (pinned in page-locked memory for a GPU) while the device works, and copied without blocking.

What a step sees stays a function of (seed, epoch, step, micro-batch, rank) alone: prefetching changes when a
batch is made, never what it holds, so runs and resumed runs are exactly as deterministic as without it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch


def to_device(batch: dict, device: torch.device, compiled: bool = False) -> dict:
    """The batch on `device` (copies that do not block the host), but for an eager model the attention mask
    where it is: a host mask lets the model decide padding-free packing without reading the device (a compiled
    model runs the padded path, with the mask on the device)."""
    return {key: value if key == "attention_mask" and not compiled else value.to(device, non_blocking=True)
            for key, value in batch.items()}


def host_ready(batch: dict, pin: bool) -> dict:
    """A collated training batch made ready in the background: an attention mask without padding is dropped
    (no mask at all lets SDPA run its fastest kernel); for a GPU, every tensor is page-locked."""
    mask = batch.get("attention_mask")
    if mask is not None and mask.dim() == 2 and bool(mask.all()):
        del batch["attention_mask"]
    return {key: value.pin_memory() for key, value in batch.items()} if pin else batch


def step_batches(task, features: list, micro_batches: list, device: torch.device, *, seed: int, epoch: int, k: int,
                 rank: int) -> list:
    """(feature indices, host batch, real tokens) of each micro-batch of step k of `epoch`; micro-batch j's
    masking draws from (seed, epoch, k, j, rank) alone. Runs in the prefetch thread."""
    from .setup import generator

    out = []
    for j, indices in enumerate(micro_batches):
        batch = task.collate([features[i] for i in indices], generator(seed, epoch, k, j, rank))
        tokens = int(batch["attention_mask"].sum())
        out.append((indices, host_ready(batch, pin=device.type == "cuda"), tokens))
    return out


class Prefetcher:
    """Runs `make(key)` for the keys asked for ahead of time in one background thread; `get(key)` returns its
    result (made now if it was not asked for), re-raising what it raised."""

    def __init__(self, make: Callable):
        self.make = make
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roberta-prelayernorm-batches")
        self.pending: dict[object, Future] = {}

    def ahead(self, key) -> None:
        if key not in self.pending:
            self.pending[key] = self.pool.submit(self.make, key)

    def get(self, key):
        future = self.pending.pop(key, None)
        return future.result() if future is not None else self.make(key)

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pending.clear()
        self.pool.shutdown(wait=True)
